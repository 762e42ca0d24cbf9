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

Spaces that cannot be enumerated (e.g. ``nasnet``, about 1.35e20 cells) have no pool to route once.
There, in-leaf sampling draws ``candidate_batch`` uniform candidates at a time, routes the whole
batch through the tree with one matrix product, and keeps a candidate only when it satisfies
**every** constraint on the path to the chosen leaf (i.e. it routes to that leaf; the reference
code accepts a candidate as soon as any one constraint holds, which samples outside the region).
After ``max_tries`` batches without an unevaluated accepted candidate, ``proposal="rejection+mutation"``
walks from the leaf's best samples by mutations, keeping children inside the region (and, while
none is, the children that violate the path's constraints least); if that fails too, a uniform
random architecture is proposed and counted as a fallback. ``stats()`` reports the acceptance rate
of the uniform draws.
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
PROPOSALS = ("rejection", "rejection+mutation")


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
        candidate_batch: int = 1000,
        max_tries: int = 20,
        proposal: str = "rejection+mutation",
        mutation_seeds: int = 8,
        mutation_tries: int = 50,
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
        # Only used in spaces that cannot be enumerated (see the module docstring).
        self.candidate_batch = require_int("searcher.candidate_batch", candidate_batch, 1)
        self.max_tries = require_int("searcher.max_tries", max_tries, 1)
        self.proposal = require_choice("searcher.proposal", proposal, PROPOSALS)
        self.mutation_seeds = require_int("searcher.mutation_seeds", mutation_seeds, 1)
        self.mutation_tries = require_int("searcher.mutation_tries", mutation_tries, 1)
        self.num_internal = 2 ** (self.tree_height - 1) - 1
        self.num_nodes = 2**self.tree_height - 1
        self._pool: PoolMask | None = None
        self._fitted_at = -1  # number of samples the tree was last learned on
        self._leaf_of_arch: dict[int, int] = {}  # leaf each pending proposal came from
        self.num_refits = 0
        self.num_fallbacks = 0
        self._seen: set[str] | None = None  # ids of evaluated or proposed archs (unbounded spaces)
        self.num_drawn = 0  # uniform in-leaf candidates drawn (unbounded spaces)
        self.num_accepted = 0  # ... of which satisfied every constraint on the path
        self.num_mutation_proposals = 0

    # ------------------------------------------------------------------ public interface
    def min_budget(self) -> int:
        return self.init_samples

    def ask(self, n: int = 1) -> list[Arch]:
        if not self.space.is_finite:
            return self._ask_unbounded(n)
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
        archs = [int(a) for a in archs] if self.space.is_finite else list(archs)
        super().tell(archs, rewards)
        if self._seen is not None:
            self._seen.update(self.space.arch_id(a) for a in archs)
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

        if self.space.is_finite:
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

    # ------------------------------------------------------------------ spaces that cannot be enumerated
    def _ask_unbounded(self, n: int) -> list[Arch]:
        if self._seen is None:
            self._seen = {self.space.arch_id(a) for a in self.archs}
        proposals = []
        for _ in range(n):
            if self.num_told < self.init_samples:
                arch, leaf = self._draw_new(), -1
            else:
                if self._fitted_at < 0 or self.num_told - self._fitted_at >= self.refit_every:
                    self.refit()
                arch, leaf = self._sample_in_region(self.select())
            self._seen.add(self.space.arch_id(arch))
            self._leaf_of_arch[arch] = leaf
            proposals.append(arch)
        return proposals

    def _draw_batch(self, n: int) -> tuple[np.ndarray | list[Arch], np.ndarray]:
        """``n`` uniform candidates and their encodings (array fast path when the space has one)."""
        if hasattr(self.space, "sample_array"):
            archs = self.space.sample_array(self.rng, n)
            return archs, self.space.encode_array(archs)
        archs = self.space.sample(self.rng, n)
        return archs, self.space.encode(archs)

    def _as_arch(self, archs: np.ndarray | list[Arch], i: int) -> Arch:
        row = archs[i]
        return tuple(int(v) for v in row) if isinstance(archs, np.ndarray) else row

    def _first_new(self, archs: np.ndarray | list[Arch], rows: np.ndarray) -> Arch | None:
        for i in rows:
            arch = self._as_arch(archs, int(i))
            if self.space.arch_id(arch) not in self._seen:
                return arch
        return None

    def _draw_new(self) -> Arch:
        """A uniform architecture not evaluated or proposed before (bounded tries)."""
        for _ in range(self.max_tries):
            archs, _ = self._draw_batch(1)
            arch = self._as_arch(archs, 0)
            if self.space.arch_id(arch) not in self._seen:
                return arch
        return arch  # a repeat is astronomically unlikely in a space that cannot be enumerated

    def _sample_in_region(self, path: list[int]) -> tuple[Arch, int]:
        """An unevaluated architecture satisfying every constraint on ``path`` (see the module docstring)."""
        leaf = path[-1]
        for _ in range(self.max_tries):
            archs, X = self._draw_batch(self.candidate_batch)
            inside = np.flatnonzero(self._route(X) == leaf)
            self.num_drawn += len(X)
            self.num_accepted += len(inside)
            arch = self._first_new(archs, inside)
            if arch is not None:
                return arch, leaf
        if self.proposal == "rejection+mutation":
            arch = self._mutation_proposal(path)
            if arch is not None:
                self.num_mutation_proposals += 1
                return arch, leaf
        return self._nearest_region_fallback(path)

    def _nearest_region_fallback(self, path: list[int]) -> tuple[Arch, int]:
        """No candidate found in the leaf's region (it may be empty, e.g. below a node fitted on one
        sample): propose a new candidate that follows ``path`` for as many levels as possible, i.e. one
        from the deepest non-empty ancestor region seen in a batch; its leaf is where it routes."""
        self.num_fallbacks += 1
        archs, X = self._draw_batch(self.candidate_batch)
        leaves = self._route(X)
        depth = np.zeros(len(X), dtype=np.int64)
        node = leaves.copy()
        for level in range(self.tree_height - 1, 0, -1):  # ancestors of each routed leaf, bottom up
            depth = np.where((depth == 0) & (node == path[level]), level, depth)
            node = (node - 1) // 2
        order = np.lexsort((self.rng.random(len(X)), -depth))
        arch = self._first_new(archs, order)
        if arch is None:
            arch = self._draw_new()
        return arch, int(self._route(self.space.encode([arch]))[0])

    def _violation(self, X: np.ndarray, path: list[int]) -> np.ndarray:
        """How far each row is from the region of ``path``: summed margins of the constraints it breaks.

        Computed exactly as :meth:`_route` decides (same dtype, ``score >= offset`` means good), so a
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

    def _mutate_batch(self, parents: np.ndarray | list[Arch]) -> tuple[np.ndarray | list[Arch], np.ndarray]:
        if isinstance(parents, np.ndarray) and hasattr(self.space, "mutate_array"):
            kids = self.space.mutate_array(parents, self.rng)
            return kids, self.space.encode_array(kids)
        kids = [self.space.mutate(p, self.rng) for p in parents]
        return kids, self.space.encode(kids)

    def _mutation_proposal(self, path: list[int]) -> Arch | None:
        """Mutation walk from the region's best samples; children inside the region are accepted."""
        leaf = path[-1]
        X = self.space.encode(self.archs)
        y = np.asarray(self.rewards)
        violation = self._violation(X, path)
        # Seeds: the best samples inside the region; when it holds none, the ones closest to it.
        order = np.lexsort((-y, violation))[: self.mutation_seeds]
        seeds = [self.archs[i] for i in order]
        parents = np.asarray(seeds, dtype=np.int64) if hasattr(self.space, "mutate_array") else seeds
        for _ in range(self.mutation_tries):
            pick = self.rng.integers(len(parents), size=self.candidate_batch)
            batch = parents[pick] if isinstance(parents, np.ndarray) else [parents[i] for i in pick]
            kids, Xk = self._mutate_batch(batch)
            inside = np.flatnonzero(self._route(Xk) == leaf)
            arch = self._first_new(kids, inside)
            if arch is not None:
                return arch
            # No child inside yet: walk on from the children that break the constraints least.
            closest = np.argsort(self._violation(Xk, path), kind="stable")[: self.mutation_seeds]
            parents = kids[closest] if isinstance(kids, np.ndarray) else [kids[i] for i in closest]
        return None

    # ------------------------------------------------------------------ introspection
    def leaf_sizes(self) -> np.ndarray:
        """Unevaluated candidates per leaf (index 0 is the leftmost, best-predicted leaf)."""
        free = ~self._pool.taken
        return np.bincount(self.leaf_of[free], minlength=self.num_nodes)[self.num_internal:]

    def stats(self) -> dict[str, Any]:
        if self._fitted_at < 0:
            return {}
        stats = {"refits": self.num_refits, "fallbacks": self.num_fallbacks}
        if not self.space.is_finite:
            stats["acceptance_rate"] = self.num_accepted / self.num_drawn if self.num_drawn else None
            stats["candidates_drawn"] = self.num_drawn
            stats["mutation_proposals"] = self.num_mutation_proposals
        return stats
