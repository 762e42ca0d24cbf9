"""The issue-17 comparison as Markdown: samples to the optimum and regret at fixed budgets, per searcher and table.

    python -m experiments.compare_table multirun/compare_fcnet multirun/compare_nb201
    python -m experiments.compare_table multirun/compare_fcnet --budgets 50 100 200

Reads finished runs (``lanas.analysis``), groups them by searcher, dataset and budget, and prints
one long table: runs, censored runs (optimum not reached within the run's budget), samples to the
optimum (mean ± SE, a lower bound ``>=`` when some runs are censored; Kaplan-Meier median), and the
mean regret ``global_optimum - best reward so far`` after each budget (a run that stopped at the
optimum earlier has regret 0 from then on). Regret is in the benchmark's reward units: accuracy
fractions on NAS-Bench-201, ``-log10`` of the validation MSE on FCNet (docs/hpo.md).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

import numpy as np

from lanas import analysis


def regret_at(runs: Sequence[analysis.Run], budget: int) -> tuple[float, float]:
    """Mean regret after ``budget`` samples and its standard error (NaN unless every run got that far)."""
    values = np.array([r.summary["global_optimum"] - analysis.best_at(r, budget) for r in runs])
    if np.isnan(values).any():
        return math.nan, math.nan
    values[np.abs(values) < 1e-9] = 0.0  # a found optimum, printed at float precision
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return float(values.mean()), float(se)


def rows(runs: Sequence[analysis.Run], budgets: Sequence[int]) -> list[str]:
    lines = []
    groups = analysis.group_runs(runs, ["benchmark", "dataset", "searcher", "budget"])
    for (benchmark, dataset, searcher, budget), group in groups.items():
        stats = analysis.samples_to_optimum_stats(group)
        bound = ">= " if stats["censored"] else ""
        median = f"{stats['median']:.0f}" if not math.isnan(stats["median"]) else f"> {budget}"
        cells = [f"{benchmark}/{dataset}", searcher, str(budget), str(stats["runs"]), str(stats["censored"]),
                 f"{bound}{stats['mean']:.1f} ± {stats['se']:.1f}", median]
        for b in budgets:
            mean, se = regret_at(group, b)
            cells.append("n/a" if math.isnan(mean) else f"{mean:.4f} ± {se:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.compare_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="sweep directories (e.g. multirun/compare_fcnet)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200])
    args = parser.parse_args(argv)
    runs, unfinished = analysis.load_runs(args.dirs)
    header = ["table", "searcher", "budget", "runs", "censored", "samples to optimum (mean ± SE)", "KM median",
              *(f"regret@{b}" for b in args.budgets)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    print("\n".join(rows(runs, args.budgets)))
    if unfinished:
        print(f"\n{len(unfinished)} unfinished runs left out")


if __name__ == "__main__":
    main()
