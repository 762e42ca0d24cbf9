"""``engine=slurm``: each evaluation is one submitit job (SLURM, or submitit's local executor for tests).

A free worker submits ``evaluate_in_job(evaluator, arch, seed, number)`` through
``submitit.AutoExecutor(folder=<run dir>/submitit, cluster=...)``; :meth:`ClusterEngine.next_finished`
polls the jobs in flight and hands back the first one found done (ties: submission order). Times are
real seconds since the search started.

The checkpoint keeps each job in flight as ``[job id, architecture, seed, worker, started_s, number]``.
A resumed search re-attaches to those job ids (``submitit.SlurmJob(folder, id)``): a job that finished
while the search was down, or is still running, is read back when done instead of being trained again.
A job that can no longer be read (a local job killed with the search: no process and no result) is
submitted again with the same seed and number.

The evaluator is pickled into the job and evaluates in the job's process: an evaluator that would
itself submit work (``evaluator=train``'s ``executor``) is told to run in process there, and its
evaluation number (the folder of its logs) is the engine's submission number.
"""

from __future__ import annotations

import copy
import heapq
import time
from pathlib import Path
from typing import Any

import numpy as np

from lanas.engines.base import Engine, Finished
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch

CLUSTERS = ("slurm", "local", "debug")


def evaluate_in_job(evaluator: Evaluator, arch: Arch, seed: int, number: int) -> float:
    """What a job runs: the evaluator's reward for ``arch``, with its own generator from ``seed``."""
    evaluator = copy.copy(evaluator)
    if getattr(evaluator, "executor", None) is not None:
        evaluator.executor = "none"  # type: ignore[attr-defined]  # this job is the evaluation's process
    if getattr(evaluator, "num_evaluations", None) is not None:
        evaluator.num_evaluations = number  # type: ignore[attr-defined]  # its log folder: unique per submission
    return float(np.asarray(evaluator.query([arch], np.random.default_rng(seed)), dtype=np.float64)[0])


class ClusterEngine(Engine):
    """Evaluations as submitit jobs; see the module docstring."""

    name = "slurm"

    def __init__(self, workers: int, folder: str | Path, cluster: str = "slurm", params: dict[str, Any] | None = None,
                 elapsed_s: float = 0.0, poll_s: float = 1.0) -> None:
        super().__init__(workers)
        import submitit

        self.folder, self.cluster, self.poll_s = Path(folder), cluster, poll_s
        self.executor = submitit.AutoExecutor(folder=self.folder, cluster=cluster)
        if params:
            self.executor.update_parameters(**params)
        self._start = time.perf_counter() - elapsed_s
        self._number = 0  # submissions so far (the evaluations' numbers)
        self._free = list(range(workers))
        # number -> [job, arch, seed, worker, started_s]
        self._running: dict[int, list[Any]] = {}

    def now(self) -> float:
        return time.perf_counter() - self._start

    @property
    def num_pending(self) -> int:
        return len(self._running)

    def _submit(self, evaluator: Evaluator, arch: Arch, seed: int, worker: int, number: int,
                started: float | None = None) -> None:
        job = self.executor.submit(evaluate_in_job, evaluator, arch, seed, number)
        self._running[number] = [job, arch, seed, worker, self.now() if started is None else started]

    def submit(self, arch: Arch, evaluator: Evaluator, rng: np.random.Generator) -> None:
        if not self._free:
            raise RuntimeError("submit with no free worker")
        self._submit(evaluator, arch, int(rng.integers(2**63 - 1)), heapq.heappop(self._free), self._number)
        self._number += 1

    def next_finished(self) -> Finished:
        while True:
            for number in sorted(self._running):
                job, arch, _, worker, started = self._running[number]
                if job.done():
                    reward = float(job.result())  # a failed job raises here and stops the search
                    del self._running[number]
                    heapq.heappush(self._free, worker)
                    return Finished(arch, reward, worker, started, self.now())
            time.sleep(self.poll_s)

    def pending_archs(self) -> list[Arch]:
        return [self._running[number][1] for number in sorted(self._running)]

    def state_dict(self) -> dict[str, Any]:
        return {"number": self._number,
                "running": [[str(job.job_id), arch, seed, worker, started, number]
                            for number, (job, arch, seed, worker, started) in sorted(self._running.items())]}

    def load_state_dict(self, state: dict[str, Any], evaluator: Evaluator) -> None:
        import submitit

        self._number = int(state["number"])
        for job_id, arch, seed, worker, started, number in state["running"]:
            self._free.remove(int(worker))
            job_class = submitit.SlurmJob if self.cluster == "slurm" else submitit.LocalJob
            job = job_class(folder=self.folder, job_id=str(job_id))
            if self.cluster == "slurm" or job.paths.result_pickle.exists():
                self._running[int(number)] = [job, arch, int(seed), int(worker), float(started)]
            else:  # a local job died with the search before it finished: run it again, same seed and number
                self._submit(evaluator, arch, int(seed), int(worker), int(number), float(started))
        heapq.heapify(self._free)

    def close(self) -> None:
        for job, *_ in self._running.values():
            try:
                job.cancel(check=False)
            except Exception:  # noqa: BLE001  (a job that ended meanwhile: nothing to cancel)
                pass
