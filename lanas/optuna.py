"""LaNAS as an Optuna sampler: ``optuna.create_study(sampler=lanas.optuna.LaNASSampler(seed=0))``.

Relative sampling over the study's intersection search space (the parameters every completed trial
has, with one distribution each), on any mix of categorical, integer and float parameters
(``log=True`` and ``step`` included). docs/optuna.md has the user's view; in short, per trial:

1. **Encoding.** Each trial's parameters become one row of numbers in [0, 1]: a float or an integer
   is scaled linearly between its bounds (in log space when ``log=True``); a categorical parameter is
   one-hot (one column per choice). One-hot rather than ordinal because Optuna's categorical choices
   have no order (``["adam", "sgd", "rmsprop"]``): an ordinal code would make a linear split treat
   "sgd" as lying between the other two, and with one-hot a split weighs each choice separately.
2. **The tree.** The rewards (the objective values, negated when the study minimises) are rank-scaled
   to [0, 1] (an Optuna objective has any scale, ``Cp`` should not depend on it) and the same
   :class:`~lanas.searchers.tree.PartitionTree` as ``searcher=lanas`` is learned on the first
   ``n_startup_trials + k * refit_every`` completed trials (by trial number), the later ones are
   back-propagated, exactly as :class:`~lanas.searchers.lanas.LaNAS` does between refits.
3. **A region.** ``n_candidates`` uniform points of the space are routed through the tree; UCB
   selects a path among the leaves they reach (an empty region is never chosen).
4. **A point in it.** With probability ``local_prob`` a local move: Gaussian steps (``local_scale``
   in encoded units; a categorical switches with that probability) around one of the region's
   ``local_top`` best trials, kept only if inside the region (LA-MCTS runs a local optimiser inside
   its leaves); otherwise, or when no step lands inside, one of the uniform points inside the region
   (rejection sampling). Points equal to an evaluated or running trial are avoided when possible.

State. Nothing is kept between trials: the sampler rebuilds the tree from the study's trials at each
trial, and every random draw of trial ``t`` comes from a generator seeded by ``(seed, t)``. So a
SQLite study resumed in a new process continues the search as if never stopped, and several
processes sharing a study (each with its own trial numbers) draw different points with the same seed.

The first ``n_startup_trials`` completed trials, and parameters outside the relative search space
(conditional ones), are drawn by Optuna's :class:`~optuna.samplers.RandomSampler`, seeded by
``(seed, trial number, parameter name)``.

Presets (``preset=``): ``lanas`` is the paper's tree (height 5, regression split, uniform in-region
draws); ``lanas_plus`` (default) is our variant as ``searcher=lanas_plus_v1`` designed it (height 4, classifier
split, half the points local moves; the quadratic leaf model of today's ``searcher=lanas_plus`` is not in the
sampler). Any knob given explicitly overrides the preset's value.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lanas.errors import ConfigError, require_choice, require_float, require_int
from lanas.searchers.lanas import TRANSFORMS, RewardScale
from lanas.searchers.tree import MAX_CP, SPLITS, PartitionTree

__all__ = ["LaNASSampler", "ParamCodec", "PRESETS"]

PRESETS: dict[str, dict[str, Any]] = {
    "lanas": {"tree_height": 5, "Cp": 0.1, "split": "regression", "reward_transform": "rank", "local_prob": 0.0},
    "lanas_plus": {"tree_height": 4, "Cp": 0.1, "split": "classifier", "reward_transform": "rank",
                   "local_prob": 0.5},
}

_logger = optuna.logging.get_logger(__name__)


class ParamCodec:
    """Rows of numbers in [0, 1] for parameter values, and back, vectorised over many rows.

    Values are held as one array per parameter (numbers; for a categorical, the choice's index).
    """

    def __init__(self, space: dict[str, BaseDistribution]) -> None:
        self.space = dict(space)
        self.columns: dict[str, slice] = {}
        start = 0
        for name, dist in self.space.items():
            width = len(dist.choices) if isinstance(dist, CategoricalDistribution) else 1
            self.columns[name] = slice(start, start + width)
            start += width
        self.dim = start

    # ------------------------------------------------------------------ values <-> rows
    def encode(self, values: dict[str, np.ndarray]) -> np.ndarray:
        n = len(next(iter(values.values()))) if values else 0
        X = np.zeros((n, self.dim))
        for name, dist in self.space.items():
            col = self.columns[name]
            v = np.asarray(values[name], dtype=np.float64)
            if isinstance(dist, CategoricalDistribution):
                X[np.arange(n), col.start + v.astype(np.int64)] = 1.0
            elif dist.log:
                X[:, col.start] = (np.log(v) - math.log(dist.low)) / (math.log(dist.high) - math.log(dist.low))
            else:
                X[:, col.start] = (v - dist.low) / (dist.high - dist.low)
        return X

    def decode(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Values of the rows: numbers rounded onto each parameter's grid, the largest one-hot entry."""
        values: dict[str, np.ndarray] = {}
        for name, dist in self.space.items():
            col = self.columns[name]
            if isinstance(dist, CategoricalDistribution):
                values[name] = np.argmax(X[:, col], axis=1)
                continue
            u = np.clip(X[:, col.start], 0.0, 1.0)
            if dist.log:
                v = np.exp(math.log(dist.low) + u * (math.log(dist.high) - math.log(dist.low)))
            else:
                v = dist.low + u * (dist.high - dist.low)
            values[name] = self._round(dist, v)
        return values

    @staticmethod
    def _round(dist: FloatDistribution | IntDistribution, v: np.ndarray) -> np.ndarray:
        step = dist.step if isinstance(dist, FloatDistribution) else (1 if dist.log else dist.step)
        if step is not None:
            v = dist.low + np.round((v - dist.low) / step) * step
        return np.clip(v, dist.low, dist.high)

    def canonical(self, X: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The rows of the values the rows stand for (what a trial with those values would encode to)."""
        values = self.decode(X)
        return self.encode(values), values

    # ------------------------------------------------------------------ trials <-> values
    def from_params(self, params: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        values = {}
        for name, dist in self.space.items():
            if isinstance(dist, CategoricalDistribution):
                values[name] = np.array([dist.to_internal_repr(p[name]) for p in params], dtype=np.int64)
            else:
                values[name] = np.array([p[name] for p in params], dtype=np.float64)
        return values

    def to_params(self, values: dict[str, np.ndarray], i: int) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name, dist in self.space.items():
            v = values[name][i]
            if isinstance(dist, CategoricalDistribution):
                params[name] = dist.choices[int(v)]
            elif isinstance(dist, IntDistribution):
                params[name] = int(round(float(v)))
            else:
                params[name] = float(v)
        return params

    # ------------------------------------------------------------------ drawing
    def uniform(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` values per parameter as Optuna's RandomSampler draws them (grids uniform, log in log space)."""
        values: dict[str, np.ndarray] = {}
        for name, dist in self.space.items():
            if isinstance(dist, CategoricalDistribution):
                values[name] = rng.integers(len(dist.choices), size=n)
                continue
            step = dist.step if isinstance(dist, FloatDistribution) else (None if dist.log else dist.step)
            if step is not None:  # every grid point equally likely
                points = int(round((dist.high - dist.low) / step)) + 1
                values[name] = np.minimum(dist.low + rng.integers(points, size=n) * step, dist.high)
            elif dist.log:
                half = 0.5 if isinstance(dist, IntDistribution) else 0.0  # integers: each value its own cell
                low, high = math.log(dist.low - half), math.log(dist.high + half)
                values[name] = self._round(dist, np.exp(rng.uniform(low, high, size=n)))
            else:
                values[name] = rng.uniform(dist.low, dist.high, size=n)
        return values

    def local(self, rng: np.random.Generator, center: np.ndarray, n: int, scale: float) -> np.ndarray:
        """``n`` rows near ``center``: Gaussian steps of ``scale`` on numbers, a switch with that probability
        on categoricals."""
        X = np.repeat(center[None, :], n, axis=0)
        for name, dist in self.space.items():
            col = self.columns[name]
            if isinstance(dist, CategoricalDistribution):
                switch = rng.random(n) < scale
                X[switch, col] = np.eye(col.stop - col.start)[rng.integers(col.stop - col.start, size=switch.sum())]
            else:
                X[:, col.start] += rng.normal(0.0, scale, size=n)
        return X


def _seed_of(*parts: int | str) -> int:
    """A 32-bit seed from integers and names (a name through CRC-32: stable across processes)."""
    ints = [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    return int(np.random.SeedSequence(ints).generate_state(1)[0])


class LaNASSampler(BaseSampler):
    """LaNAS / lanas_plus as an Optuna sampler; see the module docstring.

    Args:
        seed: seed of every random draw (with the trial number); None draws one.
        preset: ``"lanas_plus"`` (default) or ``"lanas"``: values for the knobs not given.
        n_startup_trials: completed trials drawn by the RandomSampler before the tree is used.
        tree_height, Cp, split, reward_transform, refit_every: as in ``conf/searcher/lanas.yaml``.
        local_prob: share of proposals that are local moves around the region's best trials.
        local_scale: standard deviation of a local step, in encoded units ([0, 1] per parameter).
        local_top: local moves start from one of the region's ``local_top`` best trials.
        n_candidates: uniform points routed per trial (region probe and rejection sampling).
    """

    def __init__(self, seed: int | None = None, *, preset: str = "lanas_plus", n_startup_trials: int = 10,
                 tree_height: int | None = None, Cp: float | None = None, split: str | None = None,
                 reward_transform: str | None = None, refit_every: int = 1, local_prob: float | None = None,
                 local_scale: float = 0.1, local_top: int = 3, n_candidates: int = 4096) -> None:
        knobs = PRESETS[require_choice("LaNASSampler.preset", preset, tuple(PRESETS))]
        pick = lambda value, key: knobs[key] if value is None else value  # noqa: E731
        self.preset = preset
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed is None else require_int(
            "LaNASSampler.seed", seed, 0)
        self.n_startup_trials = require_int("LaNASSampler.n_startup_trials", n_startup_trials, 1)
        self.tree_height = require_int("LaNASSampler.tree_height", pick(tree_height, "tree_height"), 1, 12)
        self.Cp = require_float("LaNASSampler.Cp", pick(Cp, "Cp"), 0.0, MAX_CP)
        self.split = require_choice("LaNASSampler.split", pick(split, "split"), tuple(SPLITS))
        self.reward_transform = require_choice("LaNASSampler.reward_transform",
                                               pick(reward_transform, "reward_transform"), TRANSFORMS)
        self.refit_every = require_int("LaNASSampler.refit_every", refit_every, 1)
        self.local_prob = require_float("LaNASSampler.local_prob", pick(local_prob, "local_prob"), 0.0, 1.0)
        self.local_scale = require_float("LaNASSampler.local_scale", local_scale, 0.0, 1.0)
        self.local_top = require_int("LaNASSampler.local_top", local_top, 1)
        self.n_candidates = require_int("LaNASSampler.n_candidates", n_candidates, 1)
        self.stats = {"tree": 0, "local": 0, "region": 0, "nearest_region": 0}  # this process's proposals

    # ------------------------------------------------------------------ Optuna's interface
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if len(study.directions) > 1:
            raise ConfigError(f"LaNASSampler optimises one objective; study {study.study_name!r} has "
                              f"{len(study.directions)} (use a multi-objective sampler such as NSGAIISampler)")
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        _check_static(complete)
        space = intersection_search_space(complete)
        return {name: dist for name, dist in space.items() if not dist.single()}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        trials = [t for t in trials if t.value is not None and math.isfinite(t.value)
                  and all(name in t.params for name in search_space)]
        if len(trials) < self.n_startup_trials:
            return {}
        running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.number != trial.number and all(name in t.params for name in search_space)]
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        rng = np.random.default_rng(_seed_of(self.seed, trial.number, "relative"))
        return self._propose(ParamCodec(search_space), trials, running, sign, rng)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        # A sampler per draw: no hidden state, so a resumed or shared study draws what it would have.
        sampler = RandomSampler(seed=_seed_of(self.seed, trial.number, param_name))
        return sampler.sample_independent(study, trial, param_name, param_distribution)

    # ------------------------------------------------------------------ LaNAS
    def _propose(self, codec: ParamCodec, trials: list[FrozenTrial], running: list[FrozenTrial], sign: float,
                 rng: np.random.Generator) -> dict[str, Any]:
        X = codec.encode(codec.from_params([t.params for t in trials]))
        raw = sign * np.array([t.value for t in trials], dtype=np.float64)
        tree = PartitionTree(height=self.tree_height, split=self.split)
        scale = RewardScale(self.reward_transform)
        # Learned on the trials of the last refit (by number, as LaNAS refits every refit_every samples) ...
        fitted = self.n_startup_trials + (len(trials) - self.n_startup_trials) // self.refit_every * self.refit_every
        tree.fit(X[:fitted], scale.fit(raw[:fitted]))
        # ... and the later ones back-propagated along the leaf they fall in.
        if fitted < len(trials):
            for leaf, reward in zip(tree.route(X[fitted:]), scale(raw[fitted:])):
                tree.backpropagate(int(leaf), float(reward))
        seen = {row.tobytes() for row in X}
        if running:
            seen |= {row.tobytes() for row in codec.encode(codec.from_params([t.params for t in running]))}

        probe, probe_values = codec.canonical(codec.encode(codec.uniform(rng, self.n_candidates)))
        probe_leaf = tree.route(probe)
        hits = np.bincount(probe_leaf - tree.num_internal, minlength=len(tree.leaves))
        path = tree.select(rng, self.Cp, allowed=tree.subtree_sums(hits) > 0)
        leaf = path[-1]
        self.stats["tree"] += 1

        if self.local_prob > 0 and rng.random() < self.local_prob:
            params = self._local_move(codec, tree, leaf, X, raw, seen, rng)
            if params is not None:
                self.stats["local"] += 1
                return params
        inside = np.flatnonzero(probe_leaf == leaf)
        if len(inside) == 0:  # only when UCB had no choice: the deepest region on the path a probe reaches
            self.stats["nearest_region"] += 1
            depth = tree.shared_depth(probe_leaf, path)
            inside = np.flatnonzero(depth == depth.max())
        self.stats["region"] += 1
        order = rng.permutation(inside)
        fresh = [i for i in order if probe[i].tobytes() not in seen]
        return codec.to_params(probe_values, int(fresh[0] if fresh else order[0]))

    def _local_move(self, codec: ParamCodec, tree: PartitionTree, leaf: int, X: np.ndarray, raw: np.ndarray,
                    seen: set[bytes], rng: np.random.Generator) -> dict[str, Any] | None:
        members = np.flatnonzero(tree.route(X) == leaf)
        if len(members) == 0:
            return None
        best = members[np.argsort(-raw[members], kind="stable")[: self.local_top]]
        center = X[best[rng.integers(len(best))]]
        rows, values = codec.canonical(codec.local(rng, center, self.n_candidates, self.local_scale))
        for i in np.flatnonzero(tree.route(rows) == leaf):
            if rows[i].tobytes() not in seen:
                return codec.to_params(values, int(i))
        return None


def _check_static(trials: list[FrozenTrial]) -> None:
    """Refuse a parameter whose distribution changed between trials: one encoding cannot hold both."""
    first: dict[str, tuple[int, BaseDistribution]] = {}
    for trial in trials:
        for name, dist in trial.distributions.items():
            if name not in first:
                first[name] = (trial.number, dist)
            elif first[name][1] != dist:
                number, before = first[name]
                raise ConfigError(
                    f"LaNASSampler cannot encode parameter {name!r}: its distribution changed between trials "
                    f"({before} in trial {number}, {dist} in trial {trial.number}); keep one range per parameter "
                    "(a new name for a new range)"
                )
