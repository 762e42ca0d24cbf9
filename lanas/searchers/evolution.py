"""Regularised ("ageing") evolution: Real, Aggarwal, Huang, Le, AAAI 2019, as run on NAS-Bench-101.

The first ``population_size`` samples are uniform random architectures. After that, each sample is
a mutation (``space.mutate``: one elementary change) of the best of ``tournament_size``
architectures drawn without replacement from the population; the new architecture joins the
population and the oldest member leaves it, whatever its reward (the ageing that regularises it).

Differences from the original, for a sample-counted benchmark: a child that was already evaluated
(or is pending) is never evaluated again. It counts as a duplicate, and the parent is mutated again,
up to ``max_mutation_tries`` times; then a uniformly random unevaluated architecture is used
instead. ``stats()`` reports both counts.

Several workers (``workers > 1``): this is the asynchronous regularised evolution of Real et al.
(their workers each take a tournament from the current population and send the child back when it
is trained). Results join the population in the order they finish and the oldest member leaves;
every ask runs its tournament on the population as it is at that moment, pending children are not
members yet. While fewer than ``population_size`` results have arrived, free workers get uniformly
random architectures (the initial population, which with many workers is more than
``population_size`` draws).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.errors import require_int
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch, SearchSpace


class RegularizedEvolution(Searcher):
    """Tournament selection, mutation, and removal of the oldest member."""

    name = "evolution"

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        population_size: int = 50,
        tournament_size: int = 10,
        max_mutation_tries: int = 100,
    ) -> None:
        super().__init__(space, rng)
        self.population_size = require_int("searcher.population_size", population_size, 1)
        self.tournament_size = require_int("searcher.tournament_size", tournament_size, 1, self.population_size)
        self.max_mutation_tries = require_int("searcher.max_mutation_tries", max_mutation_tries, 0)
        # (arch, reward) in order of arrival; the left end is the oldest member.
        self.population: deque[tuple[Arch, float]] = deque()
        self.num_duplicates = 0  # mutated children that had been evaluated or proposed already
        self.num_random_fallbacks = 0  # times every mutation try was a duplicate

    def ask(self, n: int = 1) -> list[Arch]:
        proposals = []
        for _ in range(n):
            if self.num_told < self.population_size:
                arch = self.taken.draw(self.rng)
            else:
                arch = self._child(self.tournament())
            if arch is None:
                break  # nothing left to evaluate
            self.taken.take([arch])
            proposals.append(arch)
        return proposals

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        super().tell(archs, rewards)
        for arch, reward in zip(archs, rewards):
            self.population.append((arch, float(reward)))
            if len(self.population) > self.population_size:
                self.population.popleft()  # ageing: the oldest dies, not the worst

    def tournament(self) -> Arch:
        """The best of ``tournament_size`` members drawn without replacement (first drawn wins ties)."""
        picks = self.rng.choice(len(self.population), size=self.tournament_size, replace=False)
        rewards = np.array([self.population[i][1] for i in picks])
        return self.population[int(picks[np.argmax(rewards)])][0]

    def _child(self, parent: Arch) -> Arch | None:
        for _ in range(self.max_mutation_tries):
            child = self.space.mutate(parent, self.rng)
            if child not in self.taken:
                return child
            self.num_duplicates += 1
        self.num_random_fallbacks += 1
        return self.taken.draw(self.rng)

    def stats(self) -> dict[str, Any]:
        return {"duplicates": self.num_duplicates, "random_fallbacks": self.num_random_fallbacks}
