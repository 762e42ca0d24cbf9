"""What a search space offers to searchers.

Searchers see numbers, not strings: :meth:`SearchSpace.encode` turns architectures into rows of a
float matrix, so a regression tree or a Gaussian process works on any space. Strings exist for
humans and files (:meth:`to_string` / :meth:`from_string`).

A :class:`FiniteSearchSpace` can be enumerated. Its architectures are integer positions in the
enumerated pool, which lets searchers score every candidate with one matrix product.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

Arch = Any


class SearchSpace(ABC):
    """A set of architectures that can be sampled, encoded, mutated and named."""

    name: str = "space"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of an encoding row."""

    @abstractmethod
    def sample(self, rng: np.random.Generator, n: int = 1) -> list[Arch]:
        """Draw ``n`` architectures uniformly at random (with replacement)."""

    @abstractmethod
    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        """Encodings as a float matrix, one row per architecture."""

    @abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A different architecture one elementary change away from ``arch``."""

    @abstractmethod
    def to_string(self, arch: Arch) -> str:
        """Human-readable, parseable name of ``arch``."""

    @abstractmethod
    def from_string(self, text: str) -> Arch:
        """Inverse of :meth:`to_string`; raises ``InvalidArchitectureError``."""

    def arch_id(self, arch: Arch) -> str:
        """Stable identifier: equal for equal architectures, across runs and machines."""
        return self.to_string(arch)

    @property
    def is_finite(self) -> bool:
        return False

    def alternative_encodings(self) -> dict[str, SearchSpace]:
        """The same architectures (same positions, names and moves) under the other encodings this space
        offers, by name; searchers that choose an encoding from their samples (``lanas_plus``) pick among
        these and the space itself. None by default."""
        return {}

    def op_blocks(self) -> np.ndarray | None:
        """Encoding columns of the decisions that choose from one shared set of options, as a (decisions, options)
        array (NAS-Bench-201: the op of each edge, one of the same 5 ops), or None; for a model whose options
        have effects shared across decisions (``lanas_plus``'s ``model_op_counts``)."""
        return None

    # A fixed sequence of decisions that builds an architecture (optional). Searchers over a
    # hand-designed action space (MCTS) need it; spaces without one return None.
    def decisions(self) -> list[int] | None:
        """Number of choices at each step of a fixed decision sequence, or None if the space has none."""
        return None

    def from_decisions(self, choices: np.ndarray) -> list[Arch]:
        """Architectures of full decision rows (shape ``(n, len(decisions()))``, entry ``i`` in ``[0, decisions()[i])``)."""
        raise NotImplementedError(f"search_space={self.name} has no decision sequence")

    def to_decisions(self, archs: Sequence[Arch]) -> np.ndarray:
        """Decision rows of architectures; inverse of :meth:`from_decisions`."""
        raise NotImplementedError(f"search_space={self.name} has no decision sequence")


class FiniteSearchSpace(SearchSpace):
    """A space small enough to enumerate; architectures are ``int`` positions in the pool."""

    _features: np.ndarray | None = None

    @property
    def is_finite(self) -> bool:
        return True

    @abstractmethod
    def __len__(self) -> int:
        """Number of architectures in the pool."""

    @abstractmethod
    def _build_features(self) -> np.ndarray:
        """Encoding of the whole pool, shape ``(len(self), dim)``."""

    def features(self) -> np.ndarray:
        """Encoding of every architecture of the pool (computed once, read-only)."""
        if self._features is None:
            features = np.ascontiguousarray(self._build_features(), dtype=np.float32)
            features.setflags(write=False)
            self._features = features
        return self._features

    def encode(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.features()[np.asarray(archs, dtype=np.int64)]

    def sample(self, rng: np.random.Generator, n: int = 1) -> list[Arch]:
        return [int(i) for i in rng.integers(len(self), size=n)]

    def enumerate(self) -> np.ndarray:
        """Every architecture of the pool."""
        return np.arange(len(self), dtype=np.int64)

    def other_uniform(self, arch: Arch, rng: np.random.Generator) -> int:
        """A uniformly random architecture other than ``arch`` (``arch`` itself in a pool of one): the
        fallback of a mutation that found no neighbour."""
        if len(self) < 2:
            return int(arch)
        other = int(rng.integers(len(self) - 1))
        return other + (other >= int(arch))
