"""The one-shot LaNAS cell space (NASNet/DARTS style): too large to enumerate (about 1.35e20 cells).

A network stacks two kinds of cells, a *normal* and a *reduction* cell (reduction cells halve the
resolution). Each cell has two inputs (the outputs of the two previous cells, inputs 0 and 1) and
5 intermediate nodes; node ``i`` (0-based) picks **two distinct (input, op) pairs** among its
``i + 2`` possible inputs (the cell inputs and nodes ``0 .. i-1``, i.e. inputs ``0 .. i+1``) and
the 4 operations below, and sums the two results. Both pairs may read the same input with two
different operations, as in the reference code (``random.sample`` of 2 distinct bits).

Binary mask encoding (160 values, the reference code's ``flatten_to_1D_vector``): the normal cell
first, then the reduction cell; inside a cell node 0 .. 4; inside a node input 0 .. i+1; inside an
input the 4 operations in :data:`OPS` order. Node ``i`` owns ``4 * (i + 2)`` bits (8, 12, 16, 20,
24: 80 per cell) and exactly two of them are 1. Bit ``4 * input + op`` of a node is its "position".

An architecture is a tuple of 20 ints: for (cell, node) in order, the two positions of the node's
pairs, smaller first, so equal cells have equal tuples (the tuple is hashable and picklable).

Size: node ``i`` has ``C(4 (i+2), 2)`` choices (28, 66, 120, 190, 276), so a cell has
11,629,094,400 and a (normal, reduction) pair 135,235,836,564,111,360,000 (about 1.35e20).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from math import comb, prod

import numpy as np

from lanas.errors import InvalidArchitectureError
from lanas.spaces.base import SearchSpace

OPS: tuple[str, ...] = ("max_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5")
CELLS: tuple[str, ...] = ("normal", "reduce")
NUM_OPS = len(OPS)
NUM_NODES = 5
NUM_CELLS = len(CELLS)
#: bits owned by each node of a cell: 4 ops x (node + 2) inputs
NODE_BITS = np.array([NUM_OPS * (i + 2) for i in range(NUM_NODES)], dtype=np.int64)
CELL_BITS = int(NODE_BITS.sum())  # 80
DIM = NUM_CELLS * CELL_BITS  # 160
#: first bit of (cell, node) in the 160-bit encoding, flattened to 10 entries
NODE_OFFSET = (
    np.arange(NUM_CELLS)[:, None] * CELL_BITS + np.concatenate([[0], np.cumsum(NODE_BITS)[:-1]])[None, :]
).reshape(-1)
NUM_SLOTS = NUM_CELLS * NUM_NODES * 2  # 20 ints per architecture
#: number of positions available to each of the 20 slots
SLOT_BITS = np.repeat(np.tile(NODE_BITS, NUM_CELLS), 2)
#: first encoding bit of each of the 20 slots
SLOT_OFFSET = np.repeat(NODE_OFFSET, 2)
CELL_SIZE = prod(comb(int(m), 2) for m in NODE_BITS)
SPACE_SIZE = CELL_SIZE**NUM_CELLS

_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d+)$")

# Decision sequence (for searchers over a fixed action space, e.g. MCTS): one decision per node,
# the index of its unordered pair among the C(m, 2) pairs in lexicographic order.
_PAIRS = {int(m): np.array(np.triu_indices(int(m), k=1)).T for m in NODE_BITS}  # (C(m, 2), 2), a < b
_PAIR_INDEX = {m: np.full((m, m), -1, dtype=np.int64) for m in _PAIRS}
for _m, _table in _PAIRS.items():
    _PAIR_INDEX[_m][_table[:, 0], _table[:, 1]] = np.arange(len(_table))
NODE_CHOICES = [len(_PAIRS[int(m)]) for m in np.tile(NODE_BITS, NUM_CELLS)]  # 28, 66, 120, 190, 276, x2


def _canonical(pairs: np.ndarray) -> np.ndarray:
    """Sort the two positions of each node (last axis holds 20 slots) so equal cells compare equal."""
    pairs = pairs.reshape(*pairs.shape[:-1], NUM_CELLS * NUM_NODES, 2)
    return np.sort(pairs, axis=-1).reshape(*pairs.shape[:-2], NUM_SLOTS)


class NASNetSpace(SearchSpace):
    """Normal + reduction cells of 5 nodes with 2 (input, op) pairs each; see the module docstring."""

    name = "nasnet"
    ops = OPS
    num_nodes = NUM_NODES

    @property
    def dim(self) -> int:
        return DIM

    @property
    def size(self) -> int:
        """Number of distinct architectures (a Python int: about 1.35e20)."""
        return SPACE_SIZE

    # ------------------------------------------------------------------ arrays
    def sample_array(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` uniform architectures as an ``(n, 20)`` int array (uniform over unordered pairs)."""
        m = np.broadcast_to(np.tile(NODE_BITS, NUM_CELLS), (n, NUM_CELLS * NUM_NODES))
        first = np.floor(rng.random(m.shape) * m).astype(np.int64)
        second = np.floor(rng.random(m.shape) * (m - 1)).astype(np.int64)
        second += second >= first  # a uniform draw among the other m - 1 positions
        pairs = np.stack([first, second], axis=-1).reshape(n, NUM_SLOTS)
        return _canonical(pairs)

    def encode_array(self, archs: np.ndarray) -> np.ndarray:
        """160-bit masks (float32) of an ``(n, 20)`` architecture array, fully vectorised."""
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, NUM_SLOTS)
        out = np.zeros((len(archs), DIM), dtype=np.float32)
        np.put_along_axis(out, archs + SLOT_OFFSET, 1.0, axis=1)
        return out

    def decode_array(self, masks: np.ndarray) -> np.ndarray:
        """Architectures of 160-bit masks; raises ``InvalidArchitectureError`` unless each node has two 1s."""
        masks = np.asarray(masks).reshape(-1, DIM) > 0.5
        archs = np.empty((len(masks), NUM_SLOTS), dtype=np.int64)
        for k, (start, bits) in enumerate(zip(NODE_OFFSET, np.tile(NODE_BITS, NUM_CELLS))):
            block = masks[:, start : start + bits]
            counts = block.sum(axis=1)
            if np.any(counts != 2):
                row = int(np.flatnonzero(counts != 2)[0])
                raise InvalidArchitectureError(
                    f"mask row {row}: {CELLS[k // NUM_NODES]} node {k % NUM_NODES} has {counts[row]} active bits; "
                    "exactly 2 are allowed"
                )
            # argsort of a boolean row puts the two True positions last, in increasing order.
            archs[:, 2 * k : 2 * k + 2] = np.sort(np.argsort(block, axis=1, kind="stable")[:, -2:], axis=1)
        return archs

    def is_valid_array(self, archs: np.ndarray) -> np.ndarray:
        """Which rows are architectures: positions in range, two distinct ones per node."""
        archs = np.asarray(archs).reshape(-1, NUM_SLOTS)
        in_range = np.all((archs >= 0) & (archs < SLOT_BITS), axis=1)
        distinct = np.all(archs[:, 0::2] != archs[:, 1::2], axis=1)
        return in_range & distinct

    # ------------------------------------------------------------------ SearchSpace
    def sample(self, rng: np.random.Generator, n: int = 1) -> list[tuple[int, ...]]:
        return [tuple(int(v) for v in row) for row in self.sample_array(rng, n)]

    def encode(self, archs: Sequence[tuple[int, ...]]) -> np.ndarray:
        if len(archs) == 0:
            return np.zeros((0, DIM), dtype=np.float32)
        return self.encode_array(np.asarray(archs, dtype=np.int64))

    def validate(self, arch: Sequence[int]) -> tuple[int, ...]:
        """``arch`` in canonical form, or ``InvalidArchitectureError`` naming what is wrong."""
        values = np.asarray(arch)
        if values.shape != (NUM_SLOTS,) or not np.issubdtype(values.dtype, np.integer):
            raise InvalidArchitectureError(f"a nasnet architecture is {NUM_SLOTS} integers, got {arch!r}")
        if not self.is_valid_array(values)[0]:
            raise InvalidArchitectureError(
                f"not a nasnet architecture: {arch!r}; slot k must lie in [0, {list(SLOT_BITS)}[k]) "
                "and the two slots of a node must differ"
            )
        return tuple(int(v) for v in _canonical(values[None])[0])

    def mutate(self, arch: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """Move one (input, op) pair of one node to a position the node does not use yet."""
        values = np.array(arch, dtype=np.int64)
        slot = int(rng.integers(NUM_SLOTS))
        other = slot ^ 1  # the node's other slot
        m = int(SLOT_BITS[slot])
        taken = sorted((int(values[slot]), int(values[other])))
        new = int(rng.integers(m - 2))
        for t in taken:  # skip the two used positions: uniform over the m - 2 others
            new += new >= t
        values[slot] = new
        return tuple(int(v) for v in _canonical(values[None])[0])

    def mutate_array(self, archs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One :meth:`mutate` step applied to every row of an ``(n, 20)`` array (vectorised)."""
        archs = np.array(archs, dtype=np.int64).reshape(-1, NUM_SLOTS)
        rows = np.arange(len(archs))
        slot = rng.integers(NUM_SLOTS, size=len(archs))
        lo = np.minimum(archs[rows, slot], archs[rows, slot ^ 1])
        hi = np.maximum(archs[rows, slot], archs[rows, slot ^ 1])
        new = np.floor(rng.random(len(archs)) * (SLOT_BITS[slot] - 2)).astype(np.int64)
        new += new >= lo
        new += new >= hi
        archs[rows, slot] = new
        return _canonical(archs)

    def decisions(self) -> list[int]:
        """One decision per (cell, node): which of its ``C(4 (i+2), 2)`` pairs (uniform rows = uniform archs)."""
        return list(NODE_CHOICES)

    def from_decisions(self, choices: np.ndarray) -> list[tuple[int, ...]]:
        rows = np.asarray(choices, dtype=np.int64).reshape(-1, len(NODE_CHOICES))
        archs = np.empty((len(rows), NUM_SLOTS), dtype=np.int64)
        for k, m in enumerate(np.tile(NODE_BITS, NUM_CELLS)):
            archs[:, 2 * k : 2 * k + 2] = _PAIRS[int(m)][rows[:, k]]
        return [tuple(int(v) for v in row) for row in archs]

    def to_decisions(self, archs: Sequence[tuple[int, ...]]) -> np.ndarray:
        archs = np.asarray(archs, dtype=np.int64).reshape(-1, NUM_SLOTS)
        out = np.empty((len(archs), len(NODE_CHOICES)), dtype=np.int64)
        for k, m in enumerate(np.tile(NODE_BITS, NUM_CELLS)):
            out[:, k] = _PAIR_INDEX[int(m)][archs[:, 2 * k], archs[:, 2 * k + 1]]
        return out

    def cell(self, arch: Sequence[int], which: str) -> list[tuple[tuple[str, int], tuple[str, int]]]:
        """``[((op, input), (op, input)) per node]`` of the ``normal`` or ``reduce`` cell."""
        base = CELLS.index(which) * NUM_NODES * 2
        nodes = []
        for i in range(NUM_NODES):
            pair = arch[base + 2 * i : base + 2 * i + 2]
            nodes.append(tuple((OPS[p % NUM_OPS], p // NUM_OPS) for p in pair))
        return nodes

    def to_string(self, arch: Sequence[int]) -> str:
        """``normal:|op~in|op~in|+|...|;reduce:|...|`` with inputs 0, 1 = cell inputs, 2.. = nodes."""
        parts = []
        for which in CELLS:
            nodes = ["|" + "|".join(f"{op}~{src}" for op, src in node) + "|" for node in self.cell(arch, which)]
            parts.append(f"{which}:" + "+".join(nodes))
        return ";".join(parts)

    def from_string(self, text: str) -> tuple[int, ...]:
        def bad(why: str) -> InvalidArchitectureError:
            return InvalidArchitectureError(
                f"not a nasnet cell string ({why}): {text!r}; expected "
                "'normal:|op~in|op~in|+... (5 nodes);reduce:...' with ops " + ", ".join(OPS)
            )

        cells = text.strip().split(";")
        if len(cells) != NUM_CELLS:
            raise bad(f"{len(cells)} cells instead of {NUM_CELLS}")
        values = []
        for which, cell_text in zip(CELLS, cells):
            label, _, body = cell_text.partition(":")
            if label.strip() != which:
                raise bad(f"cell {label!r} where {which!r} was expected")
            nodes = body.strip().split("+")
            if len(nodes) != NUM_NODES:
                raise bad(f"{which} cell has {len(nodes)} nodes instead of {NUM_NODES}")
            for i, node in enumerate(nodes):
                if not (node.startswith("|") and node.endswith("|")):
                    raise bad(f"{which} node {i} is not enclosed in '|'")
                tokens = node[1:-1].split("|")
                if len(tokens) != 2:
                    raise bad(f"{which} node {i} has {len(tokens)} pairs instead of 2")
                for token in tokens:
                    match = _TOKEN.match(token)
                    if match is None:
                        raise bad(f"pair {token!r}")
                    op, src = match.group(1), int(match.group(2))
                    if op not in OPS:
                        raise bad(f"unknown operation {op!r}")
                    if src > i + 1:
                        raise bad(f"{which} node {i} reads input {src}; allowed 0..{i + 1}")
                    values.append(src * NUM_OPS + OPS.index(op))
        return self.validate(values)
