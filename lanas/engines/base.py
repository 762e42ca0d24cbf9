"""Where evaluations run: the small interface the loop drives to keep ``workers`` evaluations in flight.

An :class:`Engine` takes one architecture at a time (:meth:`Engine.submit`) and hands back finished
evaluations one at a time, in completion order (:meth:`Engine.next_finished`). The loop
(:func:`lanas.loop.search`) submits while a worker is free and the budget allows, then tells the
searcher whichever evaluation finishes first: Syne Tune's and Optuna's asynchronous scheme.

Engines own no searcher and no file. What a checkpoint needs to go on is :meth:`Engine.state_dict`:
plain numbers, lists and architectures (the restricted unpickler of :mod:`lanas.checkpoint` reads
it back without knowing any engine class).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from lanas.evaluators.base import Evaluator
from lanas.spaces.base import Arch


@dataclass(frozen=True)
class Finished:
    """One evaluation that completed: what ran, on which worker, from when to when (engine seconds)."""

    arch: Arch
    reward: float
    worker: int
    started_s: float
    finished_s: float


class Engine(ABC):
    """Runs up to ``workers`` evaluations at once; see the module docstring."""

    name: str = "engine"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    @property
    @abstractmethod
    def num_pending(self) -> int:
        """Evaluations submitted and not yet handed back by :meth:`next_finished`."""

    @property
    def num_free(self) -> int:
        return self.workers - self.num_pending

    @abstractmethod
    def submit(self, arch: Arch, evaluator: Evaluator, rng: np.random.Generator) -> None:
        """Start evaluating ``arch`` on a free worker; ``rng`` is the run's evaluation generator."""

    @abstractmethod
    def next_finished(self) -> Finished:
        """Wait for the next evaluation to finish (earliest finish first; ties by submission order)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of the evaluations in flight (plain data)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any], evaluator: Evaluator) -> None:
        """Go on from :meth:`state_dict`: evaluations in flight are kept, or restarted where they died."""

    def pending_archs(self) -> list[Arch]:
        """Architectures in flight (in submission order)."""
        return []

    def close(self) -> None:
        """Stop what is still running (the search ended): nothing more is handed back."""
