"""Ablation of the LaNAS+ ideas on NAS-Bench-201: samples to the global optimum, many seeds, in-process.

    python -m experiments.lanas_plus_ablation --variants lanas plus --seeds 0 50
    python -m experiments.lanas_plus_ablation --variants lanas plus --seeds 1000 1100 --jobs 2   # held out
    python -m experiments.lanas_plus_ablation --timing 500 --variants lanas plus --seeds 0 10  # ms/sample
    python -m experiments.lanas_plus_ablation --timing-synthetic      # ms/sample at NAS-Bench-101 size
    python -m experiments.lanas_plus_ablation --trace 20 --variants lanas --datasets cifar10    # one run's tree
    python -m experiments.lanas_plus_ablation --where --variants lanas_plus_v1 --datasets cifar10 --seeds 0 30
    python -m experiments.lanas_plus_ablation --fit-table --datasets cifar10 cifar100 imagenet16-120 nb101-20k
    python -m experiments.lanas_plus_ablation --phases --variants lanas_plus --datasets cifar10 --seeds 0 100

Each run builds the searcher exactly as ``run.py`` would (the composed Hydra config through
``lanas.app.prepare``), then runs the loop's core (``lanas.loop.search``) without writing files until
the optimum is evaluated. Prints one row per (variant, dataset): mean, standard error, median, max and the
searcher's loop time per sample (ask + tell only, table lookups excluded).
"""

from __future__ import annotations

import argparse
import json
import os
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads BLAS: one thread per process on a shared machine
import numpy as np  # noqa: E402

from lanas.app import prepare  # noqa: E402
from lanas.checkpoint import LoopState  # noqa: E402
from lanas.cli import error_line, one_line_error  # noqa: E402
from lanas.config import build_searcher, compose_config  # noqa: E402
from lanas.loop import search, searcher_seconds  # noqa: E402
from lanas.spaces.base import FiniteSearchSpace  # noqa: E402
from perf.lanas_loop_speed import SyntheticPoolSpace, synthetic_rewards  # noqa: E402

DATASETS = ("cifar10", "cifar100", "imagenet16-120")
NB101_SLICE = os.environ.get(  # beside the project, as tests/conftest.py expects it
    "LANAS_NB101_SLICE", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "nb101-subset" / "data-20k.json"))
# Benchmark name -> overrides. NB201 datasets by name; the 20,001-cell NAS-Bench-101 slice holds
# validation accuracies only, so its reward is their mean over the 3 repeats.
BENCHMARKS: dict[str, list[str]] = {
    **{name: [f"dataset={name}"] for name in DATASETS},
    "nb101-20k": ["benchmark=nasbench101", f"benchmark.path={NB101_SLICE}", "benchmark.reward=val_mean"],
    # The four HPOLib FCNet tables (tabular HPO, docs/hpo.md), as experiment=compare_fcnet runs them.
    **{f"fcnet-{name}": ["benchmark=fcnet", f"dataset={name}"] for name in ("naval", "parkinsons", "protein", "slice")},
    # HPOBench's MLP tables (30,000 configurations, several tied optima on some).
    **{f"hpobench-{name}": ["benchmark=hpobench", f"dataset={name}"]
       for name in ("australian", "blood_transfusion", "car", "credit_g", "kc1", "phoneme", "segment", "vehicle")},
}

# Variant name -> Hydra overrides. Every idea tried is kept here, in the order tried; the numbers are
# in experiments/lanas_plus_ablation.md. Rounds 1-5 built lanas_plus_v1: FIRST is its first draft
# (rank-scaled rewards and in-leaf mutations on LaNAS's height-5 tree); later rounds change one or two
# knobs from it. Rounds 6-8 (issue 18) put a model inside the leaf (MODEL) and built today's lanas_plus.
PLUS = "searcher=lanas_plus_v1"
FIRST = [PLUS, "searcher.tree_height=5", "searcher.local_top=3", "searcher.local_move=mutate",
         "searcher.split=regression"]
TOP1 = [*FIRST, "searcher.local_top=1"]
TOP1_H4 = [*TOP1, "searcher.tree_height=4"]
NEAREST = [*TOP1_H4, "searcher.local_move=nearest"]
# Round 6: a Bayesian quadratic model picks inside the leaf (Thompson sampling), v1's local moves off.
MODEL = [PLUS, "searcher.leaf_model=quadratic", "searcher.local_prob=0"]
M_H3 = [*MODEL, "searcher.tree_height=3"]
W01 = [*M_H3, "searcher.model_outside_weight=0.1"]
MODEL_ROUNDS: dict[str, list[str]] = {
    **{f"m_h{h}": [*MODEL, f"searcher.tree_height={h}"] for h in (1, 2, 3, 4)},
    "m_h3_q0.8": [*M_H3, "searcher.model_prob=0.8"],
    "m_h3_q0.9_local": [*M_H3, "searcher.model_prob=0.9", "searcher.local_prob=0.5"],
    "m_h3_t0.75": [*M_H3, "searcher.model_temperature=0.75"],
    "m_h3_t1": [*M_H3, "searcher.model_temperature=1.0"],
    "m_h3_cp0.2": [*M_H3, "searcher.Cp=0.2"],
    # round 7: the model weighs the samples outside the chosen leaf less
    **{f"m_h3_w{w}": [*M_H3, f"searcher.model_outside_weight={w}"] for w in ("0", "0.03", "0.1", "0.3")},
    "m_h2_w0.1": [*W01, "searcher.tree_height=2"],
    "m_h4_w0.1": [*W01, "searcher.tree_height=4"],
    "m_h4_w0.3": [*M_H3, "searcher.model_outside_weight=0.3", "searcher.tree_height=4"],
    # round 8: one knob at a time from m_h3_w0.1
    "w_noise0.2": [*W01, "searcher.model_noise=0.2"],
    "w_noise0.5": [*W01, "searcher.model_noise=0.5"],
    "w_pair10": [*W01, "searcher.model_prior_pair=10"],
    "w_pair100": [*W01, "searcher.model_prior_pair=100"],
    "w_t0.3": [*W01, "searcher.model_temperature=0.3"],
    "w_t0.7": [*W01, "searcher.model_temperature=0.7"],
    "w_init5": [*W01, "searcher.init_samples=5"],
    "w_cp0.05": [*W01, "searcher.Cp=0.05"],
    "w_cp0.3": [*W01, "searcher.Cp=0.3"],
    "w_refit10": [*W01, "searcher.refit_every=10"],
    "w_near0.3": [*W01, "searcher.model_near_prob=0.3"],
    "w_near0.5_top1": [*W01, "searcher.model_near_prob=0.5", "searcher.model_near_top=1"],
    "w_near0.5_top5": [*W01, "searcher.model_near_prob=0.5", "searcher.model_near_top=5"],
    "w_evidence": [*W01, "searcher.model_evidence=true"],
    "w_stall25": [*W01, "searcher.model_stall=25"],
    "w_stall50": [*W01, "searcher.model_stall=50"],
    "w_main0.3": [*W01, "searcher.model_prior_main=0.3"],
    "w_main3": [*W01, "searcher.model_prior_main=3"],
}
# Rounds 9-14 varied the preset as it was before round 15 made NAS-Bench-201's live encoding and the op counts its
# defaults; their variants keep that base so that they reproduce the tables (HPO grids: the same preset either way).
BEFORE_R15 = ["searcher=lanas_plus", "searcher.space_encodings.nasbench201=onehot", "searcher.model_op_counts=false"]
# Round 9, after the used-up-leaf fix (a leaf without candidates hands over to the model in the nearest
# region; before, to LaNAS's uniform draw): the preset itself and its nearest rivals again.
MODEL_ROUNDS.update({
    "fix_h4": [*BEFORE_R15, "searcher.tree_height=4"],
    "fix_h2": [*BEFORE_R15, "searcher.tree_height=2"],
    "fix_w0.3": [*BEFORE_R15, "searcher.model_outside_weight=0.3"],
})
# Round 10: the preset's remaining weak spots. CIFAR-10's tail (knobs of the tree) and FCNet parkinsons (the
# model's features: one indicator per grid level, model_levels; neighbours of the best samples by columns changed).
LEVELS = [*BEFORE_R15, "searcher.model_levels=replace"]
LEVELS_H2 = [*LEVELS, "searcher.tree_height=2"]
MODEL_ROUNDS.update({
    "init20": [*BEFORE_R15, "searcher.init_samples=20"],
    "refit40": [*BEFORE_R15, "searcher.refit_every=40"],
    "refit5": [*BEFORE_R15, "searcher.refit_every=5"],
    "split_regression": [*BEFORE_R15, "searcher.split=regression"],
    "tree_raw": [*BEFORE_R15, "searcher.reward_transform=none"],
    "levels": LEVELS,
    "levels_w1": [*LEVELS, "searcher.model_outside_weight=1"],
    "levels_h1": [*LEVELS, "searcher.tree_height=1"],
    "levels_h1_w1": [*LEVELS, "searcher.tree_height=1", "searcher.model_outside_weight=1"],
    "levels_h2": LEVELS_H2,
    "levels_h2_w1": [*LEVELS_H2, "searcher.model_outside_weight=1"],
    "levels_h2_w0.3": [*LEVELS_H2, "searcher.model_outside_weight=0.3"],
    "levels_h2_pair10": [*LEVELS_H2, "searcher.model_prior_pair=10"],
    "levels_h2_pair3": [*LEVELS_H2, "searcher.model_prior_pair=3"],
    "levels_h2_noise0.1": [*LEVELS_H2, "searcher.model_noise=0.1"],
    "levels_h2_t0.3": [*LEVELS_H2, "searcher.model_temperature=0.3"],
    "levels_h2_t0.7": [*LEVELS_H2, "searcher.model_temperature=0.7"],
    "levels_h2_near0.3": [*LEVELS_H2, "searcher.model_near_prob=0.3"],
    **{f"levels_add{p}": [*BEFORE_R15, "searcher.model_levels=add", f"searcher.model_prior_levels={p}"]
       for p in (10, 30, 100)},
    "near0.3": [*BEFORE_R15, "searcher.model_near_prob=0.3"],
    "near0.5_top1": [*BEFORE_R15, "searcher.model_near_prob=0.5", "searcher.model_near_top=1"],
})
# Round 11: the grid's values as unordered categories for the tree and the model alike (search_space.encoding=onehot,
# HPO grids only), and its model priors. lanas_plus itself now picks the encoding by evidence at each refit.
ONEHOT = [*BEFORE_R15, "search_space.encoding=onehot", "searcher.encoding=space"]
MODEL_ROUNDS.update({
    "encoding_space": [*BEFORE_R15, "searcher.encoding=space"],  # lanas_plus before round 11
    "onehot": ONEHOT,
    "onehot_h2": [*ONEHOT, "searcher.tree_height=2"],
    "onehot_main0.3": [*ONEHOT, "searcher.model_prior_main=0.3"],
    "onehot_main3": [*ONEHOT, "searcher.model_prior_main=3"],
    "onehot_pair10": [*ONEHOT, "searcher.model_prior_pair=10"],
    "onehot_pair100": [*ONEHOT, "searcher.model_prior_pair=100"],
})
VARIANTS: dict[str, list[str]] = {
    # references
    "lanas": ["searcher=lanas"],
    "evolution": ["searcher=evolution"],
    "random": ["searcher=random"],
    "bo": ["searcher=bo"],
    "tpe": ["searcher=tpe"],
    "tpe_multivariate": ["searcher=tpe_multivariate"],
    "gp": ["searcher=gp"],
    "lanas_h7_cp0.5": ["searcher=lanas", "searcher.tree_height=7", "searcher.Cp=0.5"],
    # round 1: which part of the first draft matters
    "first": FIRST,
    "first_rank_only": [*FIRST, "searcher.local_prob=0"],
    "first_local_only": [*FIRST, "searcher.reward_transform=none"],
    "first_zscore": [*FIRST, "searcher.reward_transform=zscore"],
    # round 2: one knob at a time from the first draft
    "first_p0.25": [*FIRST, "searcher.local_prob=0.25"],
    "first_p0.75": [*FIRST, "searcher.local_prob=0.75"],
    "first_p1.0": [*FIRST, "searcher.local_prob=1.0"],
    "first_top1": TOP1,
    "first_top5": [*FIRST, "searcher.local_top=5"],
    "first_steps2": [*FIRST, "searcher.local_steps=2"],
    "first_cp0.05": [*FIRST, "searcher.Cp=0.05"],
    "first_cp0.2": [*FIRST, "searcher.Cp=0.2"],
    "first_cp0.5": [*FIRST, "searcher.Cp=0.5"],
    "first_h4": [*FIRST, "searcher.tree_height=4"],
    "first_h6": [*FIRST, "searcher.tree_height=6"],
    "first_h7_cp0.5": [*FIRST, "searcher.tree_height=7", "searcher.Cp=0.5"],
    "first_size0.1": [*FIRST, "searcher.size_bonus=0.1"],
    "first_size0.3": [*FIRST, "searcher.size_bonus=0.3"],
    "first_predicted_routing": [*FIRST, "searcher.route_samples=predicted"],
    # round 3: combinations with local_top=1
    "top1_p0.75": [*TOP1, "searcher.local_prob=0.75"],
    "top1_cp0.05": [*TOP1, "searcher.Cp=0.05"],
    "top1_h4": TOP1_H4,
    "top1_pred": [*TOP1, "searcher.route_samples=predicted"],
    "top1_cp0.05_pred": [*TOP1, "searcher.Cp=0.05", "searcher.route_samples=predicted"],
    "top1_h4_pred": [*TOP1_H4, "searcher.route_samples=predicted"],
    "top1_p0.75_cp0.05_pred": [*TOP1, "searcher.local_prob=0.75", "searcher.Cp=0.05",
                               "searcher.route_samples=predicted"],
    "top1_h4_cp0.05_pred": [*TOP1_H4, "searcher.Cp=0.05", "searcher.route_samples=predicted"],
    # round 4: classifier split, height 3
    "top1_h3": [*TOP1, "searcher.tree_height=3"],
    "top1_cls": [*TOP1, "searcher.split=classifier"],
    "top1_h4_cls": [*TOP1_H4, "searcher.split=classifier"],
    "top1_cls_pred": [*TOP1, "searcher.split=classifier", "searcher.route_samples=predicted"],
    "top1_h4_cls_pred": [*TOP1_H4, "searcher.split=classifier", "searcher.route_samples=predicted"],
    "top1_h4_p0.75": [*TOP1_H4, "searcher.local_prob=0.75"],
    # round 5: nearest-in-leaf local moves (mutate's rejection loop costs 20x on the NB-101 slice)
    "nearest_no_radius": [*NEAREST, "searcher.local_radius=1000"],
    "nearest": NEAREST,
    "nearest_p0.3": [*NEAREST, "searcher.local_prob=0.3"],
    "nearest_size0.1": [*NEAREST, "searcher.size_bonus=0.1"],
    "nearest_pred": [*NEAREST, "searcher.route_samples=predicted"],
    "nearest_top3": [*NEAREST, "searcher.local_top=3"],
    "top1_h4_mutate_tries5": [*TOP1_H4, "searcher.local_tries=5"],
    "nearest_cls": [*NEAREST, "searcher.split=classifier"],
    # the v1 preset's defaults (= nearest_cls)
    "plus": [PLUS],
    "lanas_plus_v1": [PLUS],
    **MODEL_ROUNDS,
    # today's preset (round 15: NAS-Bench-201's live encoding and op counts), and the one before it (= m_h3_w0.1)
    "lanas_plus": ["searcher=lanas_plus"],
    "lanas_plus_r14": BEFORE_R15,
    # round 17: the tree's height and UCB constant on today's preset, and round 11's one-hot values without a tree
    **{f"r17_h{height}": ["searcher=lanas_plus", f"searcher.tree_height={height}"] for height in (1, 2)},
    **{f"r17_cp{cp}": ["searcher=lanas_plus", f"searcher.Cp={cp}"] for cp in (0.01, 0.03)},
    **{f"r17_t{t}": ["searcher=lanas_plus", f"searcher.model_temperature={t}"] for t in (0.25, 0.35)},
    "r17_w1": ["searcher=lanas_plus", "searcher.model_outside_weight=1"],
    "onehot_h1": [*ONEHOT, "searcher.tree_height=1"],
}


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """A named variant, or ``name:override,override`` for an ad-hoc one (commas inside ``[...]`` belong to a
    list value, e.g. ``warm_start=[a,b]``)."""
    if ":" not in spec:
        return spec, VARIANTS[spec]
    name, text = spec.split(":", 1)
    overrides, depth, start = [], 0, 0
    for i, char in enumerate(text + ","):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            overrides.append(text[start:i])
            start = i + 1
    return name, [o for o in overrides if o]


def check_variants(specs: list[str], datasets: list[str], extra: list[str]) -> None:
    """Build every variant's run once on every dataset before any search: a bad override or ``warm_start``
    stops here with one line (in a worker process, an exception Hydra raises cannot always be sent back,
    and the pool would wait for it forever)."""
    for spec in specs:
        name, overrides = parse_variant(spec)
        for dataset in datasets:
            try:
                prepare(compose_config(*overrides, *extra, *BENCHMARKS[dataset], "seed=0"))
            except Exception as err:  # noqa: BLE001 - any failure to build is reported the same way
                raise SystemExit(error_line(f"variant {name} on {dataset}: {one_line_error(err)}")) from None


def run_one(args: tuple[list[str], str, int]) -> tuple[int | None, int, float]:
    """(samples to optimum or None, samples taken, searcher seconds) of one seeded search."""
    overrides, dataset, seed = args
    space, evaluator, searcher, info, eval_rng = prepare(compose_config(*overrides, *BENCHMARKS[dataset], f"seed={seed}"))
    state = LoopState()
    seconds = searcher_seconds(search(space, evaluator, searcher, eval_rng, info.budget, state=state))
    return state.samples_to_optimum, state.num_samples, seconds


def trace_optimum(spec: str, dataset: str, seed: int, every: int = 10) -> None:
    """Where the global optimum sits after every ``every``-th re-fit of one run: the evidence behind LaNAS+.

    Prints the optimum's leaf (0 = leftmost, best-predicted), the unevaluated candidates in it, its
    visit count and value, its rank among leaves by value (0 = best) and the sizes of all leaves, as
    they stand once the sample proposed right after the re-fit was told.
    """
    cfg = compose_config(*parse_variant(spec)[1], *BENCHMARKS[dataset], f"seed={seed}")
    space, evaluator, searcher, info, eval_rng = prepare(cfg)
    optimum = int(evaluator.optimal_archs()[0])
    refits = 0
    for record in search(space, evaluator, searcher, eval_rng, info.budget):
        if searcher.num_refits != refits:
            refits = searcher.num_refits
            if refits % every == 1:
                tree = searcher.tree
                leaves = np.array(tree.leaves)
                leaf = int(searcher.leaf_of[optimum])
                by_value = np.argsort(-tree.x_bar[leaves], kind="stable")
                rank = int(np.flatnonzero(leaves[by_value] == leaf)[0])
                sizes = searcher.leaf_sizes()
                print(f"refit {refits:3d} at {record.sample - 1:5d} samples: optimum in leaf {leaf - tree.num_internal:2d} "
                      f"({sizes[leaf - tree.num_internal]:5d} free, n={tree.n[leaf]:3d}, "
                      f"value={tree.x_bar[leaf]:.3f}, rank {rank:2d} of {len(leaves)}); leaf sizes {sizes.tolist()}")
        if record.optimal:
            print(f"optimum evaluated at sample {record.sample}")


def where_samples_go(spec: str, dataset: str, seeds: range, checkpoints: tuple[int, ...] = (20, 50, 100)) -> None:
    """Where a variant spends its samples before the optimum, averaged over ``seeds`` (the evidence table).

    At each checkpoint of every run that has not found the optimum yet: the rank of the optimum's leaf
    among the leaves by value (0 = the best), the share of the samples so far that went into that leaf, the
    op edits between the last 10 proposals and the optimum (NAS-Bench-201: 0-6), and the optimum's rank
    among the unevaluated cells by the tree (cells ordered by their leaf's value, ties shared) and, for
    variants with a leaf model, by the model's posterior mean.
    """
    from lanas.searchers.surrogate import QuadraticFeatures, QuadraticModel
    from lanas.spaces.nasbench201 import index_to_ops

    rows: dict[int, list[tuple[float, ...]]] = {c: [] for c in checkpoints}
    for seed in seeds:
        cfg = compose_config(*parse_variant(spec)[1], *BENCHMARKS[dataset], f"seed={seed}")
        space, evaluator, searcher, info, eval_rng = prepare(cfg)
        optimum = int(evaluator.optimal_archs()[0])
        features = space.features()
        for record in search(space, evaluator, searcher, eval_rng, max(checkpoints) + 1):
            if record.optimal or record.sample not in rows or searcher.num_refits == 0:
                continue
            tree, leaf_of = searcher.tree, searcher.leaf_of
            leaves = np.arange(tree.num_internal, tree.num_nodes)
            value = tree.x_bar[leaves]
            leaf = int(leaf_of[optimum])
            leaf_rank = int((value > tree.x_bar[leaf]).sum())
            archs = np.asarray(searcher.archs)
            share = float(np.mean(leaf_of[archs] == leaf))
            edits = float(np.mean((index_to_ops(archs[-10:]) != index_to_ops(optimum)).sum(axis=1)))
            free = ~searcher.taken.mask.taken
            cell_value = tree.x_bar[leaf_of[free]]
            tree_rank = float((cell_value > tree.x_bar[leaf]).sum() + 0.5 * ((cell_value == tree.x_bar[leaf]).sum() - 1))
            model = QuadraticModel(QuadraticFeatures(features), temperature=0.0)
            model.add(features[archs])
            scores = model.score(features, model.thompson(searcher.rewards, np.random.default_rng(0)))
            model_rank = float((scores[free] > scores[optimum]).sum())
            rows[record.sample].append((leaf_rank, share, edits, tree_rank, model_rank))
    print(f"{parse_variant(spec)[0]} on {dataset}, seeds {seeds.start}..{seeds.stop - 1}: means over the runs still searching")
    print(f"{'samples':>7} {'runs':>4} {'leaf rank':>9} {'share in leaf':>13} {'edits to opt':>12} "
          f"{'opt rank (tree)':>15} {'opt rank (model)':>16}")
    for c in checkpoints:
        if rows[c]:
            m = np.mean(rows[c], axis=0)
            med = np.median(rows[c], axis=0)
            print(f"{c:7d} {len(rows[c]):4d} {m[0]:9.2f} {m[1]:13.2f} {m[2]:12.2f} {m[3]:8.0f} (med {med[3]:5.0f}) "
                  f"{m[4]:8.0f} (med {med[4]:5.0f})")


def whole_table(dataset: str) -> tuple[FiniteSearchSpace, np.ndarray, int]:
    """The benchmark's space, the reward of every architecture in its pool, and the optimum the searches are
    scored by."""
    space, evaluator, _, _, eval_rng = prepare(compose_config(*BENCHMARKS[dataset], "seed=0"))
    rewards = np.asarray(evaluator.query(list(range(len(space))), eval_rng), dtype=np.float64)
    return space, rewards, int(evaluator.optimal_archs()[0])


def first_reached(ranks: np.ndarray, distances: np.ndarray, ks: tuple[int, ...]) -> tuple[list[float], float, int]:
    """For one run's samples in order: the sample (1-based) that first reached a top-``k`` cell (table rank below
    ``k``) for each ``k`` (nan if none), the first that is a neighbour of the optimum (``distances`` == 1; nan if
    none), and how many neighbours came before the optimum (or in all, if the run never reached it)."""
    ranks, distances = np.asarray(ranks), np.asarray(distances)
    first = [float(np.argmax(ranks < k) + 1) if (ranks < k).any() else float("nan") for k in ks]
    neighbour = float(np.argmax(distances == 1) + 1) if (distances == 1).any() else float("nan")
    before = distances if not (ranks == 0).any() else distances[: int(np.argmax(ranks == 0))]
    return first, neighbour, int((before == 1).sum())


def best_became_neighbour(rewards: np.ndarray, distances: np.ndarray) -> float:
    """For one run's samples in order: the sample (1-based) from which the best sample so far is a neighbour of the
    optimum (``distances`` == 1), counted before the optimum itself; nan if that never happens (round 16)."""
    rewards, distances = np.asarray(rewards, dtype=np.float64), np.asarray(distances)
    end = int(np.argmax(distances == 0)) if (distances == 0).any() else len(distances)
    if end == 0:
        return float("nan")
    running = np.maximum.accumulate(rewards[:end])
    new_best = np.r_[True, running[1:] > running[:-1]]
    best = np.maximum.accumulate(np.where(new_best, np.arange(end), 0))  # index of the best sample so far
    hit = distances[best] == 1
    return float(np.argmax(hit) + 1) if hit.any() else float("nan")


def phases(spec: str, dataset: str, seeds: range, budget: int,
           ks: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100)) -> None:
    """When a variant's runs first evaluate one of the table's k best cells, and a neighbour of the optimum (one
    decision changed: one op of a one-hot cell, one value of a grid), before the optimum itself: how much of a
    run is spent finding the good region, and how much picking the optimum out of it (round 14); and from which
    sample the best sample so far is such a neighbour, how long before the optimum (round 16)."""
    table, rewards, optimum = whole_table(dataset)
    rank = np.empty(len(rewards), dtype=np.int64)
    rank[np.argsort(-rewards, kind="stable")] = np.arange(len(rewards))
    rank[optimum] = 0  # ties at the top: the optimum the searches are scored by is rank 0
    features = table.features()
    differ = (np.abs(features - features[optimum]) > 1e-6).sum(axis=1)
    one_change = 2 if np.isin(features, (0, 1)).all() else 1  # one-hot: a changed op flips two columns
    distance = np.where(differ == 0, 0, np.where(differ <= one_change, 1, 2))
    rows, neighbours, before, best_next, found = [], [], [], [], []
    for seed in seeds:
        cfg = compose_config(*parse_variant(spec)[1], *BENCHMARKS[dataset], f"seed={seed}")
        space, evaluator, searcher, info, eval_rng = prepare(cfg)
        for _ in search(space, evaluator, searcher, eval_rng, budget):  # stops at the optimum
            pass
        archs = np.asarray(searcher.archs, dtype=np.int64)
        first, neighbour, count = first_reached(rank[archs], distance[archs], ks)
        rows.append(first)
        neighbours.append(neighbour)
        before.append(count)
        best_next.append(best_became_neighbour(searcher.rewards, distance[archs]))
        at_optimum = rank[archs] == 0  # not first[0]: ks need not start at 1
        found.append(float(np.argmax(at_optimum) + 1) if at_optimum.any() else float("nan"))
    rows_array = np.array(rows)
    print(f"{parse_variant(spec)[0]} on {dataset}, seeds {seeds.start}..{seeds.stop - 1}, budget {budget}: "
          "the sample that first reached a top-k cell (mean / median over the runs that did; runs that did not)")
    for column, k in enumerate(ks):
        hits = rows_array[:, column]
        print(f"  top {k:4d}: {np.nanmean(hits):7.1f} / {np.nanmedian(hits):6.1f}  ({int(np.isnan(hits).sum())} did not)")
    print(f"  a neighbour of the optimum: {np.nanmean(neighbours):.1f} / {np.nanmedian(neighbours):.1f}; "
          f"neighbours evaluated before the optimum: {np.mean(before):.1f} on average")
    best_next, found = np.array(best_next), np.array(found)
    both = ~np.isnan(best_next) & ~np.isnan(found)
    if both.any():
        gap = found[both] - best_next[both]
        print(f"  the best sample a neighbour of the optimum before it: in {int(both.sum())} of {len(found)} runs, "
              f"from sample {np.mean(best_next[both]):.1f} / {np.median(best_next[both]):.1f}, "
              f"{np.mean(gap):.1f} / {np.median(gap):.1f} samples before the optimum (max {int(gap.max())})")


def fit_whole_table(dataset: str) -> None:
    """How well each model family can rank the optimum at all: fitted to every cell of the table."""
    from lanas.searchers.surrogate import QuadraticFeatures, normal_scores

    space, rewards, optimum = whole_table(dataset)
    features = space.features().astype(np.float64)
    families = [("main effects", np.hstack([np.ones((len(features), 1)), features])),
                ("pairwise", QuadraticFeatures(features)(features))]
    levels = QuadraticFeatures(features, levels="replace")
    if levels.levels:  # grids: one indicator per level, and their pairs (model_levels=replace)
        families.append(("level pairs", levels(features)))
    for family, X in families:
        for target, y in (("rewards", rewards), ("normal scores", normal_scores(rewards))):
            w = np.linalg.lstsq(X, y, rcond=None)[0]
            fit = X @ w
            r2 = 1 - np.mean((y - fit) ** 2) / np.var(y)
            print(f"{dataset:15s} {family:13s} on {target:13s}: optimum ranked {int((fit > fit[optimum]).sum()):5d} "
                  f"of {len(fit):,}, R^2 {r2:.2f}")


def time_variants(variants: list[str], datasets: list[str], seeds: range, budget: int) -> None:
    """Searcher ms/sample over a fixed number of samples, variants interleaved seed by seed.

    Interleaving puts every variant under the same machine load (this machine is shared), and a
    fixed budget compares the same tree sizes whatever each variant's samples-to-optimum is.
    """
    spent = {v: 0.0 for v in variants}
    for dataset in datasets:
        for seed in seeds:
            for spec in variants:
                _, overrides = parse_variant(spec)
                cfg = compose_config(*overrides, *BENCHMARKS[dataset], f"seed={seed}", f"budget={budget}")
                space, evaluator, searcher, _, eval_rng = prepare(cfg)
                records = search(space, evaluator, searcher, eval_rng, budget, stop_at_optimum=False)
                spent[spec] += searcher_seconds(records)  # table lookups are not the searcher's time
    runs = len(datasets) * len(seeds)
    base = spent[variants[0]]
    for spec in variants:
        print(f"{parse_variant(spec)[0]:28s} {1000 * spent[spec] / (runs * budget):.3f} ms/sample "
              f"({spent[spec] / base:.2f}x {parse_variant(variants[0])[0]}) over {runs} runs of {budget} samples")


def time_synthetic_pool(runs: int = 2, samples: int = 2000) -> None:
    """LaNAS vs LaNAS+ (each with its preset's defaults) on a NAS-Bench-101-size synthetic pool (423,624 x 36)."""
    space = SyntheticPoolSpace()
    evaluator = synthetic_rewards(space)
    spent = {"lanas": 0.0, "lanas_plus": 0.0}
    for seed in range(runs):
        for name in spent:
            searcher = build_searcher(name, space, np.random.default_rng(seed))
            records = search(space, evaluator, searcher, np.random.default_rng(seed), samples, stop_at_optimum=False)
            spent[name] += searcher_seconds(records)
    for name, seconds in spent.items():
        print(f"{name:12s} {1000 * seconds / (runs * samples):.3f} ms/sample ({seconds / spent['lanas']:.2f}x lanas) "
              f"over {runs} runs of {samples} samples, {len(space):,}-cell synthetic pool")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["lanas", "plus"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(BENCHMARKS))
    parser.add_argument("--seeds", nargs=2, type=int, default=[0, 50], metavar=("FIRST", "END"))
    parser.add_argument("--jobs", type=int, default=1, help="processes (this machine is shared: 2 at most)")
    parser.add_argument("--budget", type=int, help="stop a run after this many samples (counted as not reaching the optimum)")
    parser.add_argument("--out", type=Path, help="append one JSON line per run (variant, dataset, seed, samples) as it ends")
    parser.add_argument("--timing", type=int, metavar="BUDGET", help="only time the variants over BUDGET samples")
    parser.add_argument("--trace", type=int, metavar="SEED", help="only trace the optimum's leaf in one run")
    parser.add_argument("--timing-synthetic", action="store_true", help="only time both on a 423,624-cell pool")
    parser.add_argument("--where", action="store_true", help="only tabulate where the first variant's samples go")
    parser.add_argument("--fit-table", action="store_true", help="only fit each model family to the whole table")
    parser.add_argument("--phases", action="store_true",
                        help="only tabulate when the first variant's runs first reach the table's k best cells")
    args = parser.parse_args()
    if args.timing_synthetic:
        time_synthetic_pool()
        return
    if args.fit_table:
        for dataset in args.datasets:
            fit_whole_table(dataset)
        return
    if args.where:
        where_samples_go(args.variants[0], args.datasets[0], range(*args.seeds))
        return
    if args.phases:
        phases(args.variants[0], args.datasets[0], range(*args.seeds), args.budget or 1500)
        return
    if args.trace is not None:
        trace_optimum(args.variants[0], args.datasets[0], args.trace)
        return
    seeds = range(*args.seeds)
    if args.timing:
        time_variants(args.variants, args.datasets, seeds, args.timing)
        return
    budget = [f"budget={args.budget}"] if args.budget else []
    check_variants(args.variants, args.datasets, budget)
    print(f"seeds {args.seeds[0]}..{args.seeds[1] - 1} ({len(seeds)} per dataset)")
    print(f"{'variant':28s} {'dataset':15s} {'mean':>7s} {'SE':>6s} {'median':>7s} {'max':>6s} {'ms/sample':>9s}")
    with Pool(min(args.jobs, 2)) if args.jobs > 1 else _Serial() as pool:
        for spec in args.variants:
            name, overrides = parse_variant(spec)
            for dataset in args.datasets:
                results = []
                for seed, result in zip(seeds, pool.imap(run_one, [([*overrides, *budget], dataset, s) for s in seeds])):
                    results.append(result)
                    if args.out:
                        with args.out.open("a") as out:
                            out.write(json.dumps({"variant": name, "dataset": dataset, "seed": seed, "samples_to_optimum": result[0],
                                                  "num_samples": result[1], "searcher_s": round(result[2], 3)}) + "\n")
                hits = np.array([r[0] if r[0] is not None else r[1] for r in results], dtype=float)
                missed = sum(r[0] is None for r in results)
                ms = 1000 * sum(r[2] for r in results) / max(sum(r[1] for r in results), 1)
                se = hits.std(ddof=1) / np.sqrt(len(hits)) if len(hits) > 1 else float("nan")
                print(f"{name:28s} {dataset:15s} {hits.mean():7.1f} {se:6.1f} {np.median(hits):7.1f} "
                      f"{hits.max():6.0f} {ms:9.3f}" + (f"  ({missed} stopped at the budget)" if missed else ""), flush=True)


class _Serial:
    """``Pool``'s ``map`` in this process (no second process on a shared machine)."""

    def __enter__(self) -> _Serial:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(fn, items):  # noqa: ANN001, ANN205 - mirrors multiprocessing.Pool.map
        return [fn(item) for item in items]

    @staticmethod
    def imap(fn, items):  # noqa: ANN001, ANN205 - mirrors multiprocessing.Pool.imap
        return (fn(item) for item in items)


if __name__ == "__main__":
    main()
