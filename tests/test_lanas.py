from __future__ import annotations

import numpy as np
import pytest

from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.errors import ConfigError
from lanas.searchers.lanas import LaNAS, fit_linear
from lanas.spaces.nasbench201 import NASBench201Space


@pytest.fixture(scope="module")
def space() -> NASBench201Space:
    return NASBench201Space()


def make(space, seed=0, **kwargs) -> LaNAS:
    return LaNAS(space, np.random.default_rng(seed), **kwargs)


def feed(searcher: LaNAS, reward_fn, n: int) -> None:
    for _ in range(n):
        archs = searcher.ask(1)
        searcher.tell(archs, [reward_fn(a) for a in archs])


def linear_reward(space):
    w = np.random.default_rng(42).normal(size=space.dim)
    X = space.features()
    return lambda arch: float(X[arch] @ w)


def test_fit_linear_is_exact_least_squares_with_intercept():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 7.0
    w, b = fit_linear(X, y)
    assert np.allclose(w, [1.0, -2.0, 0.5, 3.0]) and b == pytest.approx(7.0)
    # Noisy and under-determined fits: the mean prediction is the mean reward, the paper's threshold.
    for n in (3, 50):
        Xn, yn = rng.normal(size=(n, 10)), rng.normal(size=n)
        for alpha in (0.0, 0.1):
            w, b = fit_linear(Xn, yn, alpha)
            assert np.mean(Xn @ w + b) == pytest.approx(yn.mean())


def test_refit_splits_each_node_at_its_mean(space):
    reward = linear_reward(space)
    lanas = make(space, tree_height=3, init_samples=40, refit_every=1000)
    feed(lanas, reward, 40)
    lanas.refit()
    y = np.array(lanas.rewards)
    assert lanas.tree.n[0] == 40 and lanas.tree.x_bar[0] == pytest.approx(y.mean())
    assert lanas.tree.threshold[0] == pytest.approx(y.mean())
    good = y >= lanas.tree.threshold[0]
    assert lanas.tree.n[1] == good.sum() and lanas.tree.n[2] == (~good).sum()
    assert lanas.tree.x_bar[1] == pytest.approx(y[good].mean())
    assert lanas.tree.x_bar[1] > lanas.tree.x_bar[0] > lanas.tree.x_bar[2]
    # Children's counts add up at every internal node.
    for node in range(lanas.tree.num_internal):
        assert lanas.tree.n[node] == lanas.tree.n[2 * node + 1] + lanas.tree.n[2 * node + 2]


def test_candidates_route_to_exactly_one_leaf_satisfying_every_constraint(space):
    lanas = make(space, tree_height=4, init_samples=60, refit_every=1000)
    feed(lanas, linear_reward(space), 60)
    lanas.refit()
    X = space.features().astype(np.float64)
    leaves = lanas.leaf_of
    assert leaves.shape == (len(space),)
    assert set(np.unique(leaves)) <= set(range(lanas.tree.num_internal, lanas.tree.num_nodes))
    # Walk up from each leaf: each step's constraint (good = prediction >= threshold) holds.
    node = leaves.copy()
    while np.any(node > 0):
        moving = node > 0
        parent = (node[moving] - 1) // 2
        went_good = node[moving] == 2 * parent + 1
        pred = np.einsum("ij,ij->i", X[moving], lanas.tree.W[parent]) + lanas.tree.b[parent]
        satisfied = np.where(went_good, pred >= lanas.tree.threshold[parent] - 1e-5, pred < lanas.tree.threshold[parent] + 1e-5)
        assert satisfied.all()
        node[moving] = parent
    # With a linear reward the best-predicted leaf holds the true best cells.
    true = X @ np.random.default_rng(42).normal(size=space.dim)
    assert leaves[np.argmax(true)] == lanas.tree.num_internal


def test_ucb_prefers_unvisited_then_mean_plus_bonus(space):
    lanas = make(space, tree_height=2, Cp=0.0, init_samples=10)
    feed(lanas, linear_reward(space), 10)
    lanas.refit()
    lanas.tree.n[:] = [10, 0, 10]
    assert lanas.select() == [0, 1]  # unvisited first
    lanas.tree.n[:] = [10, 5, 5]
    lanas.tree.x_bar[:] = [0.5, 0.4, 0.6]
    assert lanas.select() == [0, 2]  # Cp = 0: greedy on the mean
    lanas.Cp = 1.0
    lanas.tree.n[:] = [100, 99, 1]
    lanas.tree.x_bar[:] = [0.5, 0.6, 0.3]
    # 0.3 + 2*sqrt(2 ln 100 / 1) ~ 6.37 beats 0.6 + 2*sqrt(2 ln 100 / 99) ~ 1.21
    assert lanas.select() == [0, 2]


def test_ucb_breaks_ties_at_random(space):
    picks = set()
    for seed in range(20):
        lanas = make(space, seed=seed, tree_height=2, init_samples=2)
        feed(lanas, lambda a: 0.5, 2)
        lanas.refit()
        lanas.tree.n[:] = [4, 2, 2]
        lanas.tree.x_bar[:] = [0.5, 0.5, 0.5]
        picks.add(lanas.select()[-1])
    assert picks == {1, 2}


def test_samples_come_from_the_selected_leaf_and_backpropagate(space):
    lanas = make(space, tree_height=3, init_samples=20, refit_every=1000)
    reward = linear_reward(space)
    feed(lanas, reward, 20)
    lanas.ask(0)  # no-op
    for _ in range(30):
        arch = lanas.ask(1)[0]
        leaf = lanas._leaf_of_arch[arch]
        assert lanas.leaf_of[arch] == leaf
        before_n = lanas.tree.n.copy()
        lanas.tell([arch], [reward(arch)])
        path = [leaf]
        while path[-1] > 0:
            path.append((path[-1] - 1) // 2)
        changed = np.flatnonzero(lanas.tree.n != before_n)
        assert sorted(changed) == sorted(path)


def test_never_proposes_twice_and_exhausts_the_pool(space):
    lanas = make(space, tree_height=3, init_samples=10, refit_every=5000)
    seen = set()
    reward = linear_reward(space)
    while True:
        archs = lanas.ask(1)
        if not archs:
            break
        assert archs[0] not in seen
        seen.add(archs[0])
        lanas.tell(archs, [reward(archs[0])])
    assert len(seen) == len(space)


def test_height_one_is_random_search(space):
    lanas = make(space, tree_height=1, init_samples=1)
    feed(lanas, lambda a: 0.0, 50)
    assert lanas.tree.num_internal == 0 and lanas.tree.num_nodes == 1
    assert len(set(lanas.archs)) == 50


def test_lanas_beats_random_search_on_nasbench201(space):
    """Random search needs (15625 + 1) / 2 = 7813 samples on average; LaNAS far fewer."""
    bench = NASBench201Benchmark("cifar10")
    optimum = bench.optimal_archs()[0]
    table = bench.query(np.arange(len(space)), np.random.default_rng(0))
    needed = []
    for seed in range(10):
        lanas = make(space, seed=seed)
        for i in range(1, len(space) + 1):
            arch = lanas.ask(1)[0]
            lanas.tell([arch], [table[arch]])
            if arch == optimum:
                needed.append(i)
                break
    assert np.mean(needed) < 2500, needed


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tree_height": 0}, "searcher.tree_height must be >= 1"),
        ({"tree_height": 2.5}, "searcher.tree_height must be an integer"),
        ({"Cp": -0.1}, "searcher.Cp must be >= 0"),
        ({"Cp": "big"}, "searcher.Cp must be a number"),
        ({"init_samples": 0}, "searcher.init_samples must be >= 1"),
        ({"refit_every": 0}, "searcher.refit_every must be >= 1"),
        ({"regressor": "mlp"}, "allowed: linear, ridge"),
        ({"route_samples": "x"}, "allowed: reward, predicted"),
    ],
)
def test_bad_parameters_are_named(space, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        make(space, **kwargs)
