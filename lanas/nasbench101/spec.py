"""NAS-Bench-101 cells: validity, pruning and the official isomorphism-invariant hash.

A cell is an upper-triangular adjacency matrix over at most 7 vertices plus one operation per
vertex: ``input`` first, ``output`` last, and one of :data:`OPS` on every interior vertex. Like
the official ``ModelSpec``, vertices that are not on a path from input to output are pruned
before a cell is checked or hashed, so many raw matrices name the same cell.

The hash is the one the official table is keyed by (Ying et al. 2019, ``graph_util.hash_module``):
Weisfeiler-Lehman-style refinement of per-vertex MD5 hashes, seeded with (out-degree, in-degree,
label), refined ``V`` times with the sorted hashes of in- and out-neighbours, and finally the MD5
of the sorted vertex hashes. It must match bit for bit, so the exact string forms matter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from lanas.errors import InvalidArchitectureError

INPUT, OUTPUT = "input", "output"
# Interior operations in the official canonical order: the hash labels them 0, 1, 2.
OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
INPUT_LABEL, OUTPUT_LABEL = -1, -2


def hash_module(matrix: np.ndarray, labeling: Sequence[int]) -> str:
    """The official module hash of a (pruned) matrix and integer labels (-1 input, -2 output)."""
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    preds = [np.flatnonzero(matrix[:, v]).tolist() for v in range(n)]
    succs = [np.flatnonzero(matrix[v, :]).tolist() for v in range(n)]
    return hash_graph(preds, succs, [int(label) for label in labeling])


_SEEDS: dict[tuple[int, int, int], bytes] = {}


def hash_graph(preds: Sequence[Sequence[int]], succs: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """:func:`hash_module` on neighbour lists (the enumeration calls this 423,624 times: plain
    Python on bytes, the seed hashes memoised; about 25% faster than the literal form)."""
    md5 = hashlib.md5
    n = len(labels)
    hashes = []
    for v in range(n):
        key = (len(succs[v]), len(preds[v]), int(labels[v]))
        seed = _SEEDS.get(key)
        if seed is None:
            # str() of a Python tuple of ints, e.g. "(2, 0, -1)": the official seed string.
            seed = _SEEDS[key] = md5(str(key).encode()).hexdigest().encode()
        hashes.append(seed)
    pairs = list(zip(preds, succs))
    for _ in range(n):
        hashes = [
            md5(b"".join(sorted([hashes[w] for w in p])) + b"|"
                + b"".join(sorted([hashes[w] for w in s])) + b"|" + hashes[v]).hexdigest().encode()
            for v, (p, s) in enumerate(pairs)
        ]
    # str() of the sorted list of hex strings, e.g. "['0a..', '1b..']", as the official code hashes it.
    return md5(str(sorted(h.decode() for h in hashes)).encode()).hexdigest()


def hash_of_masks(out: Sequence[int], labels: Sequence[int]) -> str | None:
    """Official hash of an unpruned upper-triangular cell given as out-neighbour bitmasks (bit w
    of ``out[v]`` = edge v -> w) and integer labels; None when the pruned cell is invalid.

    The same pruning and checks as :func:`canonical_cell` on plain ints, for hot loops (mutation
    tries many candidates): no numpy, no exceptions.
    """
    n = len(out)
    forward = 1  # vertices reachable from the input
    for v in range(n):
        if forward >> v & 1:
            forward |= out[v]
    backward = 1 << (n - 1)  # vertices that reach the output
    for v in range(n - 2, -1, -1):
        if out[v] & backward:
            backward |= 1 << v
    keep = forward & backward
    if not keep & 1:  # input and output disconnected
        return None
    kept = [v for v in range(n) if keep >> v & 1]
    if len(kept) > MAX_VERTICES:
        return None
    new = {v: i for i, v in enumerate(kept)}
    succs = [[new[w] for w in kept if out[v] >> w & 1] for v in kept]
    if sum(map(len, succs)) > MAX_EDGES:
        return None
    preds: list[list[int]] = [[] for _ in kept]
    for i, targets in enumerate(succs):
        for j in targets:
            preds[j].append(i)
    return hash_graph(preds, succs, [labels[v] for v in kept])


def labels_of(ops: Sequence[str]) -> list[int]:
    """Integer labels of an op list (input -1, output -2, interior ops by their index in OPS)."""
    return [INPUT_LABEL] + [OPS.index(op) for op in ops[1:-1]] + [OUTPUT_LABEL]


def prune(matrix: np.ndarray, ops: Sequence[str]) -> tuple[np.ndarray, list[str]] | None:
    """Drop vertices not on an input-to-output path; None when input and output are disconnected."""
    matrix = np.asarray(matrix, dtype=np.int8)
    n = matrix.shape[0]
    reach = np.zeros(n, dtype=bool)  # reachable from the input
    reach[0] = True
    for v in range(1, n):  # upper triangular: a topological order
        reach[v] = bool(np.any(matrix[:v, v].astype(bool) & reach[:v]))
    coreach = np.zeros(n, dtype=bool)  # reaches the output
    coreach[n - 1] = True
    for v in range(n - 2, -1, -1):
        coreach[v] = bool(np.any(matrix[v, v + 1:].astype(bool) & coreach[v + 1:]))
    keep = reach & coreach
    if not (keep[0] and keep[n - 1]):
        return None
    idx = np.flatnonzero(keep)
    return matrix[np.ix_(idx, idx)], [ops[i] for i in idx]


def check_raw(matrix: np.ndarray, ops: Sequence[str]) -> None:
    """Shape, upper-triangularity and op names of an unpruned cell; InvalidArchitectureError otherwise."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise InvalidArchitectureError(f"NAS-Bench-101 matrix must be square, got shape {matrix.shape}")
    if matrix.shape[0] != len(ops):
        raise InvalidArchitectureError(
            f"NAS-Bench-101 cell has {matrix.shape[0]} vertices but {len(ops)} operations"
        )
    if not np.isin(matrix, (0, 1)).all():
        raise InvalidArchitectureError("NAS-Bench-101 matrix entries must be 0 or 1")
    if np.any(np.tril(matrix) != 0):
        raise InvalidArchitectureError("NAS-Bench-101 matrix must be upper triangular (a DAG in vertex order)")
    if len(ops) < 2 or ops[0] != INPUT or ops[-1] != OUTPUT:
        raise InvalidArchitectureError(
            f"NAS-Bench-101 operations must start with {INPUT!r} and end with {OUTPUT!r}, got {list(ops)}"
        )
    for op in ops[1:-1]:
        if op not in OPS:
            raise InvalidArchitectureError(f"NAS-Bench-101 operation {op!r} is unknown; allowed: {', '.join(OPS)}")


def canonical_cell(matrix: np.ndarray, ops: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The pruned cell, after the official validity checks; raises InvalidArchitectureError."""
    check_raw(matrix, ops)
    pruned = prune(matrix, ops)
    if pruned is None:
        raise InvalidArchitectureError("NAS-Bench-101 cell is invalid: no path from input to output")
    small, small_ops = pruned
    if len(small_ops) > MAX_VERTICES:
        raise InvalidArchitectureError(
            f"NAS-Bench-101 cell has {len(small_ops)} vertices after pruning; at most {MAX_VERTICES} allowed"
        )
    if int(small.sum()) > MAX_EDGES:
        raise InvalidArchitectureError(
            f"NAS-Bench-101 cell has {int(small.sum())} edges after pruning; at most {MAX_EDGES} allowed"
        )
    return small, small_ops


def is_valid(matrix: np.ndarray, ops: Sequence[str]) -> bool:
    """Whether the official API would accept the cell (after pruning)."""
    try:
        canonical_cell(matrix, ops)
    except InvalidArchitectureError:
        return False
    return True


def spec_hash(matrix: np.ndarray, ops: Sequence[str]) -> str:
    """Official hash of a cell given as raw matrix and op names (pruned first, validity checked)."""
    small, small_ops = canonical_cell(matrix, ops)
    return hash_module(small, labels_of(small_ops))
