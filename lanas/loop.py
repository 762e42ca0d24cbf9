"""The search loop's core: ask, evaluate, tell, one :class:`Record` per evaluated architecture.

:func:`search` does nothing else: no files, no clock besides the searcher's own time, no signals.
What a run keeps (trace, checkpoints, tracker, progress bar, summary) is done by the recorders of
:mod:`lanas.recorders`, which :func:`lanas.runner.run_search` attaches to it; the speed scripts
(``perf/``) and the experiments iterate over it directly, so every loop stops by the same rule
(:func:`finished`).

With an :class:`~lanas.engines.base.Engine` (``workers`` evaluations in flight) the loop is
asynchronous: it asks for one architecture per free worker, submits it, and tells the searcher each
result as it finishes, in completion order. Without one (``engine=None``) it is the sequential loop
of ask, evaluate, tell, unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from lanas.checkpoint import LoopState
from lanas.engines.base import Engine, Finished
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
    worker: int | None = None  # with an engine: the worker that evaluated it
    started_s: float | None = None  # with an engine: when its evaluation started and finished
    finished_s: float | None = None  # (simulated seconds for engine=simulated, real ones otherwise)


def finished(state: LoopState, budget: int, stop_at_optimum: bool = True) -> bool:
    """The stop rule: the budget is spent, or (with ``stop_at_optimum``) a global optimum was evaluated."""
    return state.num_samples >= budget or (stop_at_optimum and state.samples_to_optimum is not None)


def search(space: SearchSpace, evaluator: Evaluator, searcher: Searcher, eval_rng: np.random.Generator,
           budget: int, stop_at_optimum: bool = True, state: LoopState | None = None,
           engine: Engine | None = None) -> Iterator[Record]:
    """Ask, evaluate and tell until :func:`finished` or the searcher has nothing left to propose.

    Yields one record per evaluated architecture after the searcher was told about it; ``state``
    (updated in place, fresh when None) holds the counters, so a run restored from a checkpoint
    goes on from its ``state``. A consumer that stops iterating stops the search after that sample.
    With an ``engine`` (and its evaluations in flight, when restored with ``state``) see
    :func:`search_async`.
    """
    state = state if state is not None else LoopState()
    if engine is not None:
        yield from search_async(space, evaluator, searcher, eval_rng, budget, engine, stop_at_optimum, state)
        return
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


def search_async(space: SearchSpace, evaluator: Evaluator, searcher: Searcher, eval_rng: np.random.Generator,
                 budget: int, engine: Engine, stop_at_optimum: bool = True,
                 state: LoopState | None = None) -> Iterator[Record]:
    """Keep ``engine.workers`` evaluations in flight; tell and yield each one as it finishes.

    A free worker gets a new architecture while the finished and pending evaluations together stay
    within ``budget``; the searcher is asked for one at a time (so it knows of every pending one,
    see its docstring) and each submission is told before the next finished one is handed back.
    Stopping (budget, optimum, an exhausted space) leaves the evaluations still in flight unfinished:
    their results are never told (``engine.close()`` is the caller's).
    A record yields right after its result was told and before any new submission, so a checkpoint
    taken there holds the engine's evaluations in flight (:meth:`Engine.state_dict`) and a resumed
    search refills the free worker exactly as an uninterrupted one would.
    """
    state = state if state is not None else LoopState()
    exhausted = False
    while not finished(state, budget, stop_at_optimum):
        searcher_s = 0.0
        while not exhausted and engine.num_free > 0 and state.num_samples + engine.num_pending < budget:
            start = time.perf_counter()
            archs = searcher.ask(1)
            searcher_s += time.perf_counter() - start
            if not archs:
                exhausted = True  # nothing left to propose: finish what is in flight
                break
            engine.submit(archs[0], evaluator, eval_rng)
        if engine.num_pending == 0:
            return
        done: Finished = engine.next_finished()
        optimal = bool(evaluator.is_optimal([done.arch])[0])
        start = time.perf_counter()
        searcher.tell([done.arch], np.array([done.reward]))
        searcher_s += time.perf_counter() - start
        state.num_samples += 1
        state.eval_seconds += done.finished_s - done.started_s
        state.clock_s = max(state.clock_s, done.finished_s)
        if done.reward > state.best_reward:
            state.best_reward, state.best_arch = float(done.reward), space.to_string(done.arch)
        if optimal and state.samples_to_optimum is None:
            state.samples_to_optimum = state.num_samples
            state.time_to_optimum_s = done.finished_s
        yield Record(state.num_samples, done.arch, float(done.reward), optimal, state.best_reward, searcher_s,
                     done.worker, done.started_s, done.finished_s)


def searcher_seconds(records: Iterable[Record]) -> float:
    """Run ``records`` (a :func:`search`) to its end; the searcher's seconds over all of them."""
    return sum(record.searcher_s for record in records)
