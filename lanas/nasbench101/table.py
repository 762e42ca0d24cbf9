"""NAS-Bench-101 results as a compact columnar table, converted once from the official file.

:func:`load_table` takes an official ``.tfrecord`` (``nasbench_only108`` or ``nasbench_full``) or
a subset ``.json`` (dict of parallel lists keyed by hash, the ``data-20k.json`` format). A
``.tfrecord`` is converted on first use into an uncompressed ``.npz`` in the cache directory
(written atomically, keyed by the source's path, size and modification time); later loads read
only that file. Conversion files every record under its cell's position in the enumerated pool
(:mod:`lanas.nasbench101.enumerate`), so a hash that is not a NAS-Bench-101 cell is an error.

Columns are arrays of shape ``(cells, budgets, repeats)``, NaN where a repeat is absent, cells in
sorted hash order: ``{halfway,final}_{training_time,train_accuracy,validation_accuracy,
test_accuracy}``, ``{halfway,final}_epoch`` and ``total_time``; plus ``trainable_parameters``
per cell. The official API reads ``evaluation_data[1]`` as halfway and ``[2]`` as final; we read
the last two evaluations, which is the same for the official files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from lanas.errors import BenchmarkDataError
from lanas.nasbench101.cache import LazyNpz, open_npz, save_npz_atomic
from lanas.nasbench101.enumerate import cache_dir, load_pool
from lanas.nasbench101.metrics import ModelMetrics
from lanas.nasbench101.tfrecord import read_records

STAGES = ("halfway", "final")
METRICS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
FLOAT_COLUMNS = tuple(f"{s}_{m}" for s in STAGES for m in METRICS) + ("total_time",)
EPOCH_COLUMNS = ("halfway_epoch", "final_epoch")
CACHE_FORMAT = 1
_HASH = re.compile(rb"^[0-9a-f]{32}$")
_DECODER = json.JSONDecoder()


@dataclass
class Table:
    """Results by cell (sorted official hash), training budget (epochs) and repeat."""

    hashes: np.ndarray  # (C,) 'S32'
    epochs: np.ndarray  # (E,) int64, ascending
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)  # name -> (C, E, R), maybe lazy
    trainable_parameters: np.ndarray | None = None  # (C,) int64
    source: str = ""

    def column(self, name: str, epochs: int) -> np.ndarray:
        """``(C, R)`` values of a column at a budget."""
        return self.columns[name][:, int(np.flatnonzero(self.epochs == epochs)[0])]


def _bad_payload(path: Path, index: int, offset: int, why: str) -> BenchmarkDataError:
    return BenchmarkDataError(
        f"{path}: record {index} at byte offset {offset}: payload is not the expected JSON "
        f"[module_hash, epochs, adjacency, operations, base64 ModelMetrics] ({why})"
    )


def _parse_batch(path: Path, payloads: list[bytes], offsets: np.ndarray, first: int):
    hashes = []
    ints = np.empty((len(payloads), 2), dtype=np.int64)  # epochs, trainable_parameters
    floats = np.empty((len(payloads), len(FLOAT_COLUMNS) + len(EPOCH_COLUMNS)), dtype=np.float64)
    parse = ModelMetrics.FromString
    decode = _DECODER.decode
    for i, payload in enumerate(payloads):
        try:
            row = decode(payload.decode("utf-8"))
            if not isinstance(row, list) or len(row) != 5:
                raise ValueError(f"a JSON {type(row).__name__} of length {len(row)}, not a list of 5 items")
            module_hash, epochs, adjacency, operations, raw = row
            if not (isinstance(module_hash, str) and isinstance(epochs, int) and isinstance(adjacency, str)
                    and isinstance(operations, str) and isinstance(raw, str)):
                raise ValueError("wrong field types")
            metrics = parse(base64.b64decode(raw))
            evals = metrics.evaluation_data
            if len(evals) < 2:
                raise ValueError(f"{len(evals)} evaluations, at least 2 (halfway, final) expected")
            half, final = evals[-2], evals[-1]
        except (ValueError, TypeError, binascii.Error, DecodeError, UnicodeDecodeError) as err:
            raise _bad_payload(path, first + i, int(offsets[i]), str(err) or type(err).__name__) from None
        hashes.append(module_hash)
        ints[i] = epochs, metrics.trainable_parameters
        floats[i] = (
            half.training_time, half.train_accuracy, half.validation_accuracy, half.test_accuracy,
            final.training_time, final.train_accuracy, final.validation_accuracy, final.test_accuracy,
            metrics.total_time, half.current_epoch, final.current_epoch,
        )
    keys = np.array(hashes, dtype="S32")
    bad = [i for i, h in enumerate(hashes) if len(h) != 32 or not _HASH.match(keys[i])]
    if bad:
        i = bad[0]
        raise _bad_payload(path, first + i, int(offsets[i]), f"module hash {hashes[i]!r} is not 32 hex digits")
    return keys, ints, floats


class _Columns:
    """Growing result arrays indexed by pool position, one set per training budget."""

    def __init__(self, pool_size: int, names: tuple[str, ...], repeats: int = 3) -> None:
        self.pool_size, self.names, self.repeats = pool_size, names, repeats
        self.by_budget: dict[int, dict[str, np.ndarray]] = {}
        self.counts: dict[int, np.ndarray] = {}  # records seen per cell and budget
        self.params = np.zeros(pool_size, dtype=np.int64)
        self.seen = np.zeros(pool_size, dtype=bool)

    def _arrays(self, epochs: int) -> dict[str, np.ndarray]:
        if epochs not in self.by_budget:
            self.by_budget[epochs] = {
                name: np.full((self.pool_size, self.repeats), np.nan, dtype=np.float32) for name in self.names
            }
            self.counts[epochs] = np.zeros(self.pool_size, dtype=np.int32)
        return self.by_budget[epochs]

    def add(self, cells: np.ndarray, epochs: np.ndarray, params: np.ndarray, floats: np.ndarray) -> None:
        self.params[cells] = params
        self.seen[cells] = True
        for budget in np.unique(epochs).tolist():
            rows = np.flatnonzero(epochs == budget)
            arrays, counts = self._arrays(budget), self.counts[budget]
            cell = cells[rows]
            # Repeat number = records of this cell and budget seen before (file order).
            order = np.argsort(cell, kind="stable")
            sorted_cell = cell[order]
            starts = np.flatnonzero(np.r_[True, sorted_cell[1:] != sorted_cell[:-1]])
            rank = np.empty(len(cell), dtype=np.int64)
            rank[order] = np.arange(len(cell)) - np.repeat(starts, np.diff(np.r_[starts, len(cell)]))
            repeat = counts[cell] + rank
            np.add.at(counts, cell, 1)
            if repeat.max() >= self.repeats:  # more repeats than expected: widen every array
                self._widen(int(repeat.max()) + 1)
                arrays = self.by_budget[budget]
            for j, name in enumerate(self.names):
                values = floats[rows, j]
                target = arrays[name]
                if target.dtype == np.float32 and not np.array_equal(
                        values.astype(np.float32).astype(np.float64), values, equal_nan=True):
                    # float32 keeps the official values exactly (float32 metrics stored as doubles);
                    # anything else gets float64.
                    for per_budget in self.by_budget.values():
                        per_budget[name] = per_budget[name].astype(np.float64)
                    target = arrays[name]
                target[cell, repeat] = values

    def _widen(self, repeats: int) -> None:
        for per_budget in self.by_budget.values():
            for name, array in per_budget.items():
                wider = np.full((self.pool_size, repeats), np.nan, dtype=array.dtype)
                wider[:, : array.shape[1]] = array
                per_budget[name] = wider
        self.repeats = repeats


def convert_tfrecord(path: Path) -> dict[str, np.ndarray]:
    """Read and check every record of an official file into table arrays (nothing written).

    Memory stays near the size of the result: records go straight into arrays indexed by their
    cell's position in the enumerated pool (an unknown hash is an error), in float32 where that
    is exact (the official values are float32 metrics stored as doubles).
    """
    names = FLOAT_COLUMNS + EPOCH_COLUMNS
    pool = load_pool()
    columns = _Columns(len(pool), names)
    for batch in read_records(path):
        keys, ints, floats = _parse_batch(path, batch.payloads, batch.offsets, batch.first_index)
        # Records are filed under their pool position (the pool is sorted by hash, like the table).
        positions = pool.find(keys)
        if np.any(positions < 0):
            i = int(np.flatnonzero(positions < 0)[0])
            raise _bad_payload(path, batch.first_index + i, int(batch.offsets[i]),
                               f"module hash {keys[i].decode()} is not a NAS-Bench-101 cell")
        columns.add(positions, ints[:, 0], ints[:, 1], floats)
    if not columns.by_budget:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} holds no records")
    present = np.flatnonzero(columns.seen)
    everything = len(present) == len(pool)
    epochs = np.array(sorted(columns.by_budget), dtype=np.int64)
    out: dict[str, np.ndarray] = {"hashes": pool.hashes[present], "epochs": epochs,
                                  "trainable_parameters": columns.params[present]}
    used = max(int(counts.max()) for counts in columns.counts.values())  # repeats actually present
    for name in names:
        parts = []
        for budget in epochs.tolist():
            array = columns.by_budget[budget].pop(name)[:, :used]
            parts.append(array if everything and used == array.shape[1] else array[present])
            del array
        out[name] = parts[0][:, None, :] if len(parts) == 1 else np.stack(parts, axis=1)
    return out


def cache_file(path: Path, folder: Path | None = None) -> Path:
    """Where the converted table of ``path`` lives (``folder`` defaults to the cache directory)."""
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:10]
    return Path(folder or cache_dir() / "nasbench101") / f"{Path(path).stem}-{digest}-v{CACHE_FORMAT}.npz"


def _stamp(path: Path) -> np.ndarray:
    stat = path.stat()
    return np.array([stat.st_size, stat.st_mtime_ns], dtype=np.int64)


def load_tfrecord(path: Path, verbose: bool = False, cache: Path | None = None) -> Table:
    """An official file's table, converting it into the cache (folder ``cache``) on first use."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} does not exist")
    cached = cache_file(path, cache)
    eager = ("source_stamp", "hashes", "epochs", "trainable_parameters")
    arrays = open_npz(cached, eager) if cached.exists() else None
    if arrays is None or "source_stamp" not in arrays or not np.array_equal(arrays["source_stamp"], _stamp(path)):
        size_mb = path.stat().st_size / 2**20
        if size_mb > 50:  # first use of a big file: tens of seconds (measured: 499 MB in 44 s wall, 14 s CPU)
            print(f"note: converting {path} ({size_mb:,.0f} MB) into a compact cache once (about "
                  f"{max(5, round(size_mb * 0.09)):.0f} s, longer on a busy machine): {cached}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        stamp = _stamp(path)
        converted = convert_tfrecord(path)
        converted["source_stamp"] = stamp
        save_npz_atomic(cached, converted)
        arrays = converted
        if verbose:
            print(f"converted {path} -> {cached} in {time.perf_counter() - start:.1f} s", flush=True)
    # Columns stay lazy: reading the cache costs only what is used.
    return Table(
        hashes=arrays["hashes"], epochs=arrays["epochs"], trainable_parameters=arrays["trainable_parameters"],
        columns=arrays.subset(FLOAT_COLUMNS + EPOCH_COLUMNS) if isinstance(arrays, LazyNpz)
        else {k: arrays[k] for k in FLOAT_COLUMNS + EPOCH_COLUMNS},
        source=str(path),
    )


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.load``'s object hook: a key given twice is an error (plain JSON keeps the last one)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _shown(value: Any) -> str:
    """A value as the file spells it (``Infinity``, ``null``), cut to a sane length."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_subset(path: Path, raw: dict[str, Any], budgets: list[int]) -> None:
    """Every rule a subset file must follow; the first broken one as one line naming the file, the
    entry and the rule (issue 14: an ``Infinity`` or a percentage became the global optimum)."""

    def bad(where: str, rule: str) -> BenchmarkDataError:
        return BenchmarkDataError(f"NAS-Bench-101 subset {path}: {where}: {rule}")

    for name in raw:
        if not name.isascii():
            raise bad(f"key {name!r}", "keys must be ASCII (a known column name or '<epochs>_final_...')")
    keys = raw["key"]
    if not isinstance(keys, list):
        raise bad("'key'", f"must be a list of module hashes, got a JSON {type(keys).__name__}")
    first_seen: dict[str, int] = {}
    for i, value in enumerate(keys):
        if not isinstance(value, str) or not _HASH.match(value.encode("utf-8", "replace")):
            raise bad(f"key[{i}] = {str(value)[:40]!r}", "a module hash is 32 lowercase hex digits")
        if value in first_seen:
            raise bad(f"key[{i}] = {_shown(value)}", f"a module hash appears once (also key[{first_seen[value]}])")
        first_seen[value] = i
    n = len(keys)
    for name in [f"{e}_final_validation_accuracy" for e in budgets]:
        column = raw[name]
        if not isinstance(column, list) or len(column) != n:
            size = len(column) if isinstance(column, list) else f"a JSON {type(column).__name__}"
            raise bad(f"list {name!r}", f"must be a list of {n} accuracies, like 'key' (got {size})")
        for i, value in enumerate(column):
            if not _is_number(value) or not math.isfinite(value):
                raise bad(f"{name}[{i}] (hash {keys[i]}) = {_shown(value)}", "an accuracy is a finite number")
            if not 0.0 <= value <= 1.0:
                hint = (" (this looks like a percentage: divide the file's accuracies by 100)"
                        if 1.0 < value <= 100.0 else "")
                raise bad(f"{name}[{i}] (hash {keys[i]}) = {_shown(value)}",
                          f"an accuracy is a fraction in [0, 1]{hint}")
    if "final_training_time" in raw:
        column = raw["final_training_time"]
        if not isinstance(column, list) or len(column) != n:
            raise bad("list 'final_training_time'", f"must be a list of {n} numbers of seconds, like 'key'")
        for i, value in enumerate(column):
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise bad(f"final_training_time[{i}] (hash {keys[i]}) = {_shown(value)}",
                          "a training time is a finite number of seconds >= 0")
    if "trainable_parameters" in raw:
        column = raw["trainable_parameters"]
        if not isinstance(column, list) or len(column) != n:
            raise bad("list 'trainable_parameters'", f"must be a list of {n} integers, like 'key'")
        for i, value in enumerate(column):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
                raise bad(f"trainable_parameters[{i}] (hash {keys[i]}) = {_shown(value)}",
                          "a parameter count is an integer >= 0")


def load_subset_json(path: Path) -> Table:
    """A subset table in the ``data-20k.json`` format: one repeat of final validation accuracy per budget.

    Validated first (:func:`_validate_subset`): unique keys at every level, well-formed unique hashes,
    finite accuracies in [0, 1], integer parameter counts.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle, object_pairs_hook=_unique_pairs)
    except FileNotFoundError:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} does not exist") from None
    except IsADirectoryError:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} is a directory; give the .json file inside it") from None
    except _DuplicateKey as err:
        raise BenchmarkDataError(
            f"NAS-Bench-101 subset {path}: key {str(err)[:60]!r}: a JSON key appears once in its object "
            "(given twice, the last would silently win)") from None
    except (OSError, ValueError) as err:
        raise BenchmarkDataError(f"cannot read NAS-Bench-101 subset {path}: {str(err)[:200]}") from err
    if not isinstance(raw, dict) or "key" not in raw:
        raise BenchmarkDataError(f"{path}: expected a JSON object of parallel lists with a 'key' list of hashes")
    budgets = sorted(int(k.split("_", 1)[0]) for k in raw
                     if k.endswith("_final_validation_accuracy") and k.split("_", 1)[0].isascii()
                     and k.split("_", 1)[0].isdigit())
    if not budgets:
        raise BenchmarkDataError(f"{path}: no '<epochs>_final_validation_accuracy' lists")
    _validate_subset(path, raw, budgets)
    keys = np.array(raw["key"], dtype="S32")
    n = len(keys)
    order = np.argsort(keys, kind="stable")
    hashes = keys[order]
    val = np.stack([np.asarray(raw[f"{e}_final_validation_accuracy"], dtype=np.float64)[order] for e in budgets], 1)
    columns = {"final_validation_accuracy": val[:, :, None]}
    if "final_training_time" in raw:  # recorded for the largest budget only
        time_col = np.full((n, len(budgets), 1), np.nan)
        time_col[:, -1, 0] = np.asarray(raw["final_training_time"], dtype=np.float64)[order]
        columns["final_training_time"] = time_col
    params = np.asarray(raw["trainable_parameters"], dtype=np.int64)[order] if "trainable_parameters" in raw else None
    return Table(hashes=hashes, epochs=np.array(budgets, dtype=np.int64), columns=columns,
                 trainable_parameters=params, source=str(path))


def load_table(path: str | Path, verbose: bool = False, cache: Path | None = None) -> Table:
    """Table of an official ``.tfrecord`` (cached in folder ``cache``) or a subset ``.json``."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} is a directory; give the .tfrecord or subset .json "
                                 "file inside it (benchmark.path=...)")
    if path.suffix == ".json":
        return load_subset_json(path)
    return load_tfrecord(path, verbose=verbose, cache=cache)
