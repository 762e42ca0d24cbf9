"""Mechanics of the baseline searchers: random, regularised evolution, GP-based BO, fixed-action MCTS."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from scipy.stats import norm

from lanas.app import run
from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.errors import ConfigError
from lanas.searchers.bo import GPBayesOpt, expected_improvement, upper_confidence_bound
from lanas.searchers.evolution import RegularizedEvolution
from lanas.searchers.mcts import FixedActionMCTS
from lanas.searchers.random import RandomSearch
from lanas.spaces.base import FiniteSearchSpace, SearchSpace
from lanas.spaces.nasbench201 import NASBench201Space, index_to_ops
from tests.helpers import compose_config
from tests.test_run import read_trace, run_py

SEARCHERS = ("random", "evolution", "bo", "mcts")


class Grid(FiniteSearchSpace):
    """Points of a grid in [0, 1]^k. Pool positions are in column-major order, so that they differ from
    the decision order (first coordinate slowest) and MCTS has to map one onto the other."""

    name = "grid"

    def __init__(self, shape: tuple[int, ...] = (3, 4)) -> None:
        self.shape = tuple(shape)

    def __len__(self) -> int:
        return int(np.prod(self.shape))

    @property
    def dim(self) -> int:
        return len(self.shape)

    def to_decisions(self, archs) -> np.ndarray:
        return np.stack(np.unravel_index(np.asarray(archs, dtype=np.int64), self.shape, order="F"), axis=-1)

    def from_decisions(self, choices) -> list[int]:
        rows = np.asarray(choices).reshape(-1, self.dim)
        return [int(i) for i in np.ravel_multi_index(tuple(rows.T), self.shape, order="F")]

    def decisions(self) -> list[int]:
        return list(self.shape)

    def _build_features(self) -> np.ndarray:
        return self.to_decisions(np.arange(len(self))) / np.maximum(np.array(self.shape) - 1, 1)

    def mutate(self, arch, rng):
        row = self.to_decisions([arch])[0]
        k = rng.integers(self.dim)
        row[k] = (row[k] + rng.integers(1, self.shape[k])) % self.shape[k]
        return self.from_decisions(row)[0]

    def to_string(self, arch) -> str:
        return ",".join(map(str, self.to_decisions([arch])[0]))

    def from_string(self, text: str):
        return self.from_decisions([int(t) for t in text.split(",")])[0]


class Unbounded(SearchSpace):
    """The same grid as a space that cannot be enumerated: architectures are tuples."""

    name = "unbounded"

    def __init__(self, shape: tuple[int, ...] = (3, 4)) -> None:
        self.shape = tuple(shape)

    @property
    def dim(self) -> int:
        return len(self.shape)

    def sample(self, rng, n=1):
        return [tuple(int(rng.integers(k)) for k in self.shape) for _ in range(n)]

    def encode(self, archs):
        return np.array(archs, dtype=np.float64).reshape(-1, self.dim)

    def mutate(self, arch, rng):
        k = int(rng.integers(self.dim))
        row = list(arch)
        row[k] = (row[k] + int(rng.integers(1, self.shape[k]))) % self.shape[k]
        return tuple(row)

    def decisions(self):
        return list(self.shape)

    def from_decisions(self, choices):
        return [tuple(int(c) for c in row) for row in np.asarray(choices).reshape(-1, self.dim)]

    def to_decisions(self, archs):
        return np.array(archs, dtype=np.int64).reshape(-1, self.dim)

    def to_string(self, arch):
        return ",".join(map(str, arch))

    def from_string(self, text):
        return tuple(int(t) for t in text.split(","))


class NoDecisions(Unbounded):
    name = "nodecisions"

    def decisions(self):
        return None


def make(kind: str, space, seed: int = 0, **kwargs):
    cls = {"random": RandomSearch, "evolution": RegularizedEvolution, "bo": GPBayesOpt, "mcts": FixedActionMCTS}[kind]
    defaults = {"evolution": {"population_size": 4, "tournament_size": 2}, "bo": {"init_samples": 3, "refit_every": 2},
                "mcts": {"init_samples": 2}}.get(kind, {})
    return cls(space, np.random.default_rng(seed), **{**defaults, **kwargs})


def drain(searcher, reward_fn, limit: int = 100_000) -> list:
    """Ask / tell until the searcher has nothing left; returns every proposal in order."""
    proposed = []
    while len(proposed) < limit:
        archs = searcher.ask(1)
        if not archs:
            break
        proposed.extend(archs)
        searcher.tell(archs, [reward_fn(a) for a in archs])
    return proposed


@pytest.fixture(scope="module")
def nb201() -> NASBench201Space:
    return NASBench201Space()


# ---------------------------------------------------------------------------------------- all searchers
@pytest.mark.parametrize("kind", SEARCHERS)
def test_every_architecture_exactly_once_where_none_can_be_enumerated(kind):
    """The finite case, and the contract shared by every searcher, is tests/test_searcher_contract.py."""
    space = Unbounded((3, 4))
    proposed = drain(make(kind, space), lambda a: float(np.sum(space.encode([a]))))
    assert len(proposed) == 12
    assert len({space.to_string(a) for a in proposed}) == 12


@pytest.mark.parametrize(
    ("kind", "kwargs", "message"),
    [
        ("evolution", {"population_size": 0}, "searcher.population_size must be >= 1"),
        ("evolution", {"population_size": 5, "tournament_size": 6}, "searcher.tournament_size must be <= 5"),
        ("bo", {"acquisition": "pi"}, "searcher.acquisition='pi' is unknown; allowed: ei, ucb"),
        ("bo", {"max_train": 1}, "searcher.max_train must be >= 2"),
        ("bo", {"nu": 3}, "searcher.nu=3.0 is unknown"),
        ("mcts", {"Cp": -1}, "searcher.Cp must be >= 0"),
    ],
)
def test_bad_parameters_are_named(kind, kwargs, message, nb201):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make(kind, nb201, **kwargs)


# ---------------------------------------------------------------------------------------- evolution
def test_tournament_returns_the_best_of_its_sample():
    space = Grid((10, 10))
    evo = make("evolution", space, population_size=5, tournament_size=5)
    evo.tell([0, 1, 2, 3, 4], [0.3, 0.9, 0.1, 0.5, 0.2])
    assert {evo.tournament() for _ in range(20)} == {1}  # S = P: always the population's best
    evo.tournament_size = 2
    winners = Counter(evo.tournament() for _ in range(400))
    assert 2 not in winners  # the worst member loses every tournament of two distinct members
    assert set(winners) == {0, 1, 3, 4}
    assert winners[1] > winners[3] > winners[0] > winners[4]  # better members win more often


def test_ageing_removes_the_oldest_not_the_worst():
    space = Grid((10, 10))
    evo = make("evolution", space, population_size=3, tournament_size=1)
    evo.tell([7], [1.0])  # the best ever, but the oldest
    evo.tell([8, 9, 10], [0.1, 0.2, 0.3])
    assert [a for a, _ in evo.population] == [8, 9, 10]
    evo.tell([11], [0.0])
    assert [a for a, _ in evo.population] == [9, 10, 11]


def test_children_are_mutations_of_the_population_and_duplicates_are_counted(nb201):
    evo = make("evolution", nb201, population_size=20, tournament_size=5)
    reward = lambda a: float(index_to_ops(a).sum())  # noqa: E731 (local to the test)
    drain(evo, reward, 20)
    for _ in range(300):
        members = np.array([a for a, _ in evo.population])
        child = evo.ask(1)[0]
        hamming = (index_to_ops(members) != index_to_ops(child)).sum(axis=1)
        assert hamming.min() == 1 or evo.num_random_fallbacks > 0
        evo.tell([child], [reward(child)])
    assert len(set(evo.archs)) == len(evo.archs)
    # a greedy reward on a small neighbourhood: some children must have been evaluated already
    assert evo.stats()["duplicates"] > 0


# ---------------------------------------------------------------------------------------- BO
def test_acquisition_functions_on_known_values():
    sigma = np.array([1.0, 1.0, 2.0, 0.0, 0.0])
    mu = np.array([0.0, 1.0, 0.0, 0.5, -0.5])
    ei = expected_improvement(mu, sigma, best=0.0)
    assert ei[0] == pytest.approx(norm.pdf(0))  # at the incumbent: sigma * phi(0)
    assert ei[1] == pytest.approx(1.0 * norm.cdf(1.0) + norm.pdf(1.0))
    assert ei[2] == pytest.approx(2 * norm.pdf(0))  # same mean, more uncertainty: more improvement
    assert ei[3] == 0.5 and ei[4] == 0.0  # no uncertainty: the plain improvement
    assert np.all(expected_improvement(mu, sigma, best=0.0, xi=0.1) <= ei)
    assert np.allclose(upper_confidence_bound(mu, sigma, beta=2.0), mu + 2 * sigma)


@pytest.mark.parametrize("acquisition", ["ei", "ucb"])
def test_bo_proposes_the_maximum_of_a_smooth_1d_function(acquisition):
    space = Grid((41,))
    x = space.features()[:, 0]
    f = -((x - 0.3) ** 2)
    bo = make("bo", space, acquisition=acquisition, beta=0.0, init_samples=5, refit_every=1, mutation_candidates=0)
    observed = [0, 8, 20, 32, 40]  # x = 0, 0.2, 0.5, 0.8, 1: the maximum x = 0.3 (position 12) is not among them
    bo.tell(observed, f[observed])
    assert bo.ask(1)[0] in (11, 12, 13)


def test_bo_finds_the_maximum_of_a_2d_function_with_few_samples():
    space = Grid((15, 15))
    X = space.features()
    f = -np.sum((X - [0.7, 0.2]) ** 2, axis=1)
    for seed in range(2):
        bo = make("bo", space, seed=seed, init_samples=5, refit_every=1)
        proposed = drain(bo, lambda a: f[a], 40)
        assert int(np.argmax(f)) in proposed[:40], seed  # random search: 40 of 225 hold it with p = 0.18


def test_bo_refit_cadence_and_training_cap(nb201):
    bo = make("bo", nb201, init_samples=10, refit_every=7, max_train=20, candidates=300)
    drain(bo, lambda a: float(index_to_ops(a).sum()), 45)
    assert bo.num_refits == int(np.ceil((45 - 10) / 7))
    idx = bo.training_set()
    assert len(idx) == 20 and len(set(idx)) == 20
    rewards = np.asarray(bo.rewards)
    assert set(np.argsort(-rewards, kind="stable")[:10]) <= set(idx)  # the best half of the cap
    assert set(range(45 - 3, 45)) <= set(idx)  # and the most recent ones


# ---------------------------------------------------------------------------------------- MCTS
def test_mcts_needs_a_decision_sequence():
    with pytest.raises(ConfigError, match="searcher=mcts needs a search space with a fixed decision sequence"):
        make("mcts", NoDecisions())


def test_mcts_backpropagates_to_every_prefix():
    space = Grid((3, 4))
    mcts = make("mcts", space, init_samples=3)
    rewards = {a: float(a) / 10 for a in range(12)}
    drain(mcts, rewards.get, 7)
    rows = space.to_decisions(mcts.archs)
    assert mcts.n[()] == 7 and mcts.x_bar(()) == pytest.approx(np.mean(mcts.rewards))
    for c in range(3):
        mine = rows[:, 0] == c
        assert mcts.n.get((c,), 0) == mine.sum()
        if mine.any():
            assert mcts.x_bar((c,)) == pytest.approx(np.mean(np.asarray(mcts.rewards)[mine]))
    for arch, row in zip(mcts.archs, rows):
        assert mcts.n[tuple(row)] == 1 and mcts.total[tuple(row)] == pytest.approx(rewards[arch])


def test_mcts_uct_unvisited_first_then_mean_plus_bonus():
    space = Grid((3, 4))
    mcts = make("mcts", space, Cp=0.0, init_samples=1)
    mcts.tell([space.from_decisions([[1, 2]])[0]], [0.5])
    for _ in range(10):
        path = mcts.select()
        assert len(path) == 2 and path[-1] != (1,) and mcts.n.get(path[-1], 0) == 0  # unvisited first
    mcts.n.update({(): 30, (0,): 10, (1,): 10, (2,): 10})
    mcts.total.update({(0,): 4.0, (1,): 6.0, (2,): 5.0})
    for c in range(4):
        mcts.n[(1, c)], mcts.total[(1, c)] = 1, 0.6  # every child of (1,) visited
    assert mcts.select()[:2] == [(), (1,)]  # Cp = 0: greedy on the mean
    mcts.Cp = 1.0
    mcts.n.update({(0,): 1, (1,): 28, (2,): 1})
    mcts.total.update({(0,): 0.3, (1,): 28 * 0.6, (2,): 0.2})
    # 0.3 + 2*sqrt(2 ln 30 / 1) ~ 5.1 beats 0.6 + 2*sqrt(2 ln 30 / 28) ~ 1.6 and 0.2 + 5.1
    assert mcts.uct((), [(0,), (1,), (2,)]).argmax() == 0
    assert mcts.select()[1] == (0,)


def test_mcts_draws_below_the_selected_node_and_skips_exhausted_subtrees(nb201):
    mcts = make("mcts", nb201, Cp=0.0, init_samples=1)
    best_first = lambda a: 1.0 if index_to_ops(a)[0] == 3 else 0.0  # noqa: E731 (local to the test)
    drain(mcts, best_first, 40)
    for _ in range(40):
        path = mcts.select()
        arch = mcts._draw_below(path[-1])
        assert tuple(index_to_ops(arch)[: len(path[-1])]) == path[-1]
        mcts._take(arch)
        mcts.tell([arch], [best_first(arch)])
    # greedy on the mean (Cp = 0): the edge-1 op that pays is chosen again and again
    assert mcts.n[(3,)] > 0.5 * mcts.n[()]
    # exhaust the subtree (3,): the root never selects it again
    small = Grid((2, 2))
    tree = make("mcts", small, Cp=0.0, init_samples=1)
    tree.tell([small.from_decisions([[0, 0]])[0]], [1.0])
    tree.tell([small.from_decisions([[0, 1]])[0]], [1.0])
    tree.tell([small.from_decisions([[1, 0]])[0]], [0.0])
    assert tree.select()[1] == (1,)  # (0,) has the better mean but nothing left below it


# ---------------------------------------------------------------------------------------- from run.py
@pytest.mark.parametrize("kind", SEARCHERS)
def test_each_searcher_runs_on_nasbench201_and_is_deterministic(kind, tmp_path):
    cfg = compose_config(f"searcher={kind}", "budget=150", "seed=2")
    summary = run(cfg, tmp_path / "a")
    assert summary["searcher"] == kind and summary["num_samples"] <= 150
    rows = read_trace(tmp_path / "a" / "trace.csv")
    assert len(rows) == summary["num_samples"] and len({r["arch"] for r in rows}) == len(rows)
    run(cfg, tmp_path / "b")
    strip = lambda rs: [(r["arch"], r["reward"]) for r in rs]  # noqa: E731 (local to the test)
    assert strip(read_trace(tmp_path / "b" / "trace.csv")) == strip(rows)


def test_run_py_sweep_over_the_baselines(tmp_path):
    result = run_py("-m", f"searcher={','.join(SEARCHERS)}", "budget=60", "stop_at_optimum=false",
                    "logger=none", "progress=false", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    summaries = [json.loads(p.read_text()) for p in tmp_path.glob("*/summary.json")]
    assert sorted(s["searcher"] for s in summaries) == sorted(SEARCHERS)
    assert all(s["num_samples"] == 60 for s in summaries)
    for kind in SEARCHERS:
        assert any(line.startswith(f"{kind} on nasbench201/cifar10 seed=0:") for line in result.stdout.splitlines())


@pytest.mark.parametrize("kind", ["bo", "mcts"])
def test_budget_below_init_samples_is_refused_before_any_work(kind, tmp_path):
    with pytest.raises(ConfigError, match=f"budget=5 is smaller than the 10 samples searcher={kind} needs"):
        run(compose_config(f"searcher={kind}", "budget=5"), tmp_path)
    assert not (tmp_path / "trace.csv").exists()


def test_bo_candidates_are_the_unevaluated_pool_or_a_subset_of_it():
    space = Grid((6, 6))
    full = make("bo", space, candidates=0, mutation_candidates=0)
    full.tell([0, 7, 14], [0.1, 0.2, 0.3])
    assert full.candidate_set() == [a for a in range(36) if a not in (0, 7, 14)]
    part = make("bo", space, candidates=10, mutation_candidates=20)
    part.tell([0, 7, 14], [0.1, 0.2, 0.3])
    chosen = part.candidate_set()
    assert len(set(chosen)) == len(chosen) and not {0, 7, 14} & set(chosen)
    assert 10 <= len(chosen) <= 30


@pytest.mark.parametrize("kind", ["evolution", "mcts"])
def test_searchers_beat_random_search_on_nasbench201(kind, nb201):
    """Random search needs (15625 + 1) / 2 = 7813 samples on average to evaluate the optimum."""
    bench = NASBench201Benchmark("cifar10")
    optimum = int(bench.optimal_archs()[0])
    table = bench.query(nb201.enumerate(), np.random.default_rng(0))
    needed = []
    for seed in range(5):
        searcher = make(kind, nb201, seed=seed, **({"population_size": 50, "tournament_size": 10}
                                                    if kind == "evolution" else {"init_samples": 10}))
        for i in range(1, len(nb201) + 1):
            arch = searcher.ask(1)[0]
            searcher.tell([arch], [table[arch]])
            if arch == optimum:
                break
        needed.append(i)
    assert np.mean(needed) < 7813 / 2, needed
