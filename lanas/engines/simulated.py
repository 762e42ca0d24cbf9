"""A discrete-event clock for tabular benchmarks: asynchronous evaluation at no cost, deterministically.

Each evaluation takes the benchmark's recorded training time (:mod:`lanas.engines.durations`) on a
simulated clock, as Syne Tune's simulator does: :meth:`SimulatedEngine.submit` looks the reward up
at once (the table has it) and files the evaluation under ``now + seconds`` in a heap;
:meth:`SimulatedEngine.next_finished` pops the earliest finish, moves the clock there and frees its
worker. Ties are broken by submission order, and a submission takes the lowest free worker id, so
the same config and seed give the same trace whatever the machine's load: nothing reads a real clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lanas.engines.base import Engine, Finished
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch

# seconds(archs) -> one duration per architecture
Durations = Callable[[Sequence[Arch]], np.ndarray]


class SimulatedEngine(Engine):
    """Simulated workers whose evaluations take ``seconds(arch)`` simulated seconds each."""

    name = "simulated"

    def __init__(self, workers: int, seconds: Durations) -> None:
        super().__init__(workers)
        self.seconds = seconds
        self.now = 0.0  # simulated seconds: the finish time of the last evaluation handed back
        self._seq = 0  # submissions so far: the tie-break of equal finish times
        # (finished_s, seq, worker, started_s, arch, reward): seq is unique, so arch is never compared
        self._heap: list[tuple[float, int, int, float, Arch, float]] = []
        self._free = list(range(workers))  # a heap of free worker ids

    @property
    def num_pending(self) -> int:
        return len(self._heap)

    def submit(self, arch: Arch, evaluator: Evaluator, rng: np.random.Generator) -> None:
        if not self._free:
            raise RuntimeError("submit with no free worker")
        reward = float(np.asarray(evaluator.query([arch], rng), dtype=np.float64)[0])
        seconds = float(self.seconds([arch])[0])
        worker = heapq.heappop(self._free)
        heapq.heappush(self._heap, (self.now + seconds, self._seq, worker, self.now, arch, reward))
        self._seq += 1

    def next_finished(self) -> Finished:
        finished_s, _, worker, started_s, arch, reward = heapq.heappop(self._heap)
        self.now = finished_s
        heapq.heappush(self._free, worker)
        return Finished(arch, reward, worker, started_s, finished_s)

    def pending_archs(self) -> list[Arch]:
        return [entry[4] for entry in sorted(self._heap, key=lambda entry: entry[1])]

    def state_dict(self) -> dict[str, Any]:
        return {"now": self.now, "seq": self._seq, "heap": [list(entry) for entry in self._heap],
                "free": list(self._free)}

    def load_state_dict(self, state: dict[str, Any], evaluator: Evaluator) -> None:
        self.now, self._seq = float(state["now"]), int(state["seq"])
        self._heap = [tuple(entry) for entry in state["heap"]]  # type: ignore[misc]
        heapq.heapify(self._heap)
        self._free = list(state["free"])
        heapq.heapify(self._free)
