"""The ask / evaluate / tell loop, and the files every run leaves behind.

``trace.csv`` gets one row per evaluated architecture, flushed as it arrives, so a crash loses
nothing already evaluated; ``summary.json`` is written atomically at the end.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lanas.benchmarks.base import Evaluator
from lanas.logging import RunLogger
from lanas.searchers.base import Searcher
from lanas.spaces.base import SearchSpace

TRACE_COLUMNS = ("sample", "arch", "reward", "best_reward", "elapsed_s")


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON next to ``path`` and rename it into place: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


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
) -> dict[str, Any]:
    """Run one search to its budget (or the optimum) and return the summary written to disk."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    optimum = evaluator.global_optimum
    best_reward, best_arch, samples_to_optimum = -np.inf, None, None
    num_samples = 0
    start = time.perf_counter()

    bar = tqdm(total=info.budget, desc=f"{info.searcher}", unit="sample", disable=not progress or None,
               dynamic_ncols=True, leave=False)
    with open(out_dir / "trace.csv", "w", newline="") as handle:
        trace = csv.writer(handle)
        trace.writerow(TRACE_COLUMNS)
        handle.flush()
        while num_samples < info.budget:
            archs = searcher.ask(1)
            if not archs:
                break  # the searcher has nothing left to propose (space exhausted)
            rewards = np.asarray(evaluator.query(archs, eval_rng), dtype=np.float64)
            optimal = evaluator.is_optimal(archs)
            searcher.tell(archs, rewards)
            elapsed = time.perf_counter() - start
            for arch, reward, is_opt in zip(archs, rewards, optimal):
                num_samples += 1
                if reward > best_reward:
                    best_reward, best_arch = float(reward), space.to_string(arch)
                if is_opt and samples_to_optimum is None:
                    samples_to_optimum = num_samples
                trace.writerow((num_samples, space.to_string(arch), float(reward), best_reward, f"{elapsed:.4f}"))
                if logger is not None:
                    metrics = {"reward": float(reward), "best_reward": best_reward}
                    if optimum is not None:
                        metrics["regret"] = optimum - best_reward
                    logger.log(num_samples, metrics)
            handle.flush()
            bar.update(len(archs))
            bar.set_postfix(best=f"{best_reward:.4f}", refresh=False)
            if stop_at_optimum and samples_to_optimum is not None:
                break
    bar.close()

    summary = {
        "searcher": info.searcher,
        "search_space": info.search_space,
        "benchmark": info.benchmark,
        "dataset": info.dataset,
        "seed": info.seed,
        "budget": info.budget,
        "num_samples": num_samples,
        "best_reward": None if best_arch is None else best_reward,
        "best_arch": best_arch,
        "global_optimum": optimum,
        "samples_to_optimum": samples_to_optimum,
        "wall_time_s": round(time.perf_counter() - start, 4),
        "complete": True,
        **info.extra,
        "searcher_stats": searcher.stats(),
    }
    write_json_atomic(out_dir / "summary.json", summary)
    if logger is not None:
        logger.finish(summary)
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
