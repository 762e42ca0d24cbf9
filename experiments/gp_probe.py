"""What makes Optuna's GP sampler strong on FCNet parkinsons (issue 18, ablation round 12): a stand-alone probe.

    python -m experiments.gp_probe --datasets fcnet-parkinsons --seeds 0 30 --budget 400
    python -m experiments.gp_probe --datasets fcnet-parkinsons --seeds 0 30 --budget 400 --target normal_scores
    python -m experiments.gp_probe --datasets fcnet-parkinsons --seeds 0 10 --budget 300 --candidates pool

Optuna's own Gaussian-process regressor (``optuna._gp``: Matern 5/2 over a Hamming distance with one length
scale per decision, its priors on the kernel parameters, refitted at every sample from the last fit), as
``GPSampler`` uses it on this project's categorical decisions, but driven over the table's pool directly:
10 uniform initial samples, then the free cell of largest log expected improvement. ``--candidates local``
maximises it as ``GPSampler`` does (2,048 random cells, then coordinate-wise local search from the 8 best of
them and the 2 best samples); ``pool`` scores every free cell (exact, slow). ``--target`` is what the GP
fits: ``standardized`` rewards (``GPSampler``'s) or their ``normal_scores`` (``lanas_plus``'s model's).

Not a searcher of the project: it exists to tell which of the GP's parts carry its advantage. It reads
Optuna's private ``_gp`` modules (Optuna 5.0.0), so it may need changes with another Optuna.
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load BLAS: one thread per process
import numpy as np  # noqa: E402
import torch  # noqa: E402
from optuna._gp import acqf, gp, prior  # noqa: E402

from experiments.lanas_plus_ablation import BENCHMARKS  # noqa: E402
from lanas.app import prepare  # noqa: E402
from lanas.config import compose_config  # noqa: E402
from lanas.searchers.surrogate import normal_scores  # noqa: E402

RANDOM_CANDIDATES = 2048
LOCAL_STARTS = 8  # plus the 2 best samples, as GPSampler's n_local_search=10
INITIAL = 10


def load(dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, set[int]]:
    """Decision rows of the whole pool, choices per decision, every cell's reward, the optimal cells."""
    space, evaluator, _, _, eval_rng = prepare(compose_config(*BENCHMARKS[dataset], "seed=0"))
    pool = np.arange(len(space))
    rows, choices = space.to_decisions(pool).astype(np.int64), np.asarray(space.decisions())
    if not (position(rows, choices) == pool).all():
        raise SystemExit(f"{dataset}: the pool is not in the order of its decision rows; this probe needs it")
    rewards = np.asarray(evaluator.query(list(pool), eval_rng), dtype=np.float64)
    return rows, choices, rewards, set(
        int(a) for a in evaluator.optimal_archs())


def position(rows: np.ndarray, choices: np.ndarray) -> np.ndarray:
    """Pool positions of decision rows (``load`` checks that the pool enumerates them in this order)."""
    return np.ravel_multi_index(tuple(np.atleast_2d(rows).T), choices)


def run(args: tuple[str, int, int, str, str]) -> int | None:
    """Samples until an optimal cell is first evaluated (None: not within ``budget``)."""
    dataset, seed, budget, target, candidates = args
    rows, choices, rewards, optimal = DATA[dataset]
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(rows), dtype=bool)
    samples: list[int] = []
    is_categorical = np.ones(len(choices), dtype=bool)
    fitted = None

    def log_ei(cells: np.ndarray, regressor: gp.GPRegressor, best: float) -> np.ndarray:
        with torch.no_grad():
            mean, var = regressor.posterior(torch.from_numpy(rows[cells].astype(np.float64)))
            return acqf.logei(mean, var, best).numpy()

    while len(samples) < budget:
        if len(samples) < INITIAL:
            cell = int(rng.choice(np.flatnonzero(~taken)))
        else:
            y = rewards[samples]
            z = normal_scores(y) if target == "normal_scores" else (y - y.mean()) / max(y.std(), 1e-12)
            fitted = gp.fit_kernel_params(rows[samples].astype(np.float64), z, is_categorical,
                                          prior.default_log_prior, prior.DEFAULT_MINIMUM_NOISE_VAR, False, fitted)
            if candidates == "pool":
                free = np.flatnonzero(~taken)
                scores = np.concatenate([log_ei(part, fitted, float(z.max()))
                                         for part in np.array_split(free, max(1, len(free) // 4096))])
                cell = int(free[np.argmax(scores)])
            else:
                cell = local_search(rows, choices, taken, rng, samples, z,
                                    lambda cells: log_ei(cells, fitted, float(z.max())))
        samples.append(cell)
        taken[cell] = True
        if cell in optimal:
            return len(samples)
    return None


def local_search(rows: np.ndarray, choices: np.ndarray, taken: np.ndarray,
                 rng: np.random.Generator, samples: list[int], z: np.ndarray, score) -> int:
    """GPSampler's acquisition search on a pool: random cells, then coordinate-wise hill climbing over
    free cells from the best of them and from the best samples."""
    random_cells = rng.choice(len(rows), min(len(rows), RANDOM_CANDIDATES), replace=False)
    starts = [*random_cells[np.argsort(-score(random_cells))[:LOCAL_STARTS]],
              *np.asarray(samples)[np.argsort(-z)[:2]]]
    best_cell, best_score = -1, -np.inf
    for start in starts:
        current, current_score = rows[start].copy(), None
        while True:
            neighbours = np.repeat(current[None], choices.sum(), axis=0)
            decision = np.repeat(np.arange(len(choices)), choices)
            neighbours[np.arange(len(decision)), decision] = np.concatenate([np.arange(c) for c in choices])
            cells = np.unique(position(neighbours, choices))
            scores = score(cells)
            scores[taken[cells]] = -np.inf
            k = int(np.argmax(scores))
            if current_score is not None and scores[k] <= current_score + 1e-12:
                break
            current, current_score = rows[cells[k]].copy(), scores[k]
        if current_score is not None and current_score > best_score:
            best_cell, best_score = int(position(current, choices)[0]), current_score
    if best_cell < 0:  # every neighbourhood used up: any free cell
        best_cell = int(rng.choice(np.flatnonzero(~taken)))
    return best_cell


DATA: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, set[int]]] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fcnet-parkinsons"], choices=list(BENCHMARKS))
    parser.add_argument("--seeds", nargs=2, type=int, default=[0, 30], metavar=("FIRST", "END"))
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--target", choices=("standardized", "normal_scores"), default="standardized")
    parser.add_argument("--candidates", choices=("local", "pool"), default="local")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for dataset in args.datasets:
        DATA[dataset] = load(dataset)
        started = time.time()
        with Pool(args.jobs) as pool:  # forked after loading: the workers share the table
            results = pool.map(run, [(dataset, seed, args.budget, args.target, args.candidates)
                                     for seed in range(*args.seeds)])
        counted = np.array([args.budget if r is None else r for r in results], dtype=float)
        censored = sum(r is None for r in results)
        spread = f" ± {counted.std(ddof=1) / np.sqrt(len(counted)):.1f}" if len(counted) > 1 else ""
        print(f"{dataset} target={args.target} candidates={args.candidates}: "
              f"{'>= ' if censored else ''}{counted.mean():.1f}{spread} / "
              f"{np.median(counted):.1f} (max {counted.max():.0f}, {censored} over {args.budget}; "
              f"{time.time() - started:.0f} s)  {results}", flush=True)


if __name__ == "__main__":
    main()
