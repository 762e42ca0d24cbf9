"""One run: the loop's core with the recorders that leave the run directory behind, and clean stops.

``trace.csv`` gets one row per evaluated architecture, flushed as it arrives, so a crash loses
nothing already evaluated; ``summary.json`` is written atomically at the end (and, marked
``"complete": false``, when a signal stops the run). With a :class:`~lanas.checkpoint.Checkpointer`
the whole search state is saved every ``every`` samples and at exit; a run resumed from it
truncates the trace to the checkpoint and redoes the rest exactly (every generator is restored).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from lanas.checkpoint import Checkpointer, LoopState
from lanas.engines.base import Engine
from lanas.errors import LanasError
from lanas.evaluators.base import Evaluator
from lanas.logging import RunLogger, SafeLogger
from lanas.loop import finished, search
from lanas.recorders import (CheckpointSaver, Clock, ProgressBar, Recorder, RunInfo, SummaryWriter, Tracker,
                             TraceWriter, summarize)
from lanas.rundir import TRACE
from lanas.searchers.base import Searcher
from lanas.spaces.base import SearchSpace

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(LanasError):
    """SIGINT/SIGTERM stopped the run cleanly: checkpoint and partial summary are on disk."""

    def __init__(self, signum: int, num_samples: int, out_dir: Path) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after {num_samples} samples; checkpoint saved, "
            f"continue with: python run.py resume={out_dir}"
        )


class RunWriteError(LanasError):
    """The run's files could not be written (disk full, folder made read-only): the search stopped."""


class _StopFlag:
    """Signal handler: the first SIGINT/SIGTERM asks the loop to stop after the current sample; a second stops now."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum


@contextmanager
def _stop_on_signals(flag: _StopFlag) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers can only be installed from the main thread (e.g. not in some launchers)
        return
    previous = {sig: signal.signal(sig, flag) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_search(
    space: SearchSpace,
    evaluator: Evaluator,
    searcher: Searcher,
    info: RunInfo,
    out_dir: str | Path,
    eval_rng: np.random.Generator,
    stop_at_optimum: bool = True,
    logger: RunLogger | None = None,
    progress: bool = True,
    checkpointer: Checkpointer | None = None,
    state: LoopState | None = None,
    trace_timing: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Run one search to its budget (or the optimum) and return the summary written to disk.

    ``state`` (with ``searcher`` and ``eval_rng`` loaded from the same checkpoint) resumes a run;
    ``trace_timing=False`` leaves the ``elapsed_s`` column out so traces compare byte for byte.
    With an ``engine`` (its evaluations in flight restored too, when resuming) the loop keeps
    ``engine.workers`` evaluations running and the trace gains ``worker, started_s, finished_s``.
    Raises :class:`RunInterrupted` after a clean stop on SIGINT/SIGTERM.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = state or LoopState()
    try:
        return _run_search(space, evaluator, searcher, info, out_dir, eval_rng, stop_at_optimum, logger, progress,
                           checkpointer, state, trace_timing, engine)
    except OSError as err:
        where = err.filename or out_dir
        kept = ("its last checkpoint is intact" if checkpointer is not None and checkpointer.exists()
                else "there is no checkpoint yet (a resume starts over)")
        raise RunWriteError(
            f"cannot write {where} at sample {state.num_samples}: {err.strerror or err}; the search stopped, "
            f"{kept}; free space and resume with resume={out_dir}"
        ) from err


def _run_search(space: SearchSpace, evaluator: Evaluator, searcher: Searcher, info: RunInfo, out_dir: Path,
                eval_rng: np.random.Generator, stop_at_optimum: bool, logger: RunLogger | None, progress: bool,
                checkpointer: Checkpointer | None, state: LoopState, trace_timing: bool,
                engine: Engine | None) -> dict[str, Any]:
    clock = Clock(state.elapsed_s)
    stop = _StopFlag()
    # summary.json is written before the tracker hears of the summary; every row a checkpoint counts is
    # in trace.csv and in the tracker before the checkpoint is written.
    recorders: list[Recorder] = [SummaryWriter(out_dir)]
    try:
        trace = TraceWriter(out_dir / TRACE, space, state, clock, timing=trace_timing, engine=engine is not None)
        recorders.append(trace)
        recorders += [Tracker(SafeLogger(logger or RunLogger()), evaluator.global_optimum),
                      ProgressBar(info.searcher, info.budget, state, enabled=progress)]
        if checkpointer is not None:
            objects = {"searcher": searcher, "eval_rng": eval_rng}
            recorders.append(CheckpointSaver(checkpointer, trace, clock, state, objects, evaluator, engine))
        stopped = False
        with _stop_on_signals(stop):
            for record in search(space, evaluator, searcher, eval_rng, info.budget, stop_at_optimum, state, engine):
                for recorder in recorders:
                    recorder.on_sample(record, state)
                if stop.signum is not None:
                    stopped = True
                    break
            for recorder in recorders:
                recorder.on_end(state)
        # A signal that arrives once the work is done does not make the run incomplete.
        interrupted = stopped and not finished(state, info.budget, stop_at_optimum)
        summary = summarize(info, state, space, evaluator, searcher, clock(), complete=not interrupted)
        for recorder in recorders:
            recorder.on_summary(summary)
    finally:
        if engine is not None:
            engine.close()
        for recorder in recorders:
            recorder.close()
    if interrupted:
        raise RunInterrupted(stop.signum, state.num_samples, out_dir)  # type: ignore[arg-type]
    return summary


def summary_line(summary: dict[str, Any], out_dir: str | Path) -> str:
    """The one line a run prints at the end."""
    reached = summary["samples_to_optimum"]
    optimum = summary["global_optimum"]
    best = summary["best_reward"]
    parts = [
        f"{summary['searcher']} on {summary['benchmark']}/{summary['dataset']} seed={summary['seed']}:",
        f"best_reward={best:.6f}" if best is not None else "best_reward=none",
        f"global_optimum={optimum:.6f}" if optimum is not None else "global_optimum=unknown",
        f"samples_to_optimum={reached if reached is not None else 'not reached'}",
        f"num_samples={summary['num_samples']}",
        f"wall_time_s={summary['wall_time_s']:.2f}",
    ]
    if summary.get("engine") not in (None, "none"):  # workers / engine: when the optimum finished, engine seconds
        reached_s = summary.get("time_to_optimum_s")
        parts += [f"workers={summary.get('workers')} engine={summary['engine']}",
                  f"time_to_optimum_s={reached_s:.1f}" if reached_s is not None else "time_to_optimum_s=not reached"]
    parts.append(f"out={out_dir}")
    if best is not None and optimum is not None and best > optimum:
        # benchmark.reward=sampled: a reward is one training seed's accuracy, the optimum the best mean.
        parts.insert(3, "(best_reward is one sampled seed's accuracy; global_optimum is the best mean)")
    return " ".join(parts)
