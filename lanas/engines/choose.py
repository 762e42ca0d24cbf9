"""Which engine a run gets from its ``workers``, ``engine`` and ``simulated_seconds`` keys, validated.

``engine=auto`` (the default) keeps the sequential loop for ``workers=1`` (traces and summaries as
they always were) and, for ``workers>1``, picks ``simulated`` for tabular benchmarks and ``local``
for evaluators that really train. Bad combinations raise a one-line :class:`~lanas.errors.ConfigError`
naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lanas.benchmarks.base import TabularBenchmark
from lanas.engines.base import Engine
from lanas.engines.durations import ConstantSeconds, TableSeconds, recorded_seconds
from lanas.errors import ConfigError, require_choice, require_float, require_int
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import FiniteSearchSpace, SearchSpace

ENGINES = ("auto", "none", "simulated", "local", "slurm")


def check_workers(workers: object, space: SearchSpace) -> int:
    """``workers`` as an int between 1 and the size of a finite space."""
    workers = require_int("workers", workers, 1)
    if isinstance(space, FiniteSearchSpace) and workers > len(space):
        raise ConfigError(f"workers={workers} is larger than the {len(space):,} architectures of "
                          f"search_space={space.name}: at most {len(space):,}")
    return workers


def engine_name(engine: object, workers: int, evaluator: Evaluator) -> str:
    """The engine ``engine=auto`` stands for (others are returned as they are, once validated)."""
    name = require_choice("engine", engine, ENGINES)
    if name == "auto":
        if workers == 1:
            return "none"
        return "simulated" if isinstance(evaluator, TabularBenchmark) else "local"
    return name


def check_parallel(evaluator: Evaluator | type, workers: int, executor: object = None) -> None:
    """Refuse ``workers > 1`` on real engines for an evaluator that evaluates in this process, one
    architecture at a time. ``evaluator`` may be the class, checked before it is built (a supernet
    loads its network first); ``executor`` is then its configured ``evaluator.executor``.

    Tables (lookups) and ``evaluator=train`` with ``executor=local|slurm`` (each evaluation its own
    process) run in parallel; a supernet evaluator shares one network (and re-estimates its
    BatchNorm statistics in place), so its evaluations cannot overlap.
    """
    if workers == 1:
        return
    cls = evaluator if isinstance(evaluator, type) else type(evaluator)
    if issubclass(cls, TabularBenchmark):
        return
    if executor is None:
        executor = getattr(evaluator, "executor", None)
    if executor is None:
        raise ConfigError(
            f"workers={workers}: evaluator={getattr(cls, 'name', cls.__name__)} evaluates in this process, one "
            "architecture at a time (a supernet shares one network); use workers=1")
    if executor == "none":
        raise ConfigError(
            f"workers={workers}: evaluator.executor=none trains in this process, one network at a time; "
            "set evaluator.executor=local (or slurm) to train several at once, or workers=1")


def make_engine(engine: object, workers: object, evaluator: Evaluator, space: SearchSpace,
                simulated_seconds: object = None, elapsed_s: float = 0.0, out_dir: str | Path | None = None,
                engine_params: dict[str, Any] | None = None) -> Engine | None:
    """The run's engine, or None for the sequential loop (``engine=none``, or ``auto`` with one worker).

    ``engine=slurm`` submits to ``<out_dir>/submitit`` with ``engine_params`` (submitit's parameters,
    e.g. ``slurm_partition``, ``timeout_min``, ``gpus_per_node``; ``cluster: local`` runs the same
    code through submitit's local executor)."""
    workers = check_workers(workers, space)
    name = engine_name(engine, workers, evaluator)
    if name == "none":
        if workers > 1:
            raise ConfigError(f"engine=none evaluates one architecture at a time; workers={workers} needs "
                              "engine=simulated, local or auto")
        return None
    if name == "simulated":
        from lanas.engines.simulated import SimulatedEngine

        if simulated_seconds is not None:
            return SimulatedEngine(workers, ConstantSeconds(require_float("simulated_seconds", simulated_seconds, 0.0)))
        seconds = recorded_seconds(evaluator)
        if seconds is None:
            raise ConfigError(
                f"engine=simulated needs each evaluation's recorded training time, which evaluator={evaluator.name} "
                "does not have; set simulated_seconds=<seconds per evaluation> or engine=local")
        return SimulatedEngine(workers, TableSeconds(seconds))
    if name == "slurm":
        from lanas.engines.cluster import CLUSTERS, ClusterEngine

        if out_dir is None:
            raise ConfigError("engine=slurm needs a run directory for submitit's files")
        params = dict(engine_params or {})
        cluster = require_choice("engine_params.cluster", params.pop("cluster", "slurm"), CLUSTERS)
        return ClusterEngine(workers, Path(out_dir) / "submitit", cluster, params, elapsed_s=elapsed_s)
    from lanas.engines.local import LocalEngine

    check_parallel(evaluator, workers)
    return LocalEngine(workers, elapsed_s=elapsed_s)
