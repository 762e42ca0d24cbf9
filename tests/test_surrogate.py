"""The model inside lanas_plus's leaf (lanas/searchers/surrogate.py) and the preset built on it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from lanas.config import compose_config
from lanas.errors import ConfigError
from lanas.searchers.lanas import LaNAS
from lanas.searchers.surrogate import ModelMoves, QuadraticFeatures, QuadraticModel, normal_scores
from lanas.spaces.hpo import HPOGridSpace
from tests.test_lanas_plus import feed, preset, space, table  # noqa: F401  (space, table: fixtures)


def test_normal_scores_keep_the_order_and_ignore_the_scale():
    rewards = np.array([0.1, 0.9, 0.5, 0.5, 0.91])
    z = normal_scores(rewards)
    assert z[2] == z[3] and z[0] < z[2] < z[1] < z[4]
    assert normal_scores(np.array([3.0, 1.0, 2.0])).tolist() == pytest.approx([norm.ppf(5 / 6), norm.ppf(1 / 6), 0.0])
    assert z[4] == pytest.approx(norm.ppf(0.9))  # the best of 5: mid-rank 4.5 of 5
    assert np.allclose(normal_scores(100 * rewards - 3), z)


def test_pairwise_features_of_nasbench201(space):
    features = QuadraticFeatures(space.features())
    # 6 edges x 5 ops one-hot: no squares (binary), no products of two ops of the same edge (always 0).
    assert features.num_pairs == 15 * 25 and features.size == 1 + 30 + 375
    X = space.features()[:50]
    rows = features(X)
    assert rows.shape == (50, features.size) and np.all(rows[:, 0] == 1)
    assert np.all(rows.sum(axis=1) == 1 + 6 + 15)  # intercept, one op per edge, one op pair per edge pair


def test_squares_of_numeric_columns_and_the_fast_score():
    rng = np.random.default_rng(0)
    reference = np.column_stack([rng.random(200), rng.integers(0, 2, 200), rng.integers(0, 3, 200) / 2])
    features = QuadraticFeatures(reference)
    pairs = set(zip(features.i.tolist(), features.j.tolist()))
    assert (0, 0) in pairs and (2, 2) in pairs and (1, 1) not in pairs  # x1 is binary: x1^2 = x1
    w = rng.standard_normal(features.size)
    X = reference[:40]
    assert np.allclose(features.score(X, w), features(X) @ w)


def test_posterior_mean_is_the_closed_form_ridge_solution(space):
    rng = np.random.default_rng(1)
    model = QuadraticModel(QuadraticFeatures(space.features()), prior_main=2.0, prior_pair=40.0, noise=0.5,
                           temperature=0.0)
    archs = rng.choice(len(space), 120, replace=False)
    rewards = rng.random(120)
    model.add(space.encode(archs[:70]))
    model.add(space.encode(archs[70:]))  # added in two calls, as tells arrive
    Phi = model.features(space.encode(archs))
    prior = np.r_[np.full(31, 2.0), np.full(375, 40.0)]
    expected = np.linalg.solve(Phi.T @ Phi / 0.5 + np.diag(prior), Phi.T @ normal_scores(rewards) / 0.5)
    w = model.thompson(rewards, rng)
    assert np.allclose(w, expected, atol=2e-3)  # single-precision factorisation
    # The draws spread around that mean as much as the temperature says.
    model.temperature = 1.0
    draws = np.array([model.thompson(rewards, np.random.default_rng(s)) for s in range(200)])
    assert np.allclose(draws.mean(axis=0), expected, atol=0.1)
    assert draws.std(axis=0)[-1] > 0.05 and draws.std(axis=0)[-1] < 1 / np.sqrt(40) + 0.05


def test_local_weighting_is_weighted_least_squares(space):
    rng = np.random.default_rng(2)
    model = QuadraticModel(QuadraticFeatures(space.features()), temperature=0.0)
    archs = rng.choice(len(space), 90, replace=False)
    rewards = rng.random(90)
    model.add(space.encode(archs[:60]))
    local = np.flatnonzero(rng.random(60) < 0.3)
    model.thompson(rewards, rng, local, outside_weight=0.1, key="leaf")  # caches the local Gram matrix
    model.add(space.encode(archs[60:]))
    local = np.r_[local, 60 + np.flatnonzero(rng.random(30) < 0.3)]  # the leaf gains new samples only
    w = model.thompson(rewards, rng, local, outside_weight=0.1, key="leaf")
    weights = np.full(90, 0.1)
    weights[local] = 1.0
    Phi = model.features(space.encode(archs))
    A = (Phi.T * weights) @ Phi / model.noise + np.diag(model.prior)
    expected = np.linalg.solve(A, Phi.T @ (weights * normal_scores(rewards)) / model.noise)
    assert np.allclose(w, expected, atol=2e-3)
    assert np.allclose(model.thompson(rewards, rng, local, outside_weight=1.0), model.thompson(rewards, rng),
                       atol=1e-6)


def test_the_model_pick_is_the_leafs_best_free_candidate_under_the_draw(space, table):
    plus = LaNAS(space, np.random.default_rng(4), **{**preset("lanas_plus"), "model_temperature": 0.0,
                                                     "refit_every": 1000})
    feed(plus, lambda a: table[a], 60)
    model = plus.model.model
    for _ in range(5):
        arch = plus.ask(1)[0]
        leaf = plus._leaf_of_arch[arch]
        archs = np.array(plus.archs)
        local = np.flatnonzero(plus.leaf_of[archs] == leaf)
        w = model.thompson(plus.rewards, np.random.default_rng(0), local, plus.model.outside_weight, key=(leaf,))
        free = np.flatnonzero((plus.leaf_of == leaf) & ~plus.taken.mask.taken)
        scores = model.score(space.features()[np.r_[free, arch]], w)
        assert scores[-1] >= scores[:-1].max() - 1e-6  # nothing free in the leaf scores higher
        plus.tell([arch], [table[arch]])
    assert plus.stats()["model_samples"] >= 5


def test_the_model_ranks_the_optimum_near_the_top_after_a_hundred_samples(space, table):
    """The evidence behind the feature map, at test size: pairwise terms see the optimum, main effects less so."""
    rng = np.random.default_rng(5)
    archs = rng.choice(len(space), 300, replace=False)
    optimum = int(np.argmax(table))
    ranks = {}
    for name, prior_pair in (("pairwise", 30.0), ("main effects", 1e9)):
        model = QuadraticModel(QuadraticFeatures(space.features()), prior_pair=prior_pair, temperature=0.0)
        model.add(space.encode(archs))
        scores = model.score(space.features(), model.thompson(table[archs], rng))
        ranks[name] = int((scores > scores[optimum]).sum())
    assert ranks["pairwise"] < 50 and ranks["pairwise"] < ranks["main effects"], ranks


def test_lanas_plus_is_scale_free(space, table):
    """Normal scores and mid-ranks: percent or fractions, the same search."""
    runs = []
    for scale, shift in ((1.0, 0.0), (100.0, 0.0), (3.0, -7.0)):
        plus = LaNAS(space, np.random.default_rng(3), **preset("lanas_plus"))
        feed(plus, lambda a: scale * table[a] + shift, 80)
        runs.append(plus.archs)
    assert runs[0] == runs[1] == runs[2]


def test_lanas_plus_needs_fewer_samples_than_v1(space, table):
    """On 8 seeds of CIFAR-10 (the study itself: experiments/lanas_plus_ablation.py, held-out seeds)."""
    optimum = table.max()

    def needed(name, seed):
        searcher = LaNAS(space, np.random.default_rng(seed), **preset(name))
        for i in range(1, len(space) + 1):
            arch = searcher.ask(1)[0]
            searcher.tell([arch], [table[arch]])
            if table[arch] == optimum:
                return i

    new = [needed("lanas_plus", s) for s in range(8)]
    old = [needed("lanas_plus_v1", s) for s in range(8)]
    assert np.mean(new) < np.mean(old) and np.median(new) < np.median(old), (new, old)


def test_lanas_plus_on_a_space_that_cannot_be_enumerated():
    from lanas.spaces.nasnet import NASNetSpace

    space = NASNetSpace()
    plus = LaNAS(space, np.random.default_rng(0), **{**preset("lanas_plus"), "candidate_batch": 200})
    rng = np.random.default_rng(1)
    weights = rng.standard_normal(space.dim)
    feed(plus, lambda a: float(space.encode([a])[0] @ weights), 30)
    assert plus.stats()["model_samples"] > 0
    assert len({space.arch_id(a) for a in plus.archs}) == 30


def test_lanas_plus_on_the_nasbench101_slice(shared_data, tmp_path):
    from lanas.app import run

    path = shared_data / "nb101-subset" / "data-20k.json"
    if not path.exists():
        pytest.skip(f"{path} not found")
    summary = run(compose_config("searcher=lanas_plus", "benchmark=nasbench101", f"benchmark.path={path}",
                                 "benchmark.reward=val_mean", "budget=80", "stop_at_optimum=false", "logger=none"),
                  tmp_path)
    assert summary["num_samples"] == 80
    assert summary["searcher_stats"]["model_samples"] == 80 - 10  # every proposal after the 10 initial ones


def test_a_used_up_leaf_hands_over_to_the_nearest_region_with_candidates(space, table):
    plus = LaNAS(space, np.random.default_rng(6), **{**preset("lanas_plus"), "refit_every": 1000})
    feed(plus, lambda a: table[a], 40)
    tree = plus.tree
    leaf = tree.num_internal  # the leftmost (best-predicted) leaf
    sibling = leaf + 1
    plus.taken.take([int(a) for a in plus.proposal.live_members(leaf, plus.taken)])  # used up
    for _ in range(3):
        arch = plus.model.propose(tree, leaf, plus.proposal, space, plus.rng, plus.taken, plus.archs, plus.rewards)
        assert plus.leaf_of[arch] == sibling  # the other half of the leaf's parent region, not a uniform draw
        plus.taken.take([arch])
    # With the sibling used up too, the region widens to the grandparent's other leaves.
    plus.taken.take([int(a) for a in plus.proposal.live_members(sibling, plus.taken)])
    arch = plus.model.propose(tree, leaf, plus.proposal, space, plus.rng, plus.taken, plus.archs, plus.rewards)
    assert plus.leaf_of[arch] in (leaf + 2, leaf + 3)


def test_every_proposal_after_the_start_comes_from_the_model(space, table):
    """Long runs empty the small good leaves; the model keeps choosing (no uniform fallback draws)."""
    plus = LaNAS(space, np.random.default_rng(0), **preset("lanas_plus"))
    feed(plus, lambda a: table[a], 600)
    stats = plus.stats()
    assert stats["model_samples"] == 600 - plus.init_samples and stats["fallbacks"] == 0


def grid(levels: tuple[int, ...], rows: int, seed: int = 0) -> np.ndarray:
    """Random rows of an HPO-style grid: each column's level index scaled to [0, 1], as HPOGridSpace encodes."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, k, rows) / (k - 1) for k in levels])


def test_level_indicators_replace_or_join_the_grid_columns():
    reference = grid((2, 4, 3, 6), 500)
    plain = QuadraticFeatures(reference)
    replaced = QuadraticFeatures(reference, levels="replace")
    added = QuadraticFeatures(reference, levels="add")
    assert plain.dim == 4 and replaced.dim == 1 + 4 + 3 + 6 and added.dim == 4 + 4 + 3 + 6
    X = reference[:60]
    rows = replaced(X)
    # One indicator per level, exactly one on per column; the binary column stays a number.
    assert np.all(rows[:, 2:6].sum(axis=1) == 1) and np.all(rows[:, 1] == X[:, 0])
    assert np.all(rows[:, 2:6].argmax(axis=1) == np.round(X[:, 1] * 3))
    # Two levels of one column never meet; every other pair of columns does.
    origin = np.r_[0, [1] * 4, [2] * 3, [3] * 6]
    assert not np.any(origin[replaced.i] == origin[replaced.j])
    assert replaced.num_pairs == 4 * 3 + 4 * 6 + 3 * 6 + 4 + 3 + 6
    # add: the numbers' quadratic surface plus the indicators' table, never a number times an indicator;
    # the table's weights are the level terms (their own prior in the model).
    assert added.num_pairs == plain.num_pairs + replaced.num_pairs  # the binary column takes part in both
    assert added.level_terms.sum() == 13 + replaced.num_pairs
    model = QuadraticModel(added, prior_pair=30.0, prior_levels=7.0)
    assert np.all(model.prior[added.level_terms] == 7.0) and np.all(model.prior[~added.level_terms][1:5] == 1.0)
    for features in (plain, replaced, added):
        w = np.random.default_rng(1).standard_normal(features.size)
        assert np.allclose(features.score(X.astype(np.float32), w), features(X) @ w, atol=1e-4)


def test_binary_encodings_are_unchanged_by_levels(space):
    plain = QuadraticFeatures(space.features())
    for mode in ("replace", "add"):
        features = QuadraticFeatures(space.features(), levels=mode)
        assert features.size == plain.size and not features.level_terms.any()
        assert np.array_equal(features(space.features()[:20]), plain(space.features()[:20]))


def test_level_indicators_fit_what_a_quadratic_surface_cannot():
    # A reward that peaks at one middle level of a 6-level column and at one level combination of two others:
    # no quadratic in the level numbers puts its maximum there, the two-way table of levels does.
    levels = (6, 6, 4)
    X = grid(levels, 400, seed=2)
    index = np.round(X * (np.array(levels) - 1)).astype(int)
    reward = (index[:, 0] == 2) * 1.0 + ((index[:, 1] == 4) & (index[:, 2] == 1)) * 1.0 + 0.1 * X[:, 0]
    pool = np.array(np.meshgrid(*[np.arange(k) / (k - 1) for k in levels], indexing="ij")).reshape(3, -1).T
    best = {}
    for mode in ("none", "replace"):
        model = QuadraticModel(QuadraticFeatures(pool, levels=mode), temperature=0.0)
        model.add(X)
        scores = model.score(pool, model.thompson(reward, np.random.default_rng(0)))
        best[mode] = np.round(pool[np.argmax(scores)] * (np.array(levels) - 1)).astype(int).tolist()
    assert best["replace"] == [2, 4, 1]
    assert best["none"] != [2, 4, 1]


def test_neighbours_of_the_best_differ_in_at_most_two_columns():
    reference = grid((6, 6, 4), 300, seed=3)
    rewards = np.random.default_rng(4).random(300)
    moves = ModelMoves(near_top=1)
    space = SimpleNamespace(encode=lambda archs: reference[np.asarray(archs)])
    _, near = moves._near_best(np.arange(300), reference, space, list(range(300)), rewards)
    best = reference[np.argmax(rewards)]
    differing = (np.abs(near - best) > 1e-6).sum(axis=1)
    expected = (np.abs(reference - best) > 1e-6).sum(axis=1) <= 2
    assert len(near) == expected.sum() and np.all(differing <= 2)


def grid_rewards(space, kind: str, seed: int = 0) -> np.ndarray:
    """Rewards of every FCNet configuration: ``smooth`` (a plane in the ordinal value indices) or
    ``zigzag`` (alternate values of init_lr and n_units_1 good and bad: no surface in the indices fits it, one
    indicator per value does), plus a little noise."""
    rows = space.to_decisions(np.arange(len(space))).astype(np.float64)
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(space))
    if kind == "smooth":
        return (rows / (np.array(space.shape) - 1)) @ np.linspace(-1, 1, len(space.shape)) + noise
    names = list(space.params)
    return (rows[:, names.index("init_lr")] % 2) + (rows[:, names.index("n_units_1")] % 2) + noise


@pytest.mark.parametrize(("kind", "chosen"), [("smooth", 0), ("zigzag", 1)])
def test_the_evidence_chooses_the_encoding_that_explains_the_samples(kind, chosen):
    ordinal = HPOGridSpace("fcnet")
    onehot = ordinal.alternative_encodings()["onehot"]
    assert onehot.encoding == "onehot" and ordinal.alternative_encodings()["onehot"] is onehot  # built once
    rewards = grid_rewards(ordinal, kind)
    archs = [int(a) for a in np.random.default_rng(1).choice(len(ordinal), size=120, replace=False)]
    moves = ModelMoves()
    rng = np.random.default_rng(0)
    assert moves.choose_encoding([ordinal, onehot], rng, archs, rewards[archs]) == chosen
    assert set(moves.models) == {"ordinal", "onehot"} and all(m.count == 120 for m in moves.models.values())


@pytest.mark.parametrize(("kind", "encoding"), [("smooth", "ordinal"), ("zigzag", "onehot")])
def test_lanas_plus_learns_tree_and_model_under_the_chosen_encoding(kind, encoding):
    space = HPOGridSpace("fcnet")
    rewards = grid_rewards(space, kind)
    searcher = LaNAS(space, np.random.default_rng(0), **preset("lanas_plus"))
    feed(searcher, lambda arch: rewards[arch], 90)
    coded = searcher.coded
    assert coded.encoding == encoding and (coded is space) == (encoding == "ordinal")
    assert np.array_equal(searcher.leaf_of, searcher.tree.route(coded.features()))  # the tree splits that encoding
    assert searcher.model.model is searcher.model.models[encoding]
    assert (searcher.stats()["alternative_encoding_refits"] > 0) == (encoding == "onehot")
    # Spaces with a single encoding (NAS-Bench-201) are not asked to choose.
    assert HPOGridSpace("fcnet", encoding="onehot").alternative_encodings().keys() == {"ordinal"}


def test_encoding_evidence_needs_the_model():
    with pytest.raises(ConfigError, match="searcher.encoding=evidence needs searcher.leaf_model=quadratic"):
        LaNAS(HPOGridSpace("fcnet"), np.random.default_rng(0), **{**preset("lanas"), "encoding": "evidence"})
