"""Atomic ``.npz`` files: written beside the target and renamed into place, so a reader sees the
whole file or nothing, and an interrupted conversion leaves no partial cache behind."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` uncompressed (so reloads are a plain read) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LazyNpz(Mapping):
    """Arrays of an ``.npz`` read on first access (a benchmark needs two of a dozen columns)."""

    def __init__(self, path: Path, keys: list[str], loaded: dict[str, np.ndarray] | None = None) -> None:
        self.path, self._keys = Path(path), list(keys)
        self._loaded = loaded if loaded is not None else {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._loaded:
            with np.load(self.path, allow_pickle=False) as data:
                self._loaded[key] = data[key]
        return self._loaded[key]

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def subset(self, keys: tuple[str, ...]) -> LazyNpz:
        """A view limited to ``keys`` (sharing what was already read)."""
        return LazyNpz(self.path, [k for k in keys if k in self._keys], self._loaded)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def open_npz(path: Path, eager: tuple[str, ...] = ()) -> LazyNpz | None:
    """A lazy view of ``path`` with the ``eager`` arrays read now, or None when unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return LazyNpz(path, data.files, {key: data[key] for key in eager if key in data.files})
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None


def load_npz(path: Path) -> dict[str, np.ndarray] | None:
    """All arrays of ``path``, or None when it is unreadable (then it is simply rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None
