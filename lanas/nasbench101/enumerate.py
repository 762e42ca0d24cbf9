"""Every NAS-Bench-101 cell up to isomorphism (423,624 of them), computed once and cached.

The official generator hashes every labelled DAG (about 1.3 million) and keeps the first of each
hash. We reach the same set with far fewer hashes: for each vertex count, vectorised bit tricks
keep the "full" DAGs (every vertex on an input-output path, at most 9 edges); a canonical code
(minimum over the permutations of interior vertices) groups them into isomorphism classes of
unlabelled graphs; each class's automorphisms tell which labelings are equivalent, and one
labeling per orbit is kept. Only the kept cells are hashed (with the official hash), so the cost
is one hash per cell.

The pool is stored padded to 7 vertices (output always vertex 6, absent interior vertices have
no edges and op -1) and sorted by hash, so a hash is found with a binary search.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanas.nasbench101.spec import INPUT_LABEL, MAX_EDGES, MAX_VERTICES, OUTPUT_LABEL, OPS, hash_graph

NUM_CELLS = 423_624
NUM_OPS = len(OPS)
INTERIOR = MAX_VERTICES - 2
# Upper-triangle positions (row, col) of the padded 7x7 matrix, row-major: bit k of a matrix code.
TRIU = tuple(zip(*np.triu_indices(MAX_VERTICES, k=1)))
NUM_EDGE_BITS = len(TRIU)  # 21
ABSENT = -1  # op value of an interior vertex that the cell does not have
CACHE_VERSION = 1


def cache_dir() -> Path:
    """Where derived files go: ``$LANAS_CACHE`` or ``~/.cache/lanas``."""
    return Path(os.environ.get("LANAS_CACHE") or Path.home() / ".cache" / "lanas")


@dataclass(frozen=True)
class Pool:
    """The enumerated cells, sorted by official hash (all arrays share the first axis)."""

    hashes: np.ndarray  # (N,) 'S32': official module hash, ASCII hex
    matrix_codes: np.ndarray  # (N,) int32: bit k = edge TRIU[k] of the padded 7x7 matrix
    ops: np.ndarray  # (N, 5) int8: op index of interior vertices 1..5, ABSENT where missing
    num_vertices: np.ndarray  # (N,) int8: vertices after pruning, input and output included

    def __len__(self) -> int:
        return len(self.hashes)

    def find(self, hashes: np.ndarray) -> np.ndarray:
        """Pool positions of hashes (``'S32'`` or str), -1 where absent."""
        keys = np.asarray(hashes, dtype="S32")
        pos = np.searchsorted(self.hashes, keys)
        pos = np.minimum(pos, len(self.hashes) - 1)
        return np.where(self.hashes[pos] == keys, pos, -1)

    def matrices(self, positions: np.ndarray) -> np.ndarray:
        """Padded 7x7 int8 adjacency matrices of pool positions."""
        codes = self.matrix_codes[np.asarray(positions, dtype=np.int64)]
        bits = (codes[:, None] >> np.arange(NUM_EDGE_BITS)) & 1
        out = np.zeros((len(codes), MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        rows, cols = np.array(TRIU).T
        out[:, rows, cols] = bits
        return out


def _full_dags(n: int) -> np.ndarray:
    """Upper-triangular n x n matrices (as n*n-bit codes, bit r*n+c) with every vertex on an
    input-output path and at most MAX_EDGES edges."""
    pairs = [(r, c) for r in range(n) for c in range(r + 1, n)]
    m = len(pairs)
    codes = np.arange(2**m, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(m)) & 1).astype(np.int8)
    keep = bits.sum(axis=1) <= MAX_EDGES
    for v in range(n):
        # In an upper-triangular matrix "has an in-edge (except input) and an out-edge (except
        # output)" is the same as "on an input-output path" (the official is_full_dag).
        if v < n - 1:
            keep &= bits[:, [k for k, (r, _) in enumerate(pairs) if r == v]].any(axis=1)
        if v > 0:
            keep &= bits[:, [k for k, (_, c) in enumerate(pairs) if c == v]].any(axis=1)
    bits = bits[keep].astype(np.int64)
    square = np.array([r * n + c for r, c in pairs])
    return bits @ (np.int64(1) << square)


def _interior_perms(n: int) -> np.ndarray:
    """Permutations of 0..n-1 that fix input (0) and output (n-1), shape (P, n)."""
    inner = list(itertools.permutations(range(1, n - 1)))
    return np.array([(0, *p, n - 1) for p in inner], dtype=np.int64).reshape(len(inner), n)


def _permuted_codes(codes: np.ndarray, n: int, perms: np.ndarray) -> np.ndarray:
    """Codes of every graph under every permutation, shape (len(codes), P)."""
    squares = np.arange(n * n)
    bits = (codes[:, None] >> squares) & 1  # (M, n*n)
    rows, cols = squares // n, squares % n
    weights = np.int64(1) << (perms[:, rows] * n + perms[:, cols])  # (P, n*n): where each bit goes
    return bits @ weights.T


def _structures(max_vertices: int = MAX_VERTICES) -> list[tuple[list, list, int, np.ndarray]]:
    """One entry per unlabelled graph class: (preds, succs, padded matrix code, kept labelings)."""
    out = []
    for n in range(2, max_vertices + 1):
        graphs = _full_dags(n)
        perms = _interior_perms(n)
        permuted = _permuted_codes(graphs, n, perms)
        _, first = np.unique(permuted.min(axis=1), return_index=True)
        labelings = np.array(list(itertools.product(range(NUM_OPS), repeat=n - 2)), dtype=np.int64)
        labelings = labelings.reshape(NUM_OPS ** (n - 2), n - 2)
        radix = NUM_OPS ** np.arange(n - 2)
        index = list(range(n - 1)) + [MAX_VERTICES - 1]  # output moves to vertex 6 when padded
        for rep, rep_perms in zip(graphs[first], permuted[first]):
            autos = perms[rep_perms == rep][:, 1:-1] - 1  # interior automorphisms, 0-based
            # Automorphism s maps labeling l to l' with l'[s[v]] = l[v]; keep each orbit's minimum.
            moved = np.empty((len(autos), *labelings.shape), dtype=np.int64)
            for a, s in enumerate(autos):
                moved[a][:, s] = labelings
            keep = (labelings @ radix) == (moved @ radix).min(axis=0)
            matrix = ((int(rep) >> np.arange(n * n)) & 1).astype(np.int8).reshape(n, n)
            padded = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
            padded[np.ix_(index, index)] = matrix
            code7 = int(sum(int(padded[r, c]) << k for k, (r, c) in enumerate(TRIU)))
            preds = [np.flatnonzero(matrix[:, v]).tolist() for v in range(n)]
            succs = [np.flatnonzero(matrix[v, :]).tolist() for v in range(n)]
            out.append((preds, succs, code7, labelings[keep]))
    return out


def _hash_structures(items: list[tuple[list, list, int, np.ndarray]]) -> list[str]:
    return [hash_graph(preds, succs, [INPUT_LABEL, *lab, OUTPUT_LABEL])
            for preds, succs, _, labs in items for lab in labs.tolist()]


def enumerate_cells(workers: int | None = None, max_vertices: int = MAX_VERTICES) -> Pool:
    """Compute the pool (no cache): one representative of every cell, hashed officially.
    ``max_vertices`` below 7 gives the (much smaller) pool of cells with at most that many vertices.

    Hashing dominates (about 423,624 x 60 MD5s in Python), so it is spread over ``workers``
    processes (default: the CPU count, at most 8).
    """
    items = _structures(max_vertices)
    workers = workers or min(os.cpu_count() or 1, 8)
    chunks = [items[i::workers * 4] for i in range(workers * 4)]  # interleaved: balanced sizes
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as executor:
            hashed = list(executor.map(_hash_structures, chunks))
    else:
        hashed = [_hash_structures(chunk) for chunk in chunks]
    hashes, codes7, ops_rows, sizes = [], [], [], []
    for chunk, chunk_hashes in zip(chunks, hashed):
        hashes.extend(chunk_hashes)
        for preds, _, code7, labs in chunk:
            n = len(preds)
            codes7.extend([code7] * len(labs))
            padded_ops = np.full((len(labs), INTERIOR), ABSENT, dtype=np.int8)
            padded_ops[:, : n - 2] = labs
            ops_rows.append(padded_ops)
            sizes.extend([n] * len(labs))
    keys = np.array(hashes, dtype="S32")
    order = np.argsort(keys, kind="stable")
    return Pool(
        hashes=keys[order],
        matrix_codes=np.array(codes7, dtype=np.int32)[order],
        ops=np.concatenate(ops_rows)[order],
        num_vertices=np.array(sizes, dtype=np.int8)[order],
    )


_POOL: Pool | None = None  # loaded once per process


def pool_path() -> Path:
    return cache_dir() / f"nasbench101_pool_v{CACHE_VERSION}.npz"


def load_pool(progress: bool = False) -> Pool:
    """The pool, from the cache when present, else enumerated (tens of seconds) and cached."""
    global _POOL
    if _POOL is not None:
        return _POOL
    from lanas.nasbench101.cache import load_npz, save_npz_atomic

    path = pool_path()
    arrays = load_npz(path) if path.exists() else None
    if arrays is not None and len(arrays.get("hashes", ())) == NUM_CELLS:
        pool = Pool(**{k: arrays[k] for k in ("hashes", "matrix_codes", "ops", "num_vertices")})
    else:
        # First use only, and long: say so before the silence (about 35 s of CPU; minutes on a busy machine).
        print(f"note: enumerating the {NUM_CELLS:,} NAS-Bench-101 cells once (about 35 s of CPU, longer on a busy "
              f"machine); cached in {path}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        pool = enumerate_cells()
        if progress:
            print(f"enumerated {len(pool)} cells in {time.perf_counter() - start:.1f} s -> {path}", flush=True)
        save_npz_atomic(path, {"hashes": pool.hashes, "matrix_codes": pool.matrix_codes,
                               "ops": pool.ops, "num_vertices": pool.num_vertices})
    _POOL = pool
    return pool


if __name__ == "__main__":
    # python -m lanas.nasbench101.enumerate: build the cached pool now (e.g. while setting up).
    start = time.perf_counter()
    cells = load_pool(progress=True)
    print(f"{len(cells)} cells, {len(np.unique(cells.hashes))} distinct hashes, ready in "
          f"{time.perf_counter() - start:.1f} s: {pool_path()}")
