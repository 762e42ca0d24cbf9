"""Turns a composed Hydra config into objects and runs the loop. Nothing below this knows Hydra."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from lanas.benchmarks.base import Evaluator
from lanas.errors import ConfigError, require_int
from lanas.logging import RunLogger
from lanas.loop import RunInfo, run_search
from lanas.searchers.base import Searcher
from lanas.spaces.base import FiniteSearchSpace, SearchSpace


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
        raise ConfigError(
            f"{group}.{unknown[0]} is not a parameter of {cls.__name__}; allowed: {', '.join(sorted(accepted))}"
        )
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


def run(cfg: DictConfig, out_dir: str | Path, group: str | None = None, tags: list[str] | None = None) -> dict:
    """Build everything from ``cfg``, run the search in ``out_dir`` and return its summary."""
    space, evaluator, searcher, info, eval_rng = prepare(cfg)
    logger: RunLogger = build("logger", cfg.logger) if cfg.get("logger") else RunLogger()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.start(
        OmegaConf.to_container(cfg, resolve=True), out_dir,
        name=f"{info.searcher}-{info.dataset}-seed{info.seed}",
        group=group or f"{info.benchmark}-{info.dataset}", tags=tags or [info.searcher],
    )
    return run_search(
        space, evaluator, searcher, info, out_dir, eval_rng,
        stop_at_optimum=bool(cfg.get("stop_at_optimum", True)),
        logger=logger, progress=bool(cfg.get("progress", True)),
    )
