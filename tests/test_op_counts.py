"""searcher.model_op_counts: lanas_plus's model counts the decisions choosing each op (round 14)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from lanas.app import ignored_keys, prepare, run_config
from lanas.checkpoint import config_diff
from lanas.config import compose_config
from lanas.errors import ConfigError
from lanas.loop import search
from lanas.searchers.surrogate import QuadraticFeatures
from lanas.spaces.nasbench201 import NASBench201Space, index_to_ops

from helpers import recorded_without, resume_differences


@pytest.fixture(scope="module")
def space() -> NASBench201Space:
    return NASBench201Space()


def test_the_counts_are_the_number_of_edges_carrying_each_op(space):
    plain = QuadraticFeatures(space.features())
    counted = QuadraticFeatures(space.features(), op_blocks=space.op_blocks())
    assert counted.size == plain.size + 5
    archs = np.arange(0, 15625, 97)
    rows = counted(space.encode(archs))
    expected = np.stack([np.bincount(ops, minlength=5) for ops in index_to_ops(archs)])
    assert np.array_equal(rows[:, plain.size :], expected)
    assert np.array_equal(rows[:, : plain.size], plain(space.encode(archs)))
    # the counts share the main effects' prior, the pairs keep theirs
    assert not counted.pair_terms[plain.size :].any() and not counted.level_terms[plain.size :].any()


def test_the_fast_score_folds_the_counts_into_the_main_effects(space):
    counted = QuadraticFeatures(space.features(), op_blocks=space.op_blocks())
    w = np.random.default_rng(1).standard_normal(counted.size)
    X = space.features()[:500]
    assert np.allclose(counted.score(X, w), counted(X) @ w, atol=1e-4)


def test_features_pickled_before_the_counts_have_none(space):
    plain = QuadraticFeatures(space.features())
    plain.__dict__.pop("_counts", None)
    restored = pickle.loads(pickle.dumps(plain))
    assert restored.size == plain.size and restored._counts is None


def proposals(*overrides: str) -> list[int]:
    space, evaluator, searcher, info, eval_rng = prepare(compose_config("searcher=lanas_plus", "seed=2", *overrides))
    return [int(record.arch) for record in search(space, evaluator, searcher, eval_rng, 40)]


def test_lanas_plus_counts_ops_by_default_where_the_space_has_them():
    counted = proposals()
    assert counted == proposals("searcher.model_op_counts=true")  # auto on NAS-Bench-201: counted
    assert counted != proposals("searcher.model_op_counts=false")
    assert counted[:10] == proposals("searcher.model_op_counts=false")[:10]  # the initial uniform draws


def test_auto_counts_nothing_on_a_space_without_shared_ops():
    def fcnet(*overrides: str) -> list[int]:
        space, evaluator, searcher, info, eval_rng = prepare(
            compose_config("searcher=lanas_plus", "benchmark=fcnet", "seed=2", *overrides))
        assert searcher.model.op_counts is False
        return [int(record.arch) for record in search(space, evaluator, searcher, eval_rng, 30)]

    assert fcnet() == fcnet("searcher.model_op_counts=false")


def test_counts_need_a_space_with_shared_ops():
    with pytest.raises(ConfigError, match="searcher.model_op_counts=true needs a space whose decisions choose from one "
                                          "shared set of ops .*search_space=fcnet has none"):
        prepare(compose_config("searcher=lanas_plus", "searcher.model_op_counts=true", "benchmark=fcnet"))
    with pytest.raises(ConfigError, match="searcher.model_op_counts must be auto, true or false, got 'maybe'"):
        prepare(compose_config("searcher=lanas_plus", "searcher.model_op_counts=maybe"))


def test_runs_recorded_before_the_knob_still_resume():
    current = run_config(compose_config("searcher=lanas_plus", "searcher.model_op_counts=false"))
    old = recorded_without(current, "searcher", "model_op_counts")
    assert config_diff(old, current, ignored_keys(current))
    assert resume_differences(old, current) == []
    # under today's preset (auto) the difference is named, so the run is not resumed with another model
    today = run_config(compose_config("searcher=lanas_plus"))
    assert any("model_op_counts" in line for line in resume_differences(old, today))
