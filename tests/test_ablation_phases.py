"""The ablation script's --phases: when runs first reach the table's best cells, before the optimum (round 14)."""

from __future__ import annotations

import math

import numpy as np

from experiments.lanas_plus_ablation import best_became_neighbour, first_reached, phases, run_one


def test_first_reached_counts_samples_from_one():
    ranks = np.array([40, 7, 3, 12, 0, 1])
    distances = np.array([2, 2, 1, 1, 0, 1])
    first, neighbour, before = first_reached(ranks, distances, (1, 5, 10, 100))
    assert first == [5.0, 3.0, 2.0, 1.0]
    assert neighbour == 3.0
    assert before == 2  # the neighbour after the optimum does not count


def test_first_reached_without_the_optimum_or_a_neighbour():
    first, neighbour, before = first_reached(np.array([9, 4]), np.array([2, 2]), (1, 5))
    assert math.isnan(first[0]) and first[1] == 2.0
    assert math.isnan(neighbour) and before == 0


def test_best_became_neighbour_follows_the_best_sample_so_far():
    # the neighbour at sample 2 is not the best then; the one at sample 4 is, until the optimum at sample 6
    rewards = np.array([0.5, 0.4, 0.7, 0.8, 0.6, 0.9])
    distances = np.array([2, 1, 2, 1, 1, 0])
    assert best_became_neighbour(rewards, distances) == 4.0
    assert math.isnan(best_became_neighbour(rewards[:3], distances[:3]))  # its neighbour was never the best
    assert math.isnan(best_became_neighbour(np.array([0.9, 0.8]), np.array([0, 1])))  # the optimum came first


def test_phases_agrees_with_the_runs_samples_to_optimum(capsys):
    seeds = range(2)
    hits = [run_one((["searcher=lanas_plus", "budget=400"], "cifar10", seed))[0] for seed in seeds]
    phases("lanas_plus", "cifar10", seeds, budget=400, ks=(1, 10))
    lines = capsys.readouterr().out.splitlines()
    top1 = next(line for line in lines if line.strip().startswith("top    1:"))
    reached = [h for h in hits if h is not None]
    assert f"{np.mean(reached):7.1f} / {np.median(reached):6.1f}" in top1
    assert f"({len(hits) - len(reached)} did not)" in top1
    assert any("a neighbour of the optimum" in line for line in lines)
    assert any("the best sample a neighbour of the optimum before it: in 2 of 2 runs" in line for line in lines)
