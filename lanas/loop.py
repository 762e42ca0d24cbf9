"""The search loop's core: ask, evaluate, tell, one :class:`Record` per evaluated architecture.

:func:`search` does nothing else: no files, no clock besides the searcher's own time, no signals.
What a run keeps (trace, checkpoints, tracker, progress bar, summary) is done by the recorders of
:mod:`lanas.recorders`, which :func:`lanas.runner.run_search` attaches to it; the speed scripts
(``perf/``) and the experiments iterate over it directly, so every loop stops by the same rule
(:func:`finished`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from lanas.checkpoint import LoopState
from lanas.evaluators.base import Evaluator
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch, SearchSpace


@dataclass(frozen=True)
class Record:
    """One evaluated architecture, as the loop saw it."""

    sample: int  # 1 for the first sample of the run (counting samples before a resume)
    arch: Arch
    reward: float
    optimal: bool  # a global optimum of the evaluator (false where unknown)
    best_reward: float  # best reward of the run so far, this sample included
    searcher_s: float  # searcher time spent on this sample: its ask and tell, not the evaluation


def finished(state: LoopState, budget: int, stop_at_optimum: bool = True) -> bool:
    """The stop rule: the budget is spent, or (with ``stop_at_optimum``) a global optimum was evaluated."""
    return state.num_samples >= budget or (stop_at_optimum and state.samples_to_optimum is not None)


def search(space: SearchSpace, evaluator: Evaluator, searcher: Searcher, eval_rng: np.random.Generator,
           budget: int, stop_at_optimum: bool = True, state: LoopState | None = None) -> Iterator[Record]:
    """Ask, evaluate and tell until :func:`finished` or the searcher has nothing left to propose.

    Yields one record per evaluated architecture after the searcher was told about it; ``state``
    (updated in place, fresh when None) holds the counters, so a run restored from a checkpoint
    goes on from its ``state``. A consumer that stops iterating stops the search after that sample.
    """
    state = state if state is not None else LoopState()
    while not finished(state, budget, stop_at_optimum):
        start = time.perf_counter()
        archs = searcher.ask(1)
        asked = time.perf_counter()
        if not archs:
            return  # the searcher has nothing left to propose (space exhausted)
        rewards = np.asarray(evaluator.query(archs, eval_rng), dtype=np.float64)
        optimal = evaluator.is_optimal(archs)
        told = time.perf_counter()
        searcher.tell(archs, rewards)
        searcher_s = (asked - start) + (time.perf_counter() - told)
        for arch, reward, is_opt in zip(archs, rewards, optimal):
            state.num_samples += 1
            if reward > state.best_reward:
                state.best_reward, state.best_arch = float(reward), space.to_string(arch)
            if is_opt and state.samples_to_optimum is None:
                state.samples_to_optimum = state.num_samples
            yield Record(state.num_samples, arch, float(reward), bool(is_opt), state.best_reward, searcher_s)


def searcher_seconds(records: Iterable[Record]) -> float:
    """Run ``records`` (a :func:`search`) to its end; the searcher's seconds over all of them."""
    return sum(record.searcher_s for record in records)
