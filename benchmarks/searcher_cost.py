"""Per-sample cost of each searcher's loop (ask + tell, no evaluation) on NAS-Bench-201 CIFAR-10.

    python -m benchmarks.searcher_cost                       # 1,000 and 3,000 samples, every searcher
    python -m benchmarks.searcher_cost --samples 500 --searchers bo mcts --seeds 2

Rewards are looked up from the table beforehand and the search does not stop at the optimum, so a
searcher is timed at exactly ``samples`` observations: the per-sample cost of a model-based searcher
grows with the number of observations (BO is capped by ``max_train``). Each searcher uses the
defaults of its ``conf/searcher/<name>.yaml``. Times are wall-clock on whatever else the machine is
doing: run it with the machine otherwise idle for figures worth quoting.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from hydra.utils import get_class
from omegaconf import OmegaConf

from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.searchers.base import Searcher
from lanas.spaces.nasbench201 import NASBench201Space

CONF = Path(__file__).resolve().parents[1] / "conf" / "searcher"
SEARCHERS = ("lanas", "lanas_plus", "random", "evolution", "bo", "mcts")


def make_searcher(name: str, space: NASBench201Space, seed: int) -> Searcher:
    """The searcher with its configured defaults, as run.py would build it."""
    params = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    cls = get_class(params.pop("_target_"))
    params.pop("name", None)
    return cls(space=space, rng=np.random.default_rng(seed), **params)


def time_searcher(name: str, space: NASBench201Space, rewards: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Cumulative loop seconds after each sample."""
    searcher = make_searcher(name, space, seed)
    elapsed = np.empty(samples)
    start = time.perf_counter()
    for i in range(samples):
        archs = searcher.ask(1)
        searcher.tell(archs, rewards[np.asarray(archs, dtype=np.int64)])
        elapsed[i] = time.perf_counter() - start
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 3000], help="observations per run")
    parser.add_argument("--searchers", nargs="+", default=list(SEARCHERS), choices=SEARCHERS)
    parser.add_argument("--seeds", type=int, default=1, help="runs per searcher and sample count")
    args = parser.parse_args()

    space = NASBench201Space()
    rewards = NASBench201Benchmark("cifar10").query(space.enumerate(), np.random.default_rng(0))
    space.features()  # built once per process, not part of a search

    print("NAS-Bench-201 CIFAR-10, loop time only (ask + tell), conf/searcher defaults")
    print(f"{'searcher':<11} {'samples':>7} {'runs':>4} {'total s':>9} {'ms/sample':>10} {'ms/sample, last 10%':>20}")
    for name in args.searchers:
        for samples in args.samples:
            runs = [time_searcher(name, space, rewards, samples, seed) for seed in range(args.seeds)]
            total = np.mean([r[-1] for r in runs])
            tail = max(1, samples // 10)
            last = np.mean([(r[-1] - r[-tail - 1]) / tail for r in runs]) if samples > tail else total / samples
            print(f"{name:<11} {samples:>7} {len(runs):>4} {total:>9.2f} {1000 * total / samples:>10.3f} "
                  f"{1000 * last:>20.3f}", flush=True)


if __name__ == "__main__":
    main()
