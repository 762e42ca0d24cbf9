"""Fashion-MNIST for every training path, read from the real idx files in ``<root>/../shared/data``:
the data module (splits, shapes, both folder layouts, .gz or not), a small network learning real
images, and one-line errors for missing or truncated files."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lanas.errors import ConfigError
from lanas.training.data import (FASHION_FILES, FashionMNISTDataModule, find_idx_file, make_datamodule, read_idx)

ROOT = Path(__file__).resolve().parents[1]
FASHION = ROOT.parent / "shared" / "data" / "fashion-mnist"
pytestmark = pytest.mark.skipif(
    not all((FASHION / f"{name}.gz").is_file() for name in FASHION_FILES.values()),
    reason=f"Fashion-MNIST's four idx .gz files are not in {FASHION} (../shared/data/fashion-mnist of the project)")

SMALL = {"data_dir": str(FASHION), "val_size": 200, "train_images": 600, "batch_size": 64, "num_workers": 0,
         "download": False}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def linked_folder(tmp: Path, *, layout: str = "plain", skip: str | None = None) -> Path:
    """A folder of symlinks to the real files (no copy of the data set), in torchvision's layout or plain."""
    folder = tmp / "FashionMNIST" / "raw" if layout == "torchvision" else tmp
    folder.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES.values():
        if name != skip:
            (folder / f"{name}.gz").symlink_to(FASHION / f"{name}.gz")
    return tmp


def test_data_module_reads_the_real_files_with_a_validation_split_from_training():
    dm = make_datamodule("fashion_mnist", **SMALL)
    assert isinstance(dm, FashionMNISTDataModule) and dm.channels == 1
    dm.setup()
    assert len(dm.train_set) == 600 and len(dm.val_set) == 200
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)  # validation images are held out
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (64, 1, 28, 28) and y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) <= 9
    assert abs(float(torch.stack([dm.val_set[i][0] for i in range(200)]).mean())) < 0.3  # normalised
    assert "_test_set" not in vars(dm)  # the test set is read on first use only (final training)
    assert len(dm.test_set) == 10_000
    # Same split_seed, same split: the supernet evaluator's validation images are the search's.
    again = make_datamodule("fashion_mnist", **SMALL)
    again.setup()
    assert again.val_set.indices == dm.val_set.indices


def test_plain_and_torchvision_layouts_gz_or_not(tmp_path):
    plain = linked_folder(tmp_path / "plain")
    tv = linked_folder(tmp_path / "tv", layout="torchvision")
    name = FASHION_FILES["test_labels"]
    assert find_idx_file(plain, name).parent == plain
    assert find_idx_file(tv, name).parent == tv / "FashionMNIST" / "raw"
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    (unpacked / name).write_bytes(gzip.decompress((FASHION / f"{name}.gz").read_bytes()))
    assert torch.equal(read_idx(find_idx_file(unpacked, name), labels=True),
                       read_idx(find_idx_file(plain, name), labels=True))


def test_missing_and_truncated_files_are_one_line_errors(tmp_path):
    missing = linked_folder(tmp_path / "missing", skip=FASHION_FILES["train_labels"])
    with pytest.raises(ConfigError, match="train-labels-idx1-ubyte"):
        make_datamodule("fashion_mnist", **{**SMALL, "data_dir": str(missing)}).setup()
    cut = linked_folder(tmp_path / "cut", skip=FASHION_FILES["train_labels"])
    whole = (FASHION / f"{FASHION_FILES['train_labels']}.gz").read_bytes()
    (cut / f"{FASHION_FILES['train_labels']}.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ConfigError, match=r"train-labels-idx1-ubyte\.gz is damaged or truncated"):
        make_datamodule("fashion_mnist", **{**SMALL, "data_dir": str(cut)}).setup()
    short = linked_folder(tmp_path / "short", skip=FASHION_FILES["test_labels"])  # an idx body cut short
    raw = gzip.decompress((FASHION / f"{FASHION_FILES['test_labels']}.gz").read_bytes())
    (short / FASHION_FILES["test_labels"]).write_bytes(raw[:5000])
    dm = make_datamodule("fashion_mnist", **{**SMALL, "data_dir": str(short)})
    dm.setup()  # the training files are fine
    with pytest.raises(ConfigError, match="t10k-labels-idx1-ubyte"):
        dm.test_set
    with pytest.raises(ConfigError, match="fake_images"):
        make_datamodule("fashion_mnist", **SMALL, fake_images=10)
    with pytest.raises(ConfigError, match="dataset='cifar100'"):
        make_datamodule("cifar100", **SMALL)


def test_supernet_training_stops_on_a_truncated_file_with_one_line_and_exit_2(tmp_path):
    cut = linked_folder(tmp_path / "cut", skip=FASHION_FILES["train_images"])
    whole = (FASHION / f"{FASHION_FILES['train_images']}.gz").read_bytes()
    (cut / f"{FASHION_FILES['train_images']}.gz").write_bytes(whole[:100_000])
    out = tmp_path / "supernet"
    proc = subprocess.run(
        [sys.executable, "-m", "lanas.training.train_supernet", "experiment=rq4_oneshot", f"data.data_dir={cut}",
         "data.download=false", f"supernet_dir={out}", "hydra.run.dir=" + str(tmp_path / "hydra")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "train-images-idx3-ubyte.gz" in lines[0] and "truncated" in lines[0], proc.stderr
    assert not out.exists()  # nothing half-written


def test_a_small_network_learns_real_images(tmp_path):
    """A NAS-Bench-201 cell of 3x3 convolutions, 8 channels, one cell per stage, 2 epochs of 2,000
    images: well above chance (0.1) on 2,000 real test images (the full schedules: docs/oneshot.md)."""
    from lanas.training.final import train_cell
    from lanas.training.nb201 import arch_ops

    result = train_cell(arch_ops(int(np.sum([3 * 5**k for k in range(6)]))), 0, tmp_path, "fashion_mnist",
                        {**SMALL, "train_images": 2000, "eval_batch_size": 1000},
                        {"search_space": "nasbench201", "init_channels": 8, "cells": 1, "lr": 0.05},
                        {"max_epochs": 2, "accelerator": "cpu", "limit_val_batches": 0, "limit_test_batches": 2},
                        logger="none")
    assert result["test_acc"] > 0.6, result
    assert result["steps"] == 2 * (2000 // 64) and result["cpu_s"] > 0
