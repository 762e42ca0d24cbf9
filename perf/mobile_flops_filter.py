"""How fast a FLOPs budget filters search_space=mobile architectures (closed-form costs, no network built).

    python -m perf.mobile_flops_filter                          # 600 M multiply-adds, 1,000,000 candidates
    python -m perf.mobile_flops_filter --budget 240 --candidates 200000

Times three paths: the vectorised cost of a candidate matrix (what a budget check of a batch costs),
``MobileSpace.cost`` on a list of architecture tuples (what FeasibleSpace uses per batch) and
``FeasibleSpace.sample`` (rejection sampling under the budget, what every searcher draws through), and
for comparison building one network and counting it with torch.utils.flop_counter. Wall-clock on
whatever else the machine is doing: quote ``uptime`` with the figures.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lanas.constraints import parse_constraints
from lanas.spaces.constrained import constrain_space
from lanas.spaces.mobile import MobileSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="constraints.flops_m (multiply-adds, millions)")
    parser.add_argument("--candidates", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = MobileSpace()
    rng = np.random.default_rng(args.seed)
    rows = space.sample_array(rng, args.candidates)
    space.cost_array(rows[:1])  # build the per-stage tables once (not timed: a space does it once)

    start = time.perf_counter()
    flops = space.cost_array(rows)["flops_m"]
    feasible = flops <= args.budget
    matrix_s = time.perf_counter() - start
    print(f"cost matrix: {len(rows):,} candidates in {matrix_s:.3f} s = {len(rows) / matrix_s:,.0f} per second; "
          f"{feasible.mean():.1%} within {args.budget:g} M multiply-adds "
          f"(min {flops.min():.1f}, median {np.median(flops):.1f}, max {flops.max():.1f})")

    archs = space.from_decisions(rows[:100_000])
    start = time.perf_counter()
    space.cost(archs)
    tuple_s = time.perf_counter() - start
    print(f"cost of tuples: {len(archs):,} in {tuple_s:.3f} s = {len(archs) / tuple_s:,.0f} per second")

    constrained = constrain_space(space, parse_constraints({"flops_m": args.budget}), "perf")
    start = time.perf_counter()
    drawn = constrained.sample(rng, 20_000)
    sample_s = time.perf_counter() - start
    print(f"FeasibleSpace.sample: {len(drawn):,} feasible in {sample_s:.3f} s = {len(drawn) / sample_s:,.0f} per second")

    import torch

    from lanas.flops import count
    from lanas.training.mobile import MobileNet

    torch.set_num_threads(1)
    start = time.perf_counter()
    count(MobileNet(space, drawn[0]))
    print(f"for comparison, build + torch.utils.flop_counter of one network: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
