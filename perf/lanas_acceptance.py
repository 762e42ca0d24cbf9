"""Acceptance rate of LaNAS's in-region rejection sampling in the nasnet space (cannot be enumerated).

    OMP_NUM_THREADS=1 python -m perf.lanas_acceptance                 # heights 3, 5, 8
    OMP_NUM_THREADS=1 python -m perf.lanas_acceptance --budget 200 --seeds 1

The reward is synthetic (no training): a fixed random linear function of the 160-bit encoding plus
a product term and noise, so that the learned partitions are non-trivial. For every tree height it
reports the fraction of uniform candidates that satisfy every constraint on the selected path
(``acceptance_rate``), how many proposals needed the mutation walk or the nearest-region fallback,
and the searcher's time per sample (ask + tell in ``lanas.loop.search``; the synthetic reward excluded).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from lanas.evaluators.base import Evaluator
from lanas.loop import search, searcher_seconds
from lanas.searchers.lanas import LaNAS
from lanas.spaces.base import Arch
from lanas.spaces.nasnet import NASNetSpace


class SyntheticReward(Evaluator):
    """A fixed random function of the encoding (linear plus a product term) plus evaluation noise."""

    name = "synthetic"

    def __init__(self, space: NASNetSpace, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.space = space
        self.w = rng.normal(0, 0.01, space.dim)
        self.u, self.v = rng.normal(0, 0.1, space.dim), rng.normal(0, 0.1, space.dim)

    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        X = self.space.encode(archs)
        return 0.9 + X @ self.w + 0.01 * np.tanh(X @ self.u) * np.tanh(X @ self.v) + rng.normal(0, 0.002, len(X))


def measure(height: int, budget: int, seed: int, batch: int) -> dict[str, float]:
    space = NASNetSpace()
    searcher = LaNAS(space, np.random.default_rng(seed), tree_height=height, candidate_batch=batch)
    records = search(space, SyntheticReward(space, seed), searcher, np.random.default_rng(seed + 1000), budget,
                     stop_at_optimum=False)
    elapsed = searcher_seconds(records)
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
