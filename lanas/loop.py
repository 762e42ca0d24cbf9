"""The ask / evaluate / tell loop, and the files every run leaves behind.

``trace.csv`` gets one row per evaluated architecture, flushed as it arrives, so a crash loses
nothing already evaluated; ``summary.json`` is written atomically at the end (and, marked
``"complete": false``, when a signal stops the run). With a :class:`~lanas.checkpoint.Checkpointer`
the whole search state is saved every ``every`` samples and at exit; a run resumed from it
truncates the trace to the checkpoint and redoes the rest exactly (every generator is restored).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lanas.benchmarks.base import Evaluator
from lanas.checkpoint import Checkpointer, LoopState
from lanas.errors import LanasError
from lanas.logging import RunLogger
from lanas.searchers.base import Searcher
from lanas.spaces.base import SearchSpace

TRACE_COLUMNS = ("sample", "arch", "reward", "best_reward", "elapsed_s")
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


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON next to ``path`` and rename it into place: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_summary(out_dir: str | Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when absent or unreadable."""
    try:
        return json.loads((Path(out_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None


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


class SafeLogger(RunLogger):
    """Any tracker behind a guard: its first failure is reported once, then it is switched off.

    Local files are written before the tracker is called, so a tracker can never lose results.
    """

    def __init__(self, inner: RunLogger) -> None:
        self.inner: RunLogger | None = inner

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, method)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - a tracker must never stop the search
            print(f"warning: logger {type(self.inner).__name__}.{method} failed ({type(err).__name__}: {err}); "
                  "continuing without it, local results are unaffected", file=sys.stderr)
            self.inner = None

    def start(self, *args: Any, **kwargs: Any) -> None:
        self._call("start", *args, **kwargs)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._call("log", step, metrics)

    def finish(self, summary: dict[str, Any]) -> None:
        self._call("finish", summary)


class _StopFlag:
    """Signal handler: the first SIGINT/SIGTERM asks the loop to stop after the current batch; a second stops now."""

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


def _open_trace(path: Path, state: LoopState, columns: tuple[str, ...]):
    """A fresh trace with its header, or the existing one cut back to the checkpoint's rows."""
    if state.trace_bytes == 0:
        handle = open(path, "w", newline="")
        csv.writer(handle).writerow(columns)
    else:
        size = path.stat().st_size if path.exists() else -1
        if size < state.trace_bytes:
            raise LanasError(
                f"{path} has {max(size, 0)} bytes but the checkpoint recorded {state.trace_bytes}: "
                "the trace was truncated or replaced; delete checkpoint.pkl to start this run over"
            )
        with open(path, "r+b") as raw:
            raw.truncate(state.trace_bytes)  # rows after the checkpoint are redone identically
        handle = open(path, "a", newline="")
    handle.flush()
    return handle


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
) -> dict[str, Any]:
    """Run one search to its budget (or the optimum) and return the summary written to disk.

    ``state`` (with ``searcher`` and ``eval_rng`` loaded from the same checkpoint) resumes a run;
    ``trace_timing=False`` leaves the ``elapsed_s`` column out so traces compare byte for byte.
    Raises :class:`RunInterrupted` after a clean stop on SIGINT/SIGTERM.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = SafeLogger(logger or RunLogger())
    optimum = evaluator.global_optimum
    columns = TRACE_COLUMNS if trace_timing else TRACE_COLUMNS[:-1]
    state = state or LoopState()
    start = time.perf_counter() - state.elapsed_s
    saved_at = state.num_samples
    stop = _StopFlag()
    exhausted = False

    def finished() -> bool:
        return state.num_samples >= info.budget or (stop_at_optimum and state.samples_to_optimum is not None)

    def checkpoint(handle) -> None:
        nonlocal saved_at
        handle.flush()
        os.fsync(handle.fileno())  # the rows a checkpoint counts must survive a power cut too
        state.trace_bytes = os.fstat(handle.fileno()).st_size
        state.elapsed_s = time.perf_counter() - start
        saved = {"searcher": searcher, "eval_rng": eval_rng, "loop": state}
        if hasattr(evaluator, "state_dict"):  # evaluators that learn as they go (e.g. a supernet)
            saved["evaluator_state"] = evaluator.state_dict()
        checkpointer.save(saved)
        saved_at = state.num_samples

    bar = tqdm(total=info.budget, initial=state.num_samples, desc=f"{info.searcher}", unit="sample",
               disable=not progress or None, dynamic_ncols=True, leave=False)
    with _stop_on_signals(stop), _open_trace(out_dir / "trace.csv", state, columns) as handle:
        trace = csv.writer(handle)
        while not finished() and stop.signum is None:
            archs = searcher.ask(1)
            if not archs:
                exhausted = True  # the searcher has nothing left to propose (space exhausted)
                break
            rewards = np.asarray(evaluator.query(archs, eval_rng), dtype=np.float64)
            optimal = evaluator.is_optimal(archs)
            searcher.tell(archs, rewards)
            elapsed = time.perf_counter() - start
            for arch, reward, is_opt in zip(archs, rewards, optimal):
                state.num_samples += 1
                if reward > state.best_reward:
                    state.best_reward, state.best_arch = float(reward), space.to_string(arch)
                if is_opt and state.samples_to_optimum is None:
                    state.samples_to_optimum = state.num_samples
                row = (state.num_samples, space.to_string(arch), float(reward), state.best_reward)
                trace.writerow(row + (f"{elapsed:.4f}",) if trace_timing else row)
                metrics = {"reward": float(reward), "best_reward": state.best_reward}
                if optimum is not None:
                    metrics["regret"] = optimum - state.best_reward
                logger.log(state.num_samples, metrics)
            handle.flush()
            bar.update(len(archs))
            bar.set_postfix(best=f"{state.best_reward:.4f}", refresh=False)
            if checkpointer is not None and state.num_samples - saved_at >= checkpointer.every:
                checkpoint(handle)
        if checkpointer is not None and (saved_at != state.num_samples or not checkpointer.exists()):
            checkpoint(handle)
    bar.close()
    # A signal that arrives once the work is done does not make the run incomplete.
    interrupted = stop.signum is not None and not (finished() or exhausted)

    summary = {
        "searcher": info.searcher,
        "search_space": info.search_space,
        "benchmark": info.benchmark,
        "dataset": info.dataset,
        "seed": info.seed,
        "budget": info.budget,
        "num_samples": state.num_samples,
        "best_reward": None if state.best_arch is None else state.best_reward,
        "best_arch": state.best_arch,
        "global_optimum": optimum,
        "samples_to_optimum": state.samples_to_optimum,
        "wall_time_s": round(time.perf_counter() - start, 4),
        "complete": not interrupted,
        "resumes": state.resumes,
        **info.extra,
        "searcher_stats": searcher.stats(),
        "evaluator_stats": evaluator.stats(),
    }
    write_json_atomic(out_dir / "summary.json", summary)
    logger.finish(summary)
    if interrupted:
        raise RunInterrupted(stop.signum, state.num_samples, out_dir)
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
        f"out={out_dir}",
    ]
    return " ".join(parts)
