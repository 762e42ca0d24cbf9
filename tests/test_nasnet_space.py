"""The nasnet cell space: encoding layout, sampling, mutation, validity, strings."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest

from lanas.errors import InvalidArchitectureError
from lanas.spaces.nasnet import DIM, NODE_BITS, NASNetSpace, SPACE_SIZE


@pytest.fixture
def space() -> NASNetSpace:
    return NASNetSpace()


def test_encoding_has_160_bits_with_two_per_node(space):
    archs = space.sample(np.random.default_rng(0), 500)
    X = space.encode(archs)
    assert X.shape == (500, 160) == (500, space.dim) and DIM == 160
    start = 0
    for _cell in range(2):
        for bits in NODE_BITS:
            assert np.all(X[:, start : start + bits].sum(axis=1) == 2)
            start += bits
    assert start == 160


def test_layout_matches_reference_flattening(space):
    # Reduce cell node 4 reading input 5 with sep_conv_5x5 is the very last bit; normal node 0 input 0
    # max_pool_3x3 the first one (normal first, node-major, input-major, op-minor).
    text = ("normal:|max_pool_3x3~0|skip_connect~0|+|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~0|max_pool_3x3~1|"
            "+|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~0|max_pool_3x3~1|;"
            "reduce:|max_pool_3x3~0|skip_connect~0|+|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~0|max_pool_3x3~1|"
            "+|max_pool_3x3~0|max_pool_3x3~1|+|max_pool_3x3~0|sep_conv_5x5~5|")
    x = space.encode([space.from_string(text)])[0]
    assert x[0] == 1 and x[1] == 1 and x[2] == 0
    assert x[159] == 1 and x[80] == 1
    assert x[8] == 1 and x[12] == 1  # node 1 starts after node 0's 8 bits; input 1 is 4 bits further


def test_decode_inverts_encode_and_rejects_bad_masks(space):
    arr = space.sample_array(np.random.default_rng(1), 300)
    assert np.array_equal(space.decode_array(space.encode_array(arr)), arr)
    bad = space.encode_array(arr[:1])
    bad[0, 0] = 1 - bad[0, 0]
    if bad[0, :8].sum() == 2:
        bad[0, 1] = 1 - bad[0, 1]
    with pytest.raises(InvalidArchitectureError, match="active bits"):
        space.decode_array(bad)


def test_sampling_is_uniform_over_pairs_of_a_node(space):
    # Node 0 of the normal cell has 8 positions, so C(8, 2) = 28 equally likely pairs.
    arr = space.sample_array(np.random.default_rng(2), 28_000)
    assert space.is_valid_array(arr).all()
    counts = np.unique(arr[:, 0] * 8 + arr[:, 1], return_counts=True)[1]
    assert len(counts) == comb(8, 2)
    assert counts.min() > 800 and counts.max() < 1200  # expected 1000 each


def test_mutation_changes_exactly_one_pair_and_stays_valid(space):
    rng = np.random.default_rng(3)
    for arch in space.sample(rng, 200):
        child = space.mutate(arch, rng)
        assert child != arch
        assert space.validate(child) == child
        diff = np.abs(space.encode([child])[0] - space.encode([arch])[0]).sum()
        assert diff == 2  # one bit off, one bit on
    arr = space.sample_array(rng, 500)
    kids = space.mutate_array(arr, rng)
    assert space.is_valid_array(kids).all()
    assert np.all(np.abs(space.encode_array(kids) - space.encode_array(arr)).sum(axis=1) == 2)


def test_strings_round_trip_and_ids_are_stable(space):
    rng = np.random.default_rng(4)
    for arch in space.sample(rng, 100):
        text = space.to_string(arch)
        assert space.from_string(text) == arch
        assert space.arch_id(arch) == space.arch_id(tuple(arch))
    # Pair order inside a node does not matter: one canonical architecture.
    a = space.sample(rng, 1)[0]
    swapped = list(a)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert space.validate(swapped) == a


@pytest.mark.parametrize("text, why", [
    ("normal:|x~0|", "cells"),
    ("normal:|max_pool_3x3~0|max_pool_3x3~2|+|a~0|a~1|+|a~0|a~1|+|a~0|a~1|+|a~0|a~1|;reduce:", "input 2"),
])
def test_bad_strings_raise_one_clear_error(space, text, why):
    with pytest.raises(InvalidArchitectureError, match=why):
        space.from_string(text)


def test_invalid_architectures_are_rejected(space):
    arch = list(space.sample(np.random.default_rng(5), 1)[0])
    arch[1] = arch[0]
    with pytest.raises(InvalidArchitectureError, match="must differ"):
        space.validate(arch)
    with pytest.raises(InvalidArchitectureError, match="20 integers"):
        space.validate(arch[:5])


def test_size_of_the_space(space):
    per_cell = 28 * 66 * 120 * 190 * 276
    assert space.size == SPACE_SIZE == per_cell**2
    assert not space.is_finite


def test_decision_sequence_round_trips_and_covers_every_pair(space):
    assert space.decisions() == [28, 66, 120, 190, 276] * 2
    archs = space.sample(np.random.default_rng(6), 200)
    rows = space.to_decisions(archs)
    assert np.all((rows >= 0) & (rows < np.array(space.decisions())))
    assert space.from_decisions(rows) == archs
    # Every choice of a node's decision is a distinct valid pair.
    first = np.zeros((28, 10), dtype=np.int64)
    first[:, 0] = np.arange(28)
    pairs = {a[:2] for a in space.from_decisions(first)}
    assert len(pairs) == 28 and all(a < b for a, b in pairs)
