"""LaNAS+: LaNAS with rank-scaled rewards, a classifier split and local moves inside the chosen region.

Built from what the faithful LaNAS does in its slow runs on NAS-Bench-201 (traces and every idea's
numbers: ``experiments/lanas_plus_ablation.md``): the global optimum ends up in a leaf that holds
most of the pool but few, poor samples, because a least-squares fit on the searcher's own (biased)
samples, pulled around by the few cells that fail to train (accuracy ~10%), predicts it badly; UCB
then rarely visits that leaf and draws uniformly among thousands of candidates when it does.

``reward_transform``
    The tree learns from transformed rewards. ``rank`` maps each reward to its mid-rank among the
    samples so far, scaled to [0, 1]: outliers stop dominating the fit, and ``Cp`` means the same on
    every benchmark whatever the reward's scale (accuracy in % or as a fraction, ...). ``zscore``
    standardises instead; ``none`` keeps LaNAS's raw rewards. Rewards that arrive between re-fits
    are ranked against the samples the tree was learned on.

``split``
    ``classifier`` fits each node's hyperplane to the paper's good/bad labels (reward at or above
    the node's mean) instead of to the rewards: least squares on 0/1 labels, the closed-form linear
    discriminant, cut at 0.5. ``regression`` is LaNAS's split.

``local_prob`` / ``local_move`` / ``local_top``
    With probability ``local_prob`` the sample drawn from the selected leaf is not uniform but a
    local move from one of the ``local_top`` best samples that the tree routes into that leaf, kept
    inside the leaf, as LA-MCTS runs a local optimiser inside its leaves. ``nearest`` takes the
    leaf's free candidate closest to it (within ``local_radius``); ``mutate`` applies
    ``space.mutate`` until the mutant is new and in the leaf. Otherwise the draw is uniform.

``size_bonus``
    An optional UCB term for the share of free candidates a child holds (off by default: it did not
    help in the ablation).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from lanas.errors import require_choice, require_float, require_int
from lanas.searchers.lanas import LaNAS, fit_linear
from lanas.spaces.base import SearchSpace

TRANSFORMS = ("none", "rank", "zscore")
LOCAL_MOVES = ("nearest", "mutate")
SPLITS = ("regression", "classifier")


class LaNASPlus(LaNAS):
    """LaNAS with transformed rewards and in-region mutations; see the module docstring."""

    name = "lanas_plus"

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        tree_height: int = 4,
        Cp: float = 0.1,
        init_samples: int = 10,
        refit_every: int = 20,
        regressor: str = "linear",
        ridge_alpha: float = 1e-3,
        route_samples: str = "reward",
        leaf_fallback: str = "first_nonempty",
        reward_transform: str = "rank",
        local_prob: float = 0.5,
        local_top: int = 1,
        local_steps: int = 1,
        local_tries: int = 20,
        size_bonus: float = 0.0,
        split: str = "classifier",
        local_move: str = "nearest",
        local_radius: float = 2.0,
    ) -> None:
        super().__init__(space, rng, tree_height, Cp, init_samples, refit_every, regressor, ridge_alpha,
                         route_samples, leaf_fallback)
        self.reward_transform = require_choice("searcher.reward_transform", reward_transform, TRANSFORMS)
        self.local_prob = require_float("searcher.local_prob", local_prob, 0.0, 1.0)
        self.local_top = require_int("searcher.local_top", local_top, 1)
        self.local_steps = require_int("searcher.local_steps", local_steps, 1)
        self.local_tries = require_int("searcher.local_tries", local_tries, 1)
        self.size_bonus = require_float("searcher.size_bonus", size_bonus, 0.0)
        self.split = require_choice("searcher.split", split, SPLITS)
        self.local_move = require_choice("searcher.local_move", local_move, LOCAL_MOVES)
        self.local_radius = require_float("searcher.local_radius", local_radius, 0.0)
        self._ref_rewards = np.zeros(0)  # sorted raw rewards the current tree was learned on
        self._ref_mean, self._ref_std = 0.0, 1.0
        self.num_local = 0

    # ------------------------------------------------------------------ reward scale
    def transform(self, rewards: np.ndarray) -> np.ndarray:
        """Rewards on the scale the tree works on, relative to the samples of the last re-fit."""
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.reward_transform == "none":
            return rewards
        if self.reward_transform == "zscore":
            return (rewards - self._ref_mean) / self._ref_std
        ref = self._ref_rewards
        if len(ref) == 0:
            return np.full(len(rewards), 0.5)
        # Mid-rank among the reference samples, the same convention as rankdata(method="average").
        below = np.searchsorted(ref, rewards, side="left")
        upto = np.searchsorted(ref, rewards, side="right")
        return (below + upto) / (2.0 * len(ref))

    def refit(self) -> None:
        raw = np.asarray(self.rewards, dtype=np.float64)
        self._ref_rewards = np.sort(raw)
        self._ref_mean = float(raw.mean())
        self._ref_std = float(raw.std()) or 1.0
        if self.reward_transform == "rank":
            scaled = (rankdata(raw) - 0.5) / len(raw)  # equals transform(raw) without the O(n log n) searches
        else:
            scaled = self.transform(raw)
        if self.split == "classifier":
            self._refit_classifier(scaled)
            return
        # LaNAS.refit learns from self.rewards; hand it the transformed ones and restore the raw list.
        self.rewards = scaled.tolist()
        try:
            super().refit()
        finally:
            self.rewards = raw.tolist()

    def _refit_classifier(self, y: np.ndarray) -> None:
        """LaNAS's tree, but each node's hyperplane separates its good samples from its bad ones.

        The labels are the paper's (reward at or above the node's mean); a least-squares fit to the
        0/1 labels is the closed-form linear discriminant (Fisher's direction), and the boundary is
        its 0.5 level. Where the regression asks "how good", this asks "which side": the failed
        cells' very low rewards no longer tilt the hyperplane. Statistics are kept as in LaNAS.
        """
        X = self.space.encode(self.archs).astype(np.float64)
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
                continue
            good = y[members] >= y[members].mean()
            w, b = fit_linear(X[members], good.astype(np.float64), alpha)
            self.W[node], self.b[node], self.threshold[node] = w, b, 0.5
            if self.route_samples == "predicted":
                good = X[members] @ w + b >= 0.5
            node_of[members] = np.where(good, 2 * node + 1, 2 * node + 2)
        self.leaf_of = self._route(self.space.features())
        self._index_leaves()
        self._fitted_at = self.num_told
        self.num_refits += 1

    def _backpropagate(self, leaf: int, reward: float) -> None:
        super()._backpropagate(leaf, float(self.transform(np.array([reward]))[0]))

    # ------------------------------------------------------------------ selection
    def select(self) -> list[int]:
        """UCB path as in LaNAS, plus ``size_bonus * sqrt(free share)`` for each child.

        The free share is the fraction of the parent's unevaluated candidates the child holds, so a
        large, rarely visited region keeps a chance proportional to how much of the space it covers.
        """
        if self.size_bonus == 0:
            return super().select()
        free = self._free_per_node()
        node, path = 0, [0]
        while node < self.num_internal:
            kids = np.array([2 * node + 1, 2 * node + 2])
            n_kids = self.n[kids]
            with np.errstate(divide="ignore", invalid="ignore"):
                bonus = 2 * self.Cp * np.sqrt(2 * np.log(max(self.n[node], 1)) / n_kids)
            share = free[kids] / max(free[node], 1)
            ucb = np.where(n_kids == 0, np.inf, self.x_bar[kids] + bonus + self.size_bonus * np.sqrt(share))
            best = np.flatnonzero(ucb == ucb.max())
            node = int(kids[best[self.rng.integers(len(best))] if len(best) > 1 else best[0]])
            path.append(node)
        return path

    def _free_per_node(self) -> np.ndarray:
        """Unevaluated candidates under each node (leaf segments' live counts, summed upwards)."""
        free = np.zeros(self.num_nodes)
        free[self.num_internal:] = self._seg_live
        for node in range(self.num_internal - 1, -1, -1):
            free[node] = free[2 * node + 1] + free[2 * node + 2]
        return free

    # ------------------------------------------------------------------ in-region sampling
    def _sample_from_tree(self) -> tuple[int, int]:
        leaf = self.select()[-1]
        arch = None
        if self.local_prob > 0 and self.rng.random() < self.local_prob:
            arch = self.nearest_in_leaf(leaf) if self.local_move == "nearest" else self.mutate_in_leaf(leaf)
            if arch is not None:
                self.num_local += 1
        if arch is None:
            arch = self._draw_from_leaf(leaf)
        if arch is None:
            arch, leaf = self._fallback()
        return arch, leaf

    def _leaf_top(self, leaf: int) -> np.ndarray:
        """Pool positions of the ``local_top`` best evaluated samples the tree routes to ``leaf``."""
        archs = np.asarray(self.archs, dtype=np.int64)
        inside = np.flatnonzero(self.leaf_of[archs] == leaf)
        rewards = np.asarray(self.rewards)[inside]
        return archs[inside[np.argsort(-rewards, kind="stable")[: self.local_top]]]

    def nearest_in_leaf(self, leaf: int) -> int | None:
        """A free candidate of ``leaf`` closest (L1 on encodings) to one of its best samples, or None.

        Ties are broken at random; candidates farther than ``local_radius`` do not count (2 = one op
        changed in a one-hot encoding, or two bits flipped), so a best sample whose neighbourhood is
        used up hands over to a uniform draw instead of grinding ever farther away. This is a
        mutation that always lands inside the region, for one distance per live candidate of the
        leaf, without the rejection loop of ``mutate`` (slow where most mutants fall outside a
        sparse table such as a NAS-Bench-101 slice).
        """
        top = self._leaf_top(leaf)
        if len(top) == 0:
            return None
        k = leaf - self.num_internal
        start = int(self._seg_start[k])
        members = self._members[start : start + int(self._seg_live[k])]
        members = members[~self._pool.taken[members]]
        if len(members) == 0:
            return None
        features = self.space.features()
        parent = features[int(top[self.rng.integers(len(top))])]
        distance = np.abs(features[members] - parent).sum(axis=1)
        if distance.min() > self.local_radius:
            return None
        closest = np.flatnonzero(distance == distance.min())
        return int(members[closest[self.rng.integers(len(closest))]])

    def mutate_in_leaf(self, leaf: int) -> int | None:
        """A new architecture near the leaf's best samples that the tree routes to ``leaf``, or None.

        ``space.mutate`` of one of the best, up to ``local_tries`` times, until the mutant is new
        and in the leaf.
        """
        top = self._leaf_top(leaf)
        if len(top) == 0:
            return None
        for _ in range(self.local_tries):
            arch = int(top[self.rng.integers(len(top))])
            for _ in range(int(self.rng.integers(1, self.local_steps + 1))):
                arch = int(self.space.mutate(arch, self.rng))
            if not self._pool.taken[arch] and self.leaf_of[arch] == leaf:
                return arch
        return None

    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        if stats:
            stats["local_samples"] = self.num_local
        return stats
