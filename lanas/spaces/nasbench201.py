"""The NAS-Bench-201 cell space: 6 edges of a 4-node DAG, each one of 5 operations (15,625 cells)."""

from __future__ import annotations

import re

import numpy as np

from lanas.errors import InvalidArchitectureError, require_choice
from lanas.spaces.base import FiniteSearchSpace

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# (target node, source node) of each edge, in the order of the standard cell string.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_EDGES = len(EDGES)
NUM_OPS = len(OPS)
_RADIX = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1)  # edge 0 is the most significant digit
ENCODINGS = ("onehot", "live")
_TOKEN = re.compile(r"^([a-z0-9_]+)~(\d)$")


def ops_to_index(ops: np.ndarray) -> np.ndarray:
    """Pool positions of op-index rows (shape ``(..., 6)``)."""
    return np.asarray(ops, dtype=np.int64) @ _RADIX


def index_to_ops(index: np.ndarray | int) -> np.ndarray:
    """Op-index rows of pool positions; inverse of :func:`ops_to_index`."""
    index = np.asarray(index, dtype=np.int64)
    return (index[..., None] // _RADIX) % NUM_OPS


def live_ops(ops: np.ndarray) -> np.ndarray:
    """Op-index rows with every dead edge set to ``none``: an edge is live when its op is not ``none``, its source
    is reached from the input through live ops, and its target reaches the output. A dead edge changes nothing
    the cell computes (its target's value never reaches the output, or its source is always zero)."""
    ops = np.asarray(ops)
    on = ops != 0
    reached_1 = on[..., 0]
    reached_2 = on[..., 1] | (on[..., 2] & reached_1)
    reaches_2 = on[..., 5]
    reaches_1 = on[..., 4] | (on[..., 2] & reaches_2)
    # edges in EDGES order: 0->1, 0->2, 1->2, 0->3, 1->3, 2->3
    live = np.stack([on[..., 0] & reaches_1, on[..., 1] & reaches_2, on[..., 2] & reached_1 & reaches_2,
                     on[..., 3], on[..., 4] & reached_1, on[..., 5] & reached_2], axis=-1)
    return np.where(live, ops, 0)


class NASBench201Space(FiniteSearchSpace):
    """All 5**6 cells. An architecture is its pool position: the base-5 number of its op indices.

    Encoding (``encoding``): one-hot of the op on each edge (30 values), in edge order of the cell string.
    ``onehot`` (the default) encodes every edge's op as chosen; ``live`` encodes a dead edge (:func:`live_ops`) as
    ``none``, so that cells that compute the same thing share one encoding (9,445 distinct rows instead of
    15,625) and a model fitted to the samples does not learn effects of ops that cannot act.
    """

    name = "nasbench201"
    encoding = "onehot"  # also what a space pickled before encodings existed has

    def __init__(self, encoding: str = "onehot") -> None:
        self.encoding = require_choice("search_space.encoding", encoding, ENCODINGS)

    def __len__(self) -> int:
        return NUM_OPS**NUM_EDGES

    @property
    def dim(self) -> int:
        return NUM_EDGES * NUM_OPS

    def _build_features(self) -> np.ndarray:
        ops = index_to_ops(np.arange(len(self)))
        if self.encoding == "live":
            ops = live_ops(ops)
        onehot = np.zeros((len(self), NUM_EDGES, NUM_OPS), dtype=np.float32)
        np.put_along_axis(onehot, ops[..., None], 1.0, axis=2)
        return onehot.reshape(len(self), -1)

    def op_blocks(self) -> np.ndarray:
        """Every edge chooses among the same 5 ops (one-hot columns 5 e .. 5 e + 4), under either encoding."""
        return np.arange(NUM_EDGES * NUM_OPS).reshape(NUM_EDGES, NUM_OPS)

    def decisions(self) -> list[int]:
        """The op of edge 1, then edge 2, ... (edge order of the cell string)."""
        return [NUM_OPS] * NUM_EDGES

    def from_decisions(self, choices: np.ndarray) -> list[int]:
        return [int(i) for i in ops_to_index(np.asarray(choices).reshape(-1, NUM_EDGES))]

    def to_decisions(self, archs) -> np.ndarray:
        return index_to_ops(np.asarray(archs, dtype=np.int64).reshape(-1))

    def ops(self, arch: int) -> tuple[str, ...]:
        return tuple(OPS[i] for i in index_to_ops(int(arch)))

    def mutate(self, arch: int, rng: np.random.Generator) -> int:
        ops = index_to_ops(int(arch))
        edge = rng.integers(NUM_EDGES)
        ops[edge] = (ops[edge] + rng.integers(1, NUM_OPS)) % NUM_OPS  # never the same op
        return int(ops_to_index(ops))

    def to_string(self, arch: int) -> str:
        ops = self.ops(arch)
        nodes, k = [], 0
        for target in range(1, 4):
            tokens = [f"{ops[k + source]}~{source}" for source in range(target)]
            k += target
            nodes.append("|" + "|".join(tokens) + "|")
        return "+".join(nodes)

    def from_string(self, text: str) -> int:
        def bad(why: str) -> InvalidArchitectureError:
            return InvalidArchitectureError(
                f"not a NAS-Bench-201 cell string ({why}): {text!r}; expected e.g. "
                "'|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|'"
            )

        nodes = text.strip().split("+")
        if len(nodes) != 3:
            raise bad(f"{len(nodes)} nodes instead of 3")
        digits = []
        for target, node in enumerate(nodes, start=1):
            if not (node.startswith("|") and node.endswith("|")):
                raise bad(f"node {target} is not enclosed in '|'")
            tokens = node[1:-1].split("|")
            if len(tokens) != target:
                raise bad(f"node {target} has {len(tokens)} inputs instead of {target}")
            for source, token in enumerate(tokens):
                match = _TOKEN.match(token)
                if match is None or int(match.group(2)) != source:
                    raise bad(f"edge {token!r} of node {target}")
                if match.group(1) not in OPS:
                    raise bad(f"unknown operation {match.group(1)!r}, allowed: {', '.join(OPS)}")
                digits.append(OPS.index(match.group(1)))
        return int(ops_to_index(np.array(digits)))
