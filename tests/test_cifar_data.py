"""CIFAR-10 data module on generated files in CIFAR-10's on-disk format (never the network)."""

from __future__ import annotations

import pytest
import torch

from lanas.errors import ConfigError
from lanas.training.data import CIFAR10DataModule, Cutout, write_fake_cifar10


def test_fake_files_are_read_by_torchvision_and_split_from_the_training_set(tmp_path):
    write_fake_cifar10(tmp_path, num_train=200, num_test=40)
    dm = CIFAR10DataModule(tmp_path, batch_size=16, val_size=50, num_workers=0, fake_images=200)
    dm.setup()
    assert len(dm.train_set) == 150 and len(dm.val_set) == 50 and len(dm.test_set) == 40
    assert not set(dm.train_set.indices) & set(dm.val_set.indices)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.int64 and 0 <= int(y.min()) <= int(y.max()) < 10
    # The split depends on split_seed only.
    again = CIFAR10DataModule(tmp_path, val_size=50, num_workers=0, fake_images=200)
    again.setup()
    assert again.val_set.indices == dm.val_set.indices
    other = CIFAR10DataModule(tmp_path, val_size=50, num_workers=0, fake_images=200, split_seed=1)
    other.setup()
    assert other.val_set.indices != dm.val_set.indices


def test_validation_is_deterministic_and_training_is_augmented(tmp_path):
    dm = CIFAR10DataModule(tmp_path, batch_size=8, val_size=20, num_workers=0, fake_images=100, image_size=16)
    dm.setup()
    v1, _ = next(iter(dm.val_dataloader()))
    v2, _ = next(iter(dm.val_dataloader()))
    assert v1.shape[-1] == 16 and torch.equal(v1, v2)
    base = dm.train_set.dataset
    torch.manual_seed(0)
    a = torch.stack([base[0][0] for _ in range(8)])
    assert not all(torch.equal(a[0], a[i]) for i in range(1, 8))  # random crops / flips


def test_cutout_zeroes_a_square():
    torch.manual_seed(0)
    img = torch.ones(3, 32, 32)
    out = Cutout(16)(img)
    zeros = (out == 0).all(dim=0)
    assert 0 < int(zeros.sum()) <= 256 and torch.equal(img, torch.ones(3, 32, 32))


def test_missing_data_is_a_clear_error(tmp_path):
    dm = CIFAR10DataModule(tmp_path / "nothing", num_workers=0)
    with pytest.raises(ConfigError, match="data.download=true"):
        dm.setup()
    with pytest.raises(ConfigError, match="data.val_size"):
        CIFAR10DataModule(tmp_path, val_size=500, num_workers=0, fake_images=100).setup()
