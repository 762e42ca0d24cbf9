from __future__ import annotations

import numpy as np
import pytest

from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.errors import ConfigError, InvalidArchitectureError
from lanas.spaces.nasbench201 import OPS, NASBench201Space, index_to_ops

BEST_CIFAR10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


@pytest.fixture(scope="module")
def space() -> NASBench201Space:
    return NASBench201Space()


def test_enumeration_covers_every_cell_once(space):
    pool = space.enumerate()
    assert len(pool) == 15_625 == 5**6
    strings = {space.to_string(i) for i in pool}
    assert len(strings) == 15_625


def test_encoding_is_one_hot_per_edge(space):
    X = space.features()
    assert X.shape == (15_625, 30)
    per_edge = X.reshape(-1, 6, 5)
    assert np.all(per_edge.sum(axis=2) == 1)
    ops = index_to_ops(np.arange(15_625))
    assert np.array_equal(per_edge.argmax(axis=2), ops)
    assert not X.flags.writeable


def test_string_round_trip_and_standard_format(space):
    arch = space.from_string(BEST_CIFAR10)
    assert space.to_string(arch) == BEST_CIFAR10
    assert space.ops(arch) == ("nor_conv_3x3",) * 3 + ("skip_connect", "nor_conv_3x3", "nor_conv_1x1")
    assert space.to_string(0) == "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "|nor_conv_3x3~0|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|+|none~0|none~1|none~2|",
    ],
)
def test_bad_strings_are_rejected(space, text):
    with pytest.raises(InvalidArchitectureError, match="NAS-Bench-201"):
        space.from_string(text)


def test_mutation_changes_exactly_one_edge(space):
    rng = np.random.default_rng(0)
    for arch in rng.integers(len(space), size=200):
        child = space.mutate(int(arch), rng)
        diff = index_to_ops(child) != index_to_ops(int(arch))
        assert diff.sum() == 1


def test_benchmark_knows_its_optimum():
    # Mean validation accuracy over seeds, as fractions; the cells are NAS-Bench-201's known best.
    expected = {"cifar10": 0.91607, "cifar100": 0.73493, "imagenet16-120": 0.46733}
    space = NASBench201Space()
    for dataset, value in expected.items():
        bench = NASBench201Benchmark(dataset)
        assert bench.global_optimum == pytest.approx(value, abs=1e-5)
        best = bench.optimal_archs()
        assert len(best) == 1
        assert bench.query(best, np.random.default_rng(0))[0] == bench.global_optimum
    assert space.to_string(NASBench201Benchmark("cifar10").optimal_archs()[0]) == BEST_CIFAR10


def test_rewards_are_fractions_and_sampled_reward_draws_recorded_seeds():
    mean = NASBench201Benchmark("cifar10", "mean")
    sampled = NASBench201Benchmark("cifar10", "sampled")
    rng = np.random.default_rng(1)
    archs = np.arange(0, 15_625, 7)
    values = sampled.query(archs, rng)
    assert np.all((values >= 0) & (values <= 1))
    assert not np.isnan(values).any()
    table = sampled.table[archs]
    assert np.all(np.any(np.isclose(table, values[:, None]), axis=1))
    # Draws differ from the mean for cells whose seeds disagree, and average out to it.
    assert np.mean(np.abs(values - mean.query(archs, rng))) > 0
    many = np.mean([sampled.query([4242], rng)[0] for _ in range(2000)])
    assert many == pytest.approx(mean.query([4242], rng)[0], abs=2e-3)


def test_unknown_dataset_and_reward_name_the_allowed_values():
    with pytest.raises(ConfigError, match="cifar10, cifar100, imagenet16-120"):
        NASBench201Benchmark("mnist")
    with pytest.raises(ConfigError, match="mean, sampled"):
        NASBench201Benchmark("cifar10", "median")


def test_ops_match_the_official_table_order(shared_data):
    """Our edge order agrees with NAS-Bench-201's cell strings: validation and test accuracy correlate."""
    space = NASBench201Space()
    configs = (shared_data / "nb201-test" / "configs.txt").read_text().split()
    test_acc = np.load(shared_data / "nb201-test" / "cifar10_test_accs.npy")
    idx = np.array([space.from_string(c) for c in configs])
    val = NASBench201Benchmark("cifar10").query(idx, np.random.default_rng(0))
    assert np.corrcoef(val, test_acc)[0, 1] > 0.99
    assert OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
