"""NAS-Bench-101 results as a compact columnar table, converted once from the official file.

:func:`load_table` takes an official ``.tfrecord`` (``nasbench_only108`` or ``nasbench_full``) or
a subset ``.json`` (dict of parallel lists keyed by hash, the ``data-20k.json`` format). A
``.tfrecord`` is converted on first use into an uncompressed ``.npz`` in the cache directory
(written atomically, keyed by the source's path, size and modification time); later loads read
only that file.

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
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from lanas.errors import BenchmarkDataError
from lanas.nasbench101.cache import load_npz, save_npz_atomic
from lanas.nasbench101.enumerate import cache_dir
from lanas.nasbench101.metrics import ModelMetrics
from lanas.nasbench101.tfrecord import read_records

STAGES = ("halfway", "final")
METRICS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
FLOAT_COLUMNS = tuple(f"{s}_{m}" for s in STAGES for m in METRICS) + ("total_time",)
EPOCH_COLUMNS = ("halfway_epoch", "final_epoch")
CACHE_FORMAT = 1
_HASH = re.compile(rb"^[0-9a-f]{32}$")


@dataclass
class Table:
    """Results by cell (sorted official hash), training budget (epochs) and repeat."""

    hashes: np.ndarray  # (C,) 'S32'
    epochs: np.ndarray  # (E,) int64, ascending
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (C, E, R)
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
    for i, payload in enumerate(payloads):
        try:
            row = json.loads(payload)
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


def convert_tfrecord(path: Path) -> dict[str, np.ndarray]:
    """Read and check every record of an official file into table arrays (nothing written)."""
    names = FLOAT_COLUMNS + EPOCH_COLUMNS
    keys, ints, floats32, sizes = [], [], [], [0]
    # The official values are float32 metrics stored as doubles: keep float32 copies (half the
    # memory) and float64 only for columns where float32 would lose something.
    floats64: dict[int, list[np.ndarray | None]] = {}
    for n_batch, batch in enumerate(read_records(path)):
        k, i, f = _parse_batch(path, batch.payloads, batch.offsets, batch.first_index)
        keys.append(k)
        ints.append(i)
        sizes.append(len(k))
        f32 = f.astype(np.float32)
        floats32.append(f32)
        exact = np.all((f32.astype(np.float64) == f) | np.isnan(f), axis=0)
        for j in np.flatnonzero(~exact):
            floats64.setdefault(int(j), [None] * n_batch)
        for j, parts in floats64.items():
            parts.append(f[:, j].copy())
    if not keys:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} holds no records")
    all_keys = np.concatenate(keys)
    del keys
    hashes, cell = np.unique(all_keys, return_inverse=True)
    del all_keys
    all_ints = np.concatenate(ints)
    del ints
    epochs, budget = np.unique(all_ints[:, 0], return_inverse=True)
    # Repeat number = rank of a record among those of the same (cell, budget), in file order.
    group = cell.astype(np.int64) * len(epochs) + budget
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    repeat = np.empty(len(order), dtype=np.int64)
    repeat[order] = np.arange(len(order)) - np.repeat(starts, counts)
    num_repeats = int(counts.max())
    params = np.zeros(len(hashes), dtype=np.int64)
    params[cell] = all_ints[:, 1]
    del all_ints, order, sorted_group, group
    out: dict[str, np.ndarray] = {"hashes": hashes, "epochs": epochs.astype(np.int64), "trainable_parameters": params}
    all_floats = np.concatenate(floats32)
    del floats32
    for j, name in enumerate(names):
        if j in floats64:
            parts = floats64.pop(j)
            lengths = np.cumsum(sizes)
            values = np.concatenate([p if p is not None else all_floats[a:b, j].astype(np.float64)
                                     for p, a, b in zip(parts, lengths[:-1], lengths[1:])])
        else:
            values = all_floats[:, j]
        column = np.full((len(hashes), len(epochs), num_repeats), np.nan, dtype=values.dtype)
        column[cell, budget, repeat] = values
        out[name] = column
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
    arrays = load_npz(cached) if cached.exists() else None
    if arrays is None or not np.array_equal(arrays.get("source_stamp"), _stamp(path)):
        start = time.perf_counter()
        stamp = _stamp(path)
        arrays = convert_tfrecord(path)
        arrays["source_stamp"] = stamp
        save_npz_atomic(cached, arrays)
        if verbose:
            print(f"converted {path} -> {cached} in {time.perf_counter() - start:.1f} s", flush=True)
    return Table(
        hashes=arrays["hashes"], epochs=arrays["epochs"], trainable_parameters=arrays["trainable_parameters"],
        columns={k: arrays[k] for k in FLOAT_COLUMNS + EPOCH_COLUMNS}, source=str(path),
    )


def load_subset_json(path: Path) -> Table:
    """A subset table in the ``data-20k.json`` format: one repeat of final validation accuracy per budget."""
    path = Path(path)
    try:
        with open(path) as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} does not exist") from None
    except (OSError, ValueError) as err:
        raise BenchmarkDataError(f"cannot read NAS-Bench-101 subset {path}: {err}") from err
    if not isinstance(raw, dict) or "key" not in raw:
        raise BenchmarkDataError(f"{path}: expected a JSON object of parallel lists with a 'key' list of hashes")
    budgets = sorted(int(k.split("_", 1)[0]) for k in raw if k.endswith("_final_validation_accuracy"))
    if not budgets:
        raise BenchmarkDataError(f"{path}: no '<epochs>_final_validation_accuracy' lists")
    keys = np.array(raw["key"], dtype="S32")
    n = len(keys)
    for name in [f"{e}_final_validation_accuracy" for e in budgets]:
        if len(raw[name]) != n:
            raise BenchmarkDataError(f"{path}: list {name!r} has {len(raw[name])} entries, 'key' has {n}")
    order = np.argsort(keys, kind="stable")
    hashes = keys[order]
    if len(np.unique(hashes)) != n:
        raise BenchmarkDataError(f"{path}: 'key' lists some hash twice")
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
    if path.suffix == ".json":
        return load_subset_json(path)
    return load_tfrecord(path, verbose=verbose, cache=cache)
