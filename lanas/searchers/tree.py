"""The learned partition of LaNAS: a full binary tree of linear splits, its statistics and UCB.

Node ``i`` has good child ``2i+1`` and bad child ``2i+2``; a tree of ``height`` levels has
``2**(height-1) - 1`` internal nodes followed by ``2**(height-1)`` leaves. Each internal node holds
a hyperplane ``x.w + b`` and a threshold: a point goes to the good child when ``x.w + b >= threshold``.
How a node's hyperplane is learned from the samples it holds is the *split rule*:

``RegressionSplit`` (the paper, LaNAS)
    least squares of the rewards on the encodings; the threshold is the mean prediction on the
    node's samples (= their mean reward, thanks to the intercept).
``ClassifierSplit`` (lanas_plus)
    least squares on the paper's good/bad labels (reward at or above the node's mean): the
    closed-form linear discriminant, cut at 0.5. The failed cells' very low rewards no longer tilt
    the hyperplane.

Training samples are routed to the children by their reward (``route_samples="reward"``, the
reference code) or by the hyperplane (``"predicted"``); candidates, which have no reward, always by
the hyperplane. A node's value ``x_bar`` is the mean reward of its samples and ``n`` their number;
``ucb`` is the UCT rule shared with :mod:`lanas.searchers.mcts`.

Virtual loss (asynchronous search with several workers): a proposal still being evaluated counts as
a visit of every node on its path with the pessimistic value ``virtual_value`` (parallel MCTS's
virtual loss, Chaslot et al. 2008), so that the next selections see the region as more visited and
less promising and spread over others instead of piling into one leaf. Pending visits live apart
from the statistics (:attr:`PartitionTree.pending`) and are removed when the reward arrives, so with
nothing pending the scores are exactly those of the sequential search.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROUTINGS = ("reward", "predicted")
# Beyond this the exploration bonus swamps any reward, and 2 * Cp overflows towards inf * 0 = nan.
MAX_CP = 1e6
# Scores of one block of rows for every internal node: at most this many booleans at once (64 MB).
MAX_BLOCK_SCORES = 2**26


def fit_linear(X: np.ndarray, y: np.ndarray, alpha: float = 0.0) -> tuple[np.ndarray, float]:
    """Least squares (``alpha = 0``, minimum-norm solution) or ridge with an unpenalised intercept.

    Closed form on centred data through the d x d Gram matrix (d is small, the sample count is not):
    ``w = pinv(Xc' Xc + alpha I) Xc' yc``, which is the minimum-norm least-squares solution for
    ``alpha = 0``. With an intercept, the mean prediction on the training samples equals their mean
    reward exactly.
    """
    x_mean = X.mean(axis=0)
    y_mean = float(y.mean())
    Xc = X - x_mean
    gram = Xc.T @ Xc
    if alpha > 0:
        gram[np.diag_indices_from(gram)] += alpha
    w = np.linalg.pinv(gram, rcond=1e-10, hermitian=True) @ (Xc.T @ (y - y_mean))
    return w, y_mean - float(x_mean @ w)


def ucb(x_bar: np.ndarray, n: np.ndarray, n_parent: int, Cp: float) -> np.ndarray:
    """UCT scores ``x_bar + 2 * Cp * sqrt(2 * ln(n_parent) / n)``; unvisited children score inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bonus = 2 * Cp * np.sqrt(2 * np.log(max(n_parent, 1)) / n)
    return np.where(n == 0, np.inf, x_bar + bonus)


def argmax_random_tie(scores: np.ndarray, rng: np.random.Generator) -> int:
    """Index of the largest score; ties broken uniformly at random (no draw without a tie)."""
    best = np.flatnonzero(scores == scores.max())
    return int(best[rng.integers(len(best))] if len(best) > 1 else best[0])


class RegressionSplit:
    """LaNAS's split: fit the rewards, cut at the mean prediction."""

    name = "regression"

    def fit(self, X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float, float, np.ndarray]:
        """Hyperplane ``(w, b)``, threshold, and which samples lie on the good side by reward."""
        w, b = fit_linear(X, y, alpha)
        threshold = float((X @ w + b).mean())
        return w, b, threshold, y >= threshold


class ClassifierSplit:
    """lanas_plus's split: fit the good/bad labels (reward >= the node's mean), cut at 0.5."""

    name = "classifier"

    def fit(self, X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float, float, np.ndarray]:
        good = y >= y.mean()
        w, b = fit_linear(X, good.astype(np.float64), alpha)
        return w, b, 0.5, good


SPLITS = {split.name: split for split in (RegressionSplit, ClassifierSplit)}


class PartitionTree:
    """A full binary tree of learned linear splits with per-node statistics; see the module docstring."""

    def __init__(self, height: int, split: str = "regression", alpha: float = 0.0, route_samples: str = "reward") -> None:
        self.height = height
        self.split = SPLITS[split]()
        self.alpha = alpha
        self.route_samples = route_samples
        self.num_internal = 2 ** (height - 1) - 1
        self.num_nodes = 2**height - 1
        self.fitted = False
        self.pending: np.ndarray | None = None  # pending visits per node (virtual loss)
        self.virtual_value = 0.0  # the value a pending visit counts with (set by the searcher)

    # ------------------------------------------------------------------ layout
    @property
    def leaves(self) -> range:
        """Leaf ids in good-to-bad order (the leftmost leaf is the best predicted region)."""
        return range(self.num_internal, self.num_nodes)

    @staticmethod
    def children(node: int) -> tuple[int, int]:
        return 2 * node + 1, 2 * node + 2

    @staticmethod
    def parent(node: int | np.ndarray) -> int | np.ndarray:
        return (node - 1) // 2

    def path_to(self, leaf: int) -> list[int]:
        """Node ids from the root down to ``leaf``."""
        path = [leaf]
        while path[0]:
            path.insert(0, int(self.parent(path[0])))
        return path

    # ------------------------------------------------------------------ learning
    def fit(self, X: np.ndarray, y: np.ndarray) -> None:
        """Learn every node's split and statistics from the encodings ``X`` and rewards ``y``."""
        self.W = np.zeros((self.num_internal, X.shape[1]))
        self.b = np.zeros(self.num_internal)
        self.threshold = np.zeros(self.num_internal)
        self.n = np.zeros(self.num_nodes, dtype=np.int64)
        self.x_bar = np.full(self.num_nodes, np.inf)
        node_of = np.zeros(len(y), dtype=np.int64)
        for node in range(self.num_nodes):
            members = np.flatnonzero(node_of == node)
            self.n[node] = len(members)
            if len(members):
                self.x_bar[node] = y[members].mean()
            if node >= self.num_internal or len(members) == 0:
                continue  # a node without samples sends every candidate to its good child
            w, b, threshold, good = self.split.fit(X[members], y[members], self.alpha)
            self.W[node], self.b[node], self.threshold[node] = w, b, threshold
            if self.route_samples == "predicted":
                good = X[members] @ w + b >= threshold
            good_child, bad_child = self.children(node)
            node_of[members] = np.where(good, good_child, bad_child)
        self.pending = np.zeros(self.num_nodes, dtype=np.int64)
        self.fitted = True

    def add_pending(self, leaf: int, count: int = 1) -> None:
        """Add ``count`` (negative: remove) pending visits to ``leaf`` and each of its ancestors."""
        if getattr(self, "pending", None) is None:
            self.pending = np.zeros(self.num_nodes, dtype=np.int64)
        self.pending[self.path_to(leaf)] += count

    def _with_virtual_loss(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x_bar, n)`` with the pending visits counted at ``virtual_value`` (the plain ones when none)."""
        pending = getattr(self, "pending", None)
        if pending is None or not pending.any():
            return self.x_bar, self.n
        n = self.n + pending
        with np.errstate(invalid="ignore"):
            x_bar = np.where(self.n > 0, self.x_bar * self.n, 0.0) + pending * self.virtual_value
            x_bar = np.where(n > 0, x_bar / np.maximum(n, 1), self.x_bar)
        return x_bar, n

    def backpropagate(self, leaf: int, reward: float) -> None:
        """Fold ``reward`` into the running mean and count of ``leaf`` and each of its ancestors."""
        node = leaf
        while True:
            n = self.n[node]
            self.x_bar[node] = reward if n == 0 else (self.x_bar[node] * n + reward) / (n + 1)
            self.n[node] += 1
            if node == 0:
                break
            node = self.parent(node)

    # ------------------------------------------------------------------ routing
    def route(self, X: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """Leaf of each encoding row, following the learned splits from the root.

        One matrix product per block of rows scores every internal node at once (cheaper than one
        pass over ``X`` per level); the walk down the tree then only gathers booleans, by flat
        index (1.7x faster than a 2-d gather). The block size is part of the result: BLAS rounds a
        row's score differently in a smaller block, which moves candidates that lie exactly on a
        threshold, so it stays at 65,536 rows (NAS-Bench-201's pool is one block).
        """
        W = self.W.T.astype(X.dtype)
        offset = (self.threshold - self.b).astype(X.dtype)  # good  <=>  x.w + b >= threshold
        leaves = np.empty(len(X), dtype=np.int64)
        # Only trees of more than 1,024 internal nodes (height 12+) get smaller blocks, to bound memory.
        chunk = min(chunk, max(1024, MAX_BLOCK_SCORES // max(self.num_internal, 1)))
        row_start = np.arange(min(chunk, len(X)), dtype=np.intp) * self.num_internal
        for lo in range(0, len(X), chunk):
            good = ((X[lo : lo + chunk] @ W) >= offset).ravel()
            start = row_start[: min(chunk, len(X) - lo)]
            node = np.zeros(len(start), dtype=np.intp)
            for _ in range(self.height - 1):
                node = 2 * node + 2 - good[start + node]
            leaves[lo : lo + len(start)] = node
        return leaves

    def violation(self, X: np.ndarray, path: Sequence[int]) -> np.ndarray:
        """How far each row is from the region of ``path``: summed margins of the splits it breaks.

        Computed exactly as :meth:`route` decides (same dtype, ``score >= offset`` means good), so a
        row has zero violation if and only if it routes to ``path[-1]``.
        """
        nodes = np.asarray(path[:-1])
        want_good = np.asarray(path[1:]) == 2 * nodes + 1
        score = (X @ self.W[nodes].T.astype(X.dtype)).astype(np.float64)
        offset = (self.threshold[nodes] - self.b[nodes]).astype(X.dtype).astype(np.float64)
        is_good = score >= offset
        # A bad child needs score < offset: a tie breaks it by a tiny amount so that it still counts.
        broken = np.where(want_good, offset - score, score - offset + 1e-12)
        return np.sum(np.where(is_good == want_good, 0.0, broken), axis=1)

    def shared_depth(self, leaves: np.ndarray, path: Sequence[int]) -> np.ndarray:
        """For each leaf, the deepest level at which its ancestor is on ``path`` (0: the root only)."""
        depth = np.zeros(len(leaves), dtype=np.int64)
        node = np.asarray(leaves).copy()
        for level in range(self.height - 1, 0, -1):  # ancestors of each leaf, bottom up
            depth = np.where((depth == 0) & (node == path[level]), level, depth)
            node = self.parent(node)
        return depth

    def subtree_sums(self, leaf_values: np.ndarray) -> np.ndarray:
        """Per-node sums of a per-leaf quantity (leaves in :attr:`leaves` order), summed upwards."""
        total = np.zeros(self.num_nodes)
        total[self.num_internal :] = leaf_values
        for node in range(self.num_internal - 1, -1, -1):
            good_child, bad_child = self.children(node)
            total[node] = total[good_child] + total[bad_child]
        return total

    # ------------------------------------------------------------------ selection
    def select(self, rng: np.random.Generator, Cp: float, bonus: np.ndarray | None = None,
               allowed: np.ndarray | None = None) -> list[int]:
        """Path of node ids from the root to a leaf, each step to the child with the larger UCB score.

        ``bonus`` (one value per node) is added to the children's scores, e.g. lanas_plus's size term;
        where ``allowed`` (one boolean per node) is given, a child it excludes is never chosen while
        its sibling is allowed. Pending proposals count as visits with :attr:`virtual_value` (see the
        module docstring).
        """
        x_bar, visits = self._with_virtual_loss()
        node, path = 0, [0]
        while node < self.num_internal:
            kids = np.array(self.children(node))
            scores = ucb(x_bar[kids], visits[kids], visits[node], Cp)
            if bonus is not None:
                scores = scores + bonus[kids]
            if allowed is not None and allowed[kids].any():
                scores = np.where(allowed[kids], scores, -np.inf)
            node = int(kids[argmax_random_tie(scores, rng)])
            path.append(node)
        return path
