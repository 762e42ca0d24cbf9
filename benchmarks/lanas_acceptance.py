"""Acceptance rate of LaNAS's in-region rejection sampling in the nasnet space (cannot be enumerated).

    OMP_NUM_THREADS=1 python -m benchmarks.lanas_acceptance                 # heights 3, 5, 8
    OMP_NUM_THREADS=1 python -m benchmarks.lanas_acceptance --budget 200 --seeds 1

The reward is synthetic (no training): a fixed random linear function of the 160-bit encoding plus
a product term and noise, so that the learned partitions are non-trivial. For every tree height it
reports the fraction of uniform candidates that satisfy every constraint on the selected path
(``acceptance_rate``), how many proposals needed the mutation walk or the nearest-region fallback,
and the searcher's time per sample.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lanas.searchers.lanas import LaNAS
from lanas.spaces.nasnet import NASNetSpace


def synthetic_reward(space: NASNetSpace, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, space.dim)
    u, v = rng.normal(0, 0.1, space.dim), rng.normal(0, 0.1, space.dim)

    def reward(archs, noise_rng: np.random.Generator) -> np.ndarray:
        X = space.encode(archs)
        return 0.9 + X @ w + 0.01 * np.tanh(X @ u) * np.tanh(X @ v) + noise_rng.normal(0, 0.002, len(X))

    return reward


def measure(height: int, budget: int, seed: int, batch: int) -> dict[str, float]:
    space = NASNetSpace()
    reward = synthetic_reward(space, seed)
    noise = np.random.default_rng(seed + 1000)
    searcher = LaNAS(space, np.random.default_rng(seed), tree_height=height, candidate_batch=batch)
    start = time.perf_counter()
    for _ in range(budget):
        archs = searcher.ask(1)
        searcher.tell(archs, reward(archs, noise))
    elapsed = time.perf_counter() - start
    stats = searcher.stats()
    proposals = budget - searcher.init_samples
    return {
        "acceptance_rate": stats["acceptance_rate"],
        "mutation_share": stats["mutation_proposals"] / proposals,
        "fallback_share": stats["fallbacks"] / proposals,
        "ms_per_sample": 1000 * elapsed / budget,
        "best": max(searcher.rewards),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heights", type=int, nargs="+", default=[3, 5, 8])
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="candidate_batch")
    args = parser.parse_args()
    print(f"nasnet space, budget={args.budget}, candidate_batch={args.batch}, seeds={args.seeds}")
    print("height  acceptance_rate  mutation_share  fallback_share  ms/sample")
    for height in args.heights:
        rows = [measure(height, args.budget, seed, args.batch) for seed in range(args.seeds)]
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{height:6d}  {mean['acceptance_rate']:15.4f}  {mean['mutation_share']:14.3f}  "
              f"{mean['fallback_share']:14.3f}  {mean['ms_per_sample']:9.2f}")


if __name__ == "__main__":
    main()
