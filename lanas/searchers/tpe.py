"""Optuna's samplers through Optuna's ask/tell interface: TPE (``searcher=tpe``) and GP (``searcher=gp``).

This is what most researchers would run instead of LaNAS (issue 17), so it is a baseline here. The
space's fixed decision sequence (``space.decisions()``; for NAS-Bench-201 the op of edge 1, edge 2,
...) becomes one categorical parameter per decision (``d0``, ``d1``, ...) of an in-memory Optuna
study that maximises the reward. The ``sampler`` knob picks the sampler, seeded from the run's
generator, so the same seed gives the same proposals:

- ``tpe`` (default): :class:`optuna.samplers.TPESampler`, the Tree-structured Parzen Estimator;
- ``gp``: :class:`optuna.samplers.GPSampler`, Gaussian-process Bayesian optimisation (Matern 5/2
  kernel with ARD, a Hamming distance for categorical parameters, log expected improvement
  maximised by a QMC and local search). ``deterministic=true`` passes
  ``deterministic_objective=True`` (the GP's noise is fixed to its minimum): right for rewards that
  are the same every time an architecture is evaluated (NAS-Bench-201 with ``benchmark.reward=mean``),
  wrong for ``benchmark.reward=sampled``; Optuna's default, false, learns the noise. The knobs that
  only TPE has (``n_ei_candidates``, ``multivariate``, ``group``, ``constant_liar``) are refused at
  anything but their defaults with ``sampler=gp``, as ``deterministic=true`` is with ``sampler=tpe``.
  GPSampler fits the GP and optimises the acquisition at every trial after ``n_startup_trials``:
  hundreds of milliseconds per trial on NAS-Bench-201 (docs/baselines.md), so repeats cost time.

The class keeps the name ``TPESearcher``: checkpoints name it.

Repeats. TPE samples with replacement and proposes cells it has already seen. A repeat costs no
sample: the trial is told the reward already on record (a repeat of a cell proposed but not yet told
is told when that reward arrives) and Optuna is asked again, up to ``max_repeats`` times per
proposal; then a uniformly random unevaluated architecture is proposed instead. Both are counted in
``searcher_stats`` (``repeats``, ``fallbacks``). The study therefore holds more trials than the run
has samples; samples stay distinct evaluations, as for every other searcher.

Architectures told without being proposed (e.g. by a caller that evaluates its own) are added to the
study as finished trials. A pickled searcher holds no Optuna object (checkpoints are read through an
allowlist of classes, see ``lanas/checkpoint.py``): only its trials as plain numbers and the
sampler's two numpy random states (TPE's and its random sampler's; GP's and its independent
sampler's), and for GP the kernel parameters of its last fit as floats (GPSampler starts the next
fit from them); unpickling replays the trials into a new study and puts the states and the kernel
parameters back, so a checkpointed run continues exactly (checked by
``tests/test_searcher_contract.py`` and ``tests/test_resume.py``).

Optuna 5's ``TPESampler()`` is multivariate by default; ``searcher=tpe`` sets ``multivariate=false``
(the independent TPE of Bergstra et al. 2011) and ``searcher=tpe_multivariate`` sets
``multivariate=true, group=true``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from lanas.errors import ConfigError, require_bool, require_choice, require_int
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)

SAMPLERS = ("tpe", "gp")
# TPESampler's knobs with this class's defaults: with sampler=gp they mean nothing and must stay at these.
TPE_ONLY = {"n_ei_candidates": 24, "multivariate": False, "group": False, "constant_liar": True}


class TPESearcher(Searcher):
    """Optuna's TPESampler or GPSampler (``sampler``) over the space's decisions; see the module docstring."""

    name = "tpe"

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        n_startup_trials: int = 10,
        n_ei_candidates: int = 24,
        multivariate: bool = False,
        group: bool = False,
        constant_liar: bool = True,
        max_repeats: int = 1000,
        sampler: str = "tpe",
        deterministic: bool = False,
    ) -> None:
        super().__init__(space, rng)
        self.sampler = require_choice("searcher.sampler", sampler, SAMPLERS)
        self.deterministic = require_bool("searcher.deterministic", deterministic)
        self.n_startup_trials = require_int("searcher.n_startup_trials", n_startup_trials, 0)
        self.n_ei_candidates = require_int("searcher.n_ei_candidates", n_ei_candidates, 1)
        self.multivariate = require_bool("searcher.multivariate", multivariate)
        self.group = require_bool("searcher.group", group)
        self.constant_liar = require_bool("searcher.constant_liar", constant_liar)
        self.max_repeats = require_int("searcher.max_repeats", max_repeats, 0)
        if self.sampler == "gp":
            self.name = "gp"  # the preset, for messages
            for key, default in TPE_ONLY.items():
                if getattr(self, key) != default:
                    raise ConfigError(f"searcher.{key}={str(getattr(self, key)).lower()} is a TPE knob; "
                                      f"searcher.sampler=gp takes only its default ({str(default).lower()})")
        else:
            self.name = "tpe_multivariate" if self.multivariate else "tpe"  # the preset, for messages
            if self.deterministic:
                raise ConfigError("searcher.deterministic=true needs searcher.sampler=gp (TPE has no noise model)")
        if self.group and not self.multivariate:
            raise ConfigError("searcher.group=true needs searcher.multivariate=true (Optuna groups only multivariate TPE)")
        choices = space.decisions()
        if not choices:
            raise ConfigError(
                f"searcher={self.name} needs a search space with a fixed decision sequence (decisions()); "
                f"search_space={space.name} has none"
            )
        self.choices = [int(c) for c in choices]
        self._names = [f"d{i}" for i in range(len(self.choices))]
        self._distributions = self._make_distributions()
        self.seed = int(rng.integers(2**31))  # the sampler's seed: the run's seed decides it
        self._study: optuna.Study | None = None  # built on first use
        self._known: dict[Any, float] = {}  # arch key -> reward told
        self._pending: dict[Any, list[int]] = {}  # arch key -> numbers of trials waiting for its reward
        self.repeats = 0  # proposals of Optuna's that were already taken (answered from the record)
        self.fallbacks = 0  # uniform random proposals after max_repeats repeats in a row
        self.infeasible = 0  # proposals of Optuna's outside the constraints (told a reward below every other)

    # ------------------------------------------------------------------ public interface
    # min_budget stays 1: with fewer samples than n_startup_trials TPE (GP) is random search, as in Optuna.

    def ask(self, n: int = 1) -> list[Arch]:
        proposals: list[Arch] = []
        for _ in range(n):
            if self.taken.exhausted:
                break
            arch = self._ask_new()
            if arch is None:
                arch = self.taken.draw(self.rng)
                if arch is None:
                    break
                self.fallbacks += 1
            self.taken.take([arch])
            proposals.append(arch)
        return proposals

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        super().tell(archs, rewards)
        study = self.study
        for arch, reward in zip(archs, rewards):
            key, reward = self._key(arch), float(reward)
            self._known[key] = reward
            numbers = self._pending.pop(key, None)
            if numbers:
                for number in numbers:
                    study.tell(number, reward)
            else:  # told without being proposed: the study learns it all the same
                row = self.space.to_decisions([arch])[0]
                study.add_trial(optuna.trial.create_trial(
                    params={name: int(c) for name, c in zip(self._names, row)},
                    distributions=self._distributions, value=reward))

    def stats(self) -> dict[str, Any]:
        return {"trials": len(self.study.get_trials(deepcopy=False)) if self._study is not None else 0,
                "repeats": self.repeats, "fallbacks": self.fallbacks, "infeasible": self.infeasible}

    # ------------------------------------------------------------------ Optuna
    def _make_distributions(self) -> dict[str, CategoricalDistribution]:
        return {name: CategoricalDistribution(list(range(c))) for name, c in zip(self._names, self.choices)}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        study = state.pop("_study")
        del state["_distributions"]
        if study is not None:
            state["_trials"] = [
                (t.state.name, [int(t.params[name]) for name in self._names] if t.params else None, t.value)
                for t in study.get_trials(deepcopy=False)
            ]
            sampler = study.sampler
            state["_rng_states"] = (sampler._rng.rng, self._random_sampler(sampler)._rng.rng)  # numpy RandomStates
            if self.sampler == "gp":
                # GPSampler starts each fit from the kernel parameters of the last one: floats, no tensors.
                cache = sampler._gprs_cache_list
                state["_gp_kernels"] = None if cache is None else [
                    ([float(x) for x in gpr.inverse_squared_lengthscales.detach().cpu().numpy()],
                     float(gpr.kernel_scale), float(gpr.noise_var)) for gpr in cache]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        trials, rng_states = state.pop("_trials", None), state.pop("_rng_states", None)
        kernels = state.pop("_gp_kernels", None)
        self.__dict__.update(state)
        self.__dict__.setdefault("infeasible", 0)  # checkpoints from before constraints existed
        self.__dict__.setdefault("sampler", "tpe")  # checkpoints from before sampler=gp existed
        self.__dict__.setdefault("deterministic", False)
        self._distributions = self._make_distributions()
        self._study = None
        if trials is None:
            return
        study = self.study
        for state_name, params, value in trials:  # in order: trial numbers come back as they were
            study.add_trial(optuna.trial.create_trial(
                params=dict(zip(self._names, params)) if params is not None else None,
                distributions=self._distributions if params is not None else None,
                state=TrialState[state_name], value=value))
        study.sampler._rng._rng, self._random_sampler(study.sampler)._rng._rng = rng_states
        if kernels is not None:
            study.sampler._gprs_cache_list = [_gp_regressor(*kernel) for kernel in kernels]

    @staticmethod
    def _random_sampler(sampler: optuna.samplers.BaseSampler) -> optuna.samplers.RandomSampler:
        """The RandomSampler inside ``sampler`` (TPE's startup and fallback one, GP's independent one)."""
        if isinstance(sampler, optuna.samplers.GPSampler):
            return sampler._independent_sampler
        return sampler._random_sampler

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            with warnings.catch_warnings():
                # group=True and deterministic_objective=True are experimental arguments of Optuna's; the
                # presets choose them knowingly.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                if self.sampler == "gp":
                    # Decisions with a single choice are left out of the GP and drawn by its independent
                    # (random) sampler; that is not worth a warning per trial.
                    sampler = optuna.samplers.GPSampler(
                        seed=self.seed, n_startup_trials=self.n_startup_trials,
                        deterministic_objective=self.deterministic, warn_independent_sampling=False)
                else:
                    sampler = optuna.samplers.TPESampler(
                        n_startup_trials=self.n_startup_trials, n_ei_candidates=self.n_ei_candidates,
                        multivariate=self.multivariate, group=self.group, constant_liar=self.constant_liar,
                        seed=self.seed)
            self._study = optuna.create_study(direction="maximize", sampler=sampler)
        return self._study

    def _ask_new(self) -> Arch | None:
        """Ask Optuna until it proposes an architecture not taken yet (None after max_repeats repeats)."""
        study = self.study
        for _ in range(self.max_repeats + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                trial = study.ask(self._distributions)
            row = np.array([[trial.params[name] for name in self._names]], dtype=np.int64)
            arch = self.space.from_decisions(row)[0]
            if arch is None:  # outside the run's constraints (lanas.spaces.constrained): ranked below all told
                self.infeasible += 1
                study.tell(trial, min(self._known.values(), default=0.0) - 1.0)
                continue
            key = self._key(arch)
            if arch not in self.taken:
                self._pending[key] = [trial.number]
                return arch
            self.repeats += 1
            if key in self._known:
                study.tell(trial, self._known[key])
            elif key in self._pending:
                self._pending[key].append(trial.number)  # told when that architecture's reward is
            else:  # taken without a reward or a pending trial (not reachable through ask/tell)
                study.tell(trial, state=TrialState.FAIL)
        return None

    def _key(self, arch: Arch) -> Any:
        return int(arch) if isinstance(self.space, FiniteSearchSpace) else self.space.arch_id(arch)


def _gp_regressor(inverse_squared_lengthscales: list[float], kernel_scale: float, noise_var: float) -> Any:
    """A GPSampler kernel cache entry from pickled floats (GPSampler reads only these three parameters)."""
    import torch
    from optuna._gp.gp import GPRegressor

    dim = len(inverse_squared_lengthscales)
    return GPRegressor(
        is_categorical=torch.zeros(dim, dtype=torch.bool), X_train=torch.zeros((0, dim), dtype=torch.float64),
        y_train=torch.zeros(0, dtype=torch.float64),
        inverse_squared_lengthscales=torch.tensor(inverse_squared_lengthscales, dtype=torch.float64),
        kernel_scale=torch.tensor(kernel_scale, dtype=torch.float64),
        noise_var=torch.tensor(noise_var, dtype=torch.float64))
