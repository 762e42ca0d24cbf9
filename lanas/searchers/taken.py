"""Which architectures a searcher has already spent (evaluated or proposed), on any space.

Every searcher holds one :class:`TakenSet` (``Searcher.taken``): "never propose twice" lives here.
Finite spaces keep a boolean mask over the pool (:class:`PoolMask`); other spaces keep a set of
:meth:`~lanas.spaces.base.SearchSpace.arch_id` strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace


class PoolMask:
    """Which pool positions are taken (evaluated or proposed), with uniform draws among the rest."""

    def __init__(self, size: int) -> None:
        self.taken = np.zeros(size, dtype=bool)
        self.num_taken = 0

    def take(self, idx: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(idx, dtype=np.int64)
        self.num_taken += int(np.count_nonzero(~self.taken[idx]))
        self.taken[idx] = True

    def draw(self, rng: np.random.Generator, within: np.ndarray | None = None) -> int | None:
        """A uniform free position (inside the boolean mask ``within`` if given), or None."""
        free = ~self.taken if within is None else within & ~self.taken
        candidates = np.flatnonzero(free)
        if len(candidates) == 0:
            return None
        return int(candidates[rng.integers(len(candidates))])

    @property
    def exhausted(self) -> bool:
        return self.num_taken >= len(self.taken)


class TakenSet:
    """Architectures already evaluated or proposed, with uniform draws among the others."""

    def __init__(self, space: SearchSpace, max_tries: int = 1000) -> None:
        self.space = space
        self.max_tries = max_tries  # rejection-sampling attempts on spaces that cannot be enumerated
        self.mask = PoolMask(len(space)) if isinstance(space, FiniteSearchSpace) else None
        self.ids: set[str] = set()

    def __contains__(self, arch: Arch) -> bool:
        if self.mask is not None:
            return bool(self.mask.taken[int(arch)])
        return self.space.arch_id(arch) in self.ids

    def __len__(self) -> int:
        return self.mask.num_taken if self.mask is not None else len(self.ids)

    def take(self, archs: Iterable[Arch]) -> None:
        archs = list(archs)
        if self.mask is not None:
            self.mask.take([int(a) for a in archs])
        else:
            self.ids.update(self.space.arch_id(a) for a in archs)

    @property
    def exhausted(self) -> bool:
        return self.mask is not None and self.mask.exhausted

    def draw(self, rng: np.random.Generator) -> Arch | None:
        """A uniformly random architecture not taken yet (None when none is left or none was found)."""
        if self.mask is not None:
            return self.mask.draw(rng)
        for _ in range(self.max_tries):
            arch = self.space.sample(rng, 1)[0]
            if arch not in self:
                return arch
        return None
