"""LaNAS: Monte Carlo tree search over a learned partition of the search space.

Wang, Xie, Li, Fonseca, Tian, "Sample-Efficient Neural Architecture Search by Learning Actions for
Monte Carlo Tree Search" (arXiv 1906.06832), and the authors' reference code (LaMCTS/LaNAS).

The tree is a full binary tree of ``tree_height`` levels (``2**tree_height - 1`` nodes, so height 1
is a single leaf, i.e. random search). Every internal node fits a linear regressor, closed form, on
the encodings and rewards of the samples it holds; its threshold is the mean prediction on those
samples. The good child (left) holds what lies at or above the threshold, the bad child the rest.
A node's value is the mean reward of its samples and its visit count their number.

Each new sample: from the root, pick the child with the larger UCB score
``x_bar + 2 * Cp * sqrt(2 * ln(n_parent) / n)`` (unvisited children first, ties at random) down to
a leaf, then draw uniformly among the unevaluated candidates whose predictions satisfy every
constraint on the path. The reward is back-propagated along the path. The tree is re-learned from
all samples every ``refit_every`` samples after the first ``init_samples`` random ones.

Routing of training samples (``route_samples``): the reference code routes the *training* samples
of a node by their true reward against the threshold ("reward", the default, which is also the
paper's description: samples better than the node's mean go to the good child), while it routes
*candidates* by predicted reward (candidates have no reward). ``route_samples="predicted"`` routes
training samples by prediction too, so that a node's statistics describe exactly the region that
candidates are drawn from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.errors import require_choice, require_float, require_int
from lanas.searchers.base import PoolMask, Searcher
from lanas.spaces.base import Arch, SearchSpace

REGRESSORS = ("linear", "ridge")
ROUTINGS = ("reward", "predicted")
FALLBACKS = ("first_nonempty", "random")


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


class LaNAS(Searcher):
    """LaNAS searcher over a finite (enumerable) space; see the module docstring."""

    name = "lanas"

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        tree_height: int = 5,
        Cp: float = 0.1,
        init_samples: int = 10,
        refit_every: int = 20,
        regressor: str = "linear",
        ridge_alpha: float = 1e-3,
        route_samples: str = "reward",
        leaf_fallback: str = "first_nonempty",
    ) -> None:
        super().__init__(space, rng)
        self.tree_height = require_int("searcher.tree_height", tree_height, 1, 16)
        self.Cp = require_float("searcher.Cp", Cp, 0.0)
        self.init_samples = require_int("searcher.init_samples", init_samples, 1)
        self.refit_every = require_int("searcher.refit_every", refit_every, 1)
        self.regressor = require_choice("searcher.regressor", regressor, REGRESSORS)
        self.ridge_alpha = require_float("searcher.ridge_alpha", ridge_alpha, 0.0)
        self.route_samples = require_choice("searcher.route_samples", route_samples, ROUTINGS)
        self.leaf_fallback = require_choice("searcher.leaf_fallback", leaf_fallback, FALLBACKS)
        self.num_internal = 2 ** (self.tree_height - 1) - 1
        self.num_nodes = 2**self.tree_height - 1
        self._pool: PoolMask | None = None
        self._fitted_at = -1  # number of samples the tree was last learned on
        self._leaf_of_arch: dict[int, int] = {}  # leaf each pending proposal came from
        self.num_refits = 0
        self.num_fallbacks = 0

    # ------------------------------------------------------------------ public interface
    def min_budget(self) -> int:
        return self.init_samples

    def ask(self, n: int = 1) -> list[Arch]:
        space = self._require_finite()
        if self._pool is None:
            self._pool = PoolMask(len(space))
            self._pool.take(self.archs)
        proposals = []
        for _ in range(n):
            if self._pool.exhausted:
                break
            if self.num_told < self.init_samples:
                arch = self._pool.draw(self.rng)
                leaf = -1
            else:
                if self._fitted_at < 0 or self.num_told - self._fitted_at >= self.refit_every:
                    self.refit()
                arch, leaf = self._sample_from_tree()
            self._pool.take([arch])
            self._leaf_of_arch[arch] = leaf
            proposals.append(arch)
        return proposals

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        archs = [int(a) for a in archs]
        super().tell(archs, rewards)
        if self._pool is not None:
            self._pool.take(archs)
        for arch, reward in zip(archs, rewards):
            leaf = self._leaf_of_arch.pop(arch, -1)
            if leaf < 0 and self._fitted_at >= 0:
                leaf = self._route(self.space.encode([arch]))[0]
            if leaf >= 0:
                self._backpropagate(leaf, float(reward))

    # ------------------------------------------------------------------ learning
    def refit(self) -> None:
        """Re-learn every node's regressor and statistics from all samples so far."""
        X = self.space.encode(self.archs).astype(np.float64)
        y = np.asarray(self.rewards, dtype=np.float64)
        d = X.shape[1]
        self.W = np.zeros((self.num_internal, d))
        self.b = np.zeros(self.num_internal)
        self.threshold = np.zeros(self.num_internal)
        self.n = np.zeros(self.num_nodes, dtype=np.int64)
        self.x_bar = np.full(self.num_nodes, np.inf)
        alpha = self.ridge_alpha if self.regressor == "ridge" else 0.0

        node_of = np.zeros(len(y), dtype=np.int64)
        for node in range(self.num_nodes):
            members = np.flatnonzero(node_of == node)
            self.n[node] = len(members)
            if len(members):
                self.x_bar[node] = y[members].mean()
            if node >= self.num_internal or len(members) == 0:
                continue  # a node without samples sends every candidate to its good child
            w, b = fit_linear(X[members], y[members], alpha)
            pred = X[members] @ w + b
            self.W[node], self.b[node] = w, b
            self.threshold[node] = pred.mean()
            score = y[members] if self.route_samples == "reward" else pred
            node_of[members] = np.where(score >= self.threshold[node], 2 * node + 1, 2 * node + 2)

        self.leaf_of = self._route(self.space.features())
        self._index_leaves()
        self._fitted_at = self.num_told
        self.num_refits += 1

    def _route(self, X: np.ndarray, chunk: int = 65_536) -> np.ndarray:
        """Leaf of each encoding row, following the learned constraints from the root.

        One matrix product per block of rows scores every internal node at once (cheaper than one
        pass over ``X`` per level); the walk down the tree then only gathers booleans.
        """
        W = self.W.T.astype(X.dtype)
        offset = (self.threshold - self.b).astype(X.dtype)  # good  <=>  x.w + b >= threshold
        leaves = np.empty(len(X), dtype=np.int64)
        for lo in range(0, len(X), chunk):
            block = X[lo : lo + chunk]
            good = (block @ W) >= offset
            rows = np.arange(len(block))
            node = np.zeros(len(block), dtype=np.int64)
            for _ in range(self.tree_height - 1):
                node = 2 * node + 2 - good[rows, node]
            leaves[lo : lo + chunk] = node
        return leaves

    def _index_leaves(self) -> None:
        """Group the free candidates by leaf: one segment of ``_members`` per leaf.

        Draws swap the drawn entry to the end of its segment's live part, so a draw costs O(1)
        instead of a scan of the pool; entries taken by other means are dropped when drawn.
        """
        free = np.flatnonzero(~self._pool.taken)
        leaf_index = (self.leaf_of[free] - self.num_internal).astype(np.int16)  # int16: radix sort
        order = np.argsort(leaf_index, kind="stable")
        self._members = free[order]
        counts = np.bincount(leaf_index, minlength=self.num_nodes - self.num_internal)
        self._seg_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self._seg_live = counts.copy()

    def _draw_from_leaf(self, leaf: int) -> int | None:
        k = leaf - self.num_internal
        start = int(self._seg_start[k])
        while self._seg_live[k] > 0:
            live = int(self._seg_live[k])
            j = start + int(self.rng.integers(live))
            last = start + live - 1
            arch = int(self._members[j])
            self._members[j], self._members[last] = self._members[last], arch
            self._seg_live[k] -= 1
            if not self._pool.taken[arch]:
                return arch
        return None

    # ------------------------------------------------------------------ searching
    def select(self) -> list[int]:
        """Path of node ids from the root to a leaf, by UCB."""
        node, path = 0, [0]
        while node < self.num_internal:
            kids = np.array([2 * node + 1, 2 * node + 2])
            n_kids = self.n[kids]
            with np.errstate(divide="ignore", invalid="ignore"):
                bonus = 2 * self.Cp * np.sqrt(2 * np.log(max(self.n[node], 1)) / n_kids)
            ucb = np.where(n_kids == 0, np.inf, self.x_bar[kids] + bonus)
            best = np.flatnonzero(ucb == ucb.max())
            node = int(kids[best[self.rng.integers(len(best))] if len(best) > 1 else best[0]])
            path.append(node)
        return path

    def _sample_from_tree(self) -> tuple[int, int]:
        leaf = self.select()[-1]
        arch = self._draw_from_leaf(leaf)
        if arch is None:
            arch, leaf = self._fallback()
        return arch, leaf

    def _fallback(self) -> tuple[int, int]:
        """The chosen leaf has no unevaluated candidate left: draw from another leaf.

        ``first_nonempty`` (the reference code) takes the first leaf, in good-to-bad order, that
        still has candidates; ``random`` draws uniformly among all remaining candidates.
        """
        self.num_fallbacks += 1
        if self.leaf_fallback == "first_nonempty":
            for leaf in range(self.num_internal, self.num_nodes):
                arch = self._draw_from_leaf(leaf)
                if arch is not None:
                    return arch, leaf
        arch = self._pool.draw(self.rng)
        return arch, int(self.leaf_of[arch])

    def _backpropagate(self, leaf: int, reward: float) -> None:
        node = leaf
        while True:
            self.x_bar[node] = reward if self.n[node] == 0 else (self.x_bar[node] * self.n[node] + reward) / (self.n[node] + 1)
            self.n[node] += 1
            if node == 0:
                break
            node = (node - 1) // 2

    # ------------------------------------------------------------------ introspection
    def leaf_sizes(self) -> np.ndarray:
        """Unevaluated candidates per leaf (index 0 is the leftmost, best-predicted leaf)."""
        free = ~self._pool.taken
        return np.bincount(self.leaf_of[free], minlength=self.num_nodes)[self.num_internal:]

    def stats(self) -> dict[str, Any]:
        if self._fitted_at < 0:
            return {}
        return {"refits": self.num_refits, "fallbacks": self.num_fallbacks}
