"""A Hydra sweeper that runs an Optuna study with :class:`lanas.optuna.LaNASSampler` (docs/optuna.md).

``python my_app.py -m hydra/sweeper=lanas 'x=interval(-5,5)' 'lr=tag(log,interval(1e-5,1e-1))'
'layers=range(1,5)' 'opt=choice(adam,sgd)' hydra.sweeper.n_trials=30``

Why not ``hydra-optuna-sweeper``: its latest release (1.3.0) requires ``optuna<3.0.0``, which cannot be
installed beside this project's ``optuna==5.0.0`` (``pip install --dry-run hydra-optuna-sweeper==1.3.0
optuna==5.0.0``: ResolutionImpossible). This plugin reads the same sweep syntax:

- ``choice(a,b,c)`` or ``a,b,c``: a categorical parameter;
- ``range(start,stop[,step])``: integers ``start, start+step, ...`` below ``stop`` (Python's range);
- ``interval(low,high)``: a float in [low, high]; an integer when both bounds are written as integers
  or tagged ``int``; ``tag(log, ...)`` samples it on a log scale (both bounds must be positive);
- any other override is passed unchanged to every job.

Each job's return value is the objective (``direction``: minimize or maximize). A job that fails is
told to the study as failed. The study lives in ``storage`` (e.g. ``sqlite:///study.db``) when set,
so that an interrupted sweep started again with the same ``study_name`` continues it.
Module-level imports are Hydra's only: Hydra imports every plugin at each start of every app.
"""

import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class LaNASSweeperConf:
    _target_: str = "hydra_plugins.lanas_sweeper.lanas_sweeper.LaNASSweeper"
    direction: str = "minimize"  # minimize | maximize the jobs' return value
    n_trials: int = 20  # jobs in all (a resumed study counts its finished trials)
    n_jobs: int = 1  # jobs launched per batch (a parallel launcher runs them at once)
    study_name: Optional[str] = None
    storage: Optional[str] = None  # e.g. sqlite:///lanas_sweep.db; null = in memory
    # Keyword arguments of lanas.optuna.LaNASSampler (seed, preset, n_startup_trials, tree_height, ...).
    # Other keys with a leading '+': +hydra.sweeper.sampler.tree_height=3.
    sampler: Dict[str, Any] = field(default_factory=lambda: {"seed": 0, "preset": "lanas_plus", "n_startup_trials": 10})
    # Search space in the sweep syntax, e.g. {x: "interval(-5, 5)"}; command-line sweeps are added.
    params: Optional[Dict[str, str]] = None


# No `from __future__ import annotations` here: Hydra loads plugins outside sys.modules, where a
# dataclass cannot resolve string annotations; OmegaConf needs the typing forms above.
ConfigStore.instance().store(group="hydra/sweeper", name="lanas", node=LaNASSweeperConf, provider="lanas")


class SweepError(ValueError):
    """A sweep parameter that cannot become an Optuna distribution."""


def distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override (see the module docstring)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    value = override.value()
    if isinstance(value, ChoiceSweep):
        return CategoricalDistribution([v for v in override.sweep_iterator(transformer=lambda x: x)])
    if isinstance(value, RangeSweep):
        start, stop, step = value.start, value.stop, value.step
        if not all(isinstance(v, int) for v in (start, stop, step)) or step <= 0 or stop <= start:
            raise SweepError(f"{key}=range({start},{stop},{step}): needs integers with start < stop and step > 0")
        return IntDistribution(start, start + (stop - 1 - start) // step * step, step=step)
    if isinstance(value, IntervalSweep):
        low, high, tags = value.start, value.end, value.tags or set()
        log_scale = "log" in tags
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise SweepError(f"{key}=interval({low},{high}): needs finite bounds with low < high")
        if log_scale and low <= 0:
            raise SweepError(f"{key}: log=True needs a positive lower bound, got interval({low},{high})")
        if "int" in tags or (isinstance(low, int) and isinstance(high, int)):
            return IntDistribution(int(low), int(high), log=log_scale)
        return FloatDistribution(float(low), float(high), log=log_scale)
    raise SweepError(f"{key}={override.input_line}: glob sweeps are not supported; use choice, range or interval")


class LaNASSweeper(Sweeper):
    """Hydra sweeper: an Optuna ask/tell loop with LaNASSampler; see the module docstring."""

    def __init__(self, direction: str, n_trials: int, n_jobs: int, study_name: Optional[str],
                 storage: Optional[str], sampler: Dict[str, Any], params: Optional[Dict[str, str]]) -> None:
        self.direction = direction
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.study_name = study_name
        self.storage = storage
        self.sampler_kwargs = dict(sampler or {})
        self.params = dict(params or {})

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        try:
            return self._sweep(arguments)
        except (SweepError, ValueError) as err:
            from lanas.errors import LanasError

            if not isinstance(err, (SweepError, LanasError)):
                raise
            # One line and exit 2, as lanas's own entry points (docs/errors.md); SystemExit passes Hydra by.
            print(f"error: hydra.sweeper: {err}", file=sys.stderr)
            raise SystemExit(2) from None

    def _sweep(self, arguments: List[str]) -> Any:
        import optuna

        from lanas.errors import ConfigError, require_choice, require_int
        from lanas.optuna import LaNASSampler

        direction = require_choice("hydra.sweeper.direction", self.direction, ("minimize", "maximize"))
        n_trials = require_int("hydra.sweeper.n_trials", self.n_trials, 1)
        n_jobs = require_int("hydra.sweeper.n_jobs", self.n_jobs, 1)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        space, fixed = {}, []
        for override in parser.parse_overrides(lines):
            if override.is_sweep_override():
                space[override.get_key_element()] = distribution(override)
            else:
                fixed.append(override.input_line)
        if not space:
            raise ConfigError("hydra.sweeper=lanas needs at least one sweep parameter, e.g. 'x=interval(-5,5)'")
        try:
            sampler = LaNASSampler(**self.sampler_kwargs)
        except TypeError as err:  # an unknown keyword
            raise ConfigError(f"hydra.sweeper.sampler: {err}") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name=self.study_name, storage=self.storage, sampler=sampler,
                                    direction=direction, load_if_exists=True)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        job_idx = len(study.trials)  # a resumed study's jobs keep their numbers
        returns = []
        while True:
            done = len([t for t in study.trials if t.state.is_finished()])
            batch_size = min(n_jobs, n_trials - done)
            if batch_size <= 0:
                break
            trials = [study.ask(fixed_distributions=space) for _ in range(batch_size)]
            batch = [tuple(fixed + [f"{name}={_format(trial.params[name])}" for name in space]) for trial in trials]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=job_idx)
            job_idx += len(batch)
            for trial, result in zip(trials, results):
                if result.status == JobStatus.COMPLETED:
                    study.tell(trial, float(result.return_value))
                else:
                    log.warning(f"job {result.overrides} failed: {result._return_value!r}")
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            returns.append(results)

        best = study.best_trial
        results_file = sweep_dir / "optimization_results.yaml"
        OmegaConf.save(OmegaConf.create({"name": "lanas", "best_params": best.params, "best_value": best.value,
                                         "n_trials": len(study.trials)}), results_file)
        log.info(f"Best parameters: {best.params}; best value: {best.value} (written to {results_file})")
        return returns


def _format(value: Any) -> str:
    """A value as an override Hydra parses back to the same value."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)
