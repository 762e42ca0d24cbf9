"""Property-based tests (hypothesis) of the NAS-Bench-201 space and of the LaNAS tree's partition."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lanas.searchers.lanas import FALLBACKS, REGRESSORS, ROUTINGS, LaNAS
from lanas.spaces.nasbench201 import NUM_EDGES, NUM_OPS, OPS, NASBench201Space, index_to_ops, ops_to_index

SPACE = NASBench201Space()
ops_rows = st.lists(st.integers(0, NUM_OPS - 1), min_size=NUM_EDGES, max_size=NUM_EDGES)
archs = st.integers(0, len(SPACE) - 1)
seeds = st.integers(0, 2**32 - 1)


@given(ops_rows)
def test_ops_index_round_trip(ops):
    index = int(ops_to_index(np.array(ops)))
    assert 0 <= index < len(SPACE)
    assert index_to_ops(index).tolist() == ops


@given(archs)
def test_string_round_trip_and_names_the_ops(arch):
    text = SPACE.to_string(arch)
    assert SPACE.from_string(text) == arch
    assert SPACE.to_string(SPACE.from_string(text)) == text
    assert [token.split("~")[0] for node in text.split("+") for token in node.strip("|").split("|")] == list(
        SPACE.ops(arch)
    )


@given(ops_rows)
def test_string_built_from_ops_parses_to_those_ops(ops):
    tokens = iter(f"{OPS[op]}" for op in ops)
    text = "+".join("|" + "|".join(f"{next(tokens)}~{src}" for src in range(target)) + "|" for target in (1, 2, 3))
    assert index_to_ops(SPACE.from_string(text)).tolist() == ops


@given(st.lists(archs, min_size=1, max_size=20))
def test_encoding_is_one_hot_per_edge_and_decodes(batch):
    X = SPACE.encode(batch)
    assert X.shape == (len(batch), SPACE.dim)
    per_edge = X.reshape(len(batch), NUM_EDGES, NUM_OPS)
    assert np.all(per_edge.sum(axis=2) == 1)
    assert np.array_equal(per_edge.argmax(axis=2), index_to_ops(np.array(batch)))


@given(archs, seeds)
def test_mutation_stays_in_the_space_and_changes_exactly_one_edge(arch, seed):
    child = SPACE.mutate(arch, np.random.default_rng(seed))
    assert isinstance(child, int) and 0 <= child < len(SPACE)
    assert int(np.sum(index_to_ops(child) != index_to_ops(arch))) == 1
    assert SPACE.from_string(SPACE.to_string(child)) == child


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 6),
    num_samples=st.integers(2, 120),
    seed=seeds,
    routing=st.sampled_from(ROUTINGS),
    regressor=st.sampled_from(REGRESSORS),
    reward_kind=st.sampled_from(["random", "linear", "ties"]),
)
def test_every_pool_candidate_lands_in_exactly_one_leaf(height, num_samples, seed, routing, regressor, reward_kind):
    rng = np.random.default_rng(seed)
    tree = LaNAS(SPACE, np.random.default_rng(seed + 1), tree_height=height, init_samples=num_samples,
                 route_samples=routing, regressor=regressor, leaf_fallback=FALLBACKS[seed % 2])
    sampled = tree.ask(num_samples)
    X = SPACE.encode(sampled).astype(np.float64)
    rewards = {
        "random": rng.random(num_samples),
        "linear": X @ rng.normal(size=SPACE.dim),
        "ties": rng.integers(0, 3, num_samples).astype(float),  # many equal rewards: thresholds hit exactly
    }[reward_kind]
    tree.tell(sampled, rewards)
    tree.refit()

    # Every candidate's leaf, checked against each leaf's own path of constraints (same arithmetic as routing).
    features = SPACE.features()
    good = features @ tree.tree.W.T.astype(np.float32) >= (tree.tree.threshold - tree.tree.b).astype(np.float32)
    satisfied = np.zeros((len(features), tree.tree.num_nodes - tree.tree.num_internal), dtype=bool)
    for k, leaf in enumerate(range(tree.tree.num_internal, tree.tree.num_nodes)):
        ok = np.ones(len(features), dtype=bool)
        child = leaf
        while child > 0:
            parent = (child - 1) // 2
            ok &= good[:, parent] if child == 2 * parent + 1 else ~good[:, parent]
            child = parent
        satisfied[:, k] = ok
    assert np.all(satisfied.sum(axis=1) == 1)
    assert np.array_equal(tree.leaf_of, tree.tree.num_internal + satisfied.argmax(axis=1))

    # The in-leaf index holds each unevaluated candidate exactly once, in its own leaf's segment.
    free = np.flatnonzero(~tree.taken.mask.taken)
    assert np.array_equal(np.sort(tree.proposal.members), free)
    for k in range(tree.tree.num_nodes - tree.tree.num_internal):
        segment = tree.proposal.members[tree.proposal.seg_start[k] : tree.proposal.seg_start[k] + tree.proposal.seg_live[k]]
        assert np.all(tree.leaf_of[segment] == tree.tree.num_internal + k)
    assert tree.leaf_sizes().sum() == len(SPACE) - num_samples

    # Training samples are split too: each internal node's count is the sum of its children's.
    internal = np.arange(tree.tree.num_internal)
    assert tree.tree.n[0] == num_samples
    assert np.array_equal(tree.tree.n[internal], tree.tree.n[2 * internal + 1] + tree.tree.n[2 * internal + 2])
