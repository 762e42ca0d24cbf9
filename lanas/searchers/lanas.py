"""LaNAS: Monte Carlo tree search over a learned partition of the search space.

Wang, Xie, Li, Fonseca, Tian, "Sample-Efficient Neural Architecture Search by Learning Actions for
Monte Carlo Tree Search" (arXiv 1906.06832), and the authors' reference code (LaMCTS/LaNAS).

``LaNAS`` = a :class:`~lanas.searchers.tree.PartitionTree` (the learned partition, its statistics
and UCB) + a proposal strategy from :mod:`lanas.searchers.proposals` (how a point is drawn inside
the selected region) + a reward scale. The first ``init_samples`` samples are uniform; then the tree
is re-learned from all samples every ``refit_every`` samples. Each new sample walks from the root
to a leaf by UCB (``x_bar + 2 * Cp * sqrt(2 * ln(n_parent) / n)``, unvisited children first, ties
at random), is drawn inside that leaf's region, and its reward is back-propagated along the path.

``searcher=lanas`` is the paper: regression split, raw rewards, uniform in-leaf draws.
``searcher=lanas_plus`` and ``searcher=lanas_plus_v1`` (its form before issue 18) are presets of this
class (``conf/searcher/lanas_plus*.yaml``; evidence in ``experiments/lanas_plus_ablation.md``):

``reward_transform``
    The tree learns from transformed rewards. ``rank`` maps each reward to its mid-rank among the
    samples of the last refit, scaled to [0, 1]: outliers (cells that fail to train) stop dominating
    the fit, and ``Cp`` means the same whatever the reward's scale; ``zscore`` standardises;
    ``none`` keeps raw rewards.
``split``
    ``regression`` (LaNAS) or ``classifier`` (good/bad labels): see :mod:`lanas.searchers.tree`.
``local_prob`` / ``local_move`` / ``local_top`` / ``local_radius`` / ``local_steps`` / ``local_tries``
    the share of samples that are local moves from the leaf's best samples, kept inside the leaf
    (:class:`~lanas.searchers.proposals.LocalMoves`).
``size_bonus``
    an optional UCB term ``size_bonus * sqrt(share of the parent's free candidates)`` (off by default).
``encoding``
    ``space``: the tree and the model use the search space's encoding. ``evidence`` (``lanas_plus``): at
    each refit, the encoding among those the space offers (:meth:`SearchSpace.alternative_encodings`;
    HPO grids: ordinal or one-hot values) under which the leaf model's log marginal likelihood of the
    samples is largest; the tree and the model use it until the next refit. On FCNet parkinsons the
    one-hot values win after 50-90 samples and the runs that never found the optimum disappear; on the
    smooth tables the ordinal encoding keeps winning (experiments/lanas_plus_ablation.md, round 11).
``leaf_model`` / ``model_*``
    ``quadratic``: inside the chosen leaf, the free candidate that a Thompson draw of a Bayesian
    quadratic model scores best (:class:`~lanas.searchers.surrogate.ModelMoves`); the local moves and
    the uniform draw remain its fallbacks. ``none`` (LaNAS, lanas_plus_v1): no model.
    :meth:`warm_start` (the top-level ``warm_start`` key: earlier runs over the same space) centres that
    model's prior on its fit to their samples.

Several workers (``workers > 1``): every architecture proposed and not yet told is *pending*. It
is never proposed again (:attr:`Searcher.taken`), and it counts as a visit of each node on its path
with a pessimistic value: the virtual loss of parallel MCTS (:class:`~lanas.searchers.tree.PartitionTree`).
Successive proposals made while others are in flight then spread over regions instead of piling
into the leaf UCB liked last. ``virtual_loss`` is that value as a quantile of the (transformed)
rewards so far: 0 is the worst reward (the classic, most pessimistic choice); the default 0.75 is
milder, chosen on these measurements with
``perf/parallel_speed.py``-style runs (lanas_plus, NAS-Bench-201 CIFAR-10, 10 seeds, samples to the
optimum with 4/16/64 workers): worst 107/198/442, median 117/137/343, 0.75 107/134/326, no virtual
loss 100/124/344 (docs/parallel.md): the worst reward spreads proposals into poor regions. A refit re-routes
the pending proposals through the new tree. Nothing is pending in a sequential search, so its
proposals are exactly those without this rule. (The reference code's distributed server dropped its
tree selection and drew from the first non-empty leaf instead; this keeps the selection.)

Spaces that cannot be enumerated (e.g. ``nasnet``, about 1.35e20 cells) use ``candidate_batch``,
``max_tries``, ``proposal``, ``mutation_seeds`` and ``mutation_tries``
(:class:`~lanas.searchers.proposals.RegionProposal`); ``stats()`` reports the acceptance rate there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from lanas.errors import ConfigError, require_bool, require_choice, require_float, require_int
from lanas.searchers.base import Searcher, one_blas_thread
from lanas.searchers.proposals import (FALLBACKS, LOCAL_MOVES, REGION_PROPOSALS, LocalMoves, PoolProposal,
                                       RegionProposal)
from lanas.searchers.surrogate import LEVEL_MODES, ModelMoves
from lanas.searchers.tree import MAX_CP, ROUTINGS, SPLITS, PartitionTree, fit_linear
from lanas.spaces.base import Arch, SearchSpace

__all__ = ["LaNAS", "fit_linear", "REGRESSORS", "ROUTINGS", "FALLBACKS", "TRANSFORMS"]

REGRESSORS = ("linear", "ridge")
TRANSFORMS = ("none", "rank", "zscore")
LEAF_MODELS = ("none", "quadratic")
ENCODING_CHOICES = ("space", "evidence")


class RewardScale:
    """The scale the tree learns on, relative to the samples of the last refit."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reference = np.zeros(0)  # sorted raw rewards of the last refit
        self.mean, self.std = 0.0, 1.0

    def fit(self, raw: np.ndarray) -> np.ndarray:
        """Remember ``raw`` as the reference and return it transformed."""
        self.reference = np.sort(raw)
        self.mean = float(raw.mean())
        self.std = float(raw.std()) or 1.0
        if self.kind == "rank":
            return (rankdata(raw) - 0.5) / len(raw)  # equals self(raw) without the O(n log n) searches
        return self(raw)

    def __call__(self, rewards: np.ndarray) -> np.ndarray:
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.kind == "none":
            return rewards
        if self.kind == "zscore":
            return (rewards - self.mean) / self.std
        if len(self.reference) == 0:
            return np.full(len(rewards), 0.5)
        # Mid-rank among the reference samples, the convention of rankdata(method="average").
        below = np.searchsorted(self.reference, rewards, side="left")
        upto = np.searchsorted(self.reference, rewards, side="right")
        return (below + upto) / (2.0 * len(self.reference))


class LaNAS(Searcher):
    """LaNAS (and, through its preset, lanas_plus) on any search space; see the module docstring."""

    name = "lanas"
    model: ModelMoves | None = None  # the leaf model (also what searchers pickled before it existed resolve to)
    encoding_choice = "space"  # likewise for the encoding knobs: searchers pickled before them used the space's own
    encoding_in_use: str | None = None  # an alternative encoding's name; None: the space's own
    num_alternative_refits = 0

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
        split: str = "regression",
        reward_transform: str = "none",
        leaf_fallback: str = "first_nonempty",
        local_prob: float = 0.0,
        local_move: str = "nearest",
        local_top: int = 1,
        local_radius: float = 2.0,
        local_steps: int = 1,
        local_tries: int = 20,
        size_bonus: float = 0.0,
        leaf_model: str = "none",
        model_prior_main: float = 1.0,
        model_prior_pair: float = 30.0,
        model_noise: float = 0.3,
        model_temperature: float = 0.5,
        model_prob: float = 1.0,
        model_outside_weight: float = 1.0,
        model_near_prob: float = 0.0,
        model_near_top: int = 3,
        model_evidence: bool = False,
        model_stall: float = 0.0,
        model_levels: str = "none",
        model_prior_levels: float = 30.0,
        model_source_weight: str | float = "evidence",
        model_op_counts: bool | str = False,
        encoding: str = "space",
        virtual_loss: float = 0.75,
        candidate_batch: int = 1000,
        max_tries: int = 20,
        proposal: str = "rejection+mutation",
        mutation_seeds: int = 8,
        mutation_tries: int = 50,
    ) -> None:
        super().__init__(space, rng)
        self.Cp = require_float("searcher.Cp", Cp, 0.0, MAX_CP)
        self.init_samples = require_int("searcher.init_samples", init_samples, 1)
        self.refit_every = require_int("searcher.refit_every", refit_every, 1)
        alpha = require_float("searcher.ridge_alpha", ridge_alpha, 0.0)
        alpha = alpha if require_choice("searcher.regressor", regressor, REGRESSORS) == "ridge" else 0.0
        self.tree = PartitionTree(
            height=require_int("searcher.tree_height", tree_height, 1, 16),
            split=require_choice("searcher.split", split, tuple(SPLITS)),
            alpha=alpha,
            route_samples=require_choice("searcher.route_samples", route_samples, ROUTINGS),
        )
        self.scale = RewardScale(require_choice("searcher.reward_transform", reward_transform, TRANSFORMS))
        self.local = LocalMoves(
            prob=require_float("searcher.local_prob", local_prob, 0.0, 1.0),
            move=require_choice("searcher.local_move", local_move, LOCAL_MOVES),
            top=require_int("searcher.local_top", local_top, 1),
            radius=require_float("searcher.local_radius", local_radius, 0.0),
            steps=require_int("searcher.local_steps", local_steps, 1),
            tries=require_int("searcher.local_tries", local_tries, 1),
        )
        self.size_bonus = require_float("searcher.size_bonus", size_bonus, 0.0)
        # Every model knob is checked even without a model: a typo should not wait for leaf_model=quadratic.
        leaf_model = require_choice("searcher.leaf_model", leaf_model, LEAF_MODELS)
        if model_op_counts == "auto":  # lanas_plus: wherever the space declares shared ops
            op_counts = space.op_blocks() is not None
        elif isinstance(model_op_counts, bool) or type(model_op_counts).__name__ == "bool_":
            op_counts = bool(model_op_counts)
        else:
            raise ConfigError(f"searcher.model_op_counts must be auto, true or false, got {model_op_counts!r}")
        model = ModelMoves(
            prior_main=require_float("searcher.model_prior_main", model_prior_main, 1e-9),
            prior_pair=require_float("searcher.model_prior_pair", model_prior_pair, 1e-9),
            noise=require_float("searcher.model_noise", model_noise, 1e-9),
            temperature=require_float("searcher.model_temperature", model_temperature, 0.0),
            prob=require_float("searcher.model_prob", model_prob, 0.0, 1.0),
            outside_weight=require_float("searcher.model_outside_weight", model_outside_weight, 0.0, 1.0),
            near_prob=require_float("searcher.model_near_prob", model_near_prob, 0.0, 1.0),
            near_top=require_int("searcher.model_near_top", model_near_top, 1),
            evidence=require_bool("searcher.model_evidence", model_evidence),
            stall=require_float("searcher.model_stall", model_stall, 0.0),
            levels=require_choice("searcher.model_levels", model_levels, LEVEL_MODES),
            prior_levels=require_float("searcher.model_prior_levels", model_prior_levels, 1e-9),
            source_weight=(model_source_weight if model_source_weight == "evidence" else
                           require_float("searcher.model_source_weight (evidence or a number)", model_source_weight,
                                         0.0, 1.0)),
            op_counts=op_counts,
        )
        if model.op_counts and space.op_blocks() is None:
            raise ConfigError(f"searcher.model_op_counts=true needs a space whose decisions choose from one shared set "
                              f"of ops (nasbench201, nasbench101); search_space={space.name} has none")
        self.model = model if leaf_model == "quadratic" else None
        self.encoding_choice = require_choice("searcher.encoding", encoding, ENCODING_CHOICES)
        if self.encoding_choice == "evidence" and self.model is None:
            raise ConfigError("searcher.encoding=evidence needs searcher.leaf_model=quadratic (the choice is by the "
                              "model's marginal likelihood); set searcher.encoding=space")
        self.virtual_loss = require_float("searcher.virtual_loss", virtual_loss, 0.0, 1.0)
        fallback = require_choice("searcher.leaf_fallback", leaf_fallback, FALLBACKS)
        region = RegionProposal(
            candidate_batch=require_int("searcher.candidate_batch", candidate_batch, 1),
            max_tries=require_int("searcher.max_tries", max_tries, 1),
            proposal=require_choice("searcher.proposal", proposal, REGION_PROPOSALS),
            mutation_seeds=require_int("searcher.mutation_seeds", mutation_seeds, 1),
            mutation_tries=require_int("searcher.mutation_tries", mutation_tries, 1),
        )
        self.proposal = PoolProposal(fallback) if space.is_finite else region
        leaves = len(self.tree.leaves)
        if space.is_finite and leaves > len(space):
            most = max(1, int(np.log2(len(space))) + 1)
            raise ConfigError(
                f"searcher.tree_height={tree_height} gives {leaves:,} leaves for the {len(space):,} architectures of "
                f"search_space={space.name}: at most {most} here (a leaf per architecture or fewer)"
            )
        if self.size_bonus > 0 and not space.is_finite:
            raise ConfigError(
                f"searcher.size_bonus needs a search space that can be enumerated (it weighs regions by their free "
                f"candidates); search_space={space.name} cannot: set searcher.size_bonus=0"
            )
        self._fitted_at = -1  # number of samples the tree was last learned on
        self._leaf_of_arch: dict[Arch, int] = {}  # leaf each pending proposal came from
        self.num_refits = 0

    # ------------------------------------------------------------------ public interface
    def warm_start(self, runs: Sequence[tuple[Sequence[Arch], Sequence[float]]]) -> None:
        """The leaf model centres its prior on its fit to the samples of these earlier runs (the tree learns
        from this run's samples only)."""
        if self.model is None:
            raise ConfigError("warm_start needs searcher.leaf_model=quadratic (it moves the leaf model's prior); "
                              "searcher=lanas_plus has it")
        self.model.warm_start(runs)

    def min_budget(self) -> int:
        return self.init_samples

    @one_blas_thread
    def ask(self, n: int = 1) -> list[Arch]:
        proposals = []
        for _ in range(n):
            if self.taken.exhausted:
                break
            if self.num_told < self.init_samples:
                arch, leaf = self.proposal.draw_uniform(self.space, self.rng, self.taken), -1
            else:
                if self._fitted_at < 0 or self.num_told - self._fitted_at >= self.refit_every:
                    self.refit()
                arch, leaf = self._propose(self.select())
            if self.space.is_finite:
                arch = int(arch)
            self.taken.take([arch])
            self._leaf_of_arch[arch] = leaf
            if leaf >= 0:
                self.tree.add_pending(leaf)  # virtual loss until its reward arrives
            proposals.append(arch)
        return proposals

    @one_blas_thread
    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        archs = [int(a) for a in archs] if self.space.is_finite else list(archs)
        super().tell(archs, rewards)
        for arch, reward in zip(archs, rewards):
            leaf = self._leaf_of_arch.pop(arch, -1)
            if leaf >= 0:
                self.tree.add_pending(leaf, -1)
            if leaf < 0 and self._fitted_at >= 0:
                leaf = self.proposal.leaf(arch, self.tree, self.coded)
            if leaf >= 0:
                self.tree.backpropagate(leaf, float(self.scale(np.array([reward]))[0]))

    # ------------------------------------------------------------------ learning and selection
    def refit(self) -> None:
        """Re-learn the tree from all samples so far (and re-index the pool's free candidates by leaf), under
        the encoding chosen first when ``encoding=evidence``."""
        if self.encoding_choice == "evidence" and self.model is not None:
            alternatives = self.space.alternative_encodings()
            if alternatives:
                names, spaces = [None, *alternatives], [self.space, *alternatives.values()]
                self.encoding_in_use = names[self.model.choose_encoding(spaces, self.rng, self.archs, self.rewards)]
                self.num_alternative_refits += self.encoding_in_use is not None
        coded = self.coded
        X = coded.encode(self.archs).astype(np.float64)
        self.tree.fit(X, self.scale.fit(np.asarray(self.rewards, dtype=np.float64)))
        self.proposal.index(self.tree, coded, self.taken, self.rng)
        self._fitted_at = self.num_told
        self.num_refits += 1
        if self.model is not None:
            self.model.forget_regions(coded, self.rng, self.archs, self.rewards)
        for arch in self._leaf_of_arch:  # proposals in flight: pending in the new tree's regions
            leaf = self.proposal.leaf(arch, self.tree, coded)
            self._leaf_of_arch[arch] = leaf
            if leaf >= 0:
                self.tree.add_pending(leaf)

    def select(self) -> list[int]:
        """Path of node ids from the root to a leaf, by UCB (plus the size term when ``size_bonus > 0``),
        among the regions the proposal can draw from."""
        if self.tree.pending is not None and self.tree.pending.any():
            # Virtual loss: a low quantile of the rewards so far, on the tree's scale (pessimistic).
            quantile = getattr(self, "virtual_loss", 0.75)  # searchers pickled before it existed
            self.tree.virtual_value = float(np.quantile(self.scale(np.asarray(self.rewards)), quantile))
        bonus = None
        if self.size_bonus > 0:
            free = self.tree.subtree_sums(self.proposal.free_per_leaf())
            nodes = np.arange(1, self.tree.num_nodes)
            bonus = np.zeros(self.tree.num_nodes)
            bonus[nodes] = self.size_bonus * np.sqrt(free[nodes] / np.maximum(free[self.tree.parent(nodes)], 1))
        return self.tree.select(self.rng, self.Cp, bonus, allowed=self.proposal.selectable(self.tree))

    def _propose(self, path: list[int]) -> tuple[Arch, int]:
        leaf, coded = path[-1], self.coded
        if self.model is not None:
            arch = self.model.propose(self.tree, leaf, self.proposal, coded, self.rng, self.taken,
                                      self.archs, self.rewards)
            if arch is not None:  # from the leaf, or from the nearest region with candidates when it is used up
                return arch, self.proposal.leaf(arch, self.tree, coded)
        arch = self.local.propose(self.tree, leaf, self.proposal, coded, self.rng, self.taken,
                                  self.archs, self.rewards)
        if arch is not None:
            return arch, leaf
        return self.proposal.propose(self.tree, path, coded, self.rng, self.taken, self.archs, self.rewards)

    @property
    def coded(self) -> SearchSpace:
        """The search space under the encoding the tree and the model use now (its own unless
        ``encoding=evidence`` chose another)."""
        name = self.encoding_in_use
        return self.space if name is None else self.space.alternative_encodings()[name]

    # ------------------------------------------------------------------ introspection
    def move_in_leaf(self, leaf: int) -> Arch | None:
        """A local move inside ``leaf`` as lanas_plus makes it (whatever ``local_prob``), or None."""
        return self.local.move_in_leaf(self.tree, leaf, self.proposal, self.coded, self.rng, self.taken,
                                       self.archs, self.rewards)

    @property
    def leaf_of(self) -> np.ndarray:
        """Leaf of every pool candidate under the current tree (enumerable spaces)."""
        return self.proposal.leaf_of

    def leaf_sizes(self) -> np.ndarray:
        """Unevaluated candidates per leaf (index 0 is the leftmost, best-predicted leaf)."""
        free = ~self.taken.mask.taken
        return np.bincount(self.leaf_of[free], minlength=self.tree.num_nodes)[self.tree.num_internal :]

    def stats(self) -> dict[str, Any]:
        if self._fitted_at < 0:
            return {}
        stats = {"refits": self.num_refits, **self.proposal.stats()}
        if self.local.prob > 0:
            stats.update(self.local.stats())
        if self.model is not None:
            stats.update(self.model.stats())
        if self.encoding_choice == "evidence" and self.space.alternative_encodings():
            stats["alternative_encoding_refits"] = self.num_alternative_refits
        return stats
