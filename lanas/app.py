"""Turns a composed Hydra config into objects and runs the loop. Nothing below this knows Hydra."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any

import hydra.core.utils as hydra_utils
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.errors import OverrideParseException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lanas.checkpoint import Checkpointer, config_diff, external_objects
from lanas.cli import apply_torch_threads, error_line, one_line_error  # noqa: F401  (one_line_error: re-exported)
from lanas.constraints import parse_constraints
from lanas.engines.base import Engine
from lanas.engines.choose import check_parallel, check_workers, engine_name, make_engine
from lanas.errors import ConfigError, InvalidArchitectureError, LanasError, require_bool, require_int
from lanas.evaluators.base import Evaluator
from lanas.logging import RunLogger, SafeLogger
from lanas.recorders import RunInfo
from lanas.rundir import (CHECKPOINT, RESULT_NEUTRAL_KEYS, RUN_CONFIG, TRACE, RunDirBusy, claim_lock,
                          lock_run_dir, read_run_config, read_summary, read_trace_rewards, unlock_run_dir,
                          write_json_atomic)
from lanas.runner import run_search
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace
from lanas.spaces.constrained import FeasibleSpace, SubsetSpace, constrain_space

DEFAULT_CHECKPOINT_EVERY = 50


def run_dir(resume: str | None, default: str) -> str:
    """``hydra.run.dir``: the directory being resumed, else the usual timestamped one."""
    return str(resume) if resume else default


OmegaConf.register_new_resolver("lanas.run_dir", run_dir, replace=True)


# A searcher preset's request for a search-space encoding, read only by conf/search_space/*.yaml's defaults.
SPACE_ENCODINGS_KEY = "space_encodings"
# Keys of a config node that are read by the config itself (interpolations, summaries), not by its class.
CONFIG_ONLY_KEYS = ("name", "_partial_", SPACE_ENCODINGS_KEY)


def build(group: str, node: DictConfig | dict | None, **extra: Any) -> Any:
    """Instantiate ``node['_target_']`` with the node's other keys, rejecting unknown ones by name.

    The keys in :data:`CONFIG_ONLY_KEYS` (a searcher's display ``name``, the ``space_encodings`` its preset
    asks the search space for) are not passed on.
    """
    if node is None:
        raise ConfigError(f"config group '{group}' is not set")
    params = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = params.pop("_target_", None)
    if target is None:
        raise ConfigError(f"config group '{group}' has no _target_")
    for key in CONFIG_ONLY_KEYS:
        params.pop(key, None)
    cls = get_class(target)
    signature = inspect.signature(cls)
    accepted = set(signature.parameters) - set(extra)
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = sorted(set(params) - accepted)
    if unknown and not has_kwargs:
        allowed = f"allowed: {', '.join(sorted(accepted))}" if accepted else f"{cls.__name__} takes no parameters"
        raise ConfigError(f"{group}.{unknown[0]} is not a parameter of {cls.__name__}; {allowed}")
    return cls(**params, **extra)


def group_name(cfg: DictConfig, group: str) -> str:
    node = cfg.get(group)
    if node is not None and node.get("name"):
        return str(node.name)
    return str(node.get("_target_", "none")).rsplit(".", 1)[-1].lower() if node is not None else "none"


def searcher_params(cfg: DictConfig) -> dict[str, Any]:
    """The searcher's knobs as configured (for summaries and reports)."""
    params = OmegaConf.to_container(cfg.searcher, resolve=True)
    return {k: v for k, v in params.items() if not k.startswith("_") and k != "name"}


def make_rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the searcher and for evaluation noise, both from ``seed``."""
    searcher_seq, eval_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(searcher_seq), np.random.default_rng(eval_seq)


def warm_start_samples(run_dirs: Any, space: SearchSpace) -> list[tuple[list[Arch], list[float]]]:
    """The architectures and rewards in the trace of each of ``run_dirs`` (earlier runs over ``space``, e.g. on
    another data set), one pair per run: rewards of different runs need not share a scale. Architectures this
    run's space cannot hold (outside its budget) are left out, with a notice; none at all, a missing trace or
    another space's strings are a ConfigError."""
    if isinstance(run_dirs, str):
        run_dirs = [run_dirs]
    elif OmegaConf.is_list(run_dirs):
        run_dirs = OmegaConf.to_container(run_dirs, resolve=True)
    if not isinstance(run_dirs, list) or not all(isinstance(d, str) for d in run_dirs):
        raise ConfigError(f"warm_start must be a run directory or a list of them, got {run_dirs!r}")
    runs: list[tuple[list[Arch], list[float]]] = []
    left_out = kept = 0
    for run_dir in run_dirs:
        try:
            rows = read_trace_rewards(run_dir)
        except FileNotFoundError:
            raise ConfigError(f"warm_start: {run_dir} has no {TRACE} (a run directory of run.py is expected)") from None
        except ValueError as err:
            raise ConfigError(f"warm_start: {err}") from None
        archs: list[Arch] = []
        rewards: list[float] = []
        for text, reward in rows:
            try:
                archs.append(space.from_string(text))
            except InvalidArchitectureError as err:
                if not isinstance(space, (SubsetSpace, FeasibleSpace)):
                    raise ConfigError(f"warm_start: {run_dir} is not a run over search_space={space.name}: {err}") from None
                left_out += 1
                continue
            rewards.append(reward)
        if archs:
            runs.append((archs, rewards))
            kept += len(archs)
    if not runs:
        raise ConfigError(f"warm_start: no architecture of {', '.join(run_dirs)} is in this run's space")
    if left_out:
        print(f"warm_start: {left_out} of {left_out + kept} earlier samples are outside this run's budget "
              "and left out", file=sys.stderr, flush=True)
    return runs


def prepare(cfg: DictConfig) -> tuple[SearchSpace, Evaluator, Searcher, RunInfo, np.random.Generator]:
    """Build and validate everything a run needs; raises ConfigError before any search work."""
    seed = require_int("seed", cfg.seed, 0)
    evaluator_cfg = cfg.get("evaluator") or cfg.get("benchmark")
    workers = require_int("workers", cfg.get("workers", 1), 1)
    if workers > 1 and cfg.get("engine", "auto") in ("auto", "local") and evaluator_cfg is not None \
            and evaluator_cfg.get("_target_"):  # before building it: a supernet loads its network first
        check_parallel(get_class(evaluator_cfg._target_), workers, evaluator_cfg.get("executor"))
    evaluator: Evaluator = build("benchmark" if cfg.get("evaluator") is None else "evaluator", evaluator_cfg)
    constraints = parse_constraints(cfg.get("constraints"))
    # A budget narrows the space searchers draw from: the benchmark's feasible rows, else the space's own costs.
    handled = bool(constraints) and evaluator.constrain(constraints)
    space = evaluator.candidate_space(build("search_space", cfg.search_space))
    if constraints and not handled:
        space = constrain_space(space, constraints, f"evaluator={evaluator.name}")
    searcher_rng, eval_rng = make_rngs(seed)
    searcher: Searcher = build("searcher", cfg.searcher, space=space, rng=searcher_rng)
    if cfg.get("warm_start"):
        try:
            searcher.warm_start(warm_start_samples(cfg.warm_start, space))
        except NotImplementedError:
            raise ConfigError(f"warm_start: searcher={group_name(cfg, 'searcher')} cannot learn from earlier runs; "
                              "searcher=lanas_plus can") from None

    budget = cfg.get("budget")
    if budget is None:
        if not isinstance(space, FiniteSearchSpace):
            raise ConfigError(f"budget must be set: search_space={space.name} cannot be enumerated")
        budget = len(space)
    budget = require_int("budget", budget, 1)
    if budget < searcher.min_budget():
        raise ConfigError(
            f"budget={budget} is smaller than the {searcher.min_budget()} samples searcher={group_name(cfg, 'searcher')} "
            "needs before it starts searching (searcher.init_samples); raise budget or lower init_samples"
        )
    workers = check_workers(cfg.get("workers", 1), space)
    engine = engine_name(cfg.get("engine", "auto"), workers, evaluator)
    if engine == "local":
        check_parallel(evaluator, workers)
    info = RunInfo(
        searcher=group_name(cfg, "searcher"),
        search_space=space.name,
        benchmark=evaluator.name,
        dataset=evaluator.dataset,
        seed=seed,
        budget=budget,
        extra={"searcher_params": searcher_params(cfg), "constraints": constraints.as_dict() or None},
        workers=workers,
        engine=engine,
    )
    return space, evaluator, searcher, info, eval_rng


def prepare_engine(cfg: DictConfig, space: SearchSpace, evaluator: Evaluator, elapsed_s: float = 0.0,
                   out_dir: str | Path | None = None) -> Engine | None:
    """The run's engine from ``workers``, ``engine``, ``simulated_seconds`` and ``engine_params``
    (None: the sequential loop); ``engine=slurm`` keeps submitit's files in ``<out_dir>/submitit``."""
    params = cfg.get("engine_params")
    params = OmegaConf.to_container(params, resolve=True) if isinstance(params, DictConfig) else params
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"engine_params must be a mapping of submitit parameters, got {params!r}")
    return make_engine(cfg.get("engine", "auto"), cfg.get("workers", 1), evaluator, space,
                       cfg.get("simulated_seconds"), elapsed_s, out_dir, params)


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run configuration (without Hydra's own node): what a checkpoint is compared against."""
    keys = [key for key in cfg if key != "hydra"]
    config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    # Only the limits that are on are recorded (none: no key), so runs started before `constraints`
    # existed keep resuming and a difference names just the limit that changed.
    if isinstance(config.get("constraints"), dict):
        config["constraints"] = {k: v for k, v in config["constraints"].items() if v is not None}
        if not config["constraints"]:
            del config["constraints"]
    return config  # type: ignore[return-value]


def ignored_keys(config: dict[str, Any]) -> tuple[str, ...]:
    """Keys that may differ between a run and its resumption: the fixed ones plus ``resume_ignore``."""
    extra = config.get("resume_ignore") or []
    if not isinstance(extra, list) or not all(isinstance(key, str) for key in extra):
        raise ConfigError(f"resume_ignore must be a list of config keys, got {extra!r}")
    # threads: how many CPU threads torch uses changes the speed, not the result. searcher.space_encodings only
    # sets search_space.encoding's default, and the encoding in use is compared there.
    return (*RESULT_NEUTRAL_KEYS, "threads", "evaluator.threads", f"searcher.{SPACE_ENCODINGS_KEY}", *extra)


# Keys added to conf/config.yaml after runs were recorded, with the value that reproduces those runs:
# a run saved without them resumes under the new code instead of being refused for "<unset> -> default".
ADDED_KEYS: dict[str, Any] = {"workers": 1, "engine": "auto", "simulated_seconds": None, "engine_params": {},
                              "warm_start": []}


# Likewise for knobs added to the LaNAS searcher class (a recorded searcher node with a ``leaf_model`` is one)
# and to search spaces (by their ``_target_``).
ADDED_LANAS_KEYS: dict[str, Any] = {"model_source_weight": "evidence", "model_op_counts": False}
ADDED_SPACE_KEYS: dict[str, dict[str, Any]] = {
    "lanas.spaces.hpo.HPOGridSpace": {"encoding": "ordinal"},
    "lanas.spaces.nasbench201.NASBench201Space": {"encoding": "onehot"},
}


def with_new_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """``saved`` (a recorded run config) with :data:`ADDED_KEYS` (and :data:`ADDED_LANAS_KEYS` in a LaNAS
    searcher node, :data:`ADDED_SPACE_KEYS` in its search space's node) it lacks set to their old behaviour."""
    config = {**ADDED_KEYS, **saved}
    searcher = config.get("searcher")
    if isinstance(searcher, dict) and "leaf_model" in searcher:
        config["searcher"] = {**ADDED_LANAS_KEYS, **searcher}
    space = config.get("search_space")
    if isinstance(space, dict) and space.get("_target_") in ADDED_SPACE_KEYS:
        config["search_space"] = {**ADDED_SPACE_KEYS[space["_target_"]], **space}
    return config


def resume_mode(out_dir: str | Path, config: dict[str, Any], resume_requested: bool = False) -> str:
    """What to do in ``out_dir``: ``"fresh"``, ``"resume"`` (from its checkpoint) or ``"complete"`` (nothing).

    Raises ConfigError when the directory holds a run of a different configuration (naming the keys
    that differ) or when ``resume=`` names a directory with nothing to resume.
    """
    out_dir = Path(out_dir)
    if resume_requested and not out_dir.is_dir():
        raise ConfigError(f"resume={out_dir} does not exist (give the run directory printed by the run)")
    summary = read_summary(out_dir)
    complete = bool(summary and summary.get("complete", True))
    if (out_dir / CHECKPOINT).exists():
        header = Checkpointer(out_dir, 1, config, {}).verify()  # nothing in it runs code
        differences = config_diff(with_new_defaults(header["config"]), config, ignored_keys(config))
        if differences:
            raise ConfigError(
                f"{out_dir} holds a run with a different config ({'; '.join(differences)}); "
                "resume it with the original settings or give the new run another directory"
            )
        return "complete" if complete else "resume"
    recorded = read_run_config(out_dir)
    if recorded is not None and isinstance(recorded.get("config"), dict):
        differences = config_diff(with_new_defaults(recorded["config"]), config, ignored_keys(config))
        if differences:
            raise ConfigError(
                f"{out_dir} holds a run with a different config ({'; '.join(differences)}); "
                "resume it with the original settings or give the new run another directory"
            )
    if complete:
        return "complete"  # finished, but no checkpoint to compare the config with
    stopped_before_start = summary is not None and summary.get("num_samples") == 0
    if resume_requested and not (out_dir / TRACE).exists() and not stopped_before_start:
        raise ConfigError(f"resume={out_dir} has no {CHECKPOINT} (nor {TRACE}): nothing to resume there")
    return "fresh"  # killed before its first checkpoint: redoing it from the start gives the same trace


def guard_run_dir(out_dir: str | Path, config: dict[str, Any], resume_requested: bool = False) -> tuple[str, bool]:
    """Lock ``out_dir`` for this process, then decide what to do in it: ``(mode, took)``.

    ``mode`` is :func:`resume_mode`'s; ``took`` says whether this call took the lock (False: this process
    already held it, e.g. from the Hydra callback). A folder locked by another live process, a path that
    is a file, a folder that cannot be written (unless its run is complete: nothing to write then) and
    the refusals of :func:`resume_mode` raise ConfigError; a refused folder is left as it was.
    """
    out_dir = Path(out_dir)
    ignored_keys(config)  # resume_ignore must be a list of keys, whether or not there is a run to compare
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} is a file, not a run directory; give the run a directory (hydra.run.dir=...)")
    if resume_requested and not out_dir.is_dir():
        raise ConfigError(f"resume={out_dir} does not exist (give the run directory printed by the run)")
    try:
        took = lock_run_dir(out_dir)
    except RunDirBusy as err:
        pid = err.pid or "unknown"
        raise ConfigError(
            f"{out_dir} is in use by another lanas process (PID {pid}); wait for it to end or stop it "
            f"(kill {pid}): two processes in one run directory would corrupt it"
        ) from None
    except OSError as err:  # the folder or its lock file cannot be created (read-only, disk full, ...)
        if out_dir.is_dir() and resume_mode(out_dir, config, resume_requested) == "complete":
            return "complete", False  # nothing to write: its summary can still be shown
        raise ConfigError(
            f"cannot write in {out_dir}: {err.strerror or err}; give the run a writable directory (hydra.run.dir=...)"
        ) from None
    try:
        mode = resume_mode(out_dir, config, resume_requested)
    except BaseException:
        if took:
            unlock_run_dir(out_dir)
        raise
    if mode != "complete":
        claim_lock(out_dir)
    return mode, took


def _override_key(override: Any) -> tuple[str, str | None]:
    return override.key_or_group, override.package


def with_stored_overrides(args: list[str]) -> list[str]:
    """Command-line arguments of ``python run.py resume=<dir> [overrides]`` completed with the run's own
    overrides from ``<dir>/.hydra/overrides.yaml``, so the resumed run has the config it was started with.

    Overrides on the command line replace stored ones of the same key (a key that changes the result
    is then refused by the resume check, naming it). Other arguments (``-m``, no ``resume=``) are
    returned unchanged. Raises ConfigError when the directory does not exist.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if any(arg.startswith("-") for arg in args):
        return args  # --multirun, --help, --cfg ...: not a single resumed run
    parser = OverridesParser.create()
    try:
        given = parser.parse_overrides(args)
    except OverrideParseException:
        return args  # Hydra reports it, in one line, as for any other command
    resume = [o for o in given if o.key_or_group == "resume" and o.package is None and not o.is_delete()]
    if not resume or resume[-1].value() in (None, ""):
        return args
    folder = Path(str(resume[-1].value()))
    if not folder.is_dir():
        raise ConfigError(f"resume={folder} does not exist (give the run directory printed by the run)")
    recorded = read_run_config(folder)
    stored_file = folder / ".hydra" / "overrides.yaml"
    if recorded is not None and isinstance(recorded.get("overrides"), list):
        stored = [str(line) for line in recorded["overrides"]]  # what the run was started with, never rewritten
    elif stored_file.is_file():
        stored = [str(line) for line in OmegaConf.load(stored_file)]
    else:
        return args
    given_keys = {_override_key(o) for o in given}
    kept = [o.input_line for o in parser.parse_overrides(stored)
            if _override_key(o) not in given_keys and o.key_or_group != "resume"]
    return [*kept, *args]


def mark_incomplete(out_dir: str | Path, cfg: DictConfig | None, overrides: list[str] | None = None) -> None:
    """A run stopped before its search loop started: leave a ``summary.json`` saying it is incomplete
    (with nothing evaluated), unless the folder already has one (e.g. of an earlier, partial run).

    ``overrides`` (the command line's) are recorded where Hydra's own record is missing or empty (a
    stop while Hydra was writing it), so that ``resume=<dir>`` brings back this run's config.
    """
    out_dir = Path(out_dir)
    stored = out_dir / ".hydra" / "overrides.yaml"
    if overrides is not None and (out_dir / ".hydra").is_dir() and (not stored.is_file() or not stored.read_text().strip()):
        tmp = stored.with_name(f".overrides.yaml.{os.getpid()}.tmp")
        tmp.write_text(OmegaConf.to_yaml(OmegaConf.create(overrides)))
        os.replace(tmp, stored)
    if read_summary(out_dir) is not None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg if cfg is not None else OmegaConf.create({})
    write_json_atomic(out_dir / "summary.json", {
        "searcher": group_name(cfg, "searcher"), "seed": cfg.get("seed"), "budget": cfg.get("budget"),
        "num_samples": 0, "best_reward": None, "best_arch": None, "samples_to_optimum": None,
        "complete": False, "resumes": 0,
    })


def _refuse(err: LanasError) -> None:
    # Hydra turns a callback's exceptions into warnings and goes on: stop here instead.
    print(error_line(err), file=sys.stderr, flush=True)
    sys.exit(2)


def _hydra_job_dir() -> Path | None:
    """The run directory of the Hydra job being set up (None outside Hydra)."""
    if not HydraConfig.initialized():
        return None
    out_dir = OmegaConf.select(HydraConfig.get(), "runtime.output_dir")
    return Path(str(out_dir)) if out_dir else None


def _lock_sweep_job() -> None:
    """A sweep job's folder is locked before Hydra writes its log or ``.hydra/`` there (see below)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    out_dir = _hydra_job_dir()
    if out_dir is None:
        return
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise ConfigError(f"{out_dir} is a file, not a run directory; give the sweep another hydra.sweep.dir")
        lock_run_dir(out_dir)
    except RunDirBusy as err:
        _refuse(ConfigError(
            f"{out_dir} is in use by another lanas process (PID {err.pid or 'unknown'}), e.g. a worker of an "
            f"earlier sweep; wait for it to end or stop it (kill {err.pid or '<pid>'}), then run the sweep again"))
    except LanasError as err:
        _refuse(err)
    except OSError as err:
        _refuse(ConfigError(f"cannot write in {out_dir}: {err.strerror or err}"))


def _install_hydra_hooks() -> None:
    """Two wraps of Hydra's job set-up (``hydra.core.utils.run_job`` calls them by module name, before
    the job's callbacks): a sweep job locks its folder before Hydra's logging opens ``run.log`` there,
    and Hydra never rewrites a ``.hydra/`` file that exists, so a refused or resumed job leaves the
    files of the run it found untouched (a single run is checked earlier, in ``on_run_start``)."""
    if getattr(hydra_utils, "_lanas_hooks", False):
        return
    configure_log, save_config = hydra_utils.configure_log, hydra_utils._save_config

    def locked_configure_log(*args: Any, **kwargs: Any) -> Any:
        _lock_sweep_job()
        return configure_log(*args, **kwargs)

    def save_config_once(cfg: Any, filename: str, output_dir: Path) -> None:
        path = Path(output_dir) / filename
        if path.exists():
            return
        try:
            save_config(cfg, filename, output_dir)
        except OSError as err:  # a full disk: no half-written file, and one line naming it
            path.unlink(missing_ok=True)
            raise OSError(err.errno, err.strerror, str(path)) from err

    hydra_utils.configure_log = locked_configure_log
    hydra_utils._save_config = save_config_once
    hydra_utils._lanas_hooks = True


_install_hydra_hooks()


class ResumeGuard(Callback):
    """Hydra callback: locks the run directory and checks it before Hydra writes anything into it.

    A directory of a different config, or one another process is running in, is refused with nothing
    written; a resumed or finished run keeps its original ``.hydra/`` (how it was started) rather than
    the resume command. The lock is held until the job ends (the process's end releases it anyway).
    """

    run_dir: Path | None = None  # the job's folder once chosen: a stop during Hydra's job set-up reads it

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        raw = config.get("resume") or OmegaConf.select(config, "hydra.run.dir")
        if raw is None or not str(raw).strip():
            _refuse(ConfigError("hydra.run.dir is empty; give the run a directory or leave the key out "
                                "(default: outputs/<date>/<time>_...)"))
        out_dir = Path(str(raw))
        ResumeGuard.run_dir = out_dir.absolute()
        try:
            mode, _ = guard_run_dir(out_dir, run_config(config), resume_requested=bool(config.get("resume")))
        except LanasError as err:
            _refuse(err)
        if mode != "fresh":  # a fresh start writes only the .hydra files missing (see _install_hydra_hooks)
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
                if mode == "complete":  # nothing to log: leave run.log alone (the folder may be read-only)
                    config.hydra.job_logging = {"version": 1, "disable_existing_loggers": False,
                                                  "root": {"level": "INFO", "handlers": []}}

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        out_dir = _hydra_job_dir()
        if out_dir is None:
            return
        try:
            guard_run_dir(out_dir, run_config(config))
        except LanasError as err:
            _refuse(err)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        out_dir = config.get("resume") or _hydra_job_dir()
        if out_dir:
            unlock_run_dir(out_dir)


def run(cfg: DictConfig, out_dir: str | Path, group: str | None = None, tags: list[str] | None = None,
        overrides: list[str] | None = None) -> dict:
    """Build everything from ``cfg``, run the search in ``out_dir`` and return its summary.

    ``out_dir`` (or ``cfg.resume``) holding a checkpoint of the same config continues that run; one
    whose summary is complete is returned as it is, without redoing anything. The folder is locked
    while the run works in it (another process there is refused, naming its PID); a fresh run records
    its config and ``overrides`` (the command line's, for reports) in ``run_config.json``, once.
    """
    resume = cfg.get("resume")
    out_dir = Path(resume) if resume else Path(out_dir)
    config = run_config(cfg)
    mode, took = guard_run_dir(out_dir, config, resume_requested=bool(resume))
    try:
        return _run_locked(cfg, out_dir, mode, config, group, tags, overrides)
    finally:
        if took:
            unlock_run_dir(out_dir)


def _run_locked(cfg: DictConfig, out_dir: Path, mode: str, config: dict[str, Any], group: str | None,
                tags: list[str] | None, overrides: list[str] | None) -> dict:
    every = require_int("checkpoint_every", cfg.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY), 1)
    trace_timing = require_bool("trace_timing", cfg.get("trace_timing", True))
    if mode == "complete":
        return read_summary(out_dir)  # type: ignore[return-value]

    if cfg.get("evaluator") is not None:  # torch-based evaluators (supernet, train)
        apply_torch_threads(cfg.get("threads"))
    space, evaluator, searcher, info, eval_rng = prepare(cfg)
    if read_run_config(out_dir) is None:  # written once, at the run's start; never rewritten
        write_json_atomic(out_dir / RUN_CONFIG, {"config": config, "overrides": list(overrides or [])})
    checkpointer = Checkpointer(out_dir, every, config, external_objects(space, evaluator))
    state = None
    saved: dict[str, Any] = {}
    if mode == "resume":
        _, saved = checkpointer.load()
        searcher, eval_rng, state = saved["searcher"], saved["eval_rng"], saved["loop"]
        if "evaluator_state" in saved:
            evaluator.load_state_dict(saved["evaluator_state"])
        state.resumes += 1
    engine = prepare_engine(cfg, space, evaluator, state.elapsed_s if state is not None else 0.0, out_dir)
    if engine is not None and "engine_state" in saved:  # the evaluations in flight at the checkpoint
        engine.load_state_dict(saved["engine_state"], evaluator)
    logger = SafeLogger(build("logger", cfg.logger) if cfg.get("logger") else RunLogger())
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.start(
        OmegaConf.to_container(cfg, resolve=True), out_dir,
        name=f"{info.searcher}-{info.dataset}-seed{info.seed}",
        group=group or f"{info.benchmark}-{info.dataset}", tags=tags or [info.searcher],
        resume_step=state.num_samples if state is not None else 0,
    )
    return run_search(
        space, evaluator, searcher, info, out_dir, eval_rng,
        stop_at_optimum=bool(cfg.get("stop_at_optimum", True)),
        logger=logger, progress=bool(cfg.get("progress", True)),
        checkpointer=checkpointer, state=state, trace_timing=trace_timing, engine=engine,
    )
