"""Download an official NAS-Bench-101 file and check its published SHA-256.

    python -m lanas.nasbench101.download                 # nasbench_only108.tfrecord (~499 MB)
    python -m lanas.nasbench101.download --file full     # nasbench_full.tfrecord (~1.95 GB)
    python -m lanas.nasbench101.download --dest data/    # default: $LANAS_CACHE/nasbench101

The file is streamed into a temporary name beside the destination and renamed only after its
hash matched, so an interrupted or corrupted download leaves nothing behind.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from lanas.errors import BenchmarkDataError
from lanas.nasbench101.enumerate import cache_dir

# URLs and SHA-256 as published in the google-research/nasbench README.
FILES: dict[str, tuple[str, str]] = {
    "only108": ("https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord",
                "4c39c3936e36a85269881d659e44e61a245babcb72cb374eacacf75d0e5f4fd1"),
    "full": ("https://storage.googleapis.com/nasbench/nasbench_full.tfrecord",
             "3d64db8180fb1b0207212f9032205064312b6907a3bbc81eabea10db2f5c7e9c"),
}


def download(url: str, sha256: str, dest: Path, chunk: int = 1 << 20) -> Path:
    """Fetch ``url`` to ``dest`` (a file path), verifying ``sha256``; returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while block := response.read(chunk):
                out.write(block)
                digest.update(block)
                done += len(block)
                if total and sys.stderr.isatty():
                    print(f"\r{done / 2**20:.0f} / {total / 2**20:.0f} MiB", end="", file=sys.stderr)
        if digest.hexdigest() != sha256:
            raise BenchmarkDataError(
                f"download of {url} has SHA-256 {digest.hexdigest()}, expected {sha256}; nothing was kept"
            )
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lanas.nasbench101.download", description=__doc__.split("\n")[0])
    parser.add_argument("--file", choices=sorted(FILES), default="only108", help="which official file")
    parser.add_argument("--dest", type=Path, default=None, help="target folder (default $LANAS_CACHE/nasbench101)")
    parser.add_argument("--url", default=None, help="a mirror of the same file (its SHA-256 is still checked)")
    args = parser.parse_args(argv)
    url, sha256 = FILES[args.file]
    folder = args.dest if args.dest is not None else cache_dir() / "nasbench101"
    target = folder / Path(url).name
    if target.exists():
        print(f"{target} already exists; delete it to download again")
    else:
        try:
            download(args.url or url, sha256, target)
        except (BenchmarkDataError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    print(f"python run.py benchmark=nasbench101 benchmark.path={target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
