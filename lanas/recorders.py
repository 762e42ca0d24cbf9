"""What a run keeps of its search: recorders called beside the loop's core (:func:`lanas.loop.search`).

A recorder has four hooks, called in the order the recorders are listed:

- ``on_sample(record, state)`` after every evaluated architecture;
- ``on_end(state)`` once the loop stopped without an exception (budget, optimum, exhausted space or
  a clean stop on a signal): what is pending is saved (the last checkpoint);
- ``on_summary(summary)`` with the run's final summary;
- ``close()`` always, exception or not: files are closed, nothing more is written.

An exception inside the loop (a crash, standing for SIGKILL) skips ``on_end`` and ``on_summary``:
what is on disk is then exactly what a killed process leaves, and a resume redoes the rest.
:func:`lanas.runner.run_search` lists the summary writer first (``summary.json`` is on disk before a
tracker hears of the summary), then trace, tracker, progress bar and checkpoint: every row a
checkpoint counts is in the trace (and in ``metrics.csv``) before the checkpoint is written.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from lanas.checkpoint import Checkpointer, LoopState
from lanas.engines.base import Engine
from lanas.errors import LanasError
from lanas.evaluators.base import Evaluator
from lanas.logging import RunLogger
from lanas.loop import Record
from lanas.rundir import CHECKPOINT, SUMMARY, write_json_atomic
from lanas.searchers.base import Searcher
from lanas.spaces.base import FiniteSearchSpace, SearchSpace

TRACE_COLUMNS = ("sample", "arch", "reward", "best_reward", "elapsed_s")
# With an engine (workers > 1, or engine=simulated|local given): who evaluated a sample, from when to when.
ENGINE_COLUMNS = ("worker", "started_s", "finished_s")


class Recorder:
    """Does nothing at every hook; the base of the recorders below."""

    def on_sample(self, record: Record, state: LoopState) -> None:
        pass

    def on_end(self, state: LoopState) -> None:
        pass

    def on_summary(self, summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class Clock:
    """Seconds of search so far, counting the time spent before a resume (``LoopState.elapsed_s``)."""

    def __init__(self, before: float = 0.0) -> None:
        self.start = time.perf_counter() - before

    def __call__(self) -> float:
        return time.perf_counter() - self.start


class TraceWriter(Recorder):
    """``trace.csv``: one row per sample, flushed as it arrives so a crash loses nothing evaluated.

    A fresh run starts the file with its header; a resumed one cuts it back to the size the checkpoint
    recorded (``state.trace_bytes``), because the rows after it are redone identically.
    ``timing=False`` leaves the ``elapsed_s`` column out so traces compare byte for byte.
    ``engine=True`` adds :data:`ENGINE_COLUMNS` before it (rows are then in completion order).
    """

    def __init__(self, path: Path, space: SearchSpace, state: LoopState, clock: Clock, timing: bool = True,
                 engine: bool = False) -> None:
        self.path, self.space, self.clock, self.timing, self.engine = path, space, clock, timing, engine
        columns = TRACE_COLUMNS[:-1] + (ENGINE_COLUMNS if engine else ()) + TRACE_COLUMNS[-1:] * timing
        self.handle = self._open(state, columns)
        self.writer = csv.writer(self.handle)

    def _open(self, state: LoopState, columns: tuple[str, ...]) -> IO[str]:
        if state.trace_bytes == 0:
            handle = open(self.path, "w", newline="")
            csv.writer(handle).writerow(columns)
            handle.flush()
            return handle
        size = self.path.stat().st_size if self.path.exists() else -1
        if size < state.trace_bytes:
            raise LanasError(
                f"{self.path} has {max(size, 0)} bytes but the checkpoint recorded {state.trace_bytes}: "
                f"the trace was truncated or replaced; delete {CHECKPOINT} to start this run over"
            )
        with open(self.path, "r+b") as raw:
            raw.truncate(state.trace_bytes)  # rows after the checkpoint are redone identically
        return open(self.path, "a", newline="")

    def on_sample(self, record: Record, state: LoopState) -> None:
        row: tuple = (record.sample, self.space.to_string(record.arch), record.reward, record.best_reward)
        if self.engine:
            row += (record.worker, f"{record.started_s:.4f}", f"{record.finished_s:.4f}")
        try:
            self.writer.writerow(row + (f"{self.clock():.4f}",) if self.timing else row)
            self.handle.flush()
        except OSError as err:  # e.g. a full disk: name the file in the one-line error
            raise OSError(err.errno, err.strerror, str(self.path)) from err

    def sync(self) -> int:
        """Make every row so far durable (a power cut too) and return the file's size in bytes."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return os.fstat(self.handle.fileno()).st_size

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass  # the write that failed already reported it; what is on disk is what a crash leaves


class CheckpointSaver(Recorder):
    """The whole search state every ``checkpointer.every`` samples and once more at the end.

    ``objects`` are what a resume restores besides the loop's counters (the searcher, the evaluation
    generator); an evaluator that learns as it goes (one with ``state_dict``, e.g. a supernet) is
    saved too, and so are an engine's evaluations in flight. The trace is synced first, so the
    checkpoint never counts rows a power cut could lose.
    """

    def __init__(self, checkpointer: Checkpointer, trace: TraceWriter, clock: Clock, state: LoopState,
                 objects: dict[str, Any], evaluator: Evaluator, engine: Engine | None = None) -> None:
        self.checkpointer, self.trace, self.clock = checkpointer, trace, clock
        self.objects, self.evaluator, self.engine = objects, evaluator, engine
        self.saved_at = state.num_samples

    def save(self, state: LoopState) -> None:
        state.trace_bytes = self.trace.sync()
        state.elapsed_s = self.clock()
        saved = {**self.objects, "loop": state}
        if hasattr(self.evaluator, "state_dict"):  # evaluators that learn as they go (e.g. a supernet)
            saved["evaluator_state"] = self.evaluator.state_dict()
        if self.engine is not None:  # the evaluations in flight (plain data)
            saved["engine_state"] = self.engine.state_dict()
        self.checkpointer.save(saved)
        self.saved_at = state.num_samples

    def on_sample(self, record: Record, state: LoopState) -> None:
        if state.num_samples - self.saved_at >= self.checkpointer.every:
            self.save(state)

    def on_end(self, state: LoopState) -> None:
        if self.saved_at != state.num_samples or not self.checkpointer.exists():
            self.save(state)


class Tracker(Recorder):
    """An experiment tracker (wandb, csv, none): reward, best reward and regret per sample, then the summary.

    Give it a :class:`~lanas.logging.SafeLogger`: a failing tracker must never stop the search.
    """

    def __init__(self, logger: RunLogger, optimum: float | None) -> None:
        self.logger, self.optimum = logger, optimum

    def on_sample(self, record: Record, state: LoopState) -> None:
        metrics = {"reward": record.reward, "best_reward": record.best_reward}
        if self.optimum is not None:
            metrics["regret"] = self.optimum - record.best_reward
        self.logger.log(record.sample, metrics)

    def on_summary(self, summary: dict[str, Any]) -> None:
        self.logger.finish(summary)


class ProgressBar(Recorder):
    """A progress bar on stderr (terminals only; ``enabled=False``: none) with the best reward so far."""

    def __init__(self, label: str, budget: int, state: LoopState, enabled: bool = True) -> None:
        self.bar = tqdm(total=budget, initial=state.num_samples, desc=label, unit="sample",
                        disable=not enabled or None, dynamic_ncols=True, leave=False)

    def on_sample(self, record: Record, state: LoopState) -> None:
        self.bar.update(1)
        self.bar.set_postfix(best=f"{record.best_reward:.4f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


@dataclass
class RunInfo:
    """What a run is, for the summary and the loggers."""

    searcher: str
    search_space: str
    benchmark: str
    dataset: str
    seed: int
    budget: int
    extra: dict[str, Any] = field(default_factory=dict)
    workers: int = 1
    engine: str = "none"  # none: the sequential loop; simulated | local


def summarize(info: RunInfo, state: LoopState, space: SearchSpace, evaluator: Evaluator, searcher: Searcher,
              wall_time_s: float, complete: bool) -> dict[str, Any]:
    """The run's ``summary.json``: what was run, what it found, and the sizes the analysis needs.

    ``pool_size`` (architectures the searcher could draw from; None for a space that cannot be
    enumerated) and ``num_optima`` (None where unknown) give random search's expected samples to the
    optimum without rebuilding the benchmark.
    """
    optima = evaluator.optimal_archs()
    return {
        "searcher": info.searcher,
        "search_space": info.search_space,
        "benchmark": info.benchmark,
        "dataset": info.dataset,
        "seed": info.seed,
        "budget": info.budget,
        "num_samples": state.num_samples,
        "best_reward": None if state.best_arch is None else state.best_reward,
        "best_arch": state.best_arch,
        "global_optimum": evaluator.global_optimum,
        "samples_to_optimum": state.samples_to_optimum,
        "wall_time_s": round(wall_time_s, 4),
        "complete": complete,
        "resumes": state.resumes,
        "workers": info.workers,
        "engine": info.engine,
        # Engine seconds (simulated for engine=simulated, real for local; None for the sequential loop):
        "time_to_optimum_s": state.time_to_optimum_s,
        "eval_seconds_total": round(state.eval_seconds, 4) if info.engine != "none" else None,
        "clock_s": round(state.clock_s, 4) if info.engine != "none" else None,
        **info.extra,
        "searcher_stats": searcher.stats(),
        "evaluator_stats": evaluator.stats(),
        "pool_size": len(space) if isinstance(space, FiniteSearchSpace) else None,
        "num_optima": None if optima is None else len(optima),
    }


class SummaryWriter(Recorder):
    """``summary.json``, written atomically: readers see the old file or the new one, never half of one."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / SUMMARY

    def on_summary(self, summary: dict[str, Any]) -> None:
        write_json_atomic(self.path, summary)

