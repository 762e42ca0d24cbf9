"""search_space.encoding=live on NAS-Bench-201: dead edges are encoded as none (round 14)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from lanas.app import ignored_keys, prepare, run_config, with_new_defaults
from lanas.checkpoint import config_diff
from lanas.config import compose_config
from lanas.errors import ConfigError
from lanas.loop import search
from lanas.spaces.nasbench201 import EDGES, NASBench201Space, index_to_ops, live_ops, ops_to_index

from helpers import recorded_without, resume_differences

NONE, SKIP, CONV1, CONV3, POOL = range(5)


def dead_edges_by_brute_force(ops: np.ndarray) -> set[int]:
    """Edges whose op, changed to anything else, never changes which input-to-output paths carry ops."""
    def live_paths(row: np.ndarray) -> set[tuple[int, ...]]:
        edge_of = {(source, target): k for k, (target, source) in enumerate(EDGES)}
        paths, stack = set(), [(0, ())]
        while stack:
            node, path = stack.pop()
            if node == 3:
                paths.add(path)
                continue
            for (source, target), k in edge_of.items():
                if source == node and row[k] != NONE:
                    stack.append((target, (*path, k)))
        return paths

    used = {k for path in live_paths(ops) for k in path}
    return {k for k in range(len(EDGES)) if k not in used}


def test_live_ops_match_the_paths_from_input_to_output():
    rows = index_to_ops(np.arange(15625))
    live = live_ops(rows)
    for index in np.random.default_rng(0).choice(15625, 400, replace=False):
        dead = dead_edges_by_brute_force(rows[index])
        assert {k for k in range(6) if live[index, k] == NONE} == dead | {k for k in range(6) if rows[index, k] == NONE}


def test_live_encoding_merges_cells_that_differ_only_on_dead_edges():
    onehot, live = NASBench201Space(), NASBench201Space("live")
    # edge 0->1 is none, so node 1 is always zero: the op on 1->3 cannot act
    first = int(ops_to_index(np.array([NONE, CONV3, NONE, SKIP, CONV3, CONV1])))
    second = int(ops_to_index(np.array([NONE, CONV3, NONE, SKIP, POOL, CONV1])))
    assert not np.array_equal(onehot.encode([first]), onehot.encode([second]))
    assert np.array_equal(live.encode([first]), live.encode([second]))
    assert len(np.unique(live.features(), axis=0)) == 9445
    assert len(np.unique(onehot.features(), axis=0)) == 15625
    # live cells keep their encoding
    full = int(ops_to_index(np.array([CONV3, CONV3, CONV3, SKIP, CONV3, CONV1])))
    assert np.array_equal(live.encode([full]), onehot.encode([full]))


def test_the_default_encoding_is_unchanged_and_a_bad_one_is_named():
    assert NASBench201Space().encoding == "onehot"
    with pytest.raises(ConfigError, match="search_space.encoding='dead' is unknown; allowed: onehot, live"):
        prepare(compose_config("search_space.encoding=dead"))


def test_a_space_pickled_before_encodings_is_onehot():
    space = NASBench201Space()
    del space.__dict__["encoding"]
    assert pickle.loads(pickle.dumps(space)).encoding == "onehot"


def test_lanas_plus_asks_for_the_live_encoding_and_the_others_keep_onehot():
    def encoding(*overrides: str) -> str:
        return prepare(compose_config(*overrides))[0].encoding

    assert encoding() == "onehot"  # run.py's default searcher, lanas: the paper's encoding
    assert encoding("searcher=lanas_plus_v1") == "onehot"
    assert encoding("searcher=bo") == "onehot"
    assert encoding("searcher=lanas_plus") == "live"
    assert encoding("searcher=lanas_plus", "search_space.encoding=onehot") == "onehot"  # set: it wins
    assert encoding("searcher=lanas_plus", "searcher.space_encodings.nasbench201=onehot") == "onehot"
    assert encoding("searcher=lanas", "+searcher.space_encodings.nasbench201=live") == "live"
    # recorded resolved, so that a run resumes under the encoding it ran with
    assert run_config(compose_config("searcher=lanas_plus"))["search_space"]["encoding"] == "live"


def test_lanas_plus_searches_under_the_live_encoding():
    def proposals(*overrides: str) -> list[int]:
        space, evaluator, searcher, info, eval_rng = prepare(compose_config("searcher=lanas_plus", "seed=3", *overrides))
        return [int(record.arch) for record in search(space, evaluator, searcher, eval_rng, 40)]

    live = proposals()
    assert live == proposals("search_space.encoding=live")  # the preset's default, reproducible
    assert live != proposals("search_space.encoding=onehot")  # the model sees other features once it chooses
    assert live[:10] == proposals("search_space.encoding=onehot")[:10]  # the initial draws ignore the encoding


def test_runs_recorded_before_the_key_still_resume():
    current = run_config(compose_config("searcher=lanas_plus", "search_space.encoding=onehot"))
    old = recorded_without(current, "search_space", "encoding")
    assert config_diff(old, current, ignored_keys(current))
    assert resume_differences(old, current) == []
    fcnet = run_config(compose_config("benchmark=fcnet"))
    assert resume_differences(recorded_without(fcnet, "search_space", "encoding"), fcnet) == []
    # a recorded live run is not turned back
    live = run_config(compose_config("search_space.encoding=live"))
    assert with_new_defaults(live)["search_space"]["encoding"] == "live"
