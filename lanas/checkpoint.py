"""Checkpoints: the whole search state in one file, written atomically, re-attached to fresh objects.

A checkpoint is two pickles in one file: a small *header* (format, the run's resolved config, the
sample count) that can be read without building anything, then the *state*: the searcher object
(with its random generator inside), the evaluation generator and the loop's counters. Searchers hold
references to the search space (and may hold its feature matrix); evaluators hold big tables. Those
are not saved: :class:`_Pickler` writes a named reference instead (``persistent_id``) and
:class:`_SafeUnpickler` puts the freshly built objects of the resumed run in their place, so a
checkpoint stays small and a resumed searcher shares the objects the new process built.

Writes go to a temporary file that is fsynced and renamed over the old checkpoint: a crash or a
full disk at any moment leaves either the previous checkpoint or the new one, never half a file.
The temporary file has a unique name (``.checkpoint.pkl.<random>``), so two writers never share one.

Reading never runs code from the file: both pickles go through :class:`_SafeUnpickler`, which
resolves only the classes a lanas checkpoint contains (:func:`allowed_global`: the project's
searcher, space and loop-state classes, numpy arrays, dtypes and generators, the scikit-learn GP
kernels of ``searcher=bo``, builtin containers). Anything else (``os.system``, a class whose
``__reduce__`` runs a command, ...) is refused by name before it is imported or called (issue 14).
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
from lanas.rundir import CHECKPOINT, RESULT_NEUTRAL_KEYS, temporary_beside
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
    # With an engine (workers, engine=simulated|local): engine seconds (simulated or real).
    clock_s: float = 0.0  # finish time of the last evaluation told
    eval_seconds: float = 0.0  # evaluation time summed over the finished evaluations
    time_to_optimum_s: float | None = None  # finish time of the first optimum


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


# Globals a checkpoint may name besides the project's own classes (see allowed_global). What numpy's
# pickles reference: arrays (_frombuffer with protocol 5, _reconstruct with older ones), scalars,
# dtypes (and numpy 2's dtype classes), generators and their bit generators and seed sequences.
_NUMPY_CORE = ("numpy._core", "numpy.core")
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset({
    *((core + ".multiarray", name) for core in _NUMPY_CORE for name in ("_reconstruct", "scalar")),
    *((core + ".numeric", "_frombuffer") for core in _NUMPY_CORE),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    *(("numpy.random._pickle", name) for name in ("__bit_generator_ctor", "__generator_ctor",
                                                  "__randomstate_ctor")),
    ("numpy.random._generator", "Generator"), ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._pcg64", "PCG64"), ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._mt19937", "MT19937"), ("numpy.random._philox", "Philox"), ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"), ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    # searcher=bo keeps its fitted kernel (kernel=matern|rbf, times a constant, plus white noise).
    *(("sklearn.gaussian_process.kernels", name) for name in ("ConstantKernel", "Matern", "RBF", "WhiteKernel",
                                                              "Sum", "Product")),
    ("collections", "deque"), ("collections", "OrderedDict"),
    *(("builtins", name) for name in ("set", "frozenset", "bytearray", "complex", "slice", "range", "list",
                                      "dict", "tuple", "int", "float", "bool", "str", "bytes")),
})
# The project's modules whose classes a checkpoint holds: searchers and their parts, spaces, loop state.
# Only classes, never functions (lanas.rundir.write_json_atomic would write any file).
SAFE_LANAS_MODULES = ("lanas.checkpoint", "lanas.loop", "lanas.searchers", "lanas.spaces")


def allowed_global(module: str, name: str) -> bool:
    """Whether a checkpoint may refer to ``module.name`` (checked before anything is imported)."""
    if (module, name) in SAFE_GLOBALS:
        return True
    if module.startswith("numpy.dtypes") and name.endswith("DType"):
        return True  # numpy 2 pickles dtypes by their class (numpy.dtypes.Float64DType, ...)
    return any(module == top or module.startswith(top + ".") for top in SAFE_LANAS_MODULES) and (
        "." not in name and not name.startswith("_"))


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file names a global outside the allowlist: nothing of it was imported or called."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.qualname = f"{module}.{name}"


class _SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :func:`allowed_global` names (and only classes from lanas)."""

    def __init__(self, file: io.BufferedReader, externals: dict[str, Any] | None = None) -> None:
        super().__init__(file)
        self._externals = externals

    def find_class(self, module: str, name: str) -> Any:
        if not allowed_global(module, name):
            raise UnsafeCheckpointError(module, name)
        obj = super().find_class(module, name)
        if module.startswith("lanas") and not isinstance(obj, type):
            raise UnsafeCheckpointError(module, name)  # a function of the project: never called from a file
        return obj

    def persistent_load(self, pid: Any) -> Any:
        if self._externals is None:
            raise pickle.UnpicklingError(f"the header refers to {pid!r}")
        if not isinstance(pid, str) or pid not in self._externals:
            raise pickle.UnpicklingError(f"refers to {pid!r}, which this run's space/evaluator does not have")
        return self._externals[pid]


_Unpickler = _SafeUnpickler  # the name older code and tests use


class _Placeholders(dict):
    """Externals for :meth:`Checkpointer.verify`: every reference resolves to None."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: Any) -> None:
        return None


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


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_diff(saved: dict[str, Any], current: dict[str, Any],
                ignore: tuple[str, ...] = RESULT_NEUTRAL_KEYS, limit: int = 3) -> list[str]:
    """``key: saved -> current`` for every setting that differs, ignoring keys that may change at resume."""

    def kept(key: str) -> bool:
        return not any(key == top or key.startswith(top + ".") for top in ignore)

    old, new = flatten(saved), flatten(current)
    missing = object()
    differences = [
        f"{key}: {_short(old.get(key, '<unset>'))} -> {_short(new.get(key, '<unset>'))}"
        for key in sorted(set(old) | set(new))
        if kept(key) and old.get(key, missing) != new.get(key, missing)
    ]
    if len(differences) > limit:  # a sane line: the first few name the problem
        differences = [*differences[:limit], f"and {len(differences) - limit} more"]
    return differences


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
        if isinstance(err, UnsafeCheckpointError):
            return CheckpointError(
                f"checkpoint {self.path} refers to {err.qualname}, which a lanas checkpoint never contains: "
                "refused without running it (a checkpoint can carry code; delete it unless you wrote it)"
            )
        return CheckpointError(
            f"checkpoint {self.path} is unreadable ({type(err).__name__}: {err}); "
            "delete it (and trace.csv) to start this run over"
        )

    _READ_ERRORS = (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                    ImportError, IndexError, KeyError, RecursionError, MemoryError)

    def read_header(self) -> dict[str, Any]:
        """The header alone: cheap, and safe to read before the state's objects exist (restricted unpickler)."""
        try:
            with open(self.path, "rb") as handle:
                header = _SafeUnpickler(handle).load()
        except self._READ_ERRORS as err:
            raise self._unreadable(err) from err
        if not isinstance(header, dict) or header.get("format") != FORMAT or not isinstance(header.get("config"), dict):
            raise self._unreadable(ValueError(f"not a lanas checkpoint of format {FORMAT}"))
        return header

    def verify(self) -> dict[str, Any]:
        """The header, after reading the whole file through the restricted unpickler (the space's and
        evaluator's references left empty): a checkpoint naming anything outside the allowlist is
        refused here, before a run directory is touched or anything is built."""
        header = self.read_header()
        try:
            with open(self.path, "rb") as handle:
                _SafeUnpickler(handle).load()
                _SafeUnpickler(handle, _Placeholders()).load()
        except self._READ_ERRORS as err:
            raise self._unreadable(err) from err
        return header

    def load(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(header, state)``; the state's references are bound to this run's space and evaluator."""
        try:
            with open(self.path, "rb") as handle:
                header = _SafeUnpickler(handle).load()
                state = _SafeUnpickler(handle, self.externals).load()
        except self._READ_ERRORS as err:
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
        had_checkpoint = self.path.exists()
        tmp: Path | None = None
        try:
            fd, tmp = temporary_beside(self.path)
            with os.fdopen(fd, "wb") as handle:
                pickle.dump(header, handle, protocol=pickle.HIGHEST_PROTOCOL)
                _Pickler(handle, self.externals).dump(state)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except BaseException as err:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            if isinstance(err, OSError):
                kept = ("the previous checkpoint is intact" if had_checkpoint
                        else "no checkpoint was saved yet (a resume starts over)")
                raise CheckpointError(
                    f"cannot write checkpoint {self.path} at sample {loop.num_samples}: "
                    f"{err.strerror or err}; {kept}: fix the problem "
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
