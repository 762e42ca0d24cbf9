"""``evaluator=train``: train each proposed cell network from scratch and return its validation
accuracy (the paper's "regular" LaNAS, without weight sharing). Spaces: ``nasnet``,
``nasbench201`` (NB201's skeleton) and ``nasbench101`` (nasbench-pytorch's ``Network``); datasets:
``cifar10`` and ``fashion_mnist`` (lanas.training.data).

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

# As in lanas.training.data.DATASETS / lanas.training.models.SPACES (not imported here: torch stays
# out of a process until it trains; tests/test_fashion_mnist.py checks that the lists agree).
DATASETS = ("cifar10", "fashion_mnist")
SPACES = ("nasnet", "nasbench201", "nasbench101")

EXECUTORS = ("none", "local", "slurm")
# workers > 1 (engine=local) calls query from several threads: evaluation numbers (folders) stay unique.
_NUMBERING = threading.Lock()


def train_and_validate(arch: Any, seed: int, out_dir: str, data: dict[str, Any],
                       network: dict[str, Any], trainer: dict[str, Any], threads: int | None = None,
                       dataset: str = "cifar10") -> float:
    """Train ``arch`` from scratch with Lightning and return its validation accuracy (a fraction).

    ``threads``: torch CPU threads in this process (submitit jobs are fresh processes with torch's
    default of every core each, which oversubscribes the machine when several run side by side).
    """
    import lightning as L

    from lanas.cli import apply_torch_threads

    apply_torch_threads(threads)

    from lanas.training.classifier import CellClassifier
    from lanas.training.data import make_datamodule
    from lanas.training.trainer import make_trainer, network_io

    L.seed_everything(seed, workers=True, verbose=False)
    dm = make_datamodule(dataset, **data)
    model = CellClassifier(arch, **network_io(network, dm, "evaluator.network"))
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
        if dataset not in DATASETS:
            raise ConfigError(f"evaluator=train supports dataset={' | '.join(DATASETS)}, got dataset={dataset!r}")
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
        if space.name not in SPACES:
            raise ConfigError(f"evaluator=train needs search_space={' | '.join(SPACES)}, got search_space={space.name}")
        self.space = space
        return space

    def query(self, archs: Sequence[Sequence[int]], rng: np.random.Generator) -> np.ndarray:
        seeds = [int(s) for s in rng.integers(2**31 - 1, size=len(archs))]
        with _NUMBERING:
            first = self.num_evaluations
            self.num_evaluations += len(archs)
        dirs = [str(Path(self.out_dir) / f"{first + i:05d}") for i in range(len(archs))]
        start = time.perf_counter()
        # Plain-data cells (submitit pickles them into fresh processes) and the space they belong to.
        space = getattr(self, "space", None)
        network = {**self.network, "search_space": getattr(space, "name", "nasnet")}
        from lanas.training.models import portable_arch

        cells = [portable_arch(space, a) if space is not None else tuple(a) for a in archs]
        args = [(a, s, d, self.data, network, self.trainer, getattr(self, "threads", None), self.dataset)
                for a, s, d in zip(cells, seeds, dirs)]
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
