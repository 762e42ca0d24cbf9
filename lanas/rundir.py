"""The run directory: what a run leaves behind, under which names, and how it is read back.

Every module that writes or reads a run directory goes through here, so the layout is written once::

    <run dir>/
      trace.csv              one row per evaluated architecture, flushed as it arrives (the loop)
      summary.json           written atomically at the end; ``"complete": false`` after a clean stop
      checkpoint.pkl         the whole search state, every ``checkpoint_every`` samples and at exit
      metrics.csv            ``logger=csv`` only
      run.log                Hydra's log of the job (named after ``run.py``)
      .hydra/config.yaml     Hydra: the composed config
      .hydra/overrides.yaml  Hydra: the command-line and sweep overrides (written once, by the fresh run)
      run_config.json        lanas: the run's resolved config and overrides, written once at its start
      .lanas.lock            the exclusive lock of the process running in the folder (its PID inside)

Nothing here imports the rest of the package: the loop, the checkpoints, the trackers and the
analysis all sit above this module.
"""

from __future__ import annotations

import csv
import errno
import fcntl
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
RUN_CONFIG = "run_config.json"
LOCK = ".lanas.lock"

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


def read_trace_rewards(run_dir: str | Path) -> list[tuple[str, float]]:
    """(architecture string, reward) of every row of the run's trace.csv; FileNotFoundError when it has none,
    ValueError naming the line of a row without them."""
    path = Path(run_dir) / TRACE
    with path.open(newline="") as handle:
        rows = []
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                rows.append((row["arch"], float(row["reward"])))
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: no architecture and reward") from None
    return rows


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


def read_run_config(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_config.json`` (``{"config": ..., "overrides": [...]}``), or None when absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / RUN_CONFIG).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_overrides(run_dir: str | Path) -> dict[str, Any]:
    """The run's command-line and sweep overrides, study parameters only.

    From ``run_config.json`` (written once when the run started, never rewritten) where there is one,
    else from Hydra's ``.hydra/overrides.yaml`` (runs of older versions).
    """
    recorded = read_run_config(run_dir)
    if recorded is not None and isinstance(recorded.get("overrides"), list):
        items = recorded["overrides"]
    else:
        path = Path(run_dir) / OVERRIDES
        if not path.is_file():
            return {}
        items = yaml.safe_load(path.read_text()) or []
    return dict(kv for kv in (_parse_override(str(item)) for item in items) if kv is not None)


class RunDirBusy(OSError):
    """Another process holds the run directory's lock."""

    def __init__(self, run_dir: Path, pid: str) -> None:
        super().__init__(errno.EWOULDBLOCK, f"{run_dir} is locked by PID {pid or 'unknown'}")
        self.run_dir, self.pid = run_dir, pid


_HELD: dict[str, int] = {}  # run directory (real path) -> the open lock file this process holds
_CREATED: dict[str, list[Path]] = {}  # folders lock_run_dir created for it, innermost first


def _key(run_dir: str | Path) -> str:
    return os.path.realpath(run_dir)


def holds_lock(run_dir: str | Path) -> bool:
    return _key(run_dir) in _HELD


def lock_run_dir(run_dir: str | Path) -> bool:
    """Take the exclusive lock of ``run_dir`` (created if needed) for as long as this process lives.

    ``fcntl.flock`` on ``<run_dir>/.lanas.lock``: the kernel releases it when the process ends, however
    it ends (SIGKILL included). Returns True when this call took the lock, False when this process
    already held it. Raises :class:`RunDirBusy` (with the holder's PID, as it wrote it) when another
    process holds it, OSError when the folder or the lock file cannot be created.
    """
    run_dir = Path(run_dir)
    if holds_lock(run_dir):
        return False
    created = []
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            break
        created.append(folder)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    while True:
        fd = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            raise RunDirBusy(run_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it (see unlock_run_dir): take the new one
    _HELD[_key(run_dir)] = fd
    _CREATED[_key(run_dir)] = created
    return True


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EROFS, errno.EPERM) or not path.is_file():
            raise
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # a read-only folder: lock it, write nothing


def claim_lock(run_dir: str | Path) -> None:
    """Write this process's PID into the lock it holds (once the folder is accepted for writing)."""
    fd = _HELD[_key(run_dir)]
    data = f"{os.getpid()}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:
        pass  # read-only lock file: the lock holds all the same, only the PID is not shown to others


def unlock_run_dir(run_dir: str | Path) -> None:
    """Release the lock this process holds on ``run_dir`` (no-op when it holds none).

    A folder that holds nothing but the lock file (a run refused before it wrote anything) is left as
    it was found (removed if taking the lock created it): the lock file is removed, still under the lock (another process that opened it
    meanwhile sees it was removed and takes a new one).
    """
    fd = _HELD.pop(_key(run_dir), None)
    created = _CREATED.pop(_key(run_dir), [])
    if fd is None:
        return
    try:
        if os.listdir(run_dir) == [LOCK]:
            os.unlink(Path(run_dir) / LOCK)
            for folder in created:  # folders made only for the lock, now empty again
                folder.rmdir()
    except OSError:
        pass
    finally:
        os.close(fd)


def lock_holder(run_dir: str | Path) -> str | None:
    """The PID (as written in the lock file; "unknown" if none yet) of the process holding ``run_dir``'s
    lock, or None when no process holds it. Checks without disturbing the holder."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    finally:
        os.close(fd)  # also releases the probe's own lock, if it got one
    return None


def locked_runs(root: str | Path) -> list[tuple[Path, str]]:
    """Run directories under ``root`` (itself included) that a live process holds, with its PID."""
    root = Path(root)
    found = []
    for lock in sorted([*root.glob(LOCK), *root.rglob(f"*/{LOCK}")]):
        pid = lock_holder(lock.parent)
        if pid is not None:
            found.append((lock.parent, pid))
    return found


if __name__ == "__main__":  # python -m lanas.rundir <folder>...: which runs are still held, and by whom
    import sys

    held = [item for folder in (sys.argv[1:] or ["."]) for item in locked_runs(folder)]
    for folder, pid in held:
        print(f"{folder}\tPID {pid}")
    if not held:
        print("no run directory there is locked by a live process", file=sys.stderr)
