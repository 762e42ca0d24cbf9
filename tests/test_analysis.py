"""lanas.analysis on hand-made run directories: loading, grouping, censoring, budgets, curves."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from lanas import analysis

OPT = 0.95


def fake_run(root: Path, name: str, rewards: list[float], *, searcher: str = "lanas", seed: int = 0,
             budget: int = 1000, reached_at: int | None = None, params: dict | None = None,
             overrides: list[str] | None = None, complete: bool = True) -> Path:
    """A run directory as the loop writes it (summary.json, trace.csv, .hydra/overrides.yaml)."""
    run_dir = root / name
    (run_dir / ".hydra").mkdir(parents=True)
    best = np.maximum.accumulate(rewards).tolist()
    with open(run_dir / "trace.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample", "arch", "reward", "best_reward", "elapsed_s"])
        for i, (r, b) in enumerate(zip(rewards, best), 1):
            writer.writerow([i, f"a,{i}", r, b, 0.0])  # a comma inside the arch column must not matter
    summary = {"searcher": searcher, "search_space": "toy", "benchmark": "toy", "dataset": "d", "seed": seed,
               "budget": budget, "num_samples": len(rewards), "best_reward": best[-1], "global_optimum": OPT,
               "samples_to_optimum": reached_at, "wall_time_s": 0.5, "complete": complete,
               "searcher_params": params or {}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {o}\n" for o in (overrides or [f"seed={seed}"])))
    return run_dir


def test_km_quantiles_match_the_plain_ones_without_censoring_and_account_for_censoring():
    times = np.array([10, 20, 30, 40, 50.0])
    assert analysis.km_quantiles(times, np.ones(5, bool), (0.5,)) == [30.0]
    # Censoring the two largest at 45 and 45: KM CDF steps 0.2, 0.4, 0.6 at 10, 20, 30 -> median 30,
    # the 0.75 quantile is beyond the last event: undefined rather than made up.
    times = np.array([10, 20, 30, 45, 45.0])
    reached = np.array([1, 1, 1, 0, 0], bool)
    q50, q75 = analysis.km_quantiles(times, reached, (0.5, 0.75))
    assert q50 == 30.0 and math.isnan(q75)
    # A run censored at 15 leaves the risk set: S(20) = 0.8 * 2/3 > 0.5, so the KM median is 30, where
    # counting it as reached at 15 (or dropping it) would say 20.
    times = np.array([10, 15, 20, 30, 40.0])
    reached = np.array([1, 0, 1, 1, 1], bool)
    assert analysis.km_quantiles(times, reached, (0.5,)) == [30.0]
    assert analysis.km_quantiles(times, np.ones(5, bool), (0.5,)) == [20.0]
    assert all(math.isnan(q) for q in analysis.km_quantiles(times, np.zeros(5, bool), (0.25, 0.5)))


def test_stats_count_censored_runs_instead_of_dropping_them(tmp_path):
    runs = [
        analysis.load_run(fake_run(tmp_path, "a", [0.5, 0.9, OPT], reached_at=3, seed=0)),
        analysis.load_run(fake_run(tmp_path, "b", [0.5, 0.6, 0.7, 0.8, OPT], reached_at=5, seed=1)),
        analysis.load_run(fake_run(tmp_path, "c", [0.5] * 8, budget=8, seed=2)),  # censored at 8
    ]
    stats = analysis.samples_to_optimum_stats(runs)
    assert (stats["runs"], stats["reached"], stats["censored"]) == (3, 2, 1)
    assert stats["mean"] == pytest.approx((3 + 5 + 8) / 3)
    assert stats["se"] == pytest.approx(np.std([3, 5, 8], ddof=1) / math.sqrt(3))
    assert stats["median"] == 5.0 and stats["q25"] == 3.0 and math.isnan(stats["q75"])
    assert stats["max_censor"] == 8


def test_best_at_budget_holds_after_the_optimum_and_is_undefined_after_a_budget_stop(tmp_path):
    early = analysis.load_run(fake_run(tmp_path, "a", [0.5, OPT], reached_at=2))
    capped = analysis.load_run(fake_run(tmp_path, "b", [0.5, 0.6, 0.7], budget=3, seed=1))
    assert analysis.best_at(early, 1) == 0.5 and analysis.best_at(early, 100) == OPT
    assert analysis.best_at(capped, 3) == 0.7 and math.isnan(analysis.best_at(capped, 4))
    table = analysis.best_at_budgets([early, capped], budgets=(2, 5))
    assert table["best@2"] == pytest.approx((OPT + 0.6) / 2)
    assert math.isnan(table["best@5"]), "averaging only the runs that got that far would be biased"
    matrix = analysis.best_so_far_matrix([early, capped], length=5)
    assert matrix[0].tolist() == [0.5, OPT, OPT, OPT, OPT]
    assert matrix[1, :3].tolist() == [0.5, 0.6, 0.7] and np.isnan(matrix[1, 3:]).all()
    c = analysis.curves([early, capped], regret=True, length=5)
    assert c["count"].tolist() == [2, 2, 2, 1, 1]
    assert c["mean"][0] == pytest.approx(OPT - 0.5) and c["mean"][4] == pytest.approx(0.0)
    assert c["se"][1] == pytest.approx(np.std([0.0, OPT - 0.6], ddof=1) / math.sqrt(2))


def test_swept_parameters_and_groups_come_from_summaries_and_overrides(tmp_path):
    for h in (1, 3):
        for seed in (0, 1):
            fake_run(tmp_path / "sweep", f"h{h}s{seed}", [0.5, OPT], reached_at=2, seed=seed,
                     params={"tree_height": h, "Cp": 0.1},
                     overrides=[f"searcher.tree_height={h}", f"seed={seed}", "experiment=x", "logger=none",
                                "benchmark.reward=sampled"])
    fake_run(tmp_path / "sweep", "random", [0.1] * 4, searcher="random", budget=4, overrides=["searcher=random"])
    (tmp_path / "sweep" / "broken").mkdir()
    (tmp_path / "sweep" / "broken" / "trace.csv").write_text("sample,arch,reward,best_reward,elapsed_s\n")
    runs, unfinished = analysis.load_runs([tmp_path / "sweep"])
    assert len(runs) == 5 and [p.name for p in unfinished] == ["broken"]
    lanas_run = next(r for r in runs if r.params["searcher"] == "lanas")
    assert lanas_run.params["searcher.tree_height"] in (1, 3)  # typed, from the summary
    assert lanas_run.params["benchmark.reward"] == "sampled"  # from the overrides
    assert "seed" not in lanas_run.params and "logger" not in lanas_run.params
    keys = analysis.swept_parameters(runs)
    assert keys[0] == "searcher" and "searcher.tree_height" in keys
    # Constant within lanas' runs and absent from random's: not swept. Budget differs between searchers.
    assert "searcher.Cp" not in keys and "experiment" not in keys and "benchmark.reward" not in keys
    assert "budget" in keys
    groups = analysis.group_runs(runs, ["searcher", "searcher.tree_height"])
    assert {k: len(v) for k, v in groups.items()} == {("lanas", 1): 2, ("lanas", 3): 2, ("random", None): 1}
    rows = analysis.summary_table(runs, ["searcher", "searcher.tree_height"], budgets=(1, 4))
    assert [r["runs"] for r in rows] == [2, 2, 1]
    assert rows[2]["censored"] == 1 and rows[2]["best@4"] == pytest.approx(0.1)


def test_incomplete_summary_counts_as_unfinished(tmp_path):
    fake_run(tmp_path, "a", [0.5], complete=False)
    runs, unfinished = analysis.load_runs([tmp_path])
    assert runs == [] and len(unfinished) == 1
    with pytest.raises(FileNotFoundError, match="nope"):
        analysis.load_runs([tmp_path / "nope"])


def test_random_search_expectation_matches_simulation():
    rng = np.random.default_rng(0)
    n, k = 40, 3
    firsts = [np.flatnonzero(rng.permutation(n) < k)[0] + 1 for _ in range(20_000)]
    assert analysis.random_search_expectation(n, k) == pytest.approx(np.mean(firsts), rel=0.02)
    assert analysis.random_search_expectation(15_625) == 7813.0


def test_references_name_the_paper_figures_for_nasbench101(tmp_path):
    run = analysis.load_run(fake_run(tmp_path, "a", [0.5, OPT], reached_at=2))
    run.summary.update(benchmark="nasbench101", dataset="cifar10")
    refs = analysis.references([run], {("nasbench101", "cifar10"): (423_624, 1)})
    assert [(r["mean"], r["median"]) for r in refs] == [(2274.0, 2056.0), (211_812.5, 211_812.5)]
    assert all(r["comparable"] for r in refs)
    # On a subset table the paper's figure stays in the table, flagged, and random's expectation follows N.
    subset = analysis.references([run], {("nasbench101", "cifar10"): (20_001, 1)})
    assert not subset[0]["comparable"] and "not comparable" in subset[0]["source"]
    assert subset[1]["mean"] == 10_001.0 and subset[1]["comparable"]


def test_pool_sizes_come_from_summaries_and_old_runs_are_named(tmp_path):
    new = analysis.load_run(fake_run(tmp_path, "new", [0.5, OPT], reached_at=2))
    new.summary.update(pool_size=15_625, num_optima=1)
    unbounded = analysis.load_run(fake_run(tmp_path, "unbounded", [0.5], seed=1))
    unbounded.summary.update(benchmark="supernet", pool_size=None, num_optima=None)
    old = analysis.load_run(fake_run(tmp_path, "old", [0.5], seed=2))
    old.summary.update(benchmark="older")
    assert analysis.pool_sizes([new, unbounded, old]) == {("toy", "d"): (15_625, 1)}
    # Only runs written before summaries recorded pool_size are named; an unbounded space is not "missing".
    assert analysis.without_pool_size([new, unbounded, old]) == [("older", "d")]
    refs = analysis.references([new], analysis.pool_sizes([new]))
    assert [(r["searcher"], r["mean"]) for r in refs] == [("random", 7813.0)]
