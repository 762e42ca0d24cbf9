"""Checkpoints: the whole search state in one file, written atomically, re-attached to fresh objects.

A checkpoint is two pickles in one file: a small *header* (format, the run's resolved config, the
sample count) that can be read without building anything, then the *state*: the searcher object
(with its random generator inside), the evaluation generator and the loop's counters. Searchers hold
references to the search space (and may hold its feature matrix); evaluators hold big tables. Those
are not saved: :class:`_Pickler` writes a named reference instead (``persistent_id``) and
:class:`_Unpickler` puts the freshly built objects of the resumed run in their place, so a
checkpoint stays small and a resumed searcher shares the objects the new process built.

Writes go to a temporary file that is fsynced and renamed over the old checkpoint: a crash or a
full disk at any moment leaves either the previous checkpoint or the new one, never half a file.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanas.errors import LanasError
from lanas.rundir import CHECKPOINT, RESULT_NEUTRAL_KEYS
from lanas.spaces.base import FiniteSearchSpace

FORMAT = 1


class CheckpointError(LanasError):
    """A checkpoint cannot be written (disk full, no permission) or read (truncated, corrupt)."""


@dataclass
class LoopState:
    """The loop's counters: everything besides the searcher and the generators needed to go on."""

    num_samples: int = 0
    best_reward: float = -math.inf
    best_arch: str | None = None
    samples_to_optimum: int | None = None
    elapsed_s: float = 0.0
    trace_bytes: int = 0  # size of trace.csv when the state was saved; later rows are redone
    resumes: int = 0


def external_objects(space: Any, evaluator: Any) -> dict[str, Any]:
    """Objects a checkpoint refers to by name instead of storing: the space, the evaluator and their arrays.

    Built the same way when saving and when loading, so a name maps to the corresponding fresh object.
    """
    if isinstance(space, FiniteSearchSpace):
        space.features()  # searchers often keep a reference to it: make sure it has a name
    objects: dict[str, Any] = {"space": space, "evaluator": evaluator}
    for prefix, owner in (("space", space), ("evaluator", evaluator)):
        for attr, value in vars(owner).items():
            if isinstance(value, np.ndarray):
                objects[f"{prefix}.{attr}"] = value
    return objects


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BufferedWriter, externals: dict[str, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._names = {id(obj): name for name, obj in externals.items()}

    def persistent_id(self, obj: Any) -> str | None:
        return self._names.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedReader, externals: dict[str, Any]) -> None:
        super().__init__(file)
        self._externals = externals

    def persistent_load(self, pid: str) -> Any:
        if pid not in self._externals:
            raise pickle.UnpicklingError(f"refers to {pid!r}, which this run's space/evaluator does not have")
        return self._externals[pid]


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def config_diff(saved: dict[str, Any], current: dict[str, Any],
                ignore: tuple[str, ...] = RESULT_NEUTRAL_KEYS) -> list[str]:
    """``key: saved -> current`` for every setting that differs, ignoring keys that may change at resume."""

    def kept(key: str) -> bool:
        return not any(key == top or key.startswith(top + ".") for top in ignore)

    old, new = flatten(saved), flatten(current)
    missing = object()
    return [
        f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}"
        for key in sorted(set(old) | set(new))
        if kept(key) and old.get(key, missing) != new.get(key, missing)
    ]


class Checkpointer:
    """Saves and loads ``<out_dir>/checkpoint.pkl`` for one run."""

    def __init__(self, out_dir: str | Path, every: int, config: dict[str, Any], externals: dict[str, Any],
                 extra_header: dict[str, Any] | None = None) -> None:
        self.path = Path(out_dir) / CHECKPOINT
        self.every = every
        self.config = config
        self.externals = externals
        self.extra_header = extra_header or {}

    def exists(self) -> bool:
        return self.path.exists()

    def _unreadable(self, err: BaseException) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {self.path} is unreadable ({type(err).__name__}: {err}); "
            "delete it (and trace.csv) to start this run over"
        )

    def read_header(self) -> dict[str, Any]:
        """The header alone: cheap, and safe to read before the state's objects exist."""
        try:
            with open(self.path, "rb") as handle:
                header = pickle.load(handle)
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                ImportError, IndexError) as err:
            raise self._unreadable(err) from err
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise self._unreadable(ValueError(f"not a lanas checkpoint of format {FORMAT}"))
        return header

    def load(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(header, state)``; the state's references are bound to this run's space and evaluator."""
        try:
            with open(self.path, "rb") as handle:
                header = pickle.load(handle)
                state = _Unpickler(handle, self.externals).load()
        except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                ImportError, IndexError) as err:
            raise self._unreadable(err) from err
        if not isinstance(state, dict) or not isinstance(state.get("loop"), LoopState):
            raise self._unreadable(ValueError("no loop state inside"))
        return header, state

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` (searcher, generators, ``loop``: LoopState) atomically.

        On failure the temporary file is removed and the previous checkpoint is left as it was.
        """
        loop: LoopState = state["loop"]
        header = {"format": FORMAT, "config": self.config, "num_samples": loop.num_samples, **self.extra_header}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "wb") as handle:
                pickle.dump(header, handle, protocol=pickle.HIGHEST_PROTOCOL)
                _Pickler(handle, self.externals).dump(state)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise CheckpointError(
                    f"cannot write checkpoint {self.path} at sample {loop.num_samples}: "
                    f"{err.strerror or err}; the previous checkpoint is intact: fix the problem "
                    f"(e.g. free disk space) and resume with resume={self.path.parent}"
                ) from err
            raise


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
