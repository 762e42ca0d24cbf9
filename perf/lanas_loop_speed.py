"""Loop time of the LaNAS searcher alone (ask + tell, no evaluation cost), through the loop's core.

    python -m perf.lanas_loop_speed            # both scenarios
    python -m perf.lanas_loop_speed --quick    # fewer seeds

1. NAS-Bench-201 scale: LaNAS (paper defaults) on CIFAR-10 until it evaluates the global optimum,
   rewards looked up from the table beforehand so only searcher time is measured.
2. NAS-Bench-101 scale: a synthetic pool of 423,624 distinct architectures with a 36-value binary
   encoding (21 edge bits + 5 interior ops one-hot over 3) and a synthetic linear-plus-noise reward;
   2,000 samples, tree height 5, re-learned every 20 samples. Target: under 10 s on 2 cores.

Searches run in ``lanas.loop.search``, as ``run.py`` runs them; the time counted is the searcher's own
(``Record.searcher_s``), so table lookups and the loop's bookkeeping do not count.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.checkpoint import LoopState
from lanas.evaluators.base import Evaluator
from lanas.loop import search, searcher_seconds
from lanas.searchers.lanas import LaNAS
from lanas.spaces.base import Arch, FiniteSearchSpace
from lanas.spaces.nasbench201 import NASBench201Space


class SyntheticPoolSpace(FiniteSearchSpace):
    """``size`` random binary encodings standing in for an enumerated NAS-Bench-101 pool."""

    name = "synthetic"

    def __init__(self, size: int = 423_624, edge_bits: int = 21, interior: int = 5, ops: int = 3, seed: int = 0):
        rng = np.random.default_rng(seed)
        edges = rng.random((size, edge_bits)) < 0.3
        onehot = np.eye(ops, dtype=bool)[rng.integers(ops, size=(size, interior))].reshape(size, -1)
        self._matrix = np.hstack([edges, onehot]).astype(np.float32)

    def __len__(self) -> int:
        return len(self._matrix)

    @property
    def dim(self) -> int:
        return self._matrix.shape[1]

    def _build_features(self) -> np.ndarray:
        return self._matrix

    def mutate(self, arch, rng):
        return int(rng.integers(len(self)))

    def to_string(self, arch) -> str:
        return str(arch)

    def from_string(self, text: str):
        return int(text)


class PoolRewards(Evaluator):
    """Fixed rewards by pool position: a synthetic benchmark without noise and without a known optimum."""

    name = "synthetic"

    def __init__(self, rewards: np.ndarray) -> None:
        self.rewards = rewards

    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        return self.rewards[np.asarray(archs, dtype=np.int64)]


def synthetic_rewards(space: SyntheticPoolSpace) -> PoolRewards:
    """A linear function of the encoding plus noise: rewards with structure for the tree to learn."""
    X = space.features().astype(np.float64)
    noise = np.random.default_rng(1).normal(scale=0.01, size=len(space))
    return PoolRewards(0.9 + X @ np.random.default_rng(2).normal(scale=0.01, size=space.dim) + noise)


def time_search(space: FiniteSearchSpace, evaluator: Evaluator, seed: int, budget: int,
                stop_at_optimum: bool = False, **kwargs) -> tuple[int, float]:
    """(samples evaluated, searcher seconds) of one LaNAS search with ``kwargs`` as its parameters."""
    searcher = LaNAS(space, np.random.default_rng(seed), **kwargs)
    state = LoopState()
    seconds = searcher_seconds(search(space, evaluator, searcher, np.random.default_rng(seed), budget,
                                      stop_at_optimum, state))
    return state.num_samples, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 seeds instead of 10")
    args = parser.parse_args()
    seeds = range(3 if args.quick else 10)

    space = NASBench201Space()
    bench = NASBench201Benchmark("cifar10")
    space.features()  # built once per process, not part of a search
    rows = [time_search(space, bench, seed, len(space), stop_at_optimum=True) for seed in seeds]
    samples = np.array([r[0] for r in rows])
    seconds = np.array([r[1] for r in rows])
    print("NAS-Bench-201 CIFAR-10, LaNAS paper defaults, searcher time until the optimum is evaluated")
    print(f"  seeds={len(rows)} samples: mean {samples.mean():.0f} median {np.median(samples):.0f}; "
          f"loop time per run: mean {seconds.mean():.3f} s median {np.median(seconds):.3f} s; "
          f"{1000 * seconds.sum() / samples.sum():.3f} ms/sample")

    big = SyntheticPoolSpace()
    start = time.perf_counter()
    big.features()
    build = time.perf_counter() - start
    synthetic = synthetic_rewards(big)
    print(f"Synthetic pool of {len(big):,} architectures x {big.dim} features (built in {build:.2f} s)")
    for height in (5, 8):
        times = [time_search(big, synthetic, seed, 2000, tree_height=height, refit_every=20)[1] for seed in seeds[:3]]
        print(f"  2,000 samples, tree height {height}, refit every 20: "
              f"{np.mean(times):.2f} s per search ({1000 * np.mean(times) / 2000:.2f} ms/sample), runs {len(times)}")


if __name__ == "__main__":
    main()
