"""What the loop asks of anything that scores architectures."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.spaces.base import Arch, SearchSpace


class Evaluator(ABC):
    """Scores architectures; higher is better. Rewards are fractions in [0, 1] for accuracies."""

    name: str = "evaluator"
    dataset: str = ""

    @abstractmethod
    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        """Rewards of ``archs``; ``rng`` drives any evaluation noise."""

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

    def stats(self) -> dict[str, Any]:
        """Evaluator-specific figures for the summary (e.g. seconds per evaluation)."""
        return {}


class TabularBenchmark(Evaluator):
    """A lookup table over a finite space: ``table[pool position, repeat]``, NaN where absent."""

    table: np.ndarray  # shape (pool size, repeats), rewards as fractions
    reward: str = "mean"
    REWARDS: tuple[str, ...] = ("mean", "sampled")

    def _mean(self) -> np.ndarray:
        if getattr(self, "_mean_cache", None) is None:
            self._mean_cache = np.nanmean(self.table, axis=1)
        return self._mean_cache

    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        idx = np.asarray(archs, dtype=np.int64)
        if self.reward == "mean":
            return self._mean()[idx]
        rows = self.table[idx]
        counts = np.sum(~np.isnan(rows), axis=1)
        # One repeat per query among those recorded, as the NAS-Bench-101 API draws.
        pick = np.floor(rng.random(len(idx)) * counts).astype(np.int64)
        order = np.argsort(np.isnan(rows), axis=1, kind="stable")  # recorded repeats first
        return rows[np.arange(len(idx)), order[np.arange(len(idx)), pick]]

    @property
    def global_optimum(self) -> float:
        return float(np.nanmax(self._mean()))

    def optimal_archs(self) -> np.ndarray:
        """Pool positions whose mean reward equals the optimum."""
        mean = self._mean()
        return np.flatnonzero(mean == np.nanmax(mean))

    def is_optimal(self, archs: Sequence[Arch]) -> np.ndarray:
        mean = self._mean()
        return mean[np.asarray(archs, dtype=np.int64)] == np.nanmax(mean)
