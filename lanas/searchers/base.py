"""The ask/tell interface every searcher implements (the shape of Optuna's and Syne Tune's)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.errors import ConfigError
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace


class Searcher(ABC):
    """Decides what to evaluate next. It never evaluates anything itself.

    Constructors only validate their parameters (no work in ``__init__``); all randomness comes
    from the ``rng`` handed in, so the same seed gives the same sequence of proposals.
    """

    name: str = "searcher"

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng
        self.archs: list[Arch] = []
        self.rewards: list[float] = []

    @abstractmethod
    def ask(self, n: int = 1) -> list[Arch]:
        """Propose ``n`` architectures not evaluated before."""

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        """Record the rewards of evaluated architectures."""
        if len(archs) != len(rewards):
            raise ValueError(f"tell got {len(archs)} architectures but {len(rewards)} rewards")
        self.archs.extend(archs)
        self.rewards.extend(float(r) for r in rewards)

    @property
    def num_told(self) -> int:
        return len(self.rewards)

    def min_budget(self) -> int:
        """Fewest samples for which this searcher's configuration makes sense."""
        return 1

    def stats(self) -> dict[str, Any]:
        """Searcher-specific figures worth logging (cheap to compute)."""
        return {}

    def _require_finite(self) -> FiniteSearchSpace:
        if not isinstance(self.space, FiniteSearchSpace):
            raise ConfigError(
                f"searcher={self.name} needs a search space that can be enumerated; "
                f"search_space={self.space.name} cannot"
            )
        return self.space


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
