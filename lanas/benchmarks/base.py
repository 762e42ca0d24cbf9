"""Tabular benchmarks: every architecture's reward looked up in a table (the Evaluator is in lanas.evaluators)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanas.constraints import Constraints
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch


class TabularBenchmark(Evaluator):
    """A lookup table over a finite space: ``table[pool position, repeat]``, NaN where absent."""

    table: np.ndarray  # shape (pool size, repeats), rewards as fractions
    reward: str = "mean"
    REWARDS: tuple[str, ...] = ("mean", "sampled")
    # Rows of the unconstrained table that a constraint kept (None: all); see constrain().
    kept: np.ndarray | None = None

    def metrics(self) -> dict[str, np.ndarray]:
        """Cost of each row of the table per metric the benchmark records (names of lanas.constraints.METRICS)."""
        return {}

    def recorded_seconds(self) -> np.ndarray | None:
        """Recorded training seconds of each row of the unconstrained table, or None where the data have none."""
        return None

    def train_seconds(self) -> np.ndarray | None:
        """Recorded training seconds per pool position of the candidate space (the kept rows under constraints)."""
        seconds = self.recorded_seconds()
        return seconds if seconds is None or self.kept is None else seconds[self.kept]

    def constrain(self, constraints: Constraints) -> bool:
        """Keep only the rows within ``constraints``: the optimum becomes the constrained optimum.

        Pool positions shift to the kept rows (``candidate_space`` narrows the space to match). Raises
        ConfigError, in one line, for a metric the benchmark does not record or a budget no row meets.
        """
        if not constraints:
            return True
        where = f"benchmark={self.name}"
        values = self.metrics()
        keep = constraints.feasible(values, where)
        if not keep.any():
            raise constraints.none_feasible(values, where)
        self.kept = np.flatnonzero(keep)
        table = self.table[self.kept]
        table.setflags(write=False)
        self.table = table
        self._mean_cache = None
        return True

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
