"""Per-sample cost of each searcher's loop (ask + tell, no evaluation) on NAS-Bench-201 CIFAR-10.

    python -m perf.searcher_cost                       # 1,000 and 3,000 samples, every searcher
    python -m perf.searcher_cost --samples 500 --searchers bo mcts --seeds 2
    python -m perf.searcher_cost --samples 1000 --searchers lanas_plus --warm-start outputs/c100_seed0
    python -m perf.searcher_cost --samples 1000 --searchers lanas_plus --override search_space.encoding=onehot

Searches run in ``lanas.loop.search`` without stopping at the optimum and only the searcher's own
time counts (``Record.searcher_s``: table lookups excluded), so a searcher is timed at exactly
``samples`` observations: the per-sample cost of a model-based searcher grows with the number of
observations (BO is capped by ``max_train``). Each searcher uses the defaults of its
``conf/searcher/<name>.yaml`` (every preset there by default) and the space as ``run.py`` composes it with that
preset (``lanas_plus``: the live encoding); ``--override`` adds Hydra overrides to every searcher's config. Times
are wall-clock on whatever else the machine is doing: run it with the machine otherwise idle for figures worth
quoting.
``--warm-start`` hands the samples of earlier run directories to the searchers first (``warm_start``; the
model's fit to them is built on the first proposal, so its cost is in the loop time).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lanas.app import build, warm_start_samples
from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.config import CONF_DIR, compose_config
from lanas.loop import search
from lanas.searchers.base import Searcher
from lanas.spaces.nasbench201 import NASBench201Space

SEARCHERS = tuple(sorted(path.stem for path in (Path(CONF_DIR) / "searcher").glob("*.yaml")))


def searcher_and_space(name: str, overrides: list[str], seed: int) -> tuple[Searcher, NASBench201Space]:
    """``searcher=<name>`` and the NAS-Bench-201 space its config composes (features built, not timed)."""
    cfg = compose_config(f"searcher={name}", *overrides)
    space = build("search_space", cfg.search_space)
    if not isinstance(space, NASBench201Space):
        raise SystemExit(f"perf.searcher_cost times NAS-Bench-201 searches; the overrides give search_space={space.name}")
    space.features()
    return build("searcher", cfg.searcher, space=space, rng=np.random.default_rng(seed)), space


def time_searcher(name: str, bench: NASBench201Benchmark, samples: int, seed: int, overrides: list[str],
                  warm_start: list[str] | None = None) -> np.ndarray:
    """Cumulative searcher seconds after each sample (``warm_start``: earlier run directories)."""
    searcher, space = searcher_and_space(name, overrides, seed)
    if warm_start:
        searcher.warm_start(warm_start_samples(warm_start, space))
    records = search(space, bench, searcher, np.random.default_rng(seed), samples, stop_at_optimum=False)
    return np.cumsum([record.searcher_s for record in records])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 3000], help="observations per run")
    parser.add_argument("--searchers", nargs="+", default=list(SEARCHERS), choices=SEARCHERS)
    parser.add_argument("--seeds", type=int, default=1, help="runs per searcher and sample count")
    parser.add_argument("--warm-start", nargs="+", metavar="RUN_DIR", help="earlier runs to warm-start from (lanas_plus)")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE",
                        help="Hydra overrides for every searcher's run config (searcher.model_op_counts=false)")
    args = parser.parse_args()

    bench = NASBench201Benchmark("cifar10")

    print("NAS-Bench-201 CIFAR-10, loop time only (ask + tell), conf/searcher defaults")
    print(f"{'searcher':<11} {'samples':>7} {'runs':>4} {'total s':>9} {'ms/sample':>10} {'ms/sample, last 10%':>20}")
    for name in args.searchers:
        for samples in args.samples:
            runs = [time_searcher(name, bench, samples, seed, args.override, args.warm_start) for seed in range(args.seeds)]
            total = np.mean([r[-1] for r in runs])
            tail = max(1, samples // 10)
            last = np.mean([(r[-1] - r[-tail - 1]) / tail for r in runs]) if samples > tail else total / samples
            print(f"{name:<11} {samples:>7} {len(runs):>4} {total:>9.2f} {1000 * total / samples:>10.3f} "
                  f"{1000 * last:>20.3f}", flush=True)


if __name__ == "__main__":
    main()
