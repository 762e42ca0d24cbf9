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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from lanas.errors import BenchmarkDataError
from lanas.nasbench101.cache import LazyNpz, open_npz, save_npz_atomic
from lanas.nasbench101.enumerate import cache_dir
from lanas.nasbench101.metrics import ModelMetrics
from lanas.nasbench101.tfrecord import read_records

STAGES = ("halfway", "final")
METRICS = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")
FLOAT_COLUMNS = tuple(f"{s}_{m}" for s in STAGES for m in METRICS) + ("total_time",)
EPOCH_COLUMNS = ("halfway_epoch", "final_epoch")
CACHE_FORMAT = 1
_HASH = re.compile(rb"^[0-9a-f]{32}$")
_DECODER = json.JSONDecoder()
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_NIBBLE = np.zeros(256, dtype=np.uint8)
_NIBBLE[_HEX_DIGITS] = np.arange(16)


def _hex_to_words(keys: np.ndarray) -> np.ndarray:
    """``'S32'`` hex hashes as ``(K, 2)`` big-endian uint64 (half the memory, same order)."""
    digits = _NIBBLE[np.frombuffer(keys.tobytes(), dtype=np.uint8).reshape(-1, 32)]
    raw = (digits[:, 0::2] << 4) | digits[:, 1::2]
    return raw.view(">u8").astype(np.uint64)


def _words_to_hex(words: np.ndarray) -> np.ndarray:
    raw = np.ascontiguousarray(words.astype(">u8")).view(np.uint8).reshape(-1, 16)
    digits = np.stack([_HEX_DIGITS[raw >> 4], _HEX_DIGITS[raw & 15]], axis=2).reshape(-1, 32)
    return np.ascontiguousarray(digits).view("S32").ravel()


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


def convert_tfrecord(path: Path) -> dict[str, np.ndarray]:
    """Read and check every record of an official file into table arrays (nothing written).

    Memory is kept near the size of the result: hashes as two uint64 per record, values as
    float32 when that is exact (the official values are float32 metrics stored as doubles),
    and each column's batches are freed as soon as that column is assembled.
    """
    names = FLOAT_COLUMNS + EPOCH_COLUMNS
    key_parts, epoch_parts, param_parts = [], [], []
    column_parts: list[list[np.ndarray]] = [[] for _ in names]
    for batch in read_records(path):
        keys, ints, floats = _parse_batch(path, batch.payloads, batch.offsets, batch.first_index)
        key_parts.append(_hex_to_words(keys))
        epoch_parts.append(ints[:, 0].astype(np.int32))
        param_parts.append(ints[:, 1])
        for j, parts in enumerate(column_parts):
            values = floats[:, j]
            single = values.astype(np.float32)
            exact = np.array_equal(single.astype(np.float64), values, equal_nan=True)
            parts.append(single if exact else values.copy())  # concatenation promotes if needed
    if not key_parts:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} holds no records")
    words = np.concatenate(key_parts)
    del key_parts
    order = np.lexsort((words[:, 1], words[:, 0]))
    sorted_words = words[order]
    new_cell = np.r_[True, np.any(sorted_words[1:] != sorted_words[:-1], axis=1)]
    hashes = _words_to_hex(sorted_words[new_cell])
    del sorted_words, words
    cell = np.empty(len(order), dtype=np.int64)
    cell[order] = np.cumsum(new_cell) - 1
    del order, new_cell
    epochs, budget = np.unique(np.concatenate(epoch_parts), return_inverse=True)
    del epoch_parts
    # Repeat number = rank of a record among those of the same (cell, budget), in file order.
    group = cell * len(epochs) + budget
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    counts = np.diff(np.r_[starts, len(order)])
    repeat = np.empty(len(order), dtype=np.int64)
    repeat[order] = np.arange(len(order)) - np.repeat(starts, counts)
    num_repeats = int(counts.max())
    del order, sorted_group, group
    params = np.zeros(len(hashes), dtype=np.int64)
    params[cell] = np.concatenate(param_parts)
    del param_parts
    out: dict[str, np.ndarray] = {"hashes": hashes, "epochs": epochs.astype(np.int64), "trainable_parameters": params}
    index = (cell, budget, repeat)
    for j, name in enumerate(names):
        values = np.concatenate(column_parts[j])
        column_parts[j] = []
        column = np.full((len(hashes), len(epochs), num_repeats), np.nan, dtype=values.dtype)
        column[index] = values
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
    eager = ("source_stamp", "hashes", "epochs", "trainable_parameters")
    arrays = open_npz(cached, eager) if cached.exists() else None
    if arrays is None or "source_stamp" not in arrays or not np.array_equal(arrays["source_stamp"], _stamp(path)):
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
