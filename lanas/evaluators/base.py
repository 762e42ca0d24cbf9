"""What the loop asks of anything that scores architectures: tables (lanas.benchmarks) and trained networks alike."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.constraints import Constraints
from lanas.spaces.base import Arch, SearchSpace


class Evaluator(ABC):
    """Scores architectures; higher is better. Rewards are fractions in [0, 1] for accuracies."""

    name: str = "evaluator"
    dataset: str = ""

    @abstractmethod
    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        """Rewards of ``archs``; ``rng`` drives any evaluation noise."""

    def constrain(self, constraints: Constraints) -> bool:
        """Apply a cost budget where this evaluator knows every architecture's cost (tabular benchmarks).

        False: it does not, and the space has to (``lanas.spaces.constrained.constrain_space``).
        """
        return False

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        """The space searchers should draw from (a benchmark covering part of a space narrows it)."""
        return space

    @property
    def global_optimum(self) -> float | None:
        """Best reward attainable, where known."""
        return None

    def is_optimal(self, archs: Sequence[Arch]) -> np.ndarray:
        """Whether each architecture is a global optimum (all false when unknown)."""
        return np.zeros(len(archs), dtype=bool)

    def optimal_archs(self) -> np.ndarray | None:
        """Every architecture that attains the optimum, where known (None otherwise)."""
        return None

    def stats(self) -> dict[str, Any]:
        """Evaluator-specific figures for the summary (e.g. seconds per evaluation)."""
        return {}
