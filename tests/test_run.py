"""End-to-end: the Hydra config, run.py, the files a run leaves, errors, sweeps."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lanas.app import run
from lanas.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_KEYS = {
    "searcher", "search_space", "benchmark", "dataset", "seed", "budget", "num_samples", "best_reward",
    "best_arch", "global_optimum", "samples_to_optimum", "wall_time_s",
}


def run_py(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def read_trace(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_default_run_reaches_the_optimum_and_records_every_sample(tmp_path):
    summary = run(compose_config(), tmp_path)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["searcher"] == "lanas" and summary["dataset"] == "cifar10"
    assert summary["samples_to_optimum"] == summary["num_samples"]
    assert summary["best_reward"] == summary["global_optimum"]
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["samples_to_optimum"] == summary["samples_to_optimum"]
    rows = read_trace(tmp_path / "trace.csv")
    assert list(rows[0]) == ["sample", "arch", "reward", "best_reward", "elapsed_s"]
    assert len(rows) == summary["num_samples"]
    assert [int(r["sample"]) for r in rows] == list(range(1, len(rows) + 1))
    best = [float(r["best_reward"]) for r in rows]
    assert best == sorted(best) and best[-1] == summary["best_reward"]
    assert rows[-1]["arch"] == summary["best_arch"]
    assert len({r["arch"] for r in rows}) == len(rows)


@pytest.mark.parametrize("dataset", ["cifar100", "imagenet16-120"])
def test_other_datasets_and_sampled_reward(tmp_path, dataset):
    summary = run(compose_config(f"dataset={dataset}", "benchmark.reward=sampled", "budget=300"), tmp_path)
    assert summary["dataset"] == dataset
    assert summary["num_samples"] <= 300
    rewards = [float(r["reward"]) for r in read_trace(tmp_path / "trace.csv")]
    assert all(0.0 <= r <= 1.0 for r in rewards)


def test_budget_and_stop_at_optimum(tmp_path):
    summary = run(compose_config("budget=40", "stop_at_optimum=false"), tmp_path / "a")
    assert summary["num_samples"] == 40 and summary["budget"] == 40
    full = run(compose_config("searcher.tree_height=1", "searcher.init_samples=1", "stop_at_optimum=false",
                              "budget=20000"), tmp_path / "b")
    assert full["num_samples"] == 15_625  # the searcher runs out of architectures before the budget


def test_run_py_prints_one_summary_line_and_writes_wandb_offline(tmp_path):
    result = run_py(f"hydra.run.dir={tmp_path}", "progress=false")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lanas on nasbench201/cifar10 seed=0:")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"samples_to_optimum={summary['samples_to_optimum']}" in lines[0]
    assert list((tmp_path / "wandb").glob("offline-run-*")), "wandb should log offline inside the run dir"


def test_same_seed_same_trace(tmp_path):
    traces = []
    for name in ("a", "b"):
        result = run_py(f"hydra.run.dir={tmp_path / name}", "seed=3", "logger=none", "progress=false")
        assert result.returncode == 0, result.stderr
        rows = read_trace(tmp_path / name / "trace.csv")
        traces.append([{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows])
    assert traces[0] == traces[1]
    other = run(compose_config("seed=4"), tmp_path / "c")
    assert [r["arch"] for r in read_trace(tmp_path / "c" / "trace.csv")] != [r["arch"] for r in traces[0]][: other["num_samples"]]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("searcher.Cp=-1", "searcher.Cp must be >= 0"),
        ("searcher.tree_height=0", "searcher.tree_height must be >= 1"),
        ("searcher.init_samples=0", "searcher.init_samples must be >= 1"),
        ("budget=5", "budget=5 is smaller than the 10 samples"),
        ("benchmark.dataset=mnist", "allowed: cifar10, cifar100, imagenet16-120"),
        ("seed=-1", "seed must be >= 0"),
    ],
)
def test_bad_values_give_one_line_errors(tmp_path, override, expected):
    result = run_py(f"hydra.run.dir={tmp_path}", "logger=none", override)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert expected in result.stderr
    assert not (tmp_path / "trace.csv").exists()


@pytest.mark.parametrize(
    ("override", "expected"),
    [("searcher=nope", "searcher/nope"), ("dataset=mnist", "dataset/mnist"), ("searcher.nope=1", "nope")],
)
def test_unknown_options_and_keys_are_named(tmp_path, override, expected):
    result = run_py(f"hydra.run.dir={tmp_path}", override)
    assert result.returncode != 0
    assert expected in result.stderr
    if "/" in expected:
        assert "Available options" in result.stderr


def test_multirun_sweep_gives_each_job_its_own_directory(tmp_path):
    result = run_py("-m", "searcher.tree_height=1,3,5", "searcher.Cp=0.01,0.1", "seed=0,1", "budget=30",
                    "logger=none", "progress=false", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("*/summary.json")]
    assert len(summaries) == 12
    assert sum(line.startswith("lanas on ") for line in result.stdout.splitlines()) == 12
    configs = {(s["searcher_params"]["tree_height"], s["searcher_params"]["Cp"], s["seed"]) for s in summaries}
    assert configs == {(h, cp, seed) for h in (1, 3, 5) for cp in (0.01, 0.1) for seed in (0, 1)}
