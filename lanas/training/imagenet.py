"""ImageNet in torchvision's ImageFolder layout, a mobile-network classifier, and proxy training.

Layout: ``<data_dir>/train/<class>/<image>`` and ``<data_dir>/val/<class>/<image>`` (the usual
``ILSVRC2012`` preparation; any ImageFolder dataset of that shape works). Augmentation, the standard
ImageNet recipe: training ``RandomResizedCrop(image_size)`` + horizontal flip, evaluation resize to
``image_size / 0.875`` + centre crop; both normalised with the ImageNet mean and std.

A *proxy* (the paper's search trained each candidate briefly on part of ImageNet) takes ``classes``
classes (the first ones in sorted order, or all) and at most ``train_per_class`` / ``val_per_class``
images of each, at a smaller ``image_size``; the images kept are drawn with ``split_seed``.

``python -m lanas.training.imagenet fake <folder>`` writes a tiny generated ImageFolder (for the smoke
preset and tests): noise images whose colour depends on the class, so a network can learn something.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from lanas.errors import BenchmarkDataError, ConfigError, require_int
from lanas.spaces.mobile import MobileSpace
from lanas.training.mobile import MobileNet

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _subset_indices(targets: Sequence[int], classes: int | None, per_class: int | None, seed: int) -> np.ndarray:
    """Indices of the first ``classes`` classes, at most ``per_class`` images each, drawn with ``seed``."""
    targets = np.asarray(targets)
    keep_classes = np.unique(targets) if classes is None else np.unique(targets)[:classes]
    rng = np.random.default_rng(seed)
    out = []
    for c in keep_classes:
        idx = np.flatnonzero(targets == c)
        if per_class is not None and len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        out.append(idx)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


class ImageFolderDataModule(L.LightningDataModule):
    """``train/`` and ``val/`` ImageFolders with the standard ImageNet augmentation; optional class/image subset."""

    def __init__(self, data_dir: str = "data/imagenet", image_size: int = 224, batch_size: int = 256,
                 num_workers: int = 8, classes: int | None = None, train_per_class: int | None = None,
                 val_per_class: int | None = None, split_seed: int = 0) -> None:
        super().__init__()
        self.data_dir = Path(data_dir).expanduser()
        self.image_size = require_int("data.image_size", image_size, 8)
        self.batch_size = require_int("data.batch_size", batch_size, 1)
        self.num_workers = require_int("data.num_workers", num_workers, 0)
        self.classes = None if classes is None else require_int("data.classes", classes, 2)
        self.train_per_class = None if train_per_class is None else require_int("data.train_per_class", train_per_class, 1)
        self.val_per_class = None if val_per_class is None else require_int("data.val_per_class", val_per_class, 1)
        self.split_seed = split_seed
        self.num_classes: int | None = None

    def _folder(self, split: str, transform: Any) -> Any:
        from torchvision.datasets import ImageFolder

        folder = self.data_dir / split
        if not folder.is_dir():
            raise BenchmarkDataError(
                f"{folder} is not a folder: data.data_dir must hold ImageNet in ImageFolder layout "
                "(train/<class>/*.JPEG and val/<class>/*.JPEG; docs/constraints.md)")
        return ImageFolder(str(folder), transform=transform)

    def setup(self, stage: str | None = None) -> None:
        from torchvision import transforms as T

        train_tf = T.Compose([T.RandomResizedCrop(self.image_size), T.RandomHorizontalFlip(), T.ToTensor(),
                              T.Normalize(MEAN, STD)])
        val_tf = T.Compose([T.Resize(int(round(self.image_size / 0.875))), T.CenterCrop(self.image_size),
                            T.ToTensor(), T.Normalize(MEAN, STD)])
        train, val = self._folder("train", train_tf), self._folder("val", val_tf)
        if train.classes != val.classes:
            raise BenchmarkDataError(f"{self.data_dir}: train/ and val/ hold different classes")
        self.num_classes = len(train.classes) if self.classes is None else min(self.classes, len(train.classes))
        self.train_set = Subset(train, _subset_indices(train.targets, self.classes, self.train_per_class,
                                                        self.split_seed).tolist())
        self.val_set = Subset(val, _subset_indices(val.targets, self.classes, self.val_per_class,
                                                    self.split_seed + 1).tolist())

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          drop_last=len(self.train_set) > self.batch_size, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)


class MobileClassifier(L.LightningModule):
    """A mobile-space network trained with SGD (Nesterov), label smoothing and a per-step cosine schedule."""

    def __init__(self, arch: Sequence[int], num_classes: int, lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 4e-5, label_smoothing: float = 0.1, dropout: float = 0.2,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        space = MobileSpace(num_classes=num_classes)
        self.net = MobileNet(space, tuple(arch), dropout=dropout, drop_path=drop_path)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.criterion(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val/acc", (self(x).argmax(1) == y).float().mean(), on_epoch=True, batch_size=len(y))

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        # No weight decay on batch-norm and bias parameters (the usual mobile-network recipe).
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": hp.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=hp.lr, momentum=hp.momentum,
                              nesterov=True)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def train_proxy(arch: Sequence[int], seed: int, out_dir: str, data: dict[str, Any], network: dict[str, Any],
                trainer: dict[str, Any], threads: int | None = None) -> float:
    """Train ``arch`` on the proxy task and return its validation top-1 accuracy (a fraction)."""
    from lanas.cli import apply_torch_threads

    apply_torch_threads(threads)
    L.seed_everything(seed, workers=True, verbose=False)
    dm = ImageFolderDataModule(**data)
    dm.setup()
    model = MobileClassifier(arch, num_classes=int(dm.num_classes), **network)
    kwargs = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False,
              "enable_model_summary": False, "num_sanity_val_steps": 0, **trainer}
    try:
        run = L.Trainer(default_root_dir=out_dir, **kwargs)
    except TypeError as err:
        raise ConfigError(f"evaluator.trainer: {err}") from None
    run.fit(model, dm)
    return float(run.validate(model, dm, verbose=False)[0]["val/acc"])


def make_fake_imagenet(folder: str | Path, classes: int = 4, train_per_class: int = 16, val_per_class: int = 4,
                       size: int = 40, seed: int = 0) -> Path:
    """A tiny ImageFolder (``train/``, ``val/``) of PNG noise images tinted per class; returns ``folder``."""
    from PIL import Image

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    tints = rng.uniform(0, 255, size=(classes, 3))
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            target = folder / split / f"n{c:08d}"
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = np.clip(tints[c] + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(target / f"{split}_{c}_{i}.png")
    return folder


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a tiny generated ImageFolder: "
                                                 "python -m lanas.training.imagenet fake <folder>")
    parser.add_argument("command", choices=["fake"])
    parser.add_argument("folder")
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--train-per-class", type=int, default=16)
    parser.add_argument("--val-per-class", type=int, default=4)
    parser.add_argument("--size", type=int, default=40)
    args = parser.parse_args(argv)
    make_fake_imagenet(args.folder, args.classes, args.train_per_class, args.val_per_class, args.size)
    print(args.folder)


if __name__ == "__main__":
    main()
