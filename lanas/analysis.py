"""Run directories -> tidy tables and statistics: the numbers behind reports, notebooks and wandb tables.

A *run* is a directory holding ``summary.json`` (written by the loop) and ``trace.csv`` (one row per
sample); Hydra adds ``.hydra/overrides.yaml`` (layout and readers: :mod:`lanas.rundir`). Everything
here comes from those files: nothing builds a benchmark, runs a search or draws a figure.

Samples to the global optimum are *right-censored*: a run that stopped at its budget without finding
the optimum only tells us that it needs more than ``num_samples``. Such runs are counted as censored,
never dropped: the mean counts them at their censoring point (so with censored runs it is a lower
bound, shown as ``>=``), and the median and quartiles are Kaplan-Meier estimates (scipy's ``ecdf`` on
``CensoredData``), which equal the plain ones when nothing is censored and are undefined (NaN, shown
as ``>budget``) when fewer than that fraction of runs reached the optimum.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from lanas.errors import BenchmarkDataError
from lanas.rundir import SUMMARY, TRACE, read_overrides, read_summary

# Budgets at which the best reward found so far is reported (issue #3's comparison).
DEFAULT_BUDGETS = (100, 200, 500, 1000)
# Summary fields that describe what was run (used as parameters when they differ between runs).
DESCRIPTIVE = ("experiment", "searcher", "search_space", "benchmark", "dataset", "budget")

# Published reference figures, keyed by (benchmark, dataset). The LaNAS paper (arXiv 1906.06832)
# released 41 LaNAS runs on NAS-Bench-101 CIFAR-10; these are their samples to the global optimum.
PAPER_REFERENCES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("nasbench101", "cifar10"): [
        {"source": "paper: LaNAS (41 published runs)", "searcher": "lanas", "runs": 41,
         "mean": 2274.0, "median": 2056.0, "pool_size": 423_624},
    ],
}


@dataclass
class Run:
    """One finished run: its summary, its parameters and its best-so-far curve."""

    path: Path
    summary: dict[str, Any]
    params: dict[str, Any]
    best: np.ndarray = field(repr=False)  # best reward after each sample (length num_samples)

    @property
    def reached(self) -> bool:
        return self.summary.get("samples_to_optimum") is not None

    @property
    def time_to_optimum(self) -> int:
        """Samples to the optimum, or the censoring point (samples evaluated) when not reached."""
        value = self.summary.get("samples_to_optimum")
        return int(value) if value is not None else int(self.summary["num_samples"])

    @property
    def ended_early(self) -> bool:
        """Stopped before its budget (optimum found or space exhausted): its best is final from then on."""
        return self.reached or int(self.summary["num_samples"]) < int(self.summary["budget"])


def read_best_curve(path: Path) -> np.ndarray:
    """The ``best_reward`` column of a ``trace.csv``."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or "best_reward" not in header:
            raise BenchmarkDataError(f"{path} has no best_reward column; expected the loop's trace.csv")
        col = header.index("best_reward")
        return np.array([float(row[col]) for row in reader if row], dtype=np.float64)


def run_params(summary: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Flat parameters of a run: what it was, the searcher's knobs, and any other override."""
    params: dict[str, Any] = {k: summary.get(k) for k in DESCRIPTIVE if k in summary}
    for key, value in (summary.get("searcher_params") or {}).items():
        params[f"searcher.{key}"] = value
    for key, value in overrides.items():
        params.setdefault(key, value)  # typed values from the summary win over override strings
    return params


def load_run(run_dir: str | Path) -> Run | None:
    """A run from its directory, or None when it has not finished (no complete summary.json)."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is None or not summary.get("complete", True) or not (run_dir / TRACE).is_file():
        return None
    best = read_best_curve(run_dir / TRACE)
    return Run(run_dir, summary, run_params(summary, read_overrides(run_dir)), best)


def find_run_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Every directory below ``roots`` that a run started in (it has a trace.csv or summary.json)."""
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run or sweep directory: {root}")
        for name in (SUMMARY, TRACE):
            found.update(p.parent for p in root.rglob(name) if "wandb" not in p.parts)
    return sorted(found)


def load_runs(roots: Iterable[str | Path]) -> tuple[list[Run], list[Path]]:
    """Finished runs below ``roots``, and the directories of runs that did not finish."""
    runs, unfinished = [], []
    for run_dir in find_run_dirs(roots):
        run = load_run(run_dir)
        (runs.append(run) if run is not None else unfinished.append(run_dir))
    return runs, unfinished


def _key(value: Any) -> Any:
    """A hashable, comparable stand-in for a parameter value."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def swept_parameters(runs: Sequence[Run]) -> list[str]:
    """Parameters whose values differ between runs of the same searcher (or between searchers,
    for parameters every run has). ``searcher`` comes first when more than one searcher ran."""
    keys: list[str] = []
    by_searcher: dict[Any, list[Run]] = {}
    for run in runs:
        by_searcher.setdefault(run.params.get("searcher"), []).append(run)
    all_keys = sorted({k for run in runs for k in run.params})
    for key in all_keys:
        if key == "searcher":
            continue
        everywhere = all(key in run.params for run in runs)
        values = {_key(run.params.get(key)) for run in runs}
        within = any(len({_key(r.params.get(key)) for r in group}) > 1 for group in by_searcher.values())
        if within or (everywhere and len(values) > 1):
            keys.append(key)
    if len(by_searcher) > 1 or not keys:
        keys.insert(0, "searcher")
    return keys


def group_runs(runs: Sequence[Run], keys: Sequence[str]) -> dict[tuple, list[Run]]:
    """Runs grouped by their values of ``keys`` (missing values are None), in a stable sorted order."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.params.get(k) for k in keys), []).append(run)

    def order(item: tuple[tuple, list[Run]]) -> tuple:
        return tuple((v is None, isinstance(v, str), v if not isinstance(v, (dict, list)) else str(v))
                     for v in item[0])

    return dict(sorted(groups.items(), key=order))


def km_quantiles(times: np.ndarray, reached: np.ndarray, probs: Sequence[float]) -> list[float]:
    """Kaplan-Meier quantiles of right-censored times; NaN where too few runs reached the event."""
    times = np.asarray(times, dtype=np.float64)
    reached = np.asarray(reached, dtype=bool)
    if len(times) == 0 or not reached.any():
        return [math.nan] * len(probs)
    cdf = stats.ecdf(stats.CensoredData.right_censored(times, ~reached)).cdf
    out = []
    for p in probs:
        hit = np.flatnonzero(cdf.probabilities >= p - 1e-12)
        out.append(float(cdf.quantiles[hit[0]]) if len(hit) else math.nan)
    return out


def samples_to_optimum_stats(runs: Sequence[Run]) -> dict[str, Any]:
    """Runs, censored count, mean (a lower bound when censored), its standard error, KM median and IQR."""
    times = np.array([r.time_to_optimum for r in runs], dtype=np.float64)
    reached = np.array([r.reached for r in runs], dtype=bool)
    n = len(times)
    q25, median, q75 = km_quantiles(times, reached, (0.25, 0.5, 0.75))
    return {
        "runs": n,
        "reached": int(reached.sum()),
        "censored": int(n - reached.sum()),
        "mean": float(times.mean()) if n else math.nan,
        "se": float(times.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "median": median,
        "q25": q25,
        "q75": q75,
        "iqr": q75 - q25,
        "max_censor": int(times[~reached].max()) if (~reached).any() else None,
    }


def best_at(run: Run, budget: int) -> float:
    """Best reward after ``budget`` samples; NaN when the run stopped at a smaller budget."""
    n = len(run.best)
    if n == 0:
        return math.nan
    if budget <= n:
        return float(run.best[budget - 1])
    return float(run.best[-1]) if run.ended_early else math.nan


def best_at_budgets(runs: Sequence[Run], budgets: Sequence[int] = DEFAULT_BUDGETS) -> dict[str, float]:
    """Mean best reward at each budget (``best@<b>``, ``best@<b>_se``); NaN unless every run got that far."""
    out: dict[str, float] = {}
    for b in budgets:
        values = np.array([best_at(r, b) for r in runs])
        if np.isnan(values).any():
            # Averaging only the runs that got that far would favour the lucky ones: undefined instead.
            values = values[:0]
        out[f"best@{b}"] = float(values.mean()) if len(values) else math.nan
        out[f"best@{b}_se"] = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
    return out


def best_so_far_matrix(runs: Sequence[Run], length: int | None = None) -> np.ndarray:
    """``(runs, length)`` best reward after 1..length samples: held after a run that ended early,
    NaN after a run that hit its budget (we do not know what it would have found)."""
    length = length or max((len(r.best) for r in runs), default=0)
    out = np.full((len(runs), length), np.nan)
    for i, run in enumerate(runs):
        n = min(len(run.best), length)
        out[i, :n] = run.best[:n]
        if run.ended_early and n:
            out[i, n:] = run.best[n - 1]
    return out


def mean_se(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column mean, standard error and count over the non-NaN entries."""
    count = np.sum(~np.isnan(matrix), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = np.nansum(matrix, axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        dev = np.where(np.isnan(matrix), 0.0, matrix - mean) ** 2
        var = np.where(count > 1, dev.sum(axis=0) / np.maximum(count - 1, 1), np.nan)
        se = np.sqrt(var / np.maximum(count, 1))
    return mean, se, count


def curves(runs: Sequence[Run], regret: bool = False, length: int | None = None) -> dict[str, np.ndarray]:
    """Best-so-far (or regret = optimum - best) against samples: mean, SE band and run count."""
    matrix = best_so_far_matrix(runs, length)
    if regret:
        optima = np.array([r.summary.get("global_optimum") or np.nan for r in runs], dtype=np.float64)
        matrix = optima[:, None] - matrix
        # The optimum (summary.json) and the best so far (trace.csv) round-trip through different
        # text formats: differences at float precision are a found optimum, not a 1e-17 regret.
        matrix[np.abs(matrix) < 1e-9] = 0.0
    mean, se, count = mean_se(matrix)
    return {"samples": np.arange(1, matrix.shape[1] + 1), "mean": mean, "se": se, "count": count}


def summary_table(runs: Sequence[Run], keys: Sequence[str] | None = None,
                  budgets: Sequence[int] = DEFAULT_BUDGETS) -> list[dict[str, Any]]:
    """One row per group: its parameter values, samples-to-optimum statistics and best at budgets."""
    keys = list(keys) if keys is not None else swept_parameters(runs)
    rows = []
    for values, group in group_runs(runs, keys).items():
        row: dict[str, Any] = dict(zip(keys, values))
        row.update(samples_to_optimum_stats(group))
        row.update(best_at_budgets(group, budgets))
        row["wall_time_s"] = float(np.mean([r.summary.get("wall_time_s") or 0.0 for r in group]))
        rows.append(row)
    return rows


def runs_table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """The tidy per-run table: parameters, seed and outcome of every run."""
    rows = []
    for run in runs:
        s = run.summary
        rows.append({**run.params, "seed": s.get("seed"), "num_samples": s.get("num_samples"),
                     "samples_to_optimum": s.get("samples_to_optimum"), "best_reward": s.get("best_reward"),
                     "global_optimum": s.get("global_optimum"), "wall_time_s": s.get("wall_time_s"),
                     "path": str(run.path)})
    return rows


def random_search_expectation(pool_size: int, num_optima: int = 1) -> float:
    """Expected samples for uniform search without replacement to first hit one of ``num_optima``
    optima among ``pool_size`` architectures: (N + 1) / (k + 1), i.e. (N + 1) / 2 for one optimum."""
    return (pool_size + 1) / (num_optima + 1)


def references(runs: Sequence[Run], pool: dict[tuple[str, str], tuple[int, int]] | None = None
               ) -> list[dict[str, Any]]:
    """Reference figures for the benchmarks among ``runs``: the paper's published ones where known and
    random search's expectation where the pool size is known (``pool[(benchmark, dataset)] = (N, k)``)."""
    out: list[dict[str, Any]] = []
    seen = sorted({(str(r.summary.get("benchmark")), str(r.summary.get("dataset"))) for r in runs})
    for bench in seen:
        for ref in PAPER_REFERENCES.get(bench, []):
            ref = {"benchmark": bench[0], "dataset": bench[1], **ref, "comparable": True}
            if pool and bench in pool and pool[bench][0] != ref["pool_size"]:
                # A subset table is a different, easier problem: keep the figure, say why it does not apply.
                ref["comparable"] = False
                ref["source"] += f" on all {ref['pool_size']:,} cells; this pool has {pool[bench][0]:,}: not comparable"
            out.append(ref)
        if pool and bench in pool:
            n, k = pool[bench]
            out.append({"benchmark": bench[0], "dataset": bench[1], "searcher": "random", "comparable": True,
                        "pool_size": n,
                        "source": f"random search, expected (N+1)/(k+1), N={n}, k={k}",
                        "runs": None, "mean": random_search_expectation(n, k),
                        # One optimum sits at a uniform position of a random permutation: median (N+1)/2.
                        "median": (n + 1) / 2 if k == 1 else math.nan})
    return out


def pool_sizes(runs: Sequence[Run]) -> dict[tuple[str, str], tuple[int, int]]:
    """Pool size N and number of optima k per (benchmark, dataset), as the runs' summaries record them
    (``pool_size``, ``num_optima``); benchmarks whose size is not known (unbounded spaces, evaluators
    without a known optimum, runs written before summaries recorded it) are left out."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for run in runs:
        n, k = run.summary.get("pool_size"), run.summary.get("num_optima")
        if n is not None and k is not None:
            out.setdefault((str(run.summary.get("benchmark")), str(run.summary.get("dataset"))), (int(n), int(k)))
    return out


def without_pool_size(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """(benchmark, dataset) of runs whose summary predates ``pool_size``, for which no summary records it:
    random search's reference is left out for them (rerunning one such run records it)."""
    known = pool_sizes(runs)
    old = {(str(r.summary.get("benchmark")), str(r.summary.get("dataset"))) for r in runs if "pool_size" not in r.summary}
    return sorted(old - set(known))
