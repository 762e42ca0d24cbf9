"""Spaces narrowed to the architectures that meet a budget (see :mod:`lanas.constraints`).

Searchers draw from these like from any space and so never propose an architecture outside the
budget, without a line of their own:

- :class:`SubsetSpace`: part of an enumerable pool (the feasible rows of a tabular benchmark). Its
  architectures are positions ``0..len-1`` in the kept part, in pool order; strings and ids are the
  base space's, so traces read the same as without the constraint.
- :class:`FeasibleSpace`: an unbounded space whose ``sample`` and ``mutate`` return feasible
  architectures only (rejection on a cost function the base space computes in closed form).

``from_decisions`` of either returns ``None`` for a decision row outside the budget: a searcher over a
fixed decision sequence (TPE, MCTS on unbounded spaces) treats it as a proposal it cannot make.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanas.constraints import Constraints
from lanas.errors import ConfigError, InvalidArchitectureError
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace

_MUTATION_TRIES = 1000  # base mutations tried before a uniform feasible architecture is taken instead
_SAMPLE_BATCH = 256  # candidates drawn per rejection round in FeasibleSpace.sample


class SubsetSpace(FiniteSearchSpace):
    """The architectures of ``base`` at ``positions`` (sorted, distinct base pool positions)."""

    def __init__(self, base: FiniteSearchSpace, positions: np.ndarray, why: str = "") -> None:
        self.base = base
        self.positions = np.unique(np.asarray(positions, dtype=np.int64))
        self.why = why  # e.g. "constraints.params_mb=1" for messages
        self.name = base.name
        self._features = None
        self._local: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def dim(self) -> int:
        return self.base.dim

    def _build_features(self) -> np.ndarray:
        return self.base.features()[self.positions]

    def local(self, full: np.ndarray | Sequence[int]) -> np.ndarray:
        """Position in this space of base positions (-1 where not in it)."""
        if self._local is None:
            local = np.full(len(self.base), -1, dtype=np.int64)
            local[self.positions] = np.arange(len(self.positions))
            self._local = local
        return self._local[np.asarray(full, dtype=np.int64)]

    def full(self, arch: Arch) -> int:
        return int(self.positions[int(arch)])

    def mutate(self, arch: Arch, rng: np.random.Generator) -> int:
        """A base mutation that stays inside (tried up to 1,000 times; then a uniform other architecture)."""
        full = self.full(arch)
        for _ in range(_MUTATION_TRIES):
            child = int(self.local([self.base.mutate(full, rng)])[0])
            if child >= 0 and child != int(arch):
                return child
        return self.other_uniform(arch, rng)

    def to_string(self, arch: Arch) -> str:
        return self.base.to_string(self.full(arch))

    def arch_id(self, arch: Arch) -> str:
        return self.base.arch_id(self.full(arch))

    def from_string(self, text: str) -> int:
        arch = int(self.local([self.base.from_string(text)])[0])
        if arch < 0:
            raise InvalidArchitectureError(f"{text!r} is outside this run's space ({self.why or 'a subset'})")
        return arch

    def op_blocks(self) -> np.ndarray | None:
        return self.base.op_blocks()

    def decisions(self) -> list[int] | None:
        return self.base.decisions()

    def to_decisions(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.base.to_decisions(self.positions[np.asarray(archs, dtype=np.int64).reshape(-1)])

    def from_decisions(self, choices: np.ndarray) -> list[int | None]:
        local = self.local(self.base.from_decisions(choices))
        return [int(i) if i >= 0 else None for i in local]


class FeasibleSpace(SearchSpace):
    """``base`` restricted to the architectures whose costs (``base.cost(archs) -> {metric: values}``) meet ``constraints``."""

    def __init__(self, base: SearchSpace, constraints: Constraints, max_draws: int = 100_000) -> None:
        self.base = base  # must have cost(archs) -> {metric: values}; no bound method kept (plain pickles)
        self.constraints = constraints
        self.max_draws = max_draws
        self.name = base.name

    @property
    def dim(self) -> int:
        return self.base.dim

    def feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.constraints.feasible(self.base.cost(archs), where=f"search_space={self.name}")

    def sample(self, rng: np.random.Generator, n: int = 1) -> list[Arch]:
        """``n`` uniform draws from the feasible part (rejection sampling in batches)."""
        out: list[Arch] = []
        drawn = 0
        while len(out) < n:
            if drawn >= self.max_draws:
                raise ConfigError(
                    f"{self.constraints.describe()}: none of {drawn:,} random architectures of "
                    f"search_space={self.name} met them; raise the budget"
                )
            batch = self.base.sample(rng, _SAMPLE_BATCH)
            drawn += len(batch)
            out.extend(a for a, ok in zip(batch, self.feasible(batch)) if ok)
        return out[:n]

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A base mutation that meets the budget (tried up to 1,000 times; then a feasible uniform draw)."""
        key = self.base.arch_id(arch)
        for _ in range(_MUTATION_TRIES):
            child = self.base.mutate(arch, rng)
            if self.base.arch_id(child) != key and bool(self.feasible([child])[0]):
                return child
        return self.sample(rng, 1)[0]

    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.base.encode(archs)

    def to_string(self, arch: Arch) -> str:
        return self.base.to_string(arch)

    def arch_id(self, arch: Arch) -> str:
        return self.base.arch_id(arch)

    def from_string(self, text: str) -> Arch:
        arch = self.base.from_string(text)
        if not self.feasible([arch])[0]:
            raise InvalidArchitectureError(f"{text!r} does not meet {self.constraints.describe()}")
        return arch

    def op_blocks(self) -> np.ndarray | None:
        return self.base.op_blocks()

    def decisions(self) -> list[int] | None:
        return self.base.decisions()

    def to_decisions(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.base.to_decisions(archs)

    def from_decisions(self, choices: np.ndarray) -> list[Arch | None]:
        archs = self.base.from_decisions(choices)
        ok = self.feasible(archs)
        return [a if keep else None for a, keep in zip(archs, ok)]


def constrain_space(space: SearchSpace, constraints: Constraints, where: str) -> SearchSpace:
    """``space`` narrowed to ``constraints`` through its own cost function (``space.cost(archs)``).

    Used where the evaluator does not know the costs (training, supernets). One-line ConfigError when
    the space computes no costs or none of the limited metrics; ``where`` names the evaluator.
    """
    if not callable(getattr(space, "cost", None)):
        first = constraints.limits[0][0]
        raise ConfigError(
            f"constraints.{first} needs each architecture's cost, which neither search_space={space.name} "
            f"nor {where} records; set constraints.{first}=null"
        )
    narrowed = FeasibleSpace(space, constraints)
    # A metric the space cannot compute: one line now, not at the first sample. The probe's generator is
    # its own (fixed) so that the run's generators are not advanced by a check.
    narrowed.feasible(space.sample(np.random.default_rng(0), 1))
    return narrowed
