"""Random search: architectures drawn uniformly at random, without replacement.

On an enumerable space the pool is visited in the order of one random permutation, drawn on the
first ``ask`` (O(1) per sample, and every order is equally likely); on other spaces architectures
are sampled and rejected when already taken.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace


class RandomSearch(Searcher):
    """Uniform sampling without replacement."""

    name = "random"

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        super().__init__(space, rng)
        self._order: np.ndarray | None = None  # permutation of the pool (finite spaces)
        self._next = 0

    def ask(self, n: int = 1) -> list[Arch]:
        proposals = []
        for _ in range(n):
            arch = self._draw()
            if arch is None:
                break
            self.taken.take([arch])
            proposals.append(arch)
        return proposals

    def _draw(self) -> Arch | None:
        if not isinstance(self.space, FiniteSearchSpace):
            return self.taken.draw(self.rng)
        if self._order is None:
            self._order = self.rng.permutation(len(self.space))
        # Skip positions taken by other means (e.g. told on resume without being asked).
        while self._next < len(self._order):
            arch = int(self._order[self._next])
            self._next += 1
            if arch not in self.taken:
                return arch
        return None


    def stats(self) -> dict[str, Any]:
        return {"taken": len(self.taken)}
