"""A model inside the selected region: Bayesian quadratic regression, Thompson sampling (lanas_plus).

The tree says *where* to look; this says *which* free candidate of that region to evaluate next.
:class:`QuadraticModel` is Bayesian linear regression on the encoding, its pairwise products and the
squares of its non-binary columns (on a one-hot NAS-Bench-201 cell: the ops of every two edges
together), fitted to the *normal scores* of the rewards (the Gaussian copula of HEBO: each reward's
mid-rank mapped through the inverse normal CDF, so that cells that fail to train and the reward's
scale change nothing). Every proposal draws one weight vector from the posterior (Thompson sampling,
its spread scaled by ``temperature``) and takes the candidate that draw scores best.

Why this model: fitted to the whole NAS-Bench-201 table, main effects alone rank the CIFAR-10 optimum
41st of 15,625 (R^2 0.68 on normal scores); with the pairwise terms it ranks it 2nd (R^2 0.90), and
18th on ImageNet16-120 (experiments/lanas_plus_ablation.md has these and the variants tried). The
pairwise terms get a tighter prior (``prior_pair``) than the main effects (``prior_main``): with a
few dozen samples the main effects carry the signal, and the interactions take over as data accrue.

A warm start (``warm_start``: earlier runs over the same space, e.g. on another data set) moves the prior's
*mean*: the weights a fit of the same model to those runs' samples finds, so that the run starts from
what they learned and its own samples correct it (the prior's spread is unchanged).

Everything is closed form. The Gram matrix grows by one outer product per told sample, so a
proposal costs one Cholesky factorisation of a p x p matrix (p = 1 + d + pairs: 406 on
NAS-Bench-201, under 700 on NAS-Bench-101), a few triangular solves and the quadratic form
``x.w + x'Wx`` over the candidates, without materialising their pairwise features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.linalg as sla
from scipy.special import ndtri
from scipy.stats import rankdata

from lanas.searchers.proposals import PoolProposal, RegionProposal, as_arch, draw_batch, take_rows
from lanas.searchers.taken import TakenSet
from lanas.searchers.tree import PartitionTree
from lanas.spaces.base import Arch, SearchSpace

# Reference rows used to find the pairwise products that vary (enough to see every pair that occurs).
MAX_REFERENCE_ROWS = 20_000
# Largest model: a proposal factorises a matrix of this side. Encodings with more pairs than fit (NASNet's
# 160 columns give 12,720) keep their main effects only.
MAX_FEATURES = 1024
# ``levels``: a non-binary column with at most this many distinct values is a categorical (a grid's levels).
MAX_LEVELS = 16
LEVEL_MODES = ("none", "replace", "add")
# Weights of a warm start's prior mean that its evidence chooses among at each refit.
SOURCE_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


def normal_scores(rewards: np.ndarray) -> np.ndarray:
    """Mid-ranks mapped through the inverse normal CDF (the Gaussian copula of the rewards)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return ndtri((rankdata(rewards) - 0.5) / len(rewards))


class QuadraticFeatures:
    """``[1, x, x_i * x_j for the pairs that vary]`` of encodings ``x``; squares only of non-binary columns.

    With more than ``max_size`` features in all, the pairs are left out (main effects only).
    ``levels``: what becomes of a non-binary column with at most ``MAX_LEVELS`` values in ``reference``
    (the ordinal levels of an HPO grid). ``none``: it stays one number. ``replace``: one indicator per
    level instead, so the pairs form a full two-way table of level combinations. ``add``: both, the
    smooth quadratic surface of the numbers plus the two-way table of the indicators (pairs of
    indicators of different columns; no numbers times indicators), whose weights get their own prior
    (:attr:`level_terms`). Unless the indicators would push the pairs past ``max_size``. Binary
    encodings (NAS-Bench-201, NAS-Bench-101) have no such column and are unchanged.
    """

    _counts: np.ndarray | None = None  # (dim, options): column -> its option, for the option counts (op_blocks)

    def __init__(self, reference: np.ndarray, max_size: int = MAX_FEATURES, levels: str = "none",
                 op_blocks: np.ndarray | None = None) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        if len(reference) > MAX_REFERENCE_ROWS:  # an evenly spaced subset: deterministic, no generator needed
            reference = reference[np.linspace(0, len(reference) - 1, MAX_REFERENCE_ROWS).astype(np.int64)]
        if levels not in LEVEL_MODES:
            raise ValueError(f"levels={levels!r}; allowed: {', '.join(LEVEL_MODES)}")
        self.mode = levels
        self.levels: dict[int, np.ndarray] = {}
        if levels != "none":
            for column in range(reference.shape[1]):
                values = np.unique(reference[:, column])
                if 2 < len(values) <= MAX_LEVELS:
                    self.levels[column] = values
        self._choose_pairs(reference, max_size)
        if self.levels and self.num_pairs == 0:  # the indicators cost the pairs: keep the columns as they are
            self.levels = {}
            self._choose_pairs(reference, max_size)
        if op_blocks is not None and not self.levels:
            self._add_counts(np.asarray(op_blocks, dtype=np.int64))

    def _add_counts(self, op_blocks: np.ndarray) -> None:
        """One more feature per option: how many of the decisions in ``op_blocks`` (rows: decisions, columns: the
        encoding column of each option) chose it. Linear in the encoding, so with the main effects it is a prior
        under which each option's effect has a part shared by every decision (an op's effect on any edge)."""
        self._counts = np.zeros((self.dim, op_blocks.shape[1]))
        for option in range(op_blocks.shape[1]):
            self._counts[op_blocks[:, option], option] = 1.0
        extra = np.zeros(op_blocks.shape[1], dtype=bool)
        self.level_terms = np.concatenate([self.level_terms, extra])
        self.pair_terms = np.concatenate([self.pair_terms, extra])  # the counts' prior is the main effects'

    def _lay_out(self, width: int) -> None:
        """Where each expanded column comes from: ``_origin`` (the encoding column), ``_kind`` (0 a column kept
        as it is, 1 the number of a column that also has indicators (``add``), 2 a level's indicator) and
        ``_level`` (an indicator's level index, else -1)."""
        origin, kind, level = [], [], []
        for column in range(width):
            values = self.levels.get(column)
            if values is None or self.mode == "add":
                origin.append(column)
                kind.append(0 if values is None else 1)
                level.append(-1)
            if values is not None:
                origin += [column] * len(values)
                kind += [2] * len(values)
                level += range(len(values))
        self._origin, self._kind, self._level = np.array(origin), np.array(kind), np.array(level)

    def expand(self, X: np.ndarray) -> np.ndarray:
        """``X`` with its level indicators (the nearest level's): instead of (``replace``) or after (``add``) the columns."""
        if not self.levels:
            return X
        expanded = X[:, self._origin]
        for column, values in self.levels.items():
            nearest = np.abs(X[:, column : column + 1] - values[None, :].astype(X.dtype)).argmin(axis=1)
            indicators = np.flatnonzero((self._origin == column) & (self._kind == 2))
            expanded[:, indicators] = nearest[:, None] == self._level[indicators][None, :]
        return expanded

    def _choose_pairs(self, reference: np.ndarray, max_size: int) -> None:
        self._lay_out(reference.shape[1])
        origin, kind = self._origin, self._kind
        reference = self.expand(reference)
        self.dim = reference.shape[1]
        binary = np.all((reference == 0) | (reference == 1), axis=0)
        i, j = np.triu_indices(self.dim)
        keep = (i != j) | ~binary[i]  # x_i * x_i = x_i for a binary column
        keep &= (origin[i] != origin[j]) | (kind[i] != 2)  # two levels of one column never meet
        keep &= kind[i] + kind[j] != 3  # a number times an indicator: neither surface nor table
        i, j = i[keep], j[keep]
        if 1 + self.dim + len(i) > 4 * max_size:  # far too many: skip the pass over the reference
            i, j = i[:0], j[:0]
        varies = np.array([np.ptp(reference[:, a] * reference[:, b]) > 0 for a, b in zip(i, j)], dtype=bool)
        i, j = i[varies], j[varies]
        if 1 + self.dim + len(i) > max_size:
            i, j = i[:0], j[:0]
        self.i, self.j = i, j
        # the weights of indicator terms when the numbers stay too (``add``): main effects and pairs
        indicator = kind == 2
        self.level_terms = (np.concatenate([[False], indicator, indicator[i] | indicator[j]]) if self.mode == "add"
                            else np.zeros(1 + self.dim + len(i), dtype=bool))
        # the weights that prior_pair governs: every pair but those of the level terms
        self.pair_terms = (np.arange(1 + self.dim + len(i)) >= 1 + self.dim) & ~self.level_terms

    @property
    def size(self) -> int:
        return 1 + self.dim + len(self.i) + (0 if self._counts is None else self._counts.shape[1])

    @property
    def num_pairs(self) -> int:
        return len(self.i)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = self.expand(np.asarray(X, dtype=np.float64))
        columns = [np.ones((len(X), 1)), X, X[:, self.i] * X[:, self.j]]
        if self._counts is not None:
            columns.append(X @ self._counts)
        return np.hstack(columns)

    def score(self, X: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``self(X) @ w`` as ``w0 + X w_main + rowsum((X W) * X)``: no pairwise matrix for the candidates.

        In the candidates' own precision (a pool's features are single precision: no copy of the pool)."""
        X = np.asarray(X)
        if X.dtype not in (np.float32, np.float64):
            X = X.astype(np.float64)
        X = self.expand(X)
        W = np.zeros((self.dim, self.dim), dtype=X.dtype)
        pairs_end = 1 + self.dim + len(self.i)
        W[self.i, self.j] = w[1 + self.dim : pairs_end]
        main = w[1 : 1 + self.dim]
        if self._counts is not None:  # the counts are linear in X: fold their weights into the main effects
            main = main + self._counts @ w[pairs_end:]
        return w[0] + X @ main.astype(X.dtype) + np.einsum("ij,ij->i", X @ W, X)


class QuadraticModel:
    """Bayesian linear regression on :class:`QuadraticFeatures`; see the module docstring.

    Prior ``w ~ N(0, diag(1 / prior))`` (``prior_main`` on the intercept and main effects,
    ``prior_pair`` on the products), Gaussian noise of variance ``noise`` on the normal scores.
    """

    def __init__(self, features: QuadraticFeatures, prior_main: float = 1.0, prior_pair: float = 30.0,
                 noise: float = 0.3, temperature: float = 0.5, prior_levels: float = 30.0) -> None:
        self.features = features
        self.noise = noise
        self.temperature = temperature
        self.prior = np.full(features.size, prior_main)
        self.prior[features.pair_terms] = prior_pair
        self.prior[features.level_terms] = prior_levels
        self.source_mean = np.zeros(features.size)  # a warm start's fit (set_prior_mean); the prior mean is
        self.source_weight = 1.0  # source_weight * source_mean
        self.gram = np.zeros((features.size, features.size))
        self._rows = np.zeros((64, features.size))  # grown by doubling: adding a sample is O(p^2), not O(n p)
        self.count = 0
        self._local_grams: dict[Any, list] = {}

    def add(self, X: np.ndarray) -> None:
        """Encodings of samples told since the last call, in the order of the searcher's record."""
        rows = self.features(X)
        self.gram += rows.T @ rows
        if self.count + len(rows) > len(self._rows):
            grown = np.zeros((2 * (self.count + len(rows)), self.features.size))
            grown[: self.count] = self._rows[: self.count]
            self._rows = grown
        self._rows[self.count : self.count + len(rows)] = rows
        self.count += len(rows)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "source_mean" not in state:  # pickled before warm starts: a prior centred at zero
            self.source_mean, self.source_weight = np.zeros(self.features.size), 1.0

    @property
    def prior_mean(self) -> np.ndarray:
        return self.source_weight * self.source_mean

    def set_prior_mean(self, X: np.ndarray, scores: np.ndarray, weight: float = 1.0) -> None:
        """Centre the prior on ``weight`` times the posterior mean of this model fitted to other samples
        (encodings ``X`` and the normal scores of their rewards, each run's ranked on its own; a warm start from
        earlier runs): closed form."""
        rows = self.features(X)
        z = np.asarray(scores, dtype=np.float64)
        precision = rows.T @ rows / self.noise
        precision[np.diag_indices_from(precision)] += self.prior
        self.source_mean = sla.solve(precision, rows.T @ z / self.noise, assume_a="pos", check_finite=False)
        self.source_weight = weight

    def weigh_source(self, rewards: Sequence[float], weights: Sequence[float] = SOURCE_WEIGHTS) -> None:
        """Scale the warm start's prior mean by the weight under which this run's own samples are most likely
        (largest evidence; ties to the larger weight): a source that misleads is turned down as soon as the
        samples say so. The weight moves only the posterior mean (linearly), so one factorisation serves all."""
        z = normal_scores(np.asarray(rewards, dtype=np.float64)[: self.count])
        rows = self._rows[: self.count]
        chol, unpulled = self._posterior(self.gram, rows.T @ z, self.noise, self.prior, np.float64)
        pull = sla.cho_solve((chol, True), self.prior * self.source_mean, check_finite=False)  # per unit of weight

        def evidence_terms(weight: float) -> float:  # the terms of evidence() that depend on the weight
            mean = unpulled + weight * pull
            residual, shift = z - rows @ mean, mean - weight * self.source_mean
            return -0.5 * residual @ residual / self.noise - 0.5 * shift @ (self.prior * shift)

        self.source_weight = max(sorted(weights, reverse=True), key=evidence_terms)

    def _moment(self, target: np.ndarray, rows: np.ndarray, noise: float, prior: np.ndarray) -> np.ndarray:
        """``rows' target`` plus the prior mean's pull, so that :meth:`_posterior`'s mean is the posterior mean."""
        return rows.T @ target + noise * prior * self.prior_mean

    def evidence(self, rewards: Sequence[float], noise: float, prior_pair: float) -> float:
        """Log marginal likelihood of the normal scores of every sample added, under these hyperparameters,
        without the constant ``-n/2 log 2 pi``."""
        z = normal_scores(np.asarray(rewards, dtype=np.float64)[: self.count])
        rows = self._rows[: self.count]
        prior = self.prior.copy()
        prior[self.features.pair_terms] = prior_pair
        chol, mean = self._posterior(self.gram, self._moment(z, rows, noise, prior), noise, prior, np.float64)
        residual = z - rows @ mean
        shift = mean - self.prior_mean
        return float(0.5 * np.log(prior).sum() - 0.5 * self.count * np.log(noise) - 0.5 * residual @ residual / noise
                     - 0.5 * shift @ (prior * shift) - np.log(np.diag(chol)).sum())

    def tune(self, rewards: Sequence[float], noises: Sequence[float], pair_priors: Sequence[float]) -> None:
        """Empirical Bayes: the (noise, prior_pair) of the grid with the largest evidence."""
        best = max((self.evidence(rewards, n, p), n, p) for n in noises for p in pair_priors)
        self.noise = best[1]
        self.prior[self.features.pair_terms] = best[2]

    def local_gram(self, local: np.ndarray, key: Any) -> np.ndarray:
        """Gram matrix of the samples ``local`` (increasing indices), grown from the last call with the same
        ``key``: a region's samples between two refits only ever gain new ones."""
        cached = self._local_grams.get(key)
        if cached is None:
            cached = self._local_grams[key] = [np.zeros_like(self.gram), 0]
        new = local[local >= cached[1]]
        if len(new):
            rows = self._rows[new]
            cached[0] += rows.T @ rows
            cached[1] = int(new[-1]) + 1
        return cached[0]

    def forget_local(self) -> None:
        """The regions changed (a refit): drop the cached local Gram matrices."""
        self._local_grams.clear()

    def thompson(self, rewards: Sequence[float], rng: np.random.Generator, local: np.ndarray | None = None,
                 outside_weight: float = 1.0, key: Any = None) -> np.ndarray:
        """One weight vector from the posterior given the samples added (``rewards[:count]`` are theirs).

        ``local`` (indices of samples) with ``outside_weight < 1``: the other samples count for that
        weight only (their noise variance divided by it), so the fit follows the local samples.
        The factorisation runs in single precision: the prior keeps the matrix well conditioned, a
        Thompson draw needs no more, and it halves the cost of a proposal.
        """
        z = normal_scores(np.asarray(rewards, dtype=np.float64)[: self.count])
        rows = self._rows[: self.count]
        if local is None or outside_weight >= 1:
            gram, target = self.gram, z
        else:
            gram = outside_weight * self.gram + (1 - outside_weight) * self.local_gram(local, key)
            weights = np.full(self.count, outside_weight)
            weights[local] = 1.0
            target = weights * z
        chol, mean = self._posterior(gram, self._moment(target, rows, self.noise, self.prior), self.noise,
                                     self.prior, np.float32)
        spread = sla.solve_triangular(chol.T, rng.standard_normal(len(mean)).astype(np.float32), lower=False,
                                      check_finite=False)
        return mean.astype(np.float64) + self.temperature * spread

    @staticmethod
    def _posterior(gram: np.ndarray, moment: np.ndarray, noise: float, prior: np.ndarray,
                   dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """Cholesky factor of the posterior precision ``gram / noise + diag(prior)`` and the posterior mean,
        given ``moment`` = ``rows' @ target`` (plus ``noise * prior * prior_mean``), computed in ``dtype``."""
        precision = (gram / noise).astype(dtype)
        precision[np.diag_indices_from(precision)] += prior.astype(dtype)
        chol = sla.cholesky(precision, lower=True, check_finite=False)
        mean = sla.cho_solve((chol, True), (moment / noise).astype(dtype), check_finite=False)
        return chol, mean

    def score(self, X: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.features.score(X, w)


class ModelMoves:
    """lanas_plus's in-region proposal: the region's free candidate that a Thompson draw scores best.

    Pools (spaces that can be enumerated) score every free candidate of the leaf. Elsewhere the
    candidates are the uniform draws of one batch that land in the leaf (up to ``max_tries``
    batches); with none, the region proposal's own fallbacks apply. The model is built on the first
    proposal, from the pool's encodings (or one batch of uniform draws) and every sample so far.

    ``outside_weight`` < 1 fits the model mostly to the leaf's own samples (those elsewhere count for
    that weight): a global quadratic fit is pulled towards the region where most samples lie, and
    misranks the optimum of another region for a long time (experiments/lanas_plus_ablation.md).
    Tried and off by default, kept for the ablation: ``prob`` < 1 (a share of plain in-leaf draws),
    ``near_prob`` (only neighbours of the best samples), ``evidence`` (noise and pair prior by
    marginal likelihood at each refit) and ``stall`` (a temperature that grows while the best
    reward does not improve).
    """

    def __init__(self, prior_main: float = 1.0, prior_pair: float = 30.0, noise: float = 0.3,
                 temperature: float = 0.5, prob: float = 1.0, outside_weight: float = 1.0,
                 near_prob: float = 0.0, near_top: int = 3, evidence: bool = False,
                 stall: float = 0.0, levels: str = "none", prior_levels: float = 30.0,
                 source_weight: str | float = "evidence", op_counts: bool = False) -> None:
        self.levels, self.prior_levels = levels, prior_levels
        self.op_counts = op_counts
        self.prior_main, self.prior_pair, self.noise, self.temperature = prior_main, prior_pair, noise, temperature
        self.prob, self.outside_weight = prob, outside_weight
        self.near_prob, self.near_top = near_prob, near_top
        self.evidence = evidence
        self.stall = stall
        self.source: tuple[list[Arch], np.ndarray] | None = None  # a warm start's samples and normal scores
        self.source_weight = source_weight  # "evidence" (chosen at each refit) or a fixed weight of their fit
        self.model: QuadraticModel | None = None  # the model of the encoding in use
        self.models: dict[str, QuadraticModel] = {}  # every encoding's, by the space's encoding name
        self.num_model = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("models", {})  # pickled before it existed: its one model is adopted by _sync
        self.__dict__.setdefault("source", None)
        self.__dict__.setdefault("source_weight", "evidence")
        self.__dict__.setdefault("op_counts", False)

    def warm_start(self, runs: Sequence[tuple[Sequence[Arch], Sequence[float]]]) -> None:
        """Samples (architectures, rewards) of earlier runs over the same space: every model (one per encoding)
        centres its prior on its fit to them. Each run's rewards become normal scores on their own (runs on other
        data sets have other scales). Before the first proposal only: the models are built with it."""
        if self.models or self.model is not None:
            raise RuntimeError("warm_start must come before the first proposal")
        archs: list[Arch] = []
        scores: list[np.ndarray] = []
        for run_archs, run_rewards in runs:
            if len(run_archs) != len(run_rewards) or len(run_archs) == 0:
                raise ValueError(f"warm_start needs as many rewards as architectures, at least one per run "
                                 f"(got {len(run_archs)} and {len(run_rewards)})")
            archs.extend(run_archs)
            scores.append(normal_scores(np.asarray(run_rewards, dtype=np.float64)))
        if not archs:
            raise ValueError("warm_start needs at least one earlier run")
        self.source = (archs, np.concatenate(scores))

    def _sync(self, space: SearchSpace, rng: np.random.Generator, archs: Sequence[Arch]) -> QuadraticModel:
        key = getattr(space, "encoding", "")
        if key not in self.models:
            if self.model is not None and not self.models:  # a searcher pickled before models: its space's own
                self.models[key] = self.model
            else:
                reference = space.features() if space.is_finite else draw_batch(space, rng, 4096)[1]
                blocks = space.op_blocks() if self.op_counts else None
                self.models[key] = QuadraticModel(QuadraticFeatures(reference, levels=self.levels, op_blocks=blocks),
                                                  self.prior_main, self.prior_pair, self.noise, self.temperature,
                                                  self.prior_levels)
                if self.source is not None:
                    fixed = 1.0 if self.source_weight == "evidence" else float(self.source_weight)
                    self.models[key].set_prior_mean(space.encode(self.source[0]), self.source[1], fixed)
        self.model = self.models[key]
        if self.model.count < len(archs):
            self.model.add(space.encode(archs[self.model.count :]))
        return self.model

    def choose_encoding(self, spaces: Sequence[SearchSpace], rng: np.random.Generator, archs: Sequence[Arch],
                        rewards: Sequence[float]) -> int:
        """Index of the space (the same pool under different encodings) under which the model explains the
        samples best: the largest log marginal likelihood of their normal scores, ties to the first."""
        evidence = [self._sync(space, rng, archs).evidence(rewards, self.noise, self.prior_pair) for space in spaces]
        return int(np.argmax(evidence))

    def propose(self, tree: PartitionTree, leaf: int, proposal: PoolProposal | RegionProposal, space: SearchSpace,
                rng: np.random.Generator, taken: TakenSet, archs: Sequence[Arch],
                rewards: Sequence[float]) -> Arch | None:
        """With probability ``prob``, the best-scored free candidate of ``leaf`` under one posterior draw;
        None when it is not used or found none."""
        if self.prob < 1 and rng.random() >= self.prob:
            return None
        model = self._sync(space, rng, archs)
        region = [leaf]
        if isinstance(proposal, PoolProposal):
            region, candidates = self._nearest_live_region(tree, leaf, proposal, taken)
            X = space.features()[candidates] if len(candidates) else None
        else:
            candidates, X = self._batch_in_leaf(tree, leaf, proposal, space, rng, taken)
        if X is None:
            return None
        if self.near_prob > 0 and rng.random() < self.near_prob:
            candidates, X = self._near_best(candidates, X, space, archs, rewards)
        local = None
        if self.outside_weight < 1:
            leaves = (proposal.leaf_of[np.asarray(archs, dtype=np.int64)] if isinstance(proposal, PoolProposal)
                      else tree.route(space.encode(archs)))
            local = np.flatnonzero(np.isin(leaves, region))
        if self.stall > 0:  # explore more the longer the best reward has not improved
            since_best = len(rewards) - 1 - int(np.argmax(rewards))
            model.temperature = self.temperature * (1 + since_best / self.stall)
        scores = model.score(X, model.thompson(rewards, rng, local, self.outside_weight, key=tuple(region)))
        self.num_model += 1
        best = int(np.argmax(scores))
        return int(candidates[best]) if isinstance(proposal, PoolProposal) else as_arch(candidates, best)

    @staticmethod
    def _nearest_live_region(tree: PartitionTree, leaf: int, proposal: PoolProposal,
                             taken: TakenSet) -> tuple[list[int], np.ndarray]:
        """``leaf`` and its free candidates, or when it has none left, the leaves of its deepest ancestor that
        has some and their free candidates.

        The tree's statistics can send UCB to a leaf that its samples have used up (small good leaves
        empty first); rather than LaNAS's uniform draw elsewhere, the model then chooses in the nearest
        region that still has candidates (the whole pool at the root)."""
        members = proposal.live_members(leaf, taken)
        if len(members):
            return [leaf], members
        leaves = np.arange(tree.num_internal, tree.num_nodes)
        free = [proposal.live_members(int(k), taken) for k in leaves]
        live = np.array([len(m) > 0 for m in free])
        if not live.any():
            return [], members
        depth = tree.shared_depth(leaves, tree.path_to(leaf))
        chosen = np.flatnonzero(live & (depth == depth[live].max()))
        return [int(leaves[k]) for k in chosen], np.concatenate([free[k] for k in chosen])

    def _near_best(self, candidates: np.ndarray | list[Arch], X: np.ndarray, space: SearchSpace,
                   archs: Sequence[Arch], rewards: Sequence[float]) -> tuple[np.ndarray | list[Arch], np.ndarray]:
        """Only the candidates whose encoding differs in at most 2 columns (one op changed on a one-hot cell, two
        values on a grid) from one of the ``near_top`` best samples, if any."""
        best = np.argsort(-np.asarray(rewards))[: self.near_top]
        parents = space.encode([archs[i] for i in best])
        distance = (np.abs(X[:, None, :] - parents[None, :, :]) > 1e-6).sum(axis=2).min(axis=1)
        near = np.flatnonzero(distance <= 2.0)
        if len(near) == 0:
            return candidates, X
        return take_rows(candidates, near), X[near]

    @staticmethod
    def _batch_in_leaf(tree: PartitionTree, leaf: int, proposal: RegionProposal, space: SearchSpace,
                       rng: np.random.Generator, taken: TakenSet) -> tuple[np.ndarray | list[Arch], np.ndarray | None]:
        for _ in range(proposal.max_tries):
            batch, X = draw_batch(space, rng, proposal.candidate_batch)
            inside = np.flatnonzero(tree.route(X) == leaf)
            proposal.num_drawn += len(X)
            proposal.num_accepted += len(inside)
            new = [int(i) for i in inside if as_arch(batch, int(i)) not in taken]
            if new:
                rows = np.asarray(new)
                return take_rows(batch, rows), X[rows]
        return [], None

    def forget_regions(self, space: SearchSpace, rng: np.random.Generator, archs: Sequence[Arch],
                       rewards: Sequence[float]) -> None:
        """Called after each refit: the leaves' samples are new sets (and, with ``evidence``, the
        hyperparameters are chosen again)."""
        models = list(self.models.values()) or ([self.model] if self.model is not None else [])  # old pickles: one
        for model in models:
            model.forget_local()
        if self.source is not None and self.source_weight == "evidence":
            self._sync(space, rng, archs).weigh_source(rewards)
        if self.evidence:
            self._sync(space, rng, archs).tune(rewards, (0.1, 0.2, 0.3, 0.5, 1.0), (3.0, 10.0, 30.0, 100.0))

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"model_samples": self.num_model}
        if self.source is not None and self.model is not None:
            stats["warm_start_weight"] = self.model.source_weight
        return stats
