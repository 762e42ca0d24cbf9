"""The share of runs still searching after each number of samples, one curve per group of runs.

Reads the JSON lines that ``python -m experiments.lanas_plus_ablation ... --out FILE`` writes (one per run:
variant, dataset, seed, samples_to_optimum, num_samples) and draws, for each ``--curve LABEL FILE PREFIX``, the
runs of FILE whose variant starts with PREFIX (several sources of a warm start pool into one curve)::

    python -m experiments.survival_plot --dataset cifar10 --out docs/figures/warm_start_cifar10.png \\
        --curve "cold start" cold.jsonl lanas_plus --curve "warm start" warm.jsonl from_cifar100

A run that stopped at its budget without the optimum is censored there: the curve stays at its level after the
budget instead of falling, so the mean it implies is a lower bound, as in the tables.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def read_runs(path: Path, dataset: str, prefix: str) -> list[tuple[int, bool]]:
    """(samples, reached the optimum) of the runs in ``path`` on ``dataset`` whose variant starts with ``prefix``;
    the last line wins for a (variant, seed) written twice."""
    runs: dict[tuple[str, int], tuple[int, bool]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["dataset"] != dataset or not record["variant"].startswith(prefix):
            continue
        reached = record["samples_to_optimum"] is not None
        runs[record["variant"], record["seed"]] = (record["samples_to_optimum"] if reached else record["num_samples"],
                                                   reached)
    return list(runs.values())


def still_searching(runs: list[tuple[int, bool]], grid: np.ndarray) -> np.ndarray:
    """Share of the runs that have not evaluated the optimum after each number of samples in ``grid``
    (a censored run counts as still searching up to its budget)."""
    samples = np.array([s for s, _ in runs], dtype=np.float64)
    reached = np.array([r for _, r in runs])
    found = (samples[None, :] <= grid[:, None]) & reached[None, :]
    return 1.0 - found.mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, required=True, help="the figure (.png)")
    parser.add_argument("--curve", nargs=3, action="append", required=True, metavar=("LABEL", "FILE", "PREFIX"))
    parser.add_argument("--max-samples", type=int, default=300, help="right end of the x axis")
    parser.add_argument("--title", default="")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.arange(0, args.max_samples + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    styles = ["-", "--", "-.", ":"]  # curves that coincide stay visible
    for k, (label, file, prefix) in enumerate(args.curve):
        runs = read_runs(Path(file), args.dataset, prefix)
        if not runs:
            raise SystemExit(f"no run of {args.dataset} with a variant starting {prefix!r} in {file}")
        samples = np.array([s for s, _ in runs], dtype=np.float64)
        bound = "" if all(r for _, r in runs) else ">= "  # censored runs count at their budget
        ax.step(grid, still_searching(runs, grid), where="post", linestyle=styles[k % len(styles)], linewidth=1.6,
                label=f"{label} (n={len(runs)}, mean {bound}{samples.mean():.1f}, median {np.median(samples):.0f})")
    ax.set_xlabel("samples evaluated")
    ax.set_ylabel("share of runs without the optimum")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, args.max_samples)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(args.title or f"{args.dataset}: runs still searching", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
