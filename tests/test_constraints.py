"""Budgets (``constraints.*``): the space narrows to the architectures within them, the optimum is the
constrained one, summaries say which applied, bad input is one line. Every searcher's proposals are checked
in tests/test_searcher_contract.py (test_no_proposal_ever_violates_the_budget)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lanas.app import prepare, run
from lanas.benchmarks.nasbench101 import NASBench101Benchmark
from lanas.benchmarks.nasbench201 import NASBench201Benchmark, load_metrics, load_table
from lanas.constraints import parse_constraints
from lanas.errors import ConfigError, InvalidArchitectureError
from lanas.spaces.constrained import FeasibleSpace, SubsetSpace, constrain_space
from lanas.spaces.mobile import MobileSpace
from lanas.spaces.nasbench101 import NASBench101Space
from lanas.spaces.nasbench201 import NASBench201Space
from tests.helpers import compose_config
from tests.test_errors import assert_one_line

BUDGET = 0.344346  # NAS-Bench-201 CIFAR-10 median model size: 8,004 cells within it


def test_parse_constraints():
    assert not parse_constraints(None) and not parse_constraints({"params_mb": None, "flops_m": None})
    c = parse_constraints({"params_mb": 1, "flops_m": 600.0, "latency_ms": None})
    assert c.as_dict() == {"flops_m": 600.0, "params_mb": 1.0}
    for node, fragment in (({"macs": 1}, "constraints.macs is unknown; allowed: params_mb, flops_m, latency_ms"),
                           ({"params_mb": -1}, "constraints.params_mb must be >= 0.0"),
                           ({"params_mb": 0}, "constraints.params_mb must be > 0"),
                           ({"flops_m": "abc"}, "constraints.flops_m must be a number")):
        with pytest.raises(ConfigError) as err:
            parse_constraints(node)
        assert_one_line(str(err.value), fragment)


def test_nb201_constrained_pool_optimum_and_strings():
    params = load_metrics("cifar10")["params_mb"]
    mean = np.nanmean(load_table("cifar10"), axis=1)
    feasible = np.flatnonzero(params <= BUDGET)
    benchmark = NASBench201Benchmark()
    benchmark.constrain(parse_constraints({"params_mb": BUDGET}))
    space = benchmark.candidate_space(NASBench201Space())
    assert isinstance(space, SubsetSpace) and len(space) == len(feasible) == 8004
    assert benchmark.global_optimum == pytest.approx(mean[feasible].max())
    assert benchmark.global_optimum < np.nanmax(mean)  # the unconstrained optimum is outside the budget
    best = int(benchmark.optimal_archs()[0])
    assert params[space.full(best)] <= BUDGET and mean[space.full(best)] == benchmark.global_optimum
    # Positions map to the base pool: strings, rewards and decisions are the cells'.
    base = NASBench201Space()
    rng = np.random.default_rng(0)
    archs = space.sample(rng, 50)
    for arch in archs:
        full = space.full(arch)
        assert space.to_string(arch) == base.to_string(full) and space.from_string(space.to_string(arch)) == arch
        assert benchmark.query([arch], rng)[0] == mean[full]
        child = space.mutate(arch, rng)
        assert child != arch and params[space.full(child)] <= BUDGET
    rows = space.to_decisions(archs)
    assert space.from_decisions(rows) == archs
    outside = int(np.flatnonzero(params > BUDGET)[0])
    assert space.from_decisions(base.to_decisions([outside])) == [None]
    with pytest.raises(InvalidArchitectureError, match="outside this run's space"):
        space.from_string(base.to_string(outside))


def test_latency_budget_on_nb201():
    latency = load_metrics("cifar100")["latency_ms"]
    limit = float(np.median(latency))
    benchmark = NASBench201Benchmark("cifar100")
    benchmark.constrain(parse_constraints({"latency_ms": limit}))
    assert len(benchmark.candidate_space(NASBench201Space())) == int(np.sum(latency <= limit))


@pytest.mark.parametrize(("overrides", "fragment"), [
    (("constraints.flops_m=600",),
     "constraints.flops_m needs multiply-adds in millions, which benchmark=nasbench201 does not record "
     "(recorded: latency_ms, params_mb)"),
    (("constraints.params_mb=0.01",),
     "constraints.params_mb=0.01: no architecture of benchmark=nasbench201 meets them (smallest params_mb is 0.073306)"),
    (("search_space=nasnet", "+evaluator=train", "budget=10", "constraints.params_mb=1"),
     "constraints.params_mb needs each architecture's cost, which neither search_space=nasnet nor evaluator=train"),
])
def test_bad_constraints_are_one_line(overrides, fragment, tmp_path):
    with pytest.raises(ConfigError) as err:
        prepare(compose_config(*overrides))
    assert_one_line(str(err.value), fragment)


def test_run_stops_at_the_constrained_optimum_and_the_summary_says_so(tmp_path):
    summary = run(compose_config("logger=none", "progress=false", "searcher=lanas_plus",
                                 f"constraints.params_mb={BUDGET}", "trace_timing=false"), tmp_path)
    params = load_metrics("cifar10")["params_mb"]
    mean = np.nanmean(load_table("cifar10"), axis=1)
    assert summary["constraints"] == {"params_mb": BUDGET}
    assert summary["pool_size"] == 8004 and summary["global_optimum"] == pytest.approx(mean[params <= BUDGET].max())
    assert summary["samples_to_optimum"] == summary["num_samples"] and summary["best_reward"] == summary["global_optimum"]
    base = NASBench201Space()
    cells = [line.split(",")[1] for line in (tmp_path / "trace.csv").read_text().splitlines()[1:]]
    assert len(cells) == summary["num_samples"]
    assert max(params[base.from_string(cell)] for cell in cells) <= BUDGET
    assert json.loads((tmp_path / "summary.json").read_text())["constraints"] == {"params_mb": BUDGET}


def test_nb101_slice_params_budget(shared_data):
    path = shared_data / "nb101-subset" / "data-1k.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent (NAS-Bench-101 slice in ../shared/data)")
    raw = json.loads(path.read_text())
    params = np.asarray(raw["trainable_parameters"], dtype=np.float64) / 1e6
    limit = float(np.median(params))
    full = NASBench101Benchmark(str(path), reward="val_mean")
    benchmark = NASBench101Benchmark(str(path), reward="val_mean")
    benchmark.constrain(parse_constraints({"params_mb": limit}))
    space = benchmark.candidate_space(NASBench101Space())
    kept = full.metrics()["params_mb"] <= limit
    assert len(space) == int(kept.sum()) == int(np.sum(params <= limit))
    assert benchmark.global_optimum == pytest.approx(np.nanmax(full._mean()[kept]))
    by_hash = dict(zip(raw["key"], params))
    assert all(by_hash[space.arch_id(a)] <= limit for a in space.sample(np.random.default_rng(0), 100))
    with pytest.raises(ConfigError, match="constraints.latency_ms needs .* benchmark=nasbench101 does not record"):
        benchmark.constrain(parse_constraints({"latency_ms": 5}))


def test_feasible_space_samples_and_mutates_within_a_flops_budget():
    base = MobileSpace()
    space = constrain_space(base, parse_constraints({"flops_m": 300}), "evaluator=none")
    assert isinstance(space, FeasibleSpace)
    rng = np.random.default_rng(0)
    archs = space.sample(rng, 200)
    assert base.cost(archs)["flops_m"].max() <= 300
    kids = [space.mutate(a, rng) for a in archs[:50]]
    assert base.cost(kids)["flops_m"].max() <= 300 and all(k != a for k, a in zip(kids, archs))
    rows = base.to_decisions(base.sample(rng, 200))
    decided = space.from_decisions(rows)
    assert [a is None for a in decided] == list(base.cost_array(rows)["flops_m"] > 300)
    with pytest.raises(ConfigError, match="none of 100,096 random architectures"):
        constrain_space(base, parse_constraints({"flops_m": 1}), "evaluator=none").sample(rng, 1)


def test_runs_from_before_constraints_existed_still_resume(tmp_path):
    from lanas.app import run_config
    from lanas.checkpoint import config_diff

    plain, budgeted = run_config(compose_config()), run_config(compose_config("constraints.params_mb=1"))
    assert "constraints" not in plain  # all null: recorded as before the key existed
    assert config_diff(plain, budgeted) == ["constraints.params_mb: '<unset>' -> 1"]
