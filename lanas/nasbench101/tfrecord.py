"""TFRecord framing without TensorFlow, with the masked CRC32C of every length and payload checked.

A record is ``uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)``
(all little-endian). No CRC32C package is among the project's pinned dependencies (and zlib only
has CRC32), so CRC32C is computed here with numpy, vectorised across records rather than along
bytes: slicing-by-4 tables, one step per 4-byte column of a batch of equal-length records.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanas.errors import BenchmarkDataError

_POLY = np.uint32(0x82F63B78)  # CRC32C (Castagnoli), reflected
_MASK_DELTA = 0xA282EAD8
HEADER = 12  # uint64 length + uint32 crc
FOOTER = 4


def _tables() -> np.ndarray:
    crc = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        crc = np.where(crc & 1, (crc >> 1) ^ _POLY, crc >> 1).astype(np.uint32)
    tables = [crc]
    for _ in range(3):  # T[k][i]: byte i followed by k zero bytes
        prev = tables[-1]
        tables.append((prev >> 8) ^ crc[prev & 0xFF])
    return np.stack(tables)


_T = _tables()


def crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """CRC32C of every row of a ``(K, L)`` uint8 matrix (L >= 4), as uint32."""
    rows = np.asarray(rows, dtype=np.uint8)
    k, length = rows.shape
    pad = (-length) % 4
    data = np.zeros((k, length + pad), dtype=np.uint8)
    data[:, pad:] = rows
    # The initial register 0xFFFFFFFF is the same as complementing the message's first 4 bytes
    # with a zero register; a zero register stays zero over the zero padding in front.
    data[:, pad:pad + 4] ^= 0xFF
    words = data.view("<u4")
    t0, t1, t2, t3 = _T
    crc = np.zeros(k, dtype=np.uint32)
    for j in range(words.shape[1]):
        crc ^= words[:, j]
        crc = t3[crc & 0xFF] ^ t2[(crc >> 8) & 0xFF] ^ t1[(crc >> 16) & 0xFF] ^ t0[crc >> 24]
    return crc ^ np.uint32(0xFFFFFFFF)


def crc32c(data: bytes) -> int:
    """CRC32C of one byte string (any length)."""
    if len(data) < 4:  # the matrix form needs 4 bytes; a bytewise loop is fine here
        crc = 0xFFFFFFFF
        for byte in data:
            crc = int(_T[0][(crc ^ byte) & 0xFF]) ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF
    return int(crc32c_rows(np.frombuffer(data, dtype=np.uint8)[None, :])[0])


def mask(crc: np.ndarray | int) -> np.ndarray:
    """TFRecord's masked CRC: rotate right by 15 and add a constant (mod 2**32)."""
    crc = np.asarray(crc, dtype=np.uint64)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA).astype(np.uint32)


def masked_crc_of_slices(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Masked CRC32C of ``buf[starts[i]:starts[i]+lengths[i]]`` for every i, grouped by length
    (in blocks of about 1 MB of data, so the gather indices stay small)."""
    out = np.empty(len(starts), dtype=np.uint32)
    for length in np.unique(lengths):
        which = np.flatnonzero(lengths == length)
        if length < 4:  # too short for the column form (only a corrupt file has such records)
            for i in which:
                out[i] = mask(crc32c(buf[starts[i]:starts[i] + length].tobytes()))
            continue
        for block in np.array_split(which, max(1, len(which) * int(length) // (1 << 20) + 1)):
            if len(block) == 0:
                continue
            rows = buf[starts[block, None] + np.arange(int(length), dtype=starts.dtype)]
            out[block] = mask(crc32c_rows(rows))
    return out


@dataclass
class RecordBatch:
    """Payloads of consecutive records and where each record starts in the file."""

    payloads: list[bytes]
    offsets: np.ndarray  # byte offset of each record's header in the file
    first_index: int  # record number of the first payload


def read_records(path: Path, chunk_bytes: int = 4 << 20) -> Iterator[RecordBatch]:
    """Yield checked records in batches; BenchmarkDataError names the file, record and byte offset."""
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise BenchmarkDataError(f"NAS-Bench-101 file {path} does not exist") from None
    except OSError as err:
        raise BenchmarkDataError(f"cannot open NAS-Bench-101 file {path}: {err}") from err
    with handle:
        pending = b""
        base = 0  # file offset of pending[0]
        index = 0
        eof = False
        while not eof:
            chunk = handle.read(chunk_bytes)
            eof = not chunk
            buf = pending + chunk
            starts, lengths = [], []
            pos, end = 0, len(buf)
            while pos + HEADER <= end:
                (length,) = struct.unpack_from("<Q", buf, pos)
                if pos + HEADER + length + FOOTER > end:
                    if eof or length > (1 << 31):
                        raise BenchmarkDataError(
                            f"{path}: record {index + len(starts)} at byte offset {base + pos} is truncated "
                            f"(header says {length} bytes, file ends at byte {base + end})"
                        )
                    break
                starts.append(pos)
                lengths.append(length)
                pos += HEADER + length + FOOTER
            if eof and pos != end:
                raise BenchmarkDataError(
                    f"{path}: record {index + len(starts)} at byte offset {base + pos} is truncated "
                    f"({end - pos} trailing bytes, fewer than a record header)"
                )
            if starts:
                yield _check_batch(path, buf, np.array(starts, dtype=np.int64),
                                   np.array(lengths, dtype=np.int64), base, index)
                index += len(starts)
            pending = buf[pos:]
            base += pos


def _check_batch(path: Path, buf: bytes, starts: np.ndarray, lengths: np.ndarray,
                 base: int, index: int) -> RecordBatch:
    arr = np.frombuffer(buf, dtype=np.uint8)
    header_crc = arr[starts[:, None] + np.arange(8, 12)].copy().view("<u4")[:, 0]
    data_crc = arr[(starts + HEADER + lengths)[:, None] + np.arange(4)].copy().view("<u4")[:, 0]
    bad_header = masked_crc_of_slices(arr, starts, np.full(len(starts), 8)) != header_crc
    bad_data = masked_crc_of_slices(arr, starts + HEADER, lengths) != data_crc
    bad = np.flatnonzero(bad_header | bad_data)
    if len(bad):
        i = int(bad[0])
        what = "length" if bad_header[i] else "data"
        raise BenchmarkDataError(
            f"{path}: record {index + i} at byte offset {base + int(starts[i])} is corrupt "
            f"(CRC32C mismatch of its {what})"
        )
    payloads = [buf[s + HEADER:s + HEADER + n] for s, n in zip(starts.tolist(), lengths.tolist())]
    return RecordBatch(payloads, base + starts, index)


def write_records(path: Path, payloads: Iterable[bytes], batch: int = 65536) -> int:
    """Write payloads as TFRecords (the official framing); returns the number written."""
    count = 0
    with open(path, "wb") as handle:
        items: list[bytes] = []
        for payload in payloads:
            items.append(payload)
            if len(items) == batch:
                handle.write(_frame(items))
                count += len(items)
                items = []
        if items:
            handle.write(_frame(items))
            count += len(items)
    return count


def _frame(items: list[bytes]) -> bytes:
    lengths = np.array([len(p) for p in items], dtype=np.int64)
    heads = np.frombuffer(lengths.astype("<u8").tobytes(), dtype=np.uint8)
    head_crc = masked_crc_of_slices(heads, np.arange(len(items)) * 8, np.full(len(items), 8))
    joined = b"".join(items)
    data = np.frombuffer(joined, dtype=np.uint8)
    data_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    data_crc = masked_crc_of_slices(data, data_starts, lengths) if len(joined) else np.zeros(0, np.uint32)
    out = []
    for i, payload in enumerate(items):
        out.append(heads[8 * i:8 * i + 8].tobytes())
        out.append(struct.pack("<I", int(head_crc[i])))
        out.append(payload)
        out.append(struct.pack("<I", int(data_crc[i])))
    return b"".join(out)
