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
from lanas.errors import LanasError


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
                with_references: bool = True, rq4_training: bool = True, rq4_seed_check: int = 0) -> dict[str, Any]:
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
    if any(r.summary.get("global_optimum") is not None for r in runs):
        plot_curves(groups, keys, figures[1], regret=True, refs=refs)
        plot_metric(rows, keys, figures[2], refs)
    else:  # trained evaluators (supernet, train): no known optimum, so no regret and no samples to it
        figures = figures[:1]
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
    rq4 = None
    if rq4_runs(runs):  # one-shot runs: the RQ4 part (rq4.md), appended here too
        rq4 = rq4_report(rq4_runs(runs), roots, out, train=rq4_training,
                         log=lambda line: print(line, file=sys.stderr, flush=True), seed_check=rq4_seed_check)
        figures += rq4["figures"]
        md += ["", rq4["markdown"].replace("# RQ4", "## RQ4", 1).replace("\n## ", "\n### "), ""]
        md += [f"![{p.stem}]({p.name})" for p in rq4["figures"]]
    (out / "table.md").write_text("\n".join(md) + "\n")
    return {"rq4": rq4, "runs": runs, "unfinished": unfinished, "keys": keys, "rows": rows, "references": refs,
            "table": table, "references_table": ref_table, "time_table": time_md, "notes": notes, "figures": figures,
            "out": out}


# ====================================================================== RQ4: one-shot LaNAS
# Runs scored by evaluator=supernet get a second part of the report (rq4.md, rq4.json, rq4_*.png):
# the supernet's learning curve, the searches' supernet scores, the searches' best cells and random
# cells trained from scratch (the sweep config's `scratch` section; results cached per cell under
# <sweep dir>/rq4_scratch, so the report can be rerun), rank agreement and cost in CPU-seconds.

def rq4_runs(runs: Sequence[Run]) -> list[Run]:
    """The runs of ``runs`` that were scored by a one-shot supernet."""
    return [r for r in runs if r.summary.get("benchmark") == "supernet"]


def _rq4_config(run: Run) -> dict[str, Any]:
    from lanas.rundir import read_run_config

    data = read_run_config(run.path)
    if not data or not isinstance(data.get("config"), dict):
        raise FileNotFoundError(f"{run.path} has no readable run_config.json: the RQ4 report needs the run's config")
    return data["config"]


def _rq4_path(value: str, anchors: Sequence[Path]) -> Path:
    """A path of the run's config: as given (relative to the working directory), else relative to the
    folders above the sweep (the report may run from elsewhere than the sweep did)."""
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    for anchor in anchors:
        for parent in [anchor, *anchor.parents]:
            if (parent / path).exists():
                return parent / path
    return path


def rq4_supernet_curve(supernet_dir: Path) -> dict[str, np.ndarray]:
    """Training loss / accuracy per logged step and validation accuracy per epoch from Lightning's CSV logs."""
    rows: list[dict[str, str]] = []
    for path in sorted(supernet_dir.glob("logs/version_*/metrics.csv")):
        with open(path, newline="") as handle:
            rows += list(csv.DictReader(handle))

    def column(name: str, x: str) -> tuple[np.ndarray, np.ndarray]:
        pts = sorted({(float(r[x]), float(r[name])) for r in rows if r.get(name) and r.get(x)})
        return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])

    step, loss = column("train/loss", "step")
    epoch, val = column("val/acc", "epoch")
    by_epoch: dict[float, list[float]] = {}
    for r in rows:
        if r.get("train/acc") and r.get("epoch"):
            by_epoch.setdefault(float(r["epoch"]), []).append(float(r["train/acc"]))
    train_epoch = np.array(sorted(by_epoch))
    train_acc = np.array([np.mean(by_epoch[e]) for e in train_epoch])
    return {"step": step, "loss": loss, "epoch": epoch + 1, "val_acc": val, "train_epoch": train_epoch + 1,
            "train_acc": train_acc}


def plot_rq4_supernet(curve: dict[str, np.ndarray], path: Path, title: str) -> None:
    fig = Figure(figsize=(9, 3.8))
    left, right = fig.subplots(1, 2)
    left.plot(curve["step"], curve["loss"], lw=0.8, color="C0", alpha=0.5, label="training loss (one sampled cell)")
    if len(curve["loss"]) >= 10:
        k = max(len(curve["loss"]) // 20, 3)
        smooth = np.convolve(curve["loss"], np.ones(k) / k, mode="valid")
        left.plot(curve["step"][k - 1 :], smooth, color="C0", lw=1.8, label=f"moving mean ({k} logs)")
    left.set_xlabel("optimisation step")
    left.set_ylabel("cross-entropy")
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    right.plot(curve["epoch"], curve["val_acc"], "o-", color="C1", label="validation accuracy, mean of fixed random\ncells (running BN statistics of all paths,\nnot re-calibrated as the scores are)")
    if len(curve["train_acc"]):
        right.plot(curve["train_epoch"], curve["train_acc"], "s--", ms=3, color="C2",
                   label="training accuracy (logged batches,\n one random cell each, augmented)")
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    if not len(arr):
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else math.nan


def rank_agreement(x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Kendall tau and Spearman rho of ``x`` against ``y`` with 95% percentile bootstrap intervals
    (pairs resampled with replacement; scipy.stats.bootstrap)."""
    import warnings

    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    with warnings.catch_warnings():
        # Tied or constant resamples make a statistic NaN (scipy warns); the interval is still defined.
        warnings.simplefilter("ignore")
        return _rank_agreement(x, y, n_boot, seed, stats)


def tau_rho_text(a: dict[str, float], digits: int = 3, interval: str = "", short: bool = False) -> str:
    """"Kendall tau T [low, high], Spearman rho R [low, high]" of a :func:`rank_agreement` result."""
    def f(key: str) -> str:
        return f"{a[key]:.{digits}f}"

    tau, rho = ("tau", "rho") if short else ("Kendall tau", "Spearman rho")
    return (f"{tau} {f('kendall_tau')} [{interval}{f('kendall_tau_low')}, {f('kendall_tau_high')}], "
            f"{rho} {f('spearman_rho')} [{f('spearman_rho_low')}, {f('spearman_rho_high')}]")


def _rank_agreement(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int, stats: Any) -> dict[str, float]:
    out: dict[str, float] = {"n": len(x)}
    for name, fn in (("kendall_tau", stats.kendalltau), ("spearman_rho", stats.spearmanr)):
        value = float(fn(x, y).statistic) if len(x) > 2 else math.nan
        low = high = math.nan
        if len(x) > 3 and not math.isnan(value):
            res = stats.bootstrap((x, y), lambda a, b: fn(a, b).statistic, paired=True, vectorized=False,
                                  n_resamples=n_boot, method="percentile", random_state=np.random.default_rng(seed))
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        out.update({name: value, f"{name}_low": low, f"{name}_high": high})
    return out


def _scratch_key(arch: str, settings: dict[str, Any]) -> str:
    import hashlib
    import json

    text = json.dumps({"arch": arch, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rq4_scratch(cells: Sequence[str], scratch: dict[str, Any], dataset: str, folder: Path, threads: int | None,
                train: bool = True, log=print) -> dict[str, dict[str, Any]]:
    """From-scratch test accuracy of each cell string (nasbench201 / nasnet / nasbench101), trained
    with ``scratch``'s schedule; cached as ``<folder>/<key>.json`` (key: cell + schedule)."""
    import json

    from lanas.cli import apply_torch_threads
    from lanas.training.final import parse_arch, train_cell

    settings = {k: scratch[k] for k in ("data", "network", "trainer")}
    settings["seed"] = int(scratch.get("seed", 0))
    settings["dataset"] = dataset
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for cell in dict.fromkeys(cells):
        path = folder / f"{_scratch_key(cell, settings)}.json"
        if path.is_file():
            results[cell] = json.loads(path.read_text())
        else:
            todo.append((cell, path))
    if todo and not train:
        log(f"rq4: {len(todo)} cells not trained from scratch yet (left out: --rq4-no-training)")
        return results
    if todo:
        apply_torch_threads(threads)
    for i, (cell, path) in enumerate(todo):
        _, portable = parse_arch(str(settings["network"].get("search_space", "nasnet")), cell)
        work = folder / f"{path.stem}.work"
        result = train_cell(portable, settings["seed"], work, dataset, settings["data"], settings["network"],
                            {"enable_checkpointing": True, **settings["trainer"]}, logger="none", resume=False)
        result = {"arch": cell, **{k: v for k, v in result.items() if k != "checkpoint"}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(path)  # whole files only: an interrupted report trains that cell again
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        log(f"rq4: from scratch {i + 1}/{len(todo)}: test_acc={result['test_acc']:.4f} cpu_s={result['cpu_s']:.1f} {cell}")
        results[cell] = result
    return results


def plot_rq4_searches(runs: Sequence[Run], path: Path) -> None:
    """Best supernet score so far against samples, mean ± SE over seeds, per searcher."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(str(r.summary.get("searcher")), []).append(r)
    for color, (name, group) in zip(_colors(len(by)), sorted(by.items())):
        c = analysis.curves(group, regret=False)
        ok = c["count"] > 0
        ax.plot(c["samples"][ok], c["mean"][ok], color=color, lw=1.6, label=f"{name} (n={len(group)} seeds)")
        ax.fill_between(c["samples"][ok], c["mean"][ok] - np.nan_to_num(c["se"][ok]),
                        c["mean"][ok] + np.nan_to_num(c["se"][ok]), color=color, alpha=0.2, lw=0)
    ax.set_xlabel("samples evaluated by the supernet")
    ax.set_ylabel("best supernet validation accuracy so far (mean ± SE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("one-shot search: best supernet score against samples", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot_rq4_scratch(groups: dict[str, list[float]], path: Path, subtitle: str) -> None:
    """From-scratch test accuracy per group: every cell as a dot, mean ± SE as a bar."""
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    names = list(groups)
    every = np.concatenate([np.asarray(v, dtype=float) for v in groups.values()])
    floor = _outlier_floor(every)
    for i, name in enumerate(names):
        vals = np.asarray(groups[name], dtype=float)
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(vals)), vals, s=14, alpha=0.6, color=f"C{i}")
        mean, se = _mean_se(vals)
        ax.errorbar(i + 0.25, mean, yerr=0 if math.isnan(se) else se, fmt="s", color="k", capsize=4)
        ax.annotate(f"{mean:.4f}", (i + 0.3, mean), fontsize=8, xytext=(3, 0), textcoords="offset points")
    ax.set_xticks(range(len(names)), [f"{n}\n(n={len(groups[n])})" for n in names], fontsize=8)
    if floor is not None:  # a cell at chance level would squash the others into one line
        below = every[every < floor]
        ax.set_ylim(bottom=floor)
        ax.text(0.01, 0.01, f"below the axis: {len(below)} cell(s) at {', '.join(f'{v:.3f}' for v in below)} "
                "(counted in the means)", transform=ax.transAxes, fontsize=7, va="bottom")
    ax.set_ylabel("test accuracy, trained from scratch")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(f"cells trained from scratch (dots; square: mean ± SE)\n{subtitle}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _outlier_floor(values: np.ndarray) -> float | None:
    """A lower axis limit leaving out values far below the rest (beyond 3 IQR), or None when there are none."""
    if len(values) < 4:
        return None
    q1, q3 = np.percentile(values, [25, 75])
    low = q1 - 3 * max(q3 - q1, 1e-3)
    kept = values[values >= low]
    if len(kept) == len(values):
        return None
    return float(kept.min() - 0.1 * (kept.max() - kept.min() + 1e-3))


def _without_outliers(x: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """Which pairs to keep when some lie far below the others (cells at chance level); None when none do
    or too few would be left."""
    fx, fy = _outlier_floor(x), _outlier_floor(y)
    keep = (x >= (fx if fx is not None else -np.inf)) & (y >= (fy if fy is not None else -np.inf))
    return None if keep.all() or keep.sum() < 4 else keep


def plot_rq4_rank(x: Sequence[float], y: Sequence[float], agreement: dict[str, float], path: Path,
                  xlabel: str, ylabel: str, inner: dict[str, float] | None = None) -> None:
    """Scatter of the pairs; with cells far below the others (at chance level), a second panel zooms
    on the rest with its own Kendall tau / Spearman rho (``inner``, computed when not given)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = _without_outliers(x, y)
    fig = Figure(figsize=(10 if keep is not None else 5.5, 4.5))
    axes = fig.subplots(1, 2 if keep is not None else 1)
    ax = axes[0] if keep is not None else axes
    if keep is not None:
        inner = inner if inner is not None else rank_agreement(x[keep], y[keep])
        right = axes[1]
        right.scatter(x[keep], y[keep], s=18, alpha=0.7)
        right.set_xlabel(xlabel)
        right.grid(alpha=0.3)
        right.set_title(f"without the {int((~keep).sum())} cell(s) far below: n={inner['n']}, "
                        f"{tau_rho_text(inner, 2, short=True)}", fontsize=8)
    ax.scatter(x, y, s=18, alpha=0.7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.set_title(f"n={agreement['n']}: {tau_rho_text(agreement, 2)}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _rq4_evaluator(config: dict[str, Any], anchors: Sequence[Path]):
    from lanas.evaluators.supernet import SupernetEvaluator

    params = {k: v for k, v in config["evaluator"].items() if not k.startswith("_") and k != "train"}
    params["checkpoint"] = str(_rq4_path(params["checkpoint"], anchors))
    params["data"] = {**params.get("data", {}),
                      "data_dir": str(_rq4_path(params.get("data", {}).get("data_dir", "data"), anchors))}
    return SupernetEvaluator(**params)


def _space(name: str):
    from lanas.spaces.nasbench201 import NASBench201Space
    from lanas.spaces.nasnet import NASNetSpace

    if name == "nasbench201":
        return NASBench201Space()
    if name == "nasnet":
        return NASNetSpace()
    raise FileNotFoundError(f"RQ4 report: search_space={name} has no supernet")


def rq4_report(runs: Sequence[Run], roots: Sequence[str | Path], out: Path, train: bool = True,
               log=print, seed_check: int = 0) -> dict[str, Any]:
    """The RQ4 part of the report (see the comment above); returns its numbers and writes
    ``rq4.md``, ``rq4.json``, ``rq4_cells.csv`` and the ``rq4_*.png`` figures into ``out``.
    ``seed_check`` > 0 trains that many working random cells again with the next seed, to show how
    much one training's seed moves the from-scratch accuracy (the noise under the rank agreement)."""
    import json

    from lanas.cli import apply_torch_threads

    config = _rq4_config(runs[0])
    anchors = [Path(r).resolve() for r in roots]
    space_name = runs[0].summary["search_space"]
    dataset = runs[0].summary["dataset"]
    space = _space(space_name)
    checkpoint = _rq4_path(config["evaluator"]["checkpoint"], anchors)
    supernet_dir = checkpoint.parent.parent
    figures = []
    result: dict[str, Any] = {"search_space": space_name, "dataset": dataset, "supernet_dir": str(supernet_dir)}

    # 1. supernet learning curve and training cost
    curve = rq4_supernet_curve(supernet_dir)
    if len(curve["step"]) or len(curve["epoch"]):
        figures.append(out / "rq4_supernet_curve.png")
        sn = config.get("supernet", {})
        plot_rq4_supernet(curve, figures[-1], f"{space_name} supernet on {dataset}: {sn.get('init_channels')} channels, "
                          f"{sn.get('cells', sn.get('layers'))} cell(s) per stage, {config['data'].get('train_images') or 'all'} "
                          "training images, one random cell per batch")
        result["supernet_val_acc_last"] = float(curve["val_acc"][-1]) if len(curve["val_acc"]) else math.nan
    cost_path = supernet_dir / "fit_cost.json"
    fit_cost = json.loads(cost_path.read_text()) if cost_path.is_file() else {}
    result["supernet_fit"] = fit_cost

    # 2. the searches
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(str(r.summary["searcher"]), []).append(r)
    figures.append(out / "rq4_searches.png")
    plot_rq4_searches(runs, figures[-1])
    eval_cpu = [r.summary.get("evaluator_stats", {}).get("cpu_seconds_per_eval") for r in runs]
    eval_cpu = [v for v in eval_cpu if v is not None]
    result["searches"] = {name: {"seeds": sorted(int(r.summary["seed"]) for r in group),
                                 "samples": [int(r.summary["num_samples"]) for r in group],
                                 "best_supernet_score": [float(r.summary["best_reward"]) for r in group],
                                 "best_arch": [r.summary["best_arch"] for r in group]}
                          for name, group in sorted(by.items())}

    # 3. from-scratch trainings: each search's best cell and random cells
    scratch = config.get("scratch")
    evaluator = _rq4_evaluator(config, anchors)
    evaluator.candidate_space(space)
    apply_torch_threads(config.get("threads"))
    cells_rows: list[dict[str, Any]] = []
    if scratch:
        scratch = {**scratch, "data": {**scratch["data"],
                                       "data_dir": str(_rq4_path(scratch["data"].get("data_dir", "data"), anchors))}}
        rng = np.random.default_rng([int(scratch.get("seed", 0)), 4])  # the random cells: a function of the seed
        random_cells = [space.to_string(a) for a in space.sample(rng, int(scratch.get("random_cells", 30)))]
        best = [(name, int(r.summary["seed"]), r.summary["best_arch"]) for name, g in sorted(by.items()) for r in g]
        folder = Path(anchors[0]) / "rq4_scratch"
        folder.mkdir(parents=True, exist_ok=True)
        trained = rq4_scratch([b[2] for b in best] + random_cells, scratch, dataset, folder, config.get("threads"),
                              train=train, log=log)
        for name, seed, cell in best:
            cells_rows.append({"group": f"{name} best", "seed": seed, "arch": cell})
        for cell in random_cells:
            cells_rows.append({"group": "random cell", "seed": "", "arch": cell})
        for row in cells_rows:
            row["supernet_score"] = float(evaluator.query([space.from_string(row["arch"])], np.random.default_rng(0))[0])
            row["test_acc"] = trained.get(row["arch"], {}).get("test_acc", math.nan)
            row["scratch_cpu_s"] = trained.get(row["arch"], {}).get("cpu_s", math.nan)
            row["params_M"] = trained.get(row["arch"], {}).get("params_M", math.nan)
        write_csv(out / "rq4_cells.csv", cells_rows)
        groups: dict[str, list[float]] = {}
        for row in cells_rows:
            if not math.isnan(row["test_acc"]):
                groups.setdefault(row["group"], []).append(row["test_acc"])
        result["scratch"] = {g: {"n": len(v), "mean": _mean_se(v)[0], "se": _mean_se(v)[1], "values": v}
                             for g, v in groups.items()}
        if groups:
            figures.append(out / "rq4_scratch.png")
            sd, nw, tr = scratch["data"], scratch["network"], scratch["trainer"]
            plot_rq4_scratch(groups, figures[-1], f"{nw.get('init_channels')} channels, {nw.get('cells')} cell(s)/stage, "
                             f"{sd.get('train_images') or 'all'} images x {tr.get('max_epochs')} epochs, test set of {dataset}")
        pairs = [(r["supernet_score"], r["test_acc"]) for r in cells_rows
                 if r["group"] == "random cell" and not math.isnan(r["test_acc"])]
        if len(pairs) >= 4:
            agreement = rank_agreement(*zip(*pairs))
            result["rank_agreement"] = agreement
            xs, ys = (np.asarray(v, dtype=float) for v in zip(*pairs))
            keep = _without_outliers(xs, ys)
            if keep is not None:  # cells at chance level (a dead output node) left out
                result["rank_agreement_without_outliers"] = rank_agreement(xs[keep], ys[keep])
            figures.append(out / "rq4_rank.png")
            plot_rq4_rank(xs, ys, agreement, figures[-1], "supernet score (validation accuracy)",
                          "test accuracy trained from scratch", inner=result.get("rank_agreement_without_outliers"))
        if seed_check:
            result["seed_check"] = rq4_seed_check(cells_rows, scratch, dataset, folder, config.get("threads"),
                                                  seed_check, train, log)
        cpu = [r["scratch_cpu_s"] for r in cells_rows if not math.isnan(r["scratch_cpu_s"])]
        result["scratch_cpu_s_median"] = float(np.median(cpu)) if cpu else math.nan

    # 4. NAS-Bench-201 ground truth (CIFAR-10 only): every cell the searches scored, and the found cells
    if space_name == "nasbench201" and dataset == "cifar10":
        result["nb201_table"] = rq4_nb201_agreement(runs, space)

    # 5. cost in CPU-seconds
    samples = sum(int(r.summary["num_samples"]) for r in runs)
    one_eval = float(np.median(eval_cpu)) if eval_cpu else math.nan
    one_train = result.get("scratch_cpu_s_median", math.nan)
    result["cost"] = {"supernet_training_cpu_s": fit_cost.get("cpu_s", math.nan), "one_supernet_eval_cpu_s": one_eval,
                      "one_scratch_training_cpu_s": one_train, "samples_all_searches": samples,
                      "one_shot_total_cpu_s": fit_cost.get("cpu_s", math.nan) + samples * one_eval,
                      "train_every_sample_cpu_s": samples * one_train}
    md = rq4_markdown(result, config)
    (out / "rq4.md").write_text(md + "\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in figures) + "\n")
    (out / "rq4.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    result["figures"] = figures
    result["markdown"] = md
    return result


def rq4_seed_check(rows: Sequence[dict[str, Any]], scratch: dict[str, Any], dataset: str, folder: Path,
                   threads: int | None, count: int, train: bool, log) -> dict[str, Any]:
    """The first ``count`` working random cells (above chance) trained again with ``scratch.seed + 1``:
    mean absolute change and the standard deviation of one training (sd of the differences / sqrt 2),
    beside the spread of the working random cells."""
    live = [r for r in rows if r["group"] == "random cell" and not math.isnan(r["test_acc"])]
    floor = _outlier_floor(np.array([r["test_acc"] for r in live]))
    live = [r for r in live if floor is None or r["test_acc"] >= floor]
    again = rq4_scratch([r["arch"] for r in live[:count]], {**scratch, "seed": int(scratch.get("seed", 0)) + 1},
                        dataset, folder, threads, train=train, log=log)
    pairs = [(r["test_acc"], again[r["arch"]]["test_acc"]) for r in live[:count] if r["arch"] in again]
    diff = np.array([b - a for a, b in pairs])
    return {"n": len(pairs), "mean_abs_change": float(np.abs(diff).mean()) if len(diff) else math.nan,
            "sd_one_training": float(diff.std(ddof=1) / math.sqrt(2)) if len(diff) > 1 else math.nan,
            "sd_between_cells": float(np.std([r["test_acc"] for r in live], ddof=1)) if len(live) > 1 else math.nan}


def rq4_nb201_agreement(runs: Sequence[Run], space: Any) -> dict[str, Any]:
    """Kendall tau / Spearman rho between the supernet scores of every cell the searches evaluated and
    NAS-Bench-201's CIFAR-10 validation accuracy (mean over seeds), and the table accuracy of each
    search's best cell (rank among the 15,625)."""
    from lanas.benchmarks.nasbench201 import load_table

    table = np.nanmean(load_table("cifar10"), axis=1)
    scores: dict[int, float] = {}
    for r in runs:
        with open(r.path / analysis.TRACE, newline="") as handle:
            for row in csv.DictReader(handle):
                scores[space.from_string(row["arch"])] = float(row["reward"])
    cells = np.array(sorted(scores))
    agreement = rank_agreement([scores[c] for c in cells], table[cells]) if len(cells) > 3 else {}
    order = np.argsort(-table)
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(1, len(table) + 1)
    found = [{"searcher": r.summary["searcher"], "seed": r.summary["seed"], "arch": r.summary["best_arch"],
              "table_val_acc": float(table[space.from_string(r.summary["best_arch"])]),
              "table_rank": int(rank[space.from_string(r.summary["best_arch"])])} for r in runs]
    return {"cells": int(len(cells)), "agreement": agreement, "found": found, "table_best": float(table.max())}


def rq4_markdown(result: dict[str, Any], config: dict[str, Any]) -> str:
    """The RQ4 tables as Markdown."""
    lines = ["# RQ4: one-shot search", "",
             f"Space {result['search_space']}, dataset {result['dataset']}, supernet in {result['supernet_dir']}."]
    if "supernet_val_acc_last" in result:
        lines.append(f"Supernet validation accuracy at the last epoch (mean of its fixed random cells): "
                     f"{result['supernet_val_acc_last']:.4f}.")
    lines += ["", "## Searches (supernet score = validation accuracy through the supernet)", "",
              "| searcher | seeds | samples | best supernet score: mean ± SE | per seed |", "|---|---|---|---|---|"]
    for name, s in result["searches"].items():
        mean, se = _mean_se(s["best_supernet_score"])
        lines.append(f"| {name} | {len(s['seeds'])} | {sum(s['samples'])} | {mean:.4f} ± {_fmt(se, 4)} | "
                     f"{', '.join(f'{v:.4f}' for v in s['best_supernet_score'])} |")
    if result.get("scratch"):
        sc = config.get("scratch", {})
        lines += ["", f"## Trained from scratch (one schedule: {sc.get('network', {}).get('init_channels')} channels, "
                  f"{sc.get('network', {}).get('cells')} cell(s) per stage, {sc.get('data', {}).get('train_images') or 'all'} "
                  f"training images x {sc.get('trainer', {}).get('max_epochs')} epochs, seed {sc.get('seed', 0)}; test set)",
                  "", "| cells | n | test accuracy: mean ± SE | min | max |", "|---|---|---|---|---|"]
        for group, v in result["scratch"].items():
            lines.append(f"| {group} | {v['n']} | {v['mean']:.4f} ± {_fmt(v['se'], 4)} | {min(v['values']):.4f} | "
                         f"{max(v['values']):.4f} |")
    if result.get("rank_agreement"):
        a = result["rank_agreement"]
        lines += ["", "## Rank agreement: supernet score vs from-scratch test accuracy (random cells)", "",
                  f"n={a['n']}: {tau_rho_text(a, interval='95% bootstrap ')}."]
        if result.get("rank_agreement_without_outliers"):
            b = result["rank_agreement_without_outliers"]
            lines += ["", f"Without the {a['n'] - b['n']} cell(s) far below the others (beyond 3 IQR: a cell at chance "
                      f"level): n={b['n']}, {tau_rho_text(b)}."]
    if result.get("seed_check"):
        c = result["seed_check"]
        lines += ["", f"Seed noise: {c['n']} working random cells trained again with the next seed changed by "
                  f"{c['mean_abs_change']:.4f} on average (sd of one training {_fmt(c['sd_one_training'], 4)}); the "
                  f"working random cells spread with sd {_fmt(c['sd_between_cells'], 4)}."]
    if result.get("nb201_table"):
        t = result["nb201_table"]
        a = t["agreement"]
        lines += ["", "## NAS-Bench-201 ground truth (CIFAR-10 validation accuracy, mean over seeds)", ""]
        if a:
            lines.append(f"{t['cells']} cells scored by the searches: {tau_rho_text(a)}.")
        lines += ["", f"| searcher | seed | table accuracy of the found cell | rank of 15,625 (best {t['table_best']:.4f}) |",
                  "|---|---|---|---|"]
        lines += [f"| {f['searcher']} | {f['seed']} | {f['table_val_acc']:.4f} | {f['table_rank']} |" for f in t["found"]]
    c = result["cost"]
    lines += ["", "## Cost (CPU-seconds of the process, this machine)", "",
              "| item | CPU-seconds |", "|---|---|",
              f"| supernet training | {_fmt(c['supernet_training_cpu_s'], 1)} |",
              f"| one supernet evaluation (median) | {_fmt(c['one_supernet_eval_cpu_s'], 3)} |",
              f"| one from-scratch training (median) | {_fmt(c['one_scratch_training_cpu_s'], 1)} |",
              f"| one-shot: supernet + {c['samples_all_searches']} evaluations | {_fmt(c['one_shot_total_cpu_s'], 0)} |",
              f"| training every one of the {c['samples_all_searches']} samples instead | "
              f"{_fmt(c['train_every_sample_cpu_s'], 0)} |"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", help="multirun (sweep) directories or single run directories")
    parser.add_argument("--out", help="report folder (default: reports/<name of the first directory>)")
    parser.add_argument("--budgets", default=",".join(map(str, analysis.DEFAULT_BUDGETS)),
                        help="comma-separated sample budgets for the best-reward columns")
    parser.add_argument("--rq4-no-training", action="store_true",
                        help="one-shot (RQ4) sweeps: leave out cells not yet trained from scratch (cached ones stay)")
    parser.add_argument("--rq4-seed-check", type=int, default=0, metavar="N",
                        help="one-shot (RQ4) sweeps: train N working random cells again with the next seed (seed noise)")
    parser.add_argument("--no-references", action="store_true",
                        help="leave out random search's expectation (the paper's figures stay)")
    args = parser.parse_args(argv)
    try:
        budgets = [int(b) for b in args.budgets.split(",") if b]
    except ValueError:
        parser.error(f"--budgets must be comma-separated integers, got {args.budgets!r}")
    out = Path(args.out) if args.out else Path("reports") / Path(args.dirs[0]).resolve().name
    try:
        report = make_report(args.dirs, out, budgets, with_references=not args.no_references,
                             rq4_training=not args.rq4_no_training, rq4_seed_check=args.rq4_seed_check)
    except (FileNotFoundError, LanasError) as err:
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
    if report.get("rq4"):
        print()
        print(report["rq4"]["markdown"])
    print(f"\nreport written to {out}/ (table.md, table.csv, runs.csv, {', '.join(p.name for p in report['figures'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
