"""``evaluator=train``: train each proposed nasnet cell network from scratch and return its
validation accuracy (the paper's "regular" LaNAS, without weight sharing).

Each evaluation is :func:`train_and_validate` with a seed drawn from the loop's evaluation
generator. ``executor`` runs a batch of evaluations: ``none`` one after the other in this process,
``local`` in parallel subprocesses through submitit's local executor (one machine), ``slurm`` as a
SLURM job array (``executor_params`` go to submitit, e.g. ``slurm_partition``, ``gpus_per_node``,
``timeout_min``). Evaluation logs and checkpoints go under ``out_dir/<evaluation number>``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lanas.evaluators.base import Evaluator
from lanas.errors import ConfigError, require_choice
from lanas.spaces.base import SearchSpace
from lanas.spaces.nasnet import NASNetSpace

EXECUTORS = ("none", "local", "slurm")
# workers > 1 (engine=local) calls query from several threads: evaluation numbers (folders) stay unique.
_NUMBERING = threading.Lock()


def train_and_validate(arch: Sequence[int], seed: int, out_dir: str, data: dict[str, Any],
                       network: dict[str, Any], trainer: dict[str, Any], threads: int | None = None) -> float:
    """Train ``arch`` from scratch with Lightning and return its validation accuracy (a fraction).

    ``threads``: torch CPU threads in this process (submitit jobs are fresh processes with torch's
    default of every core each, which oversubscribes the machine when several run side by side).
    """
    import lightning as L

    from lanas.cli import apply_torch_threads

    apply_torch_threads(threads)

    from lanas.training.classifier import CellClassifier
    from lanas.training.data import CIFAR10DataModule
    from lanas.training.trainer import make_trainer

    L.seed_everything(seed, workers=True, verbose=False)
    dm = CIFAR10DataModule(**data)
    model = CellClassifier(arch, **network)
    run = make_trainer(out_dir, {"num_sanity_val_steps": 0, **trainer}, logger="csv")
    run.fit(model, dm)
    return float(run.validate(model, dm, verbose=False)[0]["val/acc"])


class TrainEvaluator(Evaluator):
    name = "train"

    def __init__(
        self, dataset: str = "cifar10", out_dir: str = "outputs/train_evaluations",
        data: dict[str, Any] | None = None, network: dict[str, Any] | None = None,
        trainer: dict[str, Any] | None = None, executor: str = "none", executor_params: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        if dataset != "cifar10":
            raise ConfigError(f"evaluator=train supports dataset=cifar10 only, got dataset={dataset!r}")
        self.dataset = dataset
        self.out_dir = str(out_dir)
        self.data = dict(data or {})
        self.network = dict(network or {})
        self.trainer = dict(trainer or {})
        self.executor = require_choice("evaluator.executor", executor, EXECUTORS)
        self.executor_params = dict(executor_params or {})
        self.threads = threads
        self.num_evaluations = 0
        self.seconds: list[float] = []

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        if not isinstance(space, NASNetSpace):
            raise ConfigError(f"evaluator=train needs search_space=nasnet, got search_space={space.name}")
        return space

    def query(self, archs: Sequence[Sequence[int]], rng: np.random.Generator) -> np.ndarray:
        seeds = [int(s) for s in rng.integers(2**31 - 1, size=len(archs))]
        with _NUMBERING:
            first = self.num_evaluations
            self.num_evaluations += len(archs)
        dirs = [str(Path(self.out_dir) / f"{first + i:05d}") for i in range(len(archs))]
        start = time.perf_counter()
        args = [(tuple(a), s, d, self.data, self.network, self.trainer, getattr(self, "threads", None))
                for a, s, d in zip(archs, seeds, dirs)]
        if self.executor == "none":
            rewards = [train_and_validate(*a) for a in args]
        else:
            import submitit

            executor = submitit.AutoExecutor(folder=Path(self.out_dir) / "submitit",
                                             cluster="local" if self.executor == "local" else "slurm")
            executor.update_parameters(**self.executor_params)
            jobs = executor.map_array(train_and_validate, *zip(*args))
            rewards = [job.result() for job in jobs]
        self.seconds.append((time.perf_counter() - start) / max(len(archs), 1))
        return np.asarray(rewards, dtype=np.float64)

    def stats(self) -> dict[str, Any]:
        if not self.seconds:
            return {}
        return {"evaluations": self.num_evaluations, "seconds_per_eval": float(np.mean(self.seconds))}
