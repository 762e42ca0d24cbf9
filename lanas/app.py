"""Turns a composed Hydra config into objects and runs the loop. Nothing below this knows Hydra."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from hydra.errors import OverrideParseException
from hydra.experimental.callback import Callback
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from lanas.checkpoint import Checkpointer, config_diff, external_objects
from lanas.cli import apply_torch_threads, one_line_error  # noqa: F401  (one_line_error: re-exported)
from lanas.errors import ConfigError, LanasError, require_int
from lanas.evaluators.base import Evaluator
from lanas.logging import RunLogger, SafeLogger
from lanas.recorders import RunInfo
from lanas.rundir import CHECKPOINT, RESULT_NEUTRAL_KEYS, TRACE, read_summary, write_json_atomic
from lanas.runner import run_search
from lanas.searchers.base import Searcher
from lanas.spaces.base import FiniteSearchSpace, SearchSpace

DEFAULT_CHECKPOINT_EVERY = 50


def run_dir(resume: str | None, default: str) -> str:
    """``hydra.run.dir``: the directory being resumed, else the usual timestamped one."""
    return str(resume) if resume else default


OmegaConf.register_new_resolver("lanas.run_dir", run_dir, replace=True)


def build(group: str, node: DictConfig | dict | None, **extra: Any) -> Any:
    """Instantiate ``node['_target_']`` with the node's other keys, rejecting unknown ones by name.

    Keys listed in a node's ``_meta_`` (e.g. a searcher's display ``name``) are not passed on.
    """
    if node is None:
        raise ConfigError(f"config group '{group}' is not set")
    params = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = params.pop("_target_", None)
    if target is None:
        raise ConfigError(f"config group '{group}' has no _target_")
    for key in ("name", "_partial_"):
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


def prepare(cfg: DictConfig) -> tuple[SearchSpace, Evaluator, Searcher, RunInfo, np.random.Generator]:
    """Build and validate everything a run needs; raises ConfigError before any search work."""
    seed = require_int("seed", cfg.seed, 0)
    evaluator_cfg = cfg.get("evaluator") or cfg.get("benchmark")
    evaluator: Evaluator = build("benchmark" if cfg.get("evaluator") is None else "evaluator", evaluator_cfg)
    space = evaluator.candidate_space(build("search_space", cfg.search_space))
    searcher_rng, eval_rng = make_rngs(seed)
    searcher: Searcher = build("searcher", cfg.searcher, space=space, rng=searcher_rng)

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
    info = RunInfo(
        searcher=group_name(cfg, "searcher"),
        search_space=space.name,
        benchmark=evaluator.name,
        dataset=evaluator.dataset,
        seed=seed,
        budget=budget,
        extra={"searcher_params": searcher_params(cfg)},
    )
    return space, evaluator, searcher, info, eval_rng


def run_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run configuration (without Hydra's own node): what a checkpoint is compared against."""
    keys = [key for key in cfg if key != "hydra"]
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)  # type: ignore[return-value]


def ignored_keys(config: dict[str, Any]) -> tuple[str, ...]:
    """Keys that may differ between a run and its resumption: the fixed ones plus ``resume_ignore``."""
    extra = config.get("resume_ignore") or []
    if not isinstance(extra, list) or not all(isinstance(key, str) for key in extra):
        raise ConfigError(f"resume_ignore must be a list of config keys, got {extra!r}")
    # threads: how many CPU threads torch uses changes the speed, not the result.
    return (*RESULT_NEUTRAL_KEYS, "threads", "evaluator.threads", *extra)


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
        header = Checkpointer(out_dir, 1, config, {}).read_header()
        differences = config_diff(header["config"], config, ignored_keys(config))
        if differences:
            raise ConfigError(
                f"{out_dir} holds a run with a different config ({'; '.join(differences)}); "
                "resume it with the original settings or give the new run another directory"
            )
        return "complete" if complete else "resume"
    if complete:
        return "complete"  # finished, but no checkpoint to compare the config with
    stopped_before_start = summary is not None and summary.get("num_samples") == 0
    if resume_requested and not (out_dir / TRACE).exists() and not stopped_before_start:
        raise ConfigError(f"resume={out_dir} has no {CHECKPOINT} (nor {TRACE}): nothing to resume there")
    return "fresh"  # killed before its first checkpoint: redoing it from the start gives the same trace


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
    stored_file = folder / ".hydra" / "overrides.yaml"
    if not stored_file.is_file():
        return args
    stored = [str(line) for line in OmegaConf.load(stored_file)]
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


class ResumeGuard(Callback):
    """Hydra callback: checks the run directory before Hydra writes anything into it.

    A directory of a different config is refused before ``.hydra/`` is overwritten; a resumed or
    finished run keeps its original ``.hydra/`` (how it was started) rather than the resume command.
    """

    run_dir: Path | None = None  # the job's folder once chosen: a stop during Hydra's job set-up reads it

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        out_dir = Path(str(config.get("resume") or config.hydra.run.dir))
        ResumeGuard.run_dir = out_dir.absolute()
        try:
            mode = resume_mode(out_dir, run_config(config), resume_requested=bool(config.get("resume")))
        except LanasError as err:
            # Hydra turns a callback's exceptions into warnings and goes on: stop here instead.
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        if mode != "fresh":
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None


def run(cfg: DictConfig, out_dir: str | Path, group: str | None = None, tags: list[str] | None = None) -> dict:
    """Build everything from ``cfg``, run the search in ``out_dir`` and return its summary.

    ``out_dir`` (or ``cfg.resume``) holding a checkpoint of the same config continues that run; one
    whose summary is complete is returned as it is, without redoing anything.
    """
    resume = cfg.get("resume")
    out_dir = Path(resume) if resume else Path(out_dir)
    every = require_int("checkpoint_every", cfg.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY), 1)
    trace_timing = cfg.get("trace_timing", True)
    if not isinstance(trace_timing, bool):
        raise ConfigError(f"trace_timing must be true or false, got {trace_timing!r}")
    config = run_config(cfg)
    mode = resume_mode(out_dir, config, resume_requested=bool(resume))
    if mode == "complete":
        return read_summary(out_dir)  # type: ignore[return-value]

    if cfg.get("evaluator") is not None:  # torch-based evaluators (supernet, train)
        apply_torch_threads(cfg.get("threads"))
    space, evaluator, searcher, info, eval_rng = prepare(cfg)
    checkpointer = Checkpointer(out_dir, every, config, external_objects(space, evaluator))
    state = None
    if mode == "resume":
        _, saved = checkpointer.load()
        searcher, eval_rng, state = saved["searcher"], saved["eval_rng"], saved["loop"]
        if "evaluator_state" in saved:
            evaluator.load_state_dict(saved["evaluator_state"])
        state.resumes += 1
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
        checkpointer=checkpointer, state=state, trace_timing=trace_timing,
    )
