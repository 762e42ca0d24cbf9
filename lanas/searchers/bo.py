"""Bayesian optimisation with a Gaussian-process surrogate on the space's encoding.

The surrogate is scikit-learn's ``GaussianProcessRegressor`` with a constant times Matern (or RBF)
kernel plus a white-noise term, on ``space.encode`` rows, targets normalised, kernel
hyper-parameters fitted by maximum marginal likelihood at every refit. The acquisition is expected
improvement over the best reward so far (``acquisition=ei``, default) or the upper confidence bound
``mu + beta * sigma`` (``acquisition=ucb``), maximised over a candidate set:

* enumerable spaces: the unevaluated pool, or a random subset of ``candidates`` of it (0 = all);
* other spaces: ``candidates`` random samples;
* both: plus ``mutation_candidates`` mutations of the best architectures evaluated so far.

Keeping it affordable at thousands of observations: the GP is refitted every ``refit_every``
samples (in between, the next-best candidates of the last ranking are proposed), its
hyper-parameters are re-optimised every ``optimize_every`` samples (in between, the posterior is
updated with the last ones), and it is trained on at most ``max_train`` observations: the best half
of the cap plus the most recent others.
The first ``init_samples`` samples are uniform random.

Several workers (``workers > 1``): architectures proposed and not yet told are *pending*. They are
never proposed again (``taken``), and each refit trains the GP on them too, with the worst reward
so far as their value: the pessimistic constant liar (CL-min, Ginsbourger et al. 2010). The
posterior's variance collapses around the pending points and their lied mean pulls the
acquisition down there, so the next proposals move elsewhere. Nothing is pending at a sequential
search's refits, so its proposals are unchanged.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Kernel, Matern, WhiteKernel

from lanas.errors import require_choice, require_float, require_int
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace

ACQUISITIONS = ("ei", "ucb")
KERNELS = ("matern", "rbf")


def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """E[max(f - best - xi, 0)] for f ~ N(mu, sigma^2); the plain improvement where sigma is 0."""
    mu, sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
    gain = mu - best - xi
    safe = np.where(sigma > 0, sigma, 1.0)
    z = gain / safe
    ei = gain * norm.cdf(z) + sigma * norm.pdf(z)
    return np.where(sigma > 0, ei, np.maximum(gain, 0.0))


def upper_confidence_bound(mu: np.ndarray, sigma: np.ndarray, beta: float = 2.0) -> np.ndarray:
    """``mu + beta * sigma``."""
    return np.asarray(mu, dtype=np.float64) + beta * np.asarray(sigma, dtype=np.float64)


class GPBayesOpt(Searcher):
    """GP-based BO; see the module docstring."""

    name = "bo"

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        acquisition: str = "ei",
        xi: float = 0.0,
        beta: float = 2.0,
        kernel: str = "matern",
        nu: float = 2.5,
        init_samples: int = 10,
        refit_every: int = 10,
        optimize_every: int = 50,
        max_train: int = 500,
        candidates: int = 2000,
        mutation_candidates: int = 100,
    ) -> None:
        super().__init__(space, rng)
        self.acquisition = require_choice("searcher.acquisition", acquisition, ACQUISITIONS)
        self.xi = require_float("searcher.xi", xi, 0.0)
        self.beta = require_float("searcher.beta", beta, 0.0)
        self.kernel = require_choice("searcher.kernel", kernel, KERNELS)
        self.nu = require_choice("searcher.nu", float(nu) if isinstance(nu, (int, float)) else nu, (0.5, 1.5, 2.5))
        self.init_samples = require_int("searcher.init_samples", init_samples, 1)
        self.refit_every = require_int("searcher.refit_every", refit_every, 1)
        self.optimize_every = require_int("searcher.optimize_every", optimize_every, 1)
        self.max_train = require_int("searcher.max_train", max_train, 2)
        self.candidates = require_int("searcher.candidates", candidates, 0)
        self.mutation_candidates = require_int("searcher.mutation_candidates", mutation_candidates, 0)
        self._ranking: list[Arch] = []  # candidates of the last refit, best acquisition first
        self._fitted_at = -1
        self.num_refits = 0
        self._kernel: Kernel | None = None  # last fitted kernel (hyper-parameters)
        self._optimized_at = -1  # number of samples the hyper-parameters were last fitted on
        self._pending: dict[Any, Arch] = {}  # proposed, not yet told (constant liar), by arch id

    # ------------------------------------------------------------------ public interface
    def min_budget(self) -> int:
        return self.init_samples

    def ask(self, n: int = 1) -> list[Arch]:
        proposals = []
        for _ in range(n):
            arch = None
            if self.num_told >= self.init_samples:
                if self._fitted_at < 0 or self.num_told - self._fitted_at >= self.refit_every or not self._ranking:
                    self.refit()
                while self._ranking and arch is None:
                    candidate = self._ranking.pop()
                    arch = None if candidate in self.taken else candidate
            if arch is None:
                arch = self.taken.draw(self.rng)
            if arch is None:
                break
            self.taken.take([arch])
            self._pending_archs()[self._key(arch)] = arch
            proposals.append(arch)
        return proposals

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        super().tell(archs, rewards)
        for arch in archs:
            self._pending_archs().pop(self._key(arch), None)

    def _key(self, arch: Arch) -> Any:
        return int(arch) if isinstance(self.space, FiniteSearchSpace) else self.space.arch_id(arch)

    def _pending_archs(self) -> dict[Any, Arch]:
        if getattr(self, "_pending", None) is None:  # a searcher pickled before pending was tracked
            self._pending = {}
        return self._pending


    # ------------------------------------------------------------------ model
    def make_kernel(self, dim: int) -> Kernel:
        # Isotropic length scale: one hyper-parameter keeps each fit cheap at hundreds of points.
        # Starts at 1 (one-hot rows one change apart are sqrt(2) apart): from a start as long as
        # sqrt(dim) the optimiser ends in a degenerate optimum (length scale at its lower bound,
        # every point independent); the lower bound 0.1 excludes it.
        scale = {"length_scale": 1.0, "length_scale_bounds": (1e-1, 1e2)}
        shape = RBF(**scale) if self.kernel == "rbf" else Matern(**scale, nu=self.nu)
        return ConstantKernel(1.0, (1e-3, 1e3)) * shape + WhiteKernel(1e-2, (1e-6, 1e1))

    def training_set(self) -> np.ndarray:
        """Indices of the observations the GP is trained on: all, or the best and most recent ones."""
        n = self.num_told
        if n <= self.max_train:
            return np.arange(n)
        rewards = np.asarray(self.rewards)
        best = np.argsort(-rewards, kind="stable")[: self.max_train // 2]
        rest = np.setdiff1d(np.arange(n), best)[-(self.max_train - len(best)) :]
        return np.sort(np.concatenate([best, rest]))

    def fit(self) -> GaussianProcessRegressor:
        idx = self.training_set()
        X = self.space.encode([self.archs[i] for i in idx]).astype(np.float64)
        y = np.asarray(self.rewards, dtype=np.float64)[idx]
        pending = list(self._pending_archs().values())
        if pending:  # constant liar: pending points at the worst reward so far
            X = np.vstack([X, self.space.encode(pending).astype(np.float64)])
            y = np.concatenate([y, np.full(len(pending), min(self.rewards))])
        # Hyper-parameters by marginal likelihood every ``optimize_every`` samples, warm-started
        # from the last ones; in between, only the posterior is updated (one Cholesky), because the
        # optimiser's gradient evaluations are most of a fit's cost at hundreds of points.
        optimize = self._kernel is None or self.num_told - self._optimized_at >= self.optimize_every
        kernel = self._kernel if self._kernel is not None else self.make_kernel(X.shape[1])
        gp = GaussianProcessRegressor(kernel=kernel, normalize_y=True, n_restarts_optimizer=0,
                                      optimizer="fmin_l_bfgs_b" if optimize else None,
                                      random_state=int(self.rng.integers(2**31)))
        if optimize:
            self._optimized_at = self.num_told
        with warnings.catch_warnings():
            # Hyper-parameters at a bound are expected (e.g. no observation noise in a table).
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X, y)
        self._kernel = gp.kernel_
        return gp

    def score(self, gp: GaussianProcessRegressor, archs: Sequence[Arch]) -> np.ndarray:
        """Acquisition value of each architecture under ``gp``."""
        mu, sigma = gp.predict(self.space.encode(archs).astype(np.float64), return_std=True)
        if self.acquisition == "ucb":
            return upper_confidence_bound(mu, sigma, self.beta)
        return expected_improvement(mu, sigma, max(self.rewards), self.xi)

    def candidate_set(self) -> list[Arch]:
        """Unevaluated architectures the acquisition is maximised over (distinct)."""
        if isinstance(self.space, FiniteSearchSpace):
            free = np.flatnonzero(~self.taken.mask.taken)
            if self.candidates and len(free) > self.candidates:
                free = self.rng.choice(free, size=self.candidates, replace=False)
            pool = [int(a) for a in free]
        else:
            pool = self.space.sample(self.rng, self.candidates or 1000)
        # Local candidates (where the optimum usually is): about 10 mutations of each of the best
        # mutation_candidates // 10 evaluated architectures.
        best = np.argsort(-np.asarray(self.rewards), kind="stable")[: max(1, self.mutation_candidates // 10)]
        for i in range(self.mutation_candidates):
            pool.append(self.space.mutate(self.archs[int(best[i % len(best)])], self.rng))
        if isinstance(self.space, FiniteSearchSpace):
            pool = np.unique(np.asarray(pool, dtype=np.int64))  # sorted: same seed, same order
            return [int(a) for a in pool[~self.taken.mask.taken[pool]]]
        unique: dict[str, Arch] = {}
        for arch in pool:
            if arch not in self.taken:
                unique.setdefault(self.space.arch_id(arch), arch)
        return list(unique.values())

    def refit(self) -> None:
        """Fit the GP and rank a fresh candidate set by acquisition (best last, for ``pop``)."""
        candidates = self.candidate_set()
        self._fitted_at = self.num_told
        self.num_refits += 1
        if not candidates:
            self._ranking = []
            return
        gp = self.fit()
        scores = self.score(gp, candidates)
        order = np.argsort(scores, kind="stable")  # ascending: the best is popped first
        self._ranking = [candidates[i] for i in order[-self.refit_every :]]

    def stats(self) -> dict[str, Any]:
        return {"refits": self.num_refits, "kernel": str(self._kernel)} if self._kernel is not None else {}
