"""The run directory: what a run leaves behind, under which names, and how it is read back.

Every module that writes or reads a run directory goes through here, so the layout is written once::

    <run dir>/
      trace.csv              one row per evaluated architecture, flushed as it arrives (the loop)
      summary.json           written atomically at the end; ``"complete": false`` after a clean stop
      checkpoint.pkl         the whole search state, every ``checkpoint_every`` samples and at exit
      metrics.csv            ``logger=csv`` only
      run.log                Hydra's log of the job (named after ``run.py``)
      .hydra/config.yaml     Hydra: the composed config
      .hydra/overrides.yaml  Hydra: the command-line and sweep overrides

Nothing here imports the rest of the package: the loop, the checkpoints, the trackers and the
analysis all sit above this module.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

TRACE = "trace.csv"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pkl"
METRICS = "metrics.csv"
HYDRA_DIR = ".hydra"
OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"

# Config keys that never change a run's trace: they may differ between a run and its resumption.
# More can be listed in the config's ``resume_ignore`` (e.g. a sweep's own bookkeeping keys).
RESULT_NEUTRAL_KEYS: tuple[str, ...] = ("resume", "resume_ignore", "progress", "logger", "checkpoint_every")
# Override keys that are not parameters of a study: the result-neutral ones, the seed (runs of one
# setting differ by it), and where data or a trained supernet happen to live.
NON_PARAMETERS = frozenset({*RESULT_NEUTRAL_KEYS, "seed", "scale", "n_seeds", "benchmark.path",
                            "evaluator.checkpoint"})


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def temporary_beside(path: Path) -> tuple[int, Path]:
    """A new, uniquely named temporary file next to ``path`` (``.<name>.<random>.tmp``), as ``(fd, path)``.

    Unique names: two writers (even two processes, which the run-directory lock should prevent) never
    write into the same temporary file. The mode is what ``open`` would give (mkstemp's is 0600).
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
    except OSError:
        pass
    return fd, Path(name)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON next to ``path`` and rename it into place: readers never see half a file."""
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when absent or unreadable."""
    try:
        return json.loads((Path(run_dir) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None


def _parse_override(text: str) -> tuple[str, Any] | None:
    if "=" not in text:
        return None
    key, value = text.split("=", 1)
    key = key.lstrip("+~")
    if key.startswith("hydra") or key in NON_PARAMETERS:
        return None
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    return key, parsed if isinstance(parsed, (int, float, str, bool)) or parsed is None else value


def read_overrides(run_dir: str | Path) -> dict[str, Any]:
    """The run's command-line and sweep overrides (``.hydra/overrides.yaml``), study parameters only."""
    path = Path(run_dir) / OVERRIDES
    if not path.is_file():
        return {}
    items = yaml.safe_load(path.read_text()) or []
    return dict(kv for kv in (_parse_override(str(item)) for item in items) if kv is not None)
