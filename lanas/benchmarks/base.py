"""Tabular benchmarks: every architecture's reward looked up in a table (the Evaluator is in lanas.evaluators)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch


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
