"""experiments/survival_plot.py: the share of runs still searching, from the ablation script's JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from experiments.survival_plot import read_runs, still_searching

ROOT = Path(__file__).resolve().parents[1]


def write_runs(path: Path, records: list[tuple[str, str, int, int | None, int]]) -> None:
    path.write_text("".join(json.dumps({"variant": v, "dataset": d, "seed": s, "samples_to_optimum": t,
                                        "num_samples": n}) + "\n" for v, d, s, t, n in records))


def test_censored_runs_keep_searching_and_sources_pool(tmp_path):
    path = tmp_path / "runs.jsonl"
    write_runs(path, [
        ("from_a_1", "cifar10", 0, 10, 10),
        ("from_a_2", "cifar10", 0, 30, 30),
        ("from_a_2", "cifar10", 1, None, 50),  # stopped at its budget without the optimum
        ("from_a_1", "cifar100", 0, 5, 5),     # another data set: not read
        ("other", "cifar10", 0, 1, 1),         # another prefix: not read
        ("from_a_1", "cifar10", 0, 20, 20),    # the same run written again: the last line wins
    ])
    runs = read_runs(path, "cifar10", "from_a")
    assert sorted(runs) == [(20, True), (30, True), (50, False)]
    share = still_searching(runs, np.array([0, 19, 20, 30, 50, 100]))
    assert np.allclose(share, [1, 1, 2 / 3, 1 / 3, 1 / 3, 1 / 3])


def test_the_figure_is_written(tmp_path):
    path = tmp_path / "runs.jsonl"
    write_runs(path, [("cold", "cifar10", s, 40 + s, 40 + s) for s in range(5)]
               + [("warm", "cifar10", s, 20 + s, 20 + s) for s in range(5)])
    out = tmp_path / "fig" / "survival.png"
    result = subprocess.run([sys.executable, "-m", "experiments.survival_plot", "--dataset", "cifar10", "--out", str(out),
                             "--curve", "cold", str(path), "cold", "--curve", "warm", str(path), "warm"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_size > 10_000
    missing = subprocess.run([sys.executable, "-m", "experiments.survival_plot", "--dataset", "cifar10", "--out",
                              str(out), "--curve", "x", str(path), "nope"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode != 0 and "no run of cifar10 with a variant starting 'nope'" in missing.stderr
