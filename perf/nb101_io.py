"""Conversion, reload and memory of the NAS-Bench-101 reader on a synthetic full-size file.

    python -m perf.nb101_io                # 423,624 cells x 3 repeats (the size of nasbench_only108)
    python -m perf.nb101_io --cells 50000  # smaller
    python -m perf.nb101_io --keep DIR     # keep the synthetic .tfrecord in DIR
    python -m perf.nb101_io --existing F   # only measure conversion and reload of file F

The file is written in the official format (TFRecord framing with masked CRC32C; JSON payload
``[hash, 108, adjacency, operations, base64 ModelMetrics]`` with three evaluations, epochs 0, 54,
108) for real cells of the enumerated pool with made-up accuracies. Conversion and reload each run
in a fresh subprocess, so their peak resident memory (``VmHWM``, interpreter and numpy included)
is theirs alone; CPU time is reported beside wall time because a shared machine inflates the latter. Targets (issue #4): conversion < 60 s, reload < 1 s, peak < 300 MB. "Reload" is opening the
cache and reading what a benchmark uses (hashes, final test and validation accuracy).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lanas.nasbench101.enumerate import cache_dir, load_pool
from lanas.nasbench101.metrics import ModelMetrics
from lanas.nasbench101.spec import INPUT, OPS, OUTPUT
from lanas.nasbench101.tfrecord import write_records

# Raw: the regular expression below keeps its backslashes.
CHILD = r"""
import json, re, sys, time
from lanas.nasbench101.table import load_table
start, cpu = time.perf_counter(), time.process_time()
table = load_table(sys.argv[1])
# What a benchmark reads: the hashes and the test and validation columns.
needed = [table.columns[name].sum() for name in ("final_test_accuracy", "final_validation_accuracy")]
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
# VmHWM: peak resident set of this process image (ru_maxrss would carry the parent's over exec).
peak_kb = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_mb": peak_kb / 1024,
                  "cells": len(table.hashes), "repeats": table.columns["final_test_accuracy"].shape[2]}))
"""


def synthetic_payloads(num_cells: int, repeats: int, seed: int) -> Iterator[bytes]:
    """Official-format payloads for the first ``num_cells`` cells of the pool."""
    pool = load_pool()
    rng = np.random.default_rng(seed)
    matrices_all = pool.matrices(np.arange(num_cells))
    quality = rng.normal(0.90, 0.03, size=num_cells)
    for c in range(num_cells):
        ops = pool.ops[c]
        keep = [0] + [1 + i for i, op in enumerate(ops) if op >= 0] + [6]
        matrix = matrices_all[c][np.ix_(keep, keep)]
        adjacency = "".join(map(str, matrix.ravel().tolist()))
        operations = ",".join([INPUT] + [OPS[op] for op in ops if op >= 0] + [OUTPUT])
        params = int(rng.integers(200_000, 50_000_000))
        for _ in range(repeats):
            metrics = ModelMetrics(trainable_parameters=params, total_time=float(rng.uniform(1000, 6000)))
            for epoch in (0.0, 54.0, 108.0):
                acc = np.float32(np.clip(quality[c] * epoch / 108 + rng.normal(0, 0.005), 0, 1))
                metrics.evaluation_data.add(
                    current_epoch=epoch, training_time=float(np.float32(epoch * 20)),
                    train_accuracy=float(acc), validation_accuracy=float(acc), test_accuracy=float(acc),
                )
            # The official writer used base64.encodebytes (a newline every 76 characters).
            raw = base64.encodebytes(metrics.SerializeToString()).decode()
            yield json.dumps([pool.hashes[c].decode(), 108, adjacency, operations, raw]).encode()


def measure(path: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=423_624)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep the synthetic file in")
    parser.add_argument("--existing", type=Path, default=None, help="measure this file instead of writing one")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="nb101_io_"))
    folder.mkdir(parents=True, exist_ok=True)
    pool_src = cache_dir()  # the user's cache ($LANAS_CACHE or ~/.cache/lanas), read before we redirect it
    cache = Path(tempfile.mkdtemp(prefix="nb101_io_cache_"))
    os.environ["LANAS_CACHE"] = str(cache)  # a cold conversion cache (the pool is still needed)
    for name in os.listdir(pool_src) if pool_src.is_dir() else []:
        if name.startswith("nasbench101_pool"):
            os.symlink(pool_src / name, cache / name)
    path = args.existing or folder / "synthetic_only108.tfrecord"
    try:
        if args.existing is None:
            start = time.perf_counter()
            count = write_records(path, synthetic_payloads(args.cells, args.repeats, seed=0))
            print(f"wrote {count:,} records ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s")
        first = measure(path)
        print(f"conversion: {first['seconds']:.1f} s wall, {first['cpu_seconds']:.1f} s CPU, peak RSS "
              f"{first['peak_mb']:.0f} MB ({first['cells']:,} cells x {first['repeats']} repeats)")
        again = measure(path)
        print(f"reload:     {again['seconds']:.2f} s wall, {again['cpu_seconds']:.2f} s CPU, peak RSS {again['peak_mb']:.0f} MB")
    finally:
        # The converted cache (75 MB at full size) is this measurement's alone: never leave it behind.
        shutil.rmtree(cache, ignore_errors=True)
        if args.keep is None and args.existing is None:
            shutil.rmtree(folder, ignore_errors=True)
    if args.keep is not None and args.existing is None:
        print(f"kept {path}: python run.py benchmark=nasbench101 benchmark.path={path} searches it")
    elif args.existing is None:
        print("the synthetic file and its cache were removed (--keep DIR keeps the file)")

if __name__ == "__main__":
    main()
