"""The acquisition search of experiments/gp_probe.py (issue 18's probe of Optuna's GP sampler)."""

import itertools

import numpy as np

from experiments.gp_probe import local_search, position


def _grid(choices):
    rows = np.array(list(itertools.product(*[range(c) for c in choices])), dtype=np.int64)
    assert (position(rows, choices) == np.arange(len(rows))).all()
    return rows


def test_local_search_climbs_to_the_best_free_cell_and_never_returns_a_taken_one():
    choices = np.array([3, 4, 2, 5])
    rows = _grid(choices)
    target = np.array([2, 1, 0, 3])

    def score(cells):  # unimodal in the Hamming distance to target: coordinate moves reach it
        return -(rows[cells] != target).sum(axis=1).astype(float)

    taken = np.zeros(len(rows), dtype=bool)
    samples = [0, 7]
    taken[samples] = True
    z = np.array([0.0, 1.0])
    rng = np.random.default_rng(0)
    assert local_search(rows, choices, taken, rng, samples, z, score) == int(position(target, choices)[0])
    taken[int(position(target, choices)[0])] = True  # the optimum evaluated: the best free cell is one change away
    cell = local_search(rows, choices, taken, rng, samples, z, score)
    assert not taken[cell] and (rows[cell] != target).sum() == 1
