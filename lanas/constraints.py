"""Budgets on what an architecture costs: the ``constraints`` config node.

``constraints.params_mb=1.0`` keeps architectures of at most 1.0 M parameters, ``constraints.flops_m=600``
those of at most 600 M multiply-adds, ``constraints.latency_ms=...`` those no slower than that (as the
benchmark measured it); ``null`` switches a limit off. Each limit is an upper bound, inclusive.

Conventions (the same everywhere a metric is computed or read):

- ``params_mb``: parameters in millions, what NAS-Bench-201 calls "MB" (its ``model_size``);
  NAS-Bench-101's ``trainable_parameters`` / 1e6.
- ``flops_m``: **multiply-adds** in millions, the convention of the LaNAS paper ("600 MFLOPs") and of
  the MobileNet/EfficientNet papers; ``torch.utils.flop_counter`` counts 2 FLOPs per multiply-add,
  :mod:`lanas.flops` halves it.
- ``latency_ms``: milliseconds, as the benchmark recorded it (NAS-Bench-201: its ``latency`` x 1000).

The constraint narrows the *space* the searchers draw from (one place, every searcher inherits it):
a tabular benchmark keeps only the feasible rows of its table (so its optimum is the constrained
optimum), an unbounded space is wrapped so that sampling and mutation return feasible architectures
only (:mod:`lanas.spaces.constrained`). This module imports nothing of lanas but the errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanas.errors import ConfigError, require_float

METRICS: dict[str, str] = {
    "params_mb": "parameters in millions",
    "flops_m": "multiply-adds in millions",
    "latency_ms": "latency in milliseconds",
}


@dataclass(frozen=True)
class Constraints:
    """Upper bounds per metric (only the limits that are on)."""

    limits: tuple[tuple[str, float], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.limits)

    def as_dict(self) -> dict[str, float]:
        return dict(self.limits)

    def describe(self) -> str:
        return ", ".join(f"constraints.{name}={value:g}" for name, value in self.limits)

    def feasible(self, values: Mapping[str, np.ndarray], where: str) -> np.ndarray:
        """Which architectures meet every limit, given each metric's values (one per architecture).

        ``where`` names what recorded the values (e.g. ``benchmark=nasbench201``) for the one-line
        error when a limited metric is not among them.
        """
        keep: np.ndarray | None = None
        for name, limit in self.limits:
            if name not in values:
                recorded = ", ".join(sorted(values)) or "none"
                raise ConfigError(
                    f"constraints.{name} needs {METRICS[name]}, which {where} does not record "
                    f"(recorded: {recorded}); set constraints.{name}=null"
                )
            ok = np.asarray(values[name], dtype=np.float64) <= limit
            keep = ok if keep is None else keep & ok
        if keep is None:
            raise ValueError("no limits: check bool(constraints) first")
        return keep

    def none_feasible(self, values: Mapping[str, np.ndarray], where: str) -> ConfigError:
        """The one-line error for a budget no architecture meets, naming the smallest value of each metric."""
        smallest = "; ".join(f"smallest {name} is {float(np.min(values[name])):.6g}" for name, _ in self.limits)
        return ConfigError(f"{self.describe()}: no architecture of {where} meets them ({smallest}); raise the budget")


def parse_constraints(node: Mapping[str, Any] | None) -> Constraints:
    """The ``constraints`` config node (``None`` or every value null: no constraint)."""
    if node is None:
        return Constraints()
    if not isinstance(node, Mapping):
        raise ConfigError(f"constraints must be a mapping of {', '.join(METRICS)} to limits, got {node!r}")
    limits = []
    for name, value in node.items():
        if name not in METRICS:
            raise ConfigError(f"constraints.{name} is unknown; allowed: {', '.join(METRICS)}")
        if value is None:
            continue
        value = require_float(f"constraints.{name}", value, 0.0)
        if value <= 0.0:
            raise ConfigError(f"constraints.{name} must be > 0 (null switches it off), got {value:g}")
        limits.append((str(name), value))
    return Constraints(tuple(sorted(limits)))
