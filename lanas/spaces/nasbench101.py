"""The NAS-Bench-101 cell space: DAGs of at most 7 vertices and 9 edges, 3 interior operations.

The pool is every cell up to isomorphism (423,624, see :mod:`lanas.nasbench101.enumerate`), in
order of official hash; an architecture is its position in this space's pool. A benchmark that
covers only part of the space narrows the pool with :meth:`NASBench101Space.restrict`.

Encoding (36 values): the 21 upper-triangle edge bits of the cell padded to 7 vertices (output
last, absent interior vertices without edges) and a one-hot of the operation of each of the 5
interior vertices (all zero when absent).

Strings are the official file's raw form of the pruned cell, ``<adjacency row-major 0/1>|<ops
comma-joined>``, e.g. ``0110001100010000|input,conv1x1-bn-relu,conv3x3-bn-relu,output``;
:meth:`from_string` also accepts any unpruned matrix of that form or a bare official hash.
"""

from __future__ import annotations

import re

import numpy as np

from lanas.errors import InvalidArchitectureError, require_float
from lanas.nasbench101.enumerate import ABSENT, INTERIOR, NUM_EDGE_BITS, TRIU, Pool, load_pool
from lanas.nasbench101.spec import (
    INPUT,
    INPUT_LABEL,
    MAX_VERTICES,
    OPS,
    OUTPUT,
    OUTPUT_LABEL,
    canonical_cell,
    hash_module,
    hash_of_masks,
    labels_of,
)
from lanas.spaces.base import FiniteSearchSpace

_HEX = re.compile(r"^[0-9a-f]{32}$")
_BIT_VALUES = np.array([1 << k for k in range(NUM_EDGE_BITS)], dtype=np.int64)
# Raw padded cell -> full pool position (-1 if invalid), per pool, shared by the space's copies.
_MEMO: dict[int, dict[tuple[int, tuple[int, ...]], int]] = {}
_BLOCK = 16  # mutation tries drawn per call to the generator


class NASBench101Space(FiniteSearchSpace):
    """NAS-Bench-101 cells; ``mutation_rate`` is the NAS-Bench-101 paper's evolution knob
    (expected number of edge flips and of op changes per mutation)."""

    name = "nasbench101"

    def __init__(self, mutation_rate: float = 1.0, positions: np.ndarray | None = None) -> None:
        self.mutation_rate = require_float("search_space.mutation_rate", mutation_rate, 1e-6, float(NUM_EDGE_BITS))
        # Positions in the full pool (sorted), or None for the whole pool.
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self._features = None
        self._local: np.ndarray | None = None

    # Pickles (searcher checkpoints) carry positions only; the pool is shared per process.
    def __getstate__(self) -> dict:
        return {"mutation_rate": self.mutation_rate, "positions": self.positions}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @property
    def pool(self) -> Pool:
        return load_pool()

    def restrict(self, positions: np.ndarray) -> NASBench101Space:
        """The space of the given full-pool positions (kept in ascending order)."""
        return NASBench101Space(self.mutation_rate, np.unique(np.asarray(positions, dtype=np.int64)))

    def __len__(self) -> int:
        return len(self.pool) if self.positions is None else len(self.positions)

    @property
    def dim(self) -> int:
        return NUM_EDGE_BITS + INTERIOR * len(OPS)

    def op_blocks(self) -> np.ndarray:
        """Every interior vertex chooses among the same 3 ops (one-hot after the edge bits; absent vertices: none)."""
        return NUM_EDGE_BITS + np.arange(INTERIOR * len(OPS)).reshape(INTERIOR, len(OPS))

    def full_position(self, arch: int | np.ndarray) -> np.ndarray:
        arch = np.asarray(arch, dtype=np.int64)
        return arch if self.positions is None else self.positions[arch]

    def _build_features(self) -> np.ndarray:
        full = self.full_position(np.arange(len(self)))
        codes = self.pool.matrix_codes[full]
        ops = self.pool.ops[full].astype(np.int64)
        features = np.zeros((len(full), self.dim), dtype=np.float32)
        features[:, :NUM_EDGE_BITS] = (codes[:, None] >> np.arange(NUM_EDGE_BITS)) & 1
        onehot = features[:, NUM_EDGE_BITS:].reshape(len(full), INTERIOR, len(OPS))
        rows, slots = np.nonzero(ops != ABSENT)
        onehot[rows, slots, ops[rows, slots]] = 1.0
        return features

    # --- cells ---------------------------------------------------------------------------
    def padded(self, arch: int) -> tuple[np.ndarray, list[int]]:
        """7x7 matrix (output at vertex 6) and interior op indices (ABSENT where no vertex)."""
        full = int(self.full_position(int(arch)))
        return self.pool.matrices([full])[0], self.pool.ops[full].tolist()

    def cell(self, arch: int) -> tuple[np.ndarray, list[str]]:
        """The pruned cell: ``(matrix, ops)`` with ops named as in the official API."""
        matrix, ops = self.padded(arch)
        keep = [0] + [1 + i for i, op in enumerate(ops) if op != ABSENT] + [MAX_VERTICES - 1]
        names = [INPUT] + [OPS[op] for op in ops if op != ABSENT] + [OUTPUT]
        return matrix[np.ix_(keep, keep)], names

    def arch_id(self, arch: int) -> str:
        """The official module hash."""
        return self.pool.hashes[int(self.full_position(int(arch)))].decode()

    def position_of_hash(self, module_hash: str) -> int | None:
        """Position in this space of a cell given by official hash, None when not in it."""
        full = int(self.pool.find(np.array([module_hash], dtype="S32"))[0])
        if full < 0:
            return None
        if self.positions is None:
            return full
        i = int(np.searchsorted(self.positions, full))
        return i if i < len(self.positions) and self.positions[i] == full else None

    def to_string(self, arch: int) -> str:
        matrix, ops = self.cell(arch)
        return "".join(map(str, matrix.ravel().tolist())) + "|" + ",".join(ops)

    def from_string(self, text: str) -> int:
        text = text.strip()
        if _HEX.match(text):
            module_hash = text
        else:
            adjacency, sep, ops_text = text.partition("|")
            n = int(round(len(adjacency) ** 0.5))
            if not sep or n * n != len(adjacency) or set(adjacency) - {"0", "1"}:
                raise InvalidArchitectureError(
                    f"not a NAS-Bench-101 cell string: {text!r}; expected '<n*n adjacency 0/1 digits, "
                    "row-major>|<n ops>', e.g. '0110001100010000|input,conv1x1-bn-relu,conv3x3-bn-relu,output', "
                    "or a 32-hex-digit module hash"
                )
            matrix = np.array([int(c) for c in adjacency], dtype=np.int8).reshape(n, n)
            small, small_ops = canonical_cell(matrix, ops_text.split(","))
            module_hash = hash_module(small, labels_of(small_ops))
        arch = self.position_of_hash(module_hash)
        if arch is None:
            where = "NAS-Bench-101" if self.positions is None else "the benchmark's table"
            raise InvalidArchitectureError(f"cell {text!r} (hash {module_hash}) is not in {where}")
        return arch

    # --- mutation ------------------------------------------------------------------------
    def mutate(self, arch: int, rng: np.random.Generator, max_tries: int = 10_000) -> int:
        """The NAS-Bench-101 paper's evolution mutation, repeated until it gives a different cell
        of this space: flip each of the 21 edges of the padded 7-vertex matrix with probability
        ``mutation_rate / 7`` and resample each interior op (to a different one) with probability
        ``mutation_rate / 5``. Absent interior vertices get a random op first (they may become
        connected). After ``max_tries`` failures (a tiny table) a uniform other cell is returned.

        A table covering 5% of the space needs about 20 valid tries per hit, so tries are drawn
        in blocks with one call to the generator, each is checked on plain ints
        (:func:`hash_of_masks`), and raw cell -> pool position is memoised per process."""
        full = int(self.full_position(int(arch)))
        code = int(self.pool.matrix_codes[full])
        ops = np.array([int(rng.integers(len(OPS))) if op == ABSENT else int(op) for op in self.pool.ops[full]])
        edge_p = self.mutation_rate / MAX_VERTICES
        op_p = self.mutation_rate / INTERIOR
        local = self._local_index()
        for start in range(0, max_tries, _BLOCK):
            draws = rng.random((_BLOCK, NUM_EDGE_BITS + INTERIOR))
            shifts = rng.integers(1, len(OPS), size=(_BLOCK, INTERIOR))  # a different op when changed
            codes = (code ^ ((draws[:, :NUM_EDGE_BITS] < edge_p) @ _BIT_VALUES)).tolist()
            child_ops = np.where(draws[:, NUM_EDGE_BITS:] < op_p, (ops + shifts) % len(OPS), ops).tolist()
            for child, child_op in zip(codes[: max_tries - start], child_ops):
                position = self._pool_position_of_raw(child, tuple(child_op))
                found = position if local is None or position < 0 else int(local[position])
                if found >= 0 and found != int(arch):
                    return found
        return self.other_uniform(arch, rng)

    def _local_index(self) -> np.ndarray | None:
        """Full pool position -> position in this space (-1 if absent); None for the full space."""
        if self.positions is None:
            return None
        if self._local is None:
            local = np.full(len(self.pool), -1, dtype=np.int32)
            local[self.positions] = np.arange(len(self.positions))
            self._local = local
        return self._local

    def _pool_position_of_raw(self, code: int, ops: tuple[int, ...]) -> int:
        """Full pool position of a padded 7-vertex cell (edge-bit code, 5 op indices), -1 if invalid."""
        key = (code, ops)
        memo = _MEMO.setdefault(id(self.pool), {})
        position = memo.get(key)
        if position is None:
            if len(memo) > 1_000_000:  # bounded: evolution revisits few raw cells
                memo.clear()
            out = [0] * MAX_VERTICES
            for k, (r, c) in enumerate(TRIU):
                if code >> k & 1:
                    out[r] |= 1 << c
            module_hash = hash_of_masks(out, [INPUT_LABEL, *ops, OUTPUT_LABEL])
            position = -1 if module_hash is None else int(self.pool.find(np.array([module_hash], dtype="S32"))[0])
            memo[key] = position
        return position
