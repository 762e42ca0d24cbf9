from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# The tests' matrices are small: BLAS threads only add overhead, and oversubscribe cores when
# pytest and run.py subprocesses run side by side (measured: one test 90 s -> 12 s on a busy machine).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# Nothing a test does may land in the user's home (~/.cache/lanas, wandb's folders): derived files
# go to one temporary folder per test session, removed at the end. Set here, at import, so that
# run.py subprocesses inherit it too. The session (not each test) shares it because its content is
# a pure function of its inputs (the enumerated NAS-Bench-101 pool, converted tables), so sharing
# cannot make tests depend on their order, and building the pool per test would cost 35 s each.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="lanas-tests-"))


def _isolate_caches() -> None:
    from lanas.nasbench101.enumerate import pool_path

    user_pool = pool_path()  # in the user's cache (or $LANAS_CACHE) before we move it
    os.environ["LANAS_CACHE"] = str(_SESSION_TMP / "lanas-cache")
    if user_pool.is_file():
        # Read-only reuse of an already enumerated pool (35 s of CPU to rebuild); a rebuilt one
        # would replace the link, never write through it.
        pool_path().parent.mkdir(parents=True, exist_ok=True)
        pool_path().symlink_to(user_pool)
    for var, sub in (("WANDB_DIR", "wandb"), ("WANDB_CACHE_DIR", "wandb-cache"), ("WANDB_CONFIG_DIR", "wandb-config"),
                     ("WANDB_DATA_DIR", "wandb-data")):
        os.environ[var] = str(_SESSION_TMP / sub)


_isolate_caches()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_TMP, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """The real benchmark files beside the project; skip with a clear message when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA} (a fresh clone has no ../shared)")
    return SHARED_DATA
