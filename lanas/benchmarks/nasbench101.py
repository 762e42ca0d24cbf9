"""Tabular NAS-Bench-101 (CIFAR-10), from the official ``.tfrecord`` or a subset ``.json``.

Rewards (fractions): ``test_mean`` is the mean test accuracy over the 3 training repeats, what
the LaNAS reference code optimises (best cell: 0.943175752957662 at 108 epochs); ``val_mean`` the
mean validation accuracy; ``val_sampled`` the validation accuracy of one repeat drawn per query,
the official API's noise model. ``epochs`` picks the training budget (4, 12, 36 or 108 in the
full file; 108 only in ``nasbench_only108``). A table holding part of the space restricts the
candidate pool to its cells that have a result at that budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lanas.benchmarks.base import TabularBenchmark
from lanas.constraints import Constraints
from lanas.errors import BenchmarkDataError, ConfigError, require_choice, require_int
from lanas.nasbench101.enumerate import load_pool
from lanas.nasbench101.table import load_table
from lanas.spaces.base import SearchSpace
from lanas.spaces.nasbench101 import NASBench101Space

REWARDS = ("test_mean", "val_mean", "val_sampled")
_COLUMN = {"test_mean": "final_test_accuracy", "val_mean": "final_validation_accuracy",
           "val_sampled": "final_validation_accuracy"}
GET_DATA = "get the official file with 'python -m lanas.nasbench101.download' (see docs/nasbench101.md)"


class NASBench101Benchmark(TabularBenchmark):
    """Lookup of NAS-Bench-101 results; see the module docstring for rewards and budgets."""

    name = "nasbench101"
    REWARDS = REWARDS

    def __init__(self, path: str | None = None, reward: str = "test_mean", epochs: int = 108,
                 dataset: str = "cifar10") -> None:
        if path is None or str(path).strip() == "":
            raise ConfigError(
                "benchmark.path must name nasbench_only108.tfrecord, nasbench_full.tfrecord or a subset .json; "
                + GET_DATA
            )
        self.reward_name = require_choice("benchmark.reward", reward, REWARDS)
        self.epochs = require_int("benchmark.epochs", epochs, 1)
        if dataset != "cifar10":
            raise ConfigError(f"dataset={dataset!r} is not in NAS-Bench-101; allowed: cifar10")
        self.dataset = dataset
        self.path = str(Path(path).expanduser())
        self.reward = "sampled" if reward == "val_sampled" else "mean"  # TabularBenchmark's modes

        table = load_table(self.path)
        if self.epochs not in table.epochs:
            raise ConfigError(
                f"benchmark.epochs={self.epochs} is not in {self.path}; allowed: {', '.join(map(str, table.epochs))}"
            )
        column = _COLUMN[self.reward_name]
        if column not in table.columns:
            allowed = [r for r in REWARDS if _COLUMN[r] in table.columns]
            raise ConfigError(
                f"benchmark.reward={reward!r} needs {column}, which {self.path} does not hold; "
                f"allowed: {', '.join(allowed)}"
            )
        values = table.column(column, self.epochs).astype(np.float64)  # means in float64, as the official API
        positions = load_pool().find(table.hashes)
        if np.any(positions < 0):
            bad = table.hashes[np.flatnonzero(positions < 0)[0]].decode()
            raise BenchmarkDataError(
                f"{self.path}: {int(np.sum(positions < 0))} module hashes are not NAS-Bench-101 cells, e.g. {bad}"
            )
        present = ~np.all(np.isnan(values), axis=1)
        if not present.any():
            raise BenchmarkDataError(f"{self.path}: no results at benchmark.epochs={self.epochs}")
        # Pool and table are both in hash order, so the kept rows line up with the restricted space.
        self.positions = positions[present]
        self._present = present  # the table rows that are candidates (for recorded_seconds)
        params = table.trainable_parameters
        # params_mb (millions of parameters) where the file records trainable_parameters (for constraints).
        self._params_mb = None if params is None else np.asarray(params, dtype=np.float64)[present] / 1e6
        table_values = values[present]
        table_values.setflags(write=False)
        self.table = table_values

    def metrics(self) -> dict[str, np.ndarray]:
        return {} if self._params_mb is None else {"params_mb": self._params_mb}

    def recorded_seconds(self) -> np.ndarray | None:
        """Mean ``final_training_time`` over repeats at ``epochs`` of each candidate (None when not recorded)."""
        table = load_table(self.path)
        if "final_training_time" not in table.columns:
            return None
        times = table.column("final_training_time", self.epochs).astype(np.float64)[self._present]
        with np.errstate(invalid="ignore"):
            seconds = np.nanmean(times, axis=1) if times.ndim == 2 else times
        return None if np.isnan(seconds).any() else seconds

    def constrain(self, constraints: Constraints) -> bool:
        super().constrain(constraints)
        if self.kept is not None:
            self.positions = self.positions[self.kept]  # the kept rows, still in hash order
        return True

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        if not isinstance(space, NASBench101Space):
            raise ConfigError(
                f"benchmark=nasbench101 needs search_space=nasbench101, got search_space={space.name}"
            )
        return space if len(self.positions) == len(load_pool()) else space.restrict(self.positions)
