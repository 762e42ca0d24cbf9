"""Real evaluations side by side on this machine: one thread per worker, each waiting on its evaluation.

``evaluator=train evaluator.executor=local`` makes every evaluation a submitit subprocess (its own
process, its own torch threads); a worker here is a thread of a :class:`~concurrent.futures.ThreadPoolExecutor`
that calls ``evaluator.query([arch], rng)`` and waits for it, so ``workers`` trainings run at once.
Times are real seconds since the search started (counting the time before a resume).

Each submission draws one seed from the run's evaluation generator, in submission order, and the
evaluation gets its own generator from it: which thread finishes first does not change any seed.
A checkpoint keeps the evaluations in flight (architecture, seed, worker); a resumed run starts
them again (their processes died with the search): nothing finished is evaluated twice, nothing
in flight is lost.
"""

from __future__ import annotations

import heapq
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import numpy as np

from lanas.engines.base import Engine, Finished
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch


class LocalEngine(Engine):
    """``workers`` evaluations at once in threads of this process; see the module docstring."""

    name = "local"

    def __init__(self, workers: int, elapsed_s: float = 0.0) -> None:
        super().__init__(workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lanas-worker")
        self._start = time.perf_counter() - elapsed_s
        self._seq = 0
        self._free = list(range(workers))
        # seq -> (future, worker, started_s, arch, seed)
        self._running: dict[int, tuple[Future, int, float, Arch, int]] = {}
        self._done: dict[int, float] = {}  # seq -> finished_s, stamped by the worker thread

    def now(self) -> float:
        return time.perf_counter() - self._start

    @property
    def num_pending(self) -> int:
        return len(self._running)

    def _run(self, seq: int, arch: Arch, evaluator: Evaluator, seed: int) -> float:
        try:
            return float(np.asarray(evaluator.query([arch], np.random.default_rng(seed)), dtype=np.float64)[0])
        finally:
            self._done[seq] = self.now()

    def _start_one(self, arch: Arch, evaluator: Evaluator, seed: int, worker: int) -> None:
        started = self.now()
        future = self._pool.submit(self._run, self._seq, arch, evaluator, seed)
        self._running[self._seq] = (future, worker, started, arch, seed)
        self._seq += 1

    def submit(self, arch: Arch, evaluator: Evaluator, rng: np.random.Generator) -> None:
        if not self._free:
            raise RuntimeError("submit with no free worker")
        self._start_one(arch, evaluator, int(rng.integers(2**63 - 1)), heapq.heappop(self._free))

    def next_finished(self) -> Finished:
        futures = {entry[0]: seq for seq, entry in self._running.items()}
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        # Earliest finish first among those done; the submission order breaks ties.
        seq = min((futures[f] for f in done), key=lambda s: (self._done.get(s, float("inf")), s))
        future, worker, started, arch, _ = self._running.pop(seq)
        reward = future.result()  # an evaluation's exception stops the search, as it does without workers
        heapq.heappush(self._free, worker)
        return Finished(arch, reward, worker, started, self._done.pop(seq))

    def pending_archs(self) -> list[Arch]:
        return [self._running[seq][3] for seq in sorted(self._running)]

    def state_dict(self) -> dict[str, Any]:
        return {"running": [[arch, seed, worker] for _, worker, _, arch, seed in
                            (self._running[seq] for seq in sorted(self._running))]}

    def load_state_dict(self, state: dict[str, Any], evaluator: Evaluator) -> None:
        for arch, seed, worker in state["running"]:
            self._free.remove(int(worker))
            heapq.heapify(self._free)
            self._start_one(arch, evaluator, int(seed), int(worker))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
