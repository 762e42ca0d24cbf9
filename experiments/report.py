"""Tables and figures of one or more sweeps: ``python -m experiments.report <multirun dir(s)> [--out DIR]``.

Groups the runs by searcher and by every parameter that was swept (read from each run's
``summary.json`` and ``.hydra/overrides.yaml``), prints the table, and writes to the report folder:

- ``table.md`` / ``table.csv``: per group, runs, samples to the global optimum (mean, SE, Kaplan-Meier
  median and IQR, censored runs counted as such) and the mean best reward at fixed budgets;
  ``runs.csv``: one row per run; ``references.csv``: the paper's and random search's figures;
- ``best_so_far.png`` and ``regret.png`` (log scale): mean and standard-error band per group;
- ``samples_to_optimum.png``: the metric per group, or against the swept parameter (one parameter),
  and ``heatmap_<a>__<b>.png`` for two parameters, with the reference figures beside ours.

Runs with an engine (``workers``, ``engine=simulated|local``; docs/parallel.md) also get
``time_table.md`` / ``time_table.csv`` (hours to the optimum: mean, SE, Kaplan-Meier median, from
``summary.json``'s ``time_to_optimum_s``, censored at the run's last finish ``clock_s``) and
``regret_time.png`` (regret against engine hours, from the trace's ``finished_s``).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
# Figure objects, not pyplot: files only, no display needed, and the caller's backend (a notebook's
# inline one) is left alone.
from matplotlib.figure import Figure

from lanas import analysis
from lanas.analysis import Run


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}f}"
    return str(value)


def _param(value: Any) -> str:
    """A parameter value as the user typed it (0.001 stays 0.001, unlike a fixed-digit float)."""
    return f"{value:g}" if isinstance(value, float) else ("" if value is None else str(value))


def _label(keys: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(_param(v) if k == "searcher" else f"{k.removeprefix('searcher.')}={_param(v)}"
                     for k, v in zip(keys, values))


def markdown_table(rows: list[dict[str, Any]], keys: Sequence[str], budgets: Sequence[int]) -> str:
    """The summary table as Markdown; censored means are lower bounds (>=), undefined medians '>max'."""
    head = [*keys, "runs", "censored", "samples to optimum: mean ± SE", "median [IQR]",
            *[f"best@{b}" for b in budgets], "wall s/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lower = ">= " if row["censored"] else ""
        mean = f"{lower}{row['mean']:.1f} ± {_fmt(row['se'])}"
        if math.isnan(row["median"]):
            median = f"> {row['max_censor']}"
        else:
            median = f"{row['median']:.0f} [{_fmt(row['q25'], 0)}, {_fmt(row['q75'], 0)}]"
        cells = [_param(row[k]) for k in keys] + [str(row["runs"]), str(row["censored"]), mean, median]
        cells += [_fmt(row[f"best@{b}"], 4) for b in budgets] + [_fmt(row["wall_time_s"], 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def references_markdown(refs: list[dict[str, Any]]) -> str:
    if not refs:
        return ""
    lines = ["| reference | benchmark | dataset | runs | mean samples to optimum | median |", "|---|---|---|---|---|---|"]
    for ref in refs:
        lines.append(f"| {ref['source']} | {ref['benchmark']} | {ref['dataset']} | {_fmt(ref['runs'])} | "
                     f"{_fmt(ref['mean'])} | {_fmt(ref['median'])} |")
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _colors(n: int) -> list:
    cmap = matplotlib.colormaps["viridis" if n > 10 else "tab10"]
    return [cmap(i / max(n - 1, 1)) if n > 10 else cmap(i) for i in range(n)]


def plot_curves(groups: dict[tuple, list[Run]], keys: Sequence[str], path: Path, regret: bool,
                refs: list[dict[str, Any]]) -> None:
    """Mean best-so-far (or regret, log scale) against samples with a standard-error band per group."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    drawn = []
    for values, runs in groups.items():
        c = analysis.curves(runs, regret=regret)
        # Regret: the curve ends where every run has found the optimum (zero has no place on a log axis).
        ok = (c["count"] > 0) & ((c["mean"] > 0) if regret else True)
        drawn.append((values, runs, c["samples"][ok], c["mean"][ok], np.nan_to_num(c["se"][ok])))
    if regret:
        positive = np.concatenate([d[3] for d in drawn]) if drawn else np.array([])
        bottom = float(positive.min()) / 3 if len(positive) else 1e-6
        top = float(positive.max()) * 2 if len(positive) else 1.0
    else:
        # The first few random samples span a wide range; start the axis where the searches differ.
        tenth = [d[3][min(9, len(d[3]) - 1)] for d in drawn if len(d[3])]
        bottom = min(tenth) - 0.002 if tenth else None
        top = None
    for color, (values, runs, x, mean, se) in zip(_colors(len(drawn)), drawn):
        ax.plot(x, mean, color=color, lw=1.6, label=f"{_label(keys, values)} (n={len(runs)})")
        low = np.maximum(mean - se, bottom) if regret else mean - se  # a band below the axis runs to its edge
        ax.fill_between(x, low, mean + se, color=color, alpha=0.2, lw=0, step=None)
    for ref, style in zip([r for r in refs if r.get("comparable", True)], ("--", ":", "-.")):
        if ref.get("mean") and not math.isnan(ref["mean"]):
            ax.axvline(ref["mean"], color="grey", ls=style, lw=1, label=f"{ref['source']}: mean {ref['mean']:.0f}")
    ax.set_xscale("log")
    ax.set_xlabel("samples evaluated")
    if regret:
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
        ax.set_ylabel("regret = global optimum − best so far (mean ± SE)")
    else:
        ax.set_ylim(bottom=bottom)
        ax.set_ylabel("best reward so far (mean ± SE)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("regret against samples" if regret else "best reward so far against samples")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _set_param_scale(ax: Any, values: Sequence[float]) -> None:
    positive = sorted(v for v in values if v > 0)
    if len(positive) >= 2 and positive[-1] / positive[0] >= 20:
        # Log-spaced sweeps (Cp) often include 0: symlog keeps it on the axis.
        if min(values) <= 0:
            ax.set_xscale("symlog", linthresh=positive[0])
        else:
            ax.set_xscale("log")


def plot_metric(rows: list[dict[str, Any]], keys: Sequence[str], path: Path, refs: list[dict[str, Any]]) -> None:
    """Samples to optimum (mean ± SE, and KM median) per group, or against the one swept parameter."""
    params = [k for k in keys if k != "searcher"]
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    if len(params) == 1 and _numeric([r[params[0]] for r in rows if r.get(params[0]) is not None]):
        param = params[0]
        searchers = sorted({str(r.get("searcher")) for r in rows}) if "searcher" in keys else [None]
        for color, name in zip(_colors(len(searchers)), searchers):
            sub = [r for r in rows if name is None or str(r.get("searcher")) == name]
            sub = [r for r in sub if r.get(param) is not None]
            sub.sort(key=lambda r: r[param])
            x = [r[param] for r in sub]
            ax.errorbar(x, [r["mean"] for r in sub], yerr=[r["se"] for r in sub], color=color, marker="o",
                        capsize=3, label=f"{name + ': ' if name else ''}mean ± SE")
            ax.plot(x, [r["median"] for r in sub], color=color, ls="--", marker="s", ms=4,
                    label=f"{name + ': ' if name else ''}median (Kaplan-Meier)")
            for r in sub:
                if r["censored"]:
                    ax.annotate(f"{r['censored']}/{r['runs']} cens.", (r[param], r["mean"]), fontsize=7,
                                textcoords="offset points", xytext=(4, 4))
        _set_param_scale(ax, [r[param] for r in rows if r.get(param) is not None])
        ax.set_xlabel(param)
    else:
        labels = [_label(keys, [r[k] for k in keys]) for r in rows]
        x = np.arange(len(rows))
        ax.errorbar(x, [r["mean"] for r in rows], yerr=[r["se"] for r in rows], fmt="o", capsize=4,
                    label="ours: mean ± SE")
        ax.plot(x, [r["median"] for r in rows], "s", color="C1", label="ours: median (Kaplan-Meier)")
        for i, r in enumerate(rows):
            if r["censored"]:
                ax.annotate(f"{r['censored']}/{r['runs']} cens.", (i, r["mean"]),
                            fontsize=7, textcoords="offset points", xytext=(5, 5))
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    for ref, style in zip([r for r in refs if r.get("comparable", True)], ("--", ":", "-.")):
        if ref.get("mean") and not math.isnan(ref["mean"]):
            ax.axhline(ref["mean"], color="grey", ls=style, lw=1, label=f"{ref['source']}: mean {ref['mean']:.0f}")
    ax.set_yscale("log")
    ax.set_ylabel("samples to the global optimum")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("samples to the global optimum\n(cens. = runs without the optimum, counted at their budget: "
                 "the mean is a lower bound)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_heatmaps(rows: list[dict[str, Any]], keys: Sequence[str], out: Path) -> list[Path]:
    """Mean samples to optimum over two swept parameters, one heat map per searcher."""
    a, b = [k for k in keys if k != "searcher"][:2]
    paths = []
    for name in sorted({str(r.get("searcher")) for r in rows}):
        sub = [r for r in rows if str(r.get("searcher")) == name and r.get(a) is not None and r.get(b) is not None]
        if not sub:
            continue
        xs = sorted({r[a] for r in sub}, key=str if not _numeric([r[a] for r in sub]) else float)
        ys = sorted({r[b] for r in sub}, key=str if not _numeric([r[b] for r in sub]) else float)
        grid = np.full((len(ys), len(xs)), np.nan)
        censored = np.zeros_like(grid, dtype=int)
        for r in sub:
            grid[ys.index(r[b]), xs.index(r[a])] = r["mean"]
            censored[ys.index(r[b]), xs.index(r[a])] = r["censored"]
        fig = Figure(figsize=(3.5 + 1.0 * len(xs), 2.2 + 0.6 * len(ys)))
        ax = fig.subplots()
        image = ax.imshow(grid, cmap="viridis_r", aspect="auto", origin="lower")
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                mark = "*" if censored[i, j] else ""
                # Dark text on the bright (low, good) end of viridis_r, white on the dark end.
                color = "k" if image.norm(value) < 0.5 else "w"
                ax.text(j, i, f"{value:.0f}{mark}", ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(len(xs)), [_param(x) for x in xs])
        ax.set_yticks(range(len(ys)), [_param(y) for y in ys])
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        fig.colorbar(image, ax=ax, label="mean samples to optimum")
        title = "" if name == "None" else f"{name}: "
        ax.set_title(f"{title}mean samples to the global optimum\n(* = some runs censored: a lower bound)", fontsize=9)
        fig.tight_layout()
        path = out / f"heatmap_{a}__{b}{'_' + name if len(rows) != len(sub) else ''}.png"
        fig.savefig(path, dpi=120)
        paths.append(path)
    return paths


def timed(runs: Sequence[Run]) -> list[Run]:
    """Runs whose summary has engine times (an engine ran them)."""
    return [r for r in runs if r.summary.get("clock_s") is not None]


def time_stats(runs: Sequence[Run]) -> dict[str, Any]:
    """Hours to the optimum (censored at the run's last finish when not reached), and samples beside them."""
    hours = np.array([(r.summary["time_to_optimum_s"] if r.reached else r.summary["clock_s"]) / 3600.0
                      for r in runs], dtype=np.float64)
    reached = np.array([r.reached for r in runs], dtype=bool)
    samples = analysis.samples_to_optimum_stats(runs)
    (median,) = analysis.km_quantiles(hours, reached, (0.5,))
    n = len(hours)
    return {
        "runs": n, "censored": int(n - reached.sum()),
        "samples_mean": samples["mean"], "samples_se": samples["se"], "samples_median": samples["median"],
        "hours_mean": float(hours.mean()) if n else math.nan,
        "hours_se": float(hours.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "hours_median": median,
        "eval_hours_mean": float(np.mean([r.summary.get("eval_seconds_total") or 0.0 for r in runs]) / 3600.0),
    }


def _median(value: float, digits: int) -> str:
    return "> max" if math.isnan(value) else f"{value:.{digits}f}"


def time_table(groups: dict[tuple, list[Run]], keys: Sequence[str]) -> tuple[list[dict[str, Any]], str]:
    """Rows (one per group) and their Markdown table: samples and engine hours to the optimum."""
    rows = [{**dict(zip(keys, values)), **time_stats(runs)} for values, runs in groups.items()]
    head = [*keys, "runs", "censored", "samples: mean ± SE", "samples: median", "hours: mean ± SE", "hours: median"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        lower = ">= " if row["censored"] else ""
        cells = [_param(row[k]) for k in keys] + [str(row["runs"]), str(row["censored"]),
                 f"{lower}{row['samples_mean']:.1f} ± {_fmt(row['samples_se'])}", _median(row["samples_median"], 0),
                 f"{lower}{row['hours_mean']:.1f} ± {_fmt(row['hours_se'])}", _median(row["hours_median"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return rows, "\n".join(lines)


def _finish_curve(run: Run) -> np.ndarray:
    """Engine seconds at which each sample of the run finished (the trace's ``finished_s``)."""
    with open(run.path / "trace.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        col = header.index("finished_s")
        return np.array([float(row[col]) for row in reader if row], dtype=np.float64)


def plot_time_curves(groups: dict[tuple, list[Run]], keys: Sequence[str], path: Path) -> None:
    """Mean regret (log scale) against engine hours, with a standard-error band per group.

    A run's regret at time t is that of its best sample finished by t; once a run has stopped at the
    optimum its regret is 0 from then on, and a run that stopped without it leaves the mean there."""
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    finishes = {id(r): _finish_curve(r) for runs in groups.values() for r in runs}
    ends = [f[-1] for f in finishes.values() if len(f)]
    starts = [f[0] for f in finishes.values() if len(f) and f[0] > 0]
    if not ends or not starts:
        return
    grid = np.geomspace(min(starts), max(ends), 300)
    drawn = []
    for values, runs in groups.items():
        matrix = np.full((len(runs), len(grid)), np.nan)
        for i, run in enumerate(runs):
            optimum = run.summary.get("global_optimum")
            finish = finishes[id(run)]
            if optimum is None or not len(finish):
                continue
            done = np.searchsorted(finish, grid, side="right")  # samples finished by each grid time
            regret = np.where(done > 0, optimum - run.best[np.maximum(done - 1, 0)], np.nan)
            matrix[i] = np.where((grid > finish[-1]) & ~run.reached, np.nan, regret)
            if run.reached:
                matrix[i, grid >= finish[-1]] = 0.0
        count = np.sum(~np.isnan(matrix), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (no run there yet)
            mean = np.nanmean(matrix, axis=0)
            se = np.nanstd(matrix, axis=0, ddof=1) / np.sqrt(count)
        ok = (count > 0) & (mean > 0)
        drawn.append((values, runs, grid[ok] / 3600.0, mean[ok], np.nan_to_num(se[ok])))
    positive = np.concatenate([d[3] for d in drawn]) if drawn else np.array([1.0])
    bottom = float(positive.min()) / 3 if len(positive) else 1e-6
    colors, styles = _colors(len(drawn)), ["-"] * len(drawn)
    if "searcher" in keys and len(keys) == 2:  # searcher x workers: a color per searcher, a line style per other value
        first, other = keys.index("searcher"), 1 - keys.index("searcher")
        names = sorted({str(d[0][first]) for d in drawn})
        others = sorted({d[0][other] for d in drawn}, key=lambda v: (str(type(v)), v))
        palette = _colors(len(names))
        colors = [palette[names.index(str(d[0][first]))] for d in drawn]
        styles = [("-", "--", "-.", ":")[others.index(d[0][other]) % 4] for d in drawn]
    for color, style, (values, runs, x, mean, se) in zip(colors, styles, drawn):
        ax.plot(x, mean, color=color, ls=style, lw=1.4, label=f"{_label(keys, values)} (n={len(runs)})")
        ax.fill_between(x, np.maximum(mean - se, bottom), mean + se, color=color, alpha=0.12, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(bottom=bottom)
    ax.set_xlabel("engine hours (simulated for engine=simulated)")
    ax.set_ylabel("regret = global optimum − best so far (mean ± SE)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, loc="best", ncol=2)
    ax.set_title("regret against time")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def make_report(roots: Sequence[str | Path], out: str | Path, budgets: Sequence[int] = analysis.DEFAULT_BUDGETS,
                with_references: bool = True) -> dict[str, Any]:
    """Load the runs below ``roots``, write the report into ``out`` and return what was written."""
    runs, unfinished = analysis.load_runs(roots)
    if not runs:
        raise FileNotFoundError(f"no finished runs (summary.json + trace.csv) below {', '.join(map(str, roots))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:  # runs started without a workers= override still group by their worker count
        if run.summary.get("workers") is not None:
            run.params.setdefault("workers", run.summary["workers"])
    keys = analysis.swept_parameters(runs)
    rows = analysis.summary_table(runs, keys, budgets)
    refs = analysis.references(runs, analysis.pool_sizes(runs) if with_references else None)
    groups = analysis.group_runs(runs, keys)

    table = markdown_table(rows, keys, budgets)
    ref_table = references_markdown(refs)
    write_csv(out / "table.csv", rows)
    write_csv(out / "runs.csv", analysis.runs_table(runs))
    if refs:
        write_csv(out / "references.csv", refs)
    figures = [out / "best_so_far.png", out / "regret.png", out / "samples_to_optimum.png"]
    plot_curves(groups, keys, figures[0], regret=False, refs=refs)
    plot_curves(groups, keys, figures[1], regret=True, refs=refs)
    plot_metric(rows, keys, figures[2], refs)
    if len([k for k in keys if k != "searcher"]) == 2:
        figures += plot_heatmaps(rows, keys, out)
    timed_runs = timed(runs)
    time_md = ""
    if timed_runs:
        timed_groups = analysis.group_runs(timed_runs, keys)
        time_rows, time_md = time_table(timed_groups, keys)
        write_csv(out / "time_table.csv", time_rows)
        (out / "time_table.md").write_text(time_md + "\n")
        figures.append(out / "regret_time.png")
        plot_time_curves(timed_groups, keys, figures[-1])

    notes = [f"{len(runs)} finished runs from {', '.join(map(str, roots))}; grouped by {', '.join(keys)}."]
    missing = analysis.without_pool_size(runs) if with_references else []
    if missing:
        notes.append("Random search's expectation left out for " + ", ".join("/".join(b) for b in missing)
                     + ": their summary.json has no pool_size (written before it was recorded); rerun one of "
                       "those runs to get it.")
    if unfinished:
        notes.append(f"{len(unfinished)} unfinished runs left out: {', '.join(str(p) for p in unfinished[:5])}"
                     + (" ..." if len(unfinished) > 5 else ""))
    notes.append("Samples to optimum: censored runs (optimum not reached within budget) count at their budget, "
                 "so a mean marked >= is a lower bound; median and IQR are Kaplan-Meier estimates.")
    md = ["# Report", "", *notes, "", "## Samples to the global optimum and best reward at fixed budgets", "", table]
    if ref_table:
        md += ["", "## Reference figures", "", ref_table]
    if time_md:
        md += ["", "## Samples and engine hours to the global optimum (runs with an engine)", "", time_md]
    md += ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    (out / "table.md").write_text("\n".join(md) + "\n")
    return {"runs": runs, "unfinished": unfinished, "keys": keys, "rows": rows, "references": refs,
            "table": table, "references_table": ref_table, "time_table": time_md, "notes": notes,
            "figures": figures, "out": out}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="multirun (sweep) directories or single run directories")
    parser.add_argument("--out", help="report folder (default: reports/<name of the first directory>)")
    parser.add_argument("--budgets", default=",".join(map(str, analysis.DEFAULT_BUDGETS)),
                        help="comma-separated sample budgets for the best-reward columns")
    parser.add_argument("--no-references", action="store_true",
                        help="leave out random search's expectation (the paper's figures stay)")
    args = parser.parse_args(argv)
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b]
    except ValueError:
        parser.error(f"--budgets must be comma-separated integers, got {args.budgets!r}")
    out = Path(args.out) if args.out else Path("reports") / Path(args.dirs[0]).resolve().name
    try:
        report = make_report(args.dirs, out, budgets, with_references=not args.no_references)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n".join(report["notes"]))
    print()
    print(report["table"])
    if report["references_table"]:
        print()
        print(report["references_table"])
    if report["time_table"]:
        print()
        print(report["time_table"])
    print(f"\nreport written to {out}/ (table.md, table.csv, runs.csv, {', '.join(p.name for p in report['figures'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
