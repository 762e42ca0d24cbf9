"""Issue 15's targets for asynchronous parallel search, on NAS-Bench-201 CIFAR-10 with the simulated engine.

    OMP_NUM_THREADS=1 python -m perf.parallel_speed                 # 10 seeds, workers 1 4 16 64
    OMP_NUM_THREADS=1 python -m perf.parallel_speed --seeds 3

Runs lanas_plus_v1 (the LaNAS+ preset these targets were measured with, before issue 18) and asynchronous regularised evolution (``searcher=evolution``) to the global optimum
(budget 3,000 samples, as ``experiment=rq_parallel_nb201``) with 1, 4, 16 and 64 simulated workers,
in-process through the loop's core (:func:`lanas.loop.search`), and checks:

1. lanas_plus with 16 workers reaches the optimum in at most 1/8 of its 1-worker simulated time
   (mean over seeds), with at most 1.5x its 1-worker samples;
2. lanas_plus reaches it sooner (mean simulated time) than evolution at every worker count;
3. with 64 workers, a whole lanas_plus run's loop time (real seconds of the loop: searcher and
   engine, to the optimum) stays within 2x of the 1-worker run's (mean over seeds). A run to the
   optimum with 64 workers evaluates more samples, so the loop time of runs of the same length
   (``--fixed`` samples, not stopping at the optimum) is reported beside it.

Prints one line per setting and PASS/FAIL per target with the measured ratios. The simulated
figures are deterministic; the loop times depend on the machine and its load (quote ``uptime``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from lanas.app import prepare, prepare_engine
from lanas.checkpoint import LoopState
from lanas.config import compose_config
from lanas.loop import search


def one_run(searcher: str, workers: int, seed: int, budget: int, to_optimum: bool = True) -> dict[str, float]:
    cfg = compose_config(f"searcher={searcher}", f"workers={workers}", "engine=simulated", f"seed={seed}",
                         f"budget={budget}", f"stop_at_optimum={str(to_optimum).lower()}")
    space, evaluator, search_obj, info, eval_rng = prepare(cfg)
    engine = prepare_engine(cfg, space, evaluator)
    state = LoopState()
    start = time.perf_counter()
    for _ in search(space, evaluator, search_obj, eval_rng, info.budget, to_optimum, state, engine):
        pass
    loop_s = time.perf_counter() - start
    reached = state.samples_to_optimum is not None
    return {"samples": state.samples_to_optimum if reached else state.num_samples,
            "hours": (state.time_to_optimum_s if reached else state.clock_s) / 3600.0,
            "reached": reached, "loop_s": loop_s, "num_samples": state.num_samples}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perf.parallel_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", default="1,4,16,64")
    parser.add_argument("--budget", type=int, default=3000)
    parser.add_argument("--fixed", type=int, default=1000, help="samples of the fixed-length loop-time runs")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for searcher in ("lanas_plus_v1", "evolution"):
        for w in workers:
            runs = [one_run(searcher, w, seed, args.budget) for seed in range(args.seeds)]
            results[searcher, w] = runs
            samples = np.array([r["samples"] for r in runs], dtype=float)
            hours = np.array([r["hours"] for r in runs])
            loop = np.array([r["loop_s"] for r in runs])
            censored = sum(not r["reached"] for r in runs)
            print(f"{searcher:>10} workers={w:>2}: samples to optimum mean {samples.mean():7.1f} "
                  f"median {np.median(samples):6.0f} | simulated hours mean {hours.mean():7.1f} "
                  f"median {np.median(hours):6.1f} | loop s/run {loop.mean():.3f} "
                  f"({1e3 * loop.sum() / sum(r['num_samples'] for r in runs):.2f} ms/sample)"
                  + (f" | {censored} censored" if censored else ""), flush=True)

    def mean(searcher: str, w: int, key: str) -> float:
        return float(np.mean([r[key] for r in results[searcher, w]]))

    ok = True
    if 1 in workers and 16 in workers:
        t = mean("lanas_plus_v1", 16, "hours") / mean("lanas_plus_v1", 1, "hours")
        s = mean("lanas_plus_v1", 16, "samples") / mean("lanas_plus_v1", 1, "samples")
        print(f"target 1: lanas_plus 16 workers / 1 worker: simulated time x{t:.3f} (target <= 0.125), "
              f"samples x{s:.2f} (target <= 1.5): {'PASS' if t <= 0.125 and s <= 1.5 else 'FAIL'}")
        ok &= t <= 0.125 and s <= 1.5
    faster = {w: mean("lanas_plus_v1", w, "hours") < mean("evolution", w, "hours") for w in workers}
    ratios = ", ".join(f"{w}: x{mean('lanas_plus_v1', w, 'hours') / mean('evolution', w, 'hours'):.2f}" for w in workers)
    print(f"target 2: lanas_plus / evolution simulated time to optimum per worker count ({ratios}): "
          f"{'PASS' if all(faster.values()) else 'FAIL'}")
    ok &= all(faster.values())
    if 1 in workers and 64 in workers:
        r = mean("lanas_plus_v1", 64, "loop_s") / mean("lanas_plus_v1", 1, "loop_s")
        def per_sample(w: int) -> float:
            runs = results["lanas_plus_v1", w]
            return sum(x["loop_s"] for x in runs) / sum(x["num_samples"] for x in runs)

        per = per_sample(64) / per_sample(1)
        print(f"target 3: lanas_plus loop time of a whole run, 64 workers / 1 worker: x{r:.2f} (target <= 2; "
              f"per sample x{per:.2f}): {'PASS' if r <= 2 else 'FAIL'}")
        ok &= r <= 2
        fixed = {w: np.mean([one_run("lanas_plus_v1", w, seed, args.fixed, to_optimum=False)["loop_s"]
                             for seed in range(args.seeds)]) for w in (1, 64)}
        print(f"         runs of {args.fixed} samples each (not stopping at the optimum): 1 worker {fixed[1]:.3f} s, "
              f"64 workers {fixed[64]:.3f} s, x{fixed[64] / fixed[1]:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
