"""CIFAR-10 and Fashion-MNIST as LightningDataModules: torchvision's readers, a validation split
taken from the training set (the test set is only for the final report), standard augmentation,
optional cutout. :func:`make_datamodule` picks the module by ``dataset`` name.

For tests and smoke runs, :func:`write_fake_cifar10` writes random images in CIFAR-10's own
on-disk format (``cifar-10-batches-py``: pickled dicts of uint8 rows), so the very same reader
code runs without the network; ``fake_images > 0`` makes the data module write them itself.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import CIFAR10

from lanas.errors import ConfigError, require_int

# Datasets every training path (supernet, evaluator=train, final training) can read.
DATASETS = ("cifar10", "fashion_mnist")

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class UnverifiedCIFAR10(CIFAR10):
    """torchvision's CIFAR10 without the MD5 checks, for generated files in the same format."""

    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


def write_fake_cifar10(root: str | Path, num_train: int = 500, num_test: int = 100, seed: int = 0) -> Path:
    """Random images and labels in the CIFAR-10 pickle format under ``root/cifar-10-batches-py``.

    Labels are learnable: each class gets a mean colour added to the noise, so a network can beat
    chance on them (tests assert that training lowers the loss).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    tint = rng.integers(0, 256, size=(10, 3))

    def batch(n: int, label: str) -> dict:
        labels = rng.integers(0, 10, size=n)
        noise = rng.integers(0, 256, size=(n, 3, 32, 32))
        images = (0.5 * noise + 0.5 * tint[labels][:, :, None, None]).astype(np.uint8)
        return {"batch_label": label, "labels": labels.tolist(), "data": images.reshape(n, 3072),
                "filenames": [f"fake_{i}.png" for i in range(n)]}

    per_batch = np.array_split(np.arange(num_train), 5)
    for k, rows in enumerate(per_batch, start=1):
        with open(folder / f"data_batch_{k}", "wb") as handle:
            pickle.dump(batch(len(rows), f"training batch {k} of 5"), handle)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump(batch(num_test, "testing batch 1 of 1"), handle)
    with open(folder / "batches.meta", "wb") as handle:
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        pickle.dump({"label_names": names, "num_cases_per_batch": len(per_batch[0]), "num_vis": 3072}, handle)
    return Path(root)


class Cutout:
    """Zero a ``length`` x ``length`` square at a uniform centre (clipped at the border) of a CHW tensor."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - self.length // 2, 0), min(cy + self.length // 2, h)
        x0, x1 = max(cx - self.length // 2, 0), min(cx + self.length // 2, w)
        img = img.clone()
        img[..., y0:y1, x0:x1] = 0
        return img


class CIFAR10DataModule(L.LightningDataModule):
    """Train / validation (from the training set) / test loaders of CIFAR-10.

    ``val_size`` images of the 50,000 training images, chosen by ``split_seed``, form the validation
    split that searches select on; the 10,000 test images are never used for selection.
    ``image_size`` below 32 resizes (smoke runs); ``cutout`` > 0 adds cutout of that length;
    ``train_images`` > 0 trains on that many images of the training split only (chosen by ``split_seed``:
    short from-scratch schedules on a CPU).
    """

    channels = 3
    num_classes = 10
    full_size = 32
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD

    def __init__(
        self, data_dir: str = "data", batch_size: int = 80, val_size: int = 5000, split_seed: int = 0,
        cutout: int = 0, augment: bool = True, num_workers: int = 2, image_size: int = 32, download: bool = False,
        fake_images: int = 0, eval_batch_size: int | None = None, train_on_full: bool = False,
        train_images: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir = str(data_dir)
        self.batch_size = require_int("data.batch_size", batch_size, 1)
        self.eval_batch_size = require_int("data.eval_batch_size", eval_batch_size or batch_size, 1)
        self.val_size = require_int("data.val_size", val_size, 0)
        self.split_seed = split_seed
        self.cutout = require_int("data.cutout", cutout, 0)
        self.augment = augment
        self.num_workers = require_int("data.num_workers", num_workers, 0)
        self.image_size = require_int("data.image_size", image_size, 4, self.full_size)
        self.download = download
        self.fake_images = require_int("data.fake_images", fake_images, 0)
        self.train_on_full = train_on_full  # final training: all 50,000 images, no validation split
        self.train_images = require_int("data.train_images", train_images, 0)

    # ------------------------------------------------------------------ transforms
    def _resize(self) -> list:
        return [] if self.image_size == self.full_size else [transforms.Resize(self.image_size, antialias=True)]

    def train_transform(self) -> transforms.Compose:
        steps = self._resize()
        if self.augment:
            steps += [transforms.RandomCrop(self.image_size, padding=self.image_size // 8),
                      transforms.RandomHorizontalFlip()]
        steps += [transforms.ToTensor(), transforms.Normalize(self.mean, self.std)]
        if self.cutout:
            steps.append(Cutout(self.cutout))
        return transforms.Compose(steps)

    def eval_transform(self) -> transforms.Compose:
        return transforms.Compose([*self._resize(), transforms.ToTensor(), transforms.Normalize(self.mean, self.std)])

    # ------------------------------------------------------------------ LightningDataModule
    def _dataset(self, train: bool, transform) -> CIFAR10:
        cls = UnverifiedCIFAR10 if self.fake_images else CIFAR10
        try:
            return cls(self.data_dir, train=train, transform=transform, download=False)
        except RuntimeError as err:
            raise ConfigError(
                f"data.data_dir={self.data_dir!r} holds no CIFAR-10 ({err}); set data.download=true to fetch it"
            ) from None

    def prepare_data(self) -> None:
        folder = Path(self.data_dir) / CIFAR10.base_folder
        if self.fake_images and not (folder / "test_batch").exists():
            write_fake_cifar10(self.data_dir, self.fake_images, max(self.fake_images // 5, 10), seed=self.split_seed)
        elif self.download and not self.fake_images:
            if not (folder / "test_batch").exists():  # first use only: a 163 MB download, then extraction
                print(f"note: downloading CIFAR-10 (163 MB) into {self.data_dir} once; its time depends on your "
                      "connection (extraction: seconds)", file=sys.stderr, flush=True)
            CIFAR10(self.data_dir, train=True, download=True)
            CIFAR10(self.data_dir, train=False, download=True)

    def split_indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation positions within the training set (fixed by ``split_seed``)."""
        if self.train_on_full:
            train = np.arange(n)
            if self.train_images:
                train = np.sort(np.random.default_rng(self.split_seed).permutation(n)[: self.train_images])
            return train, np.arange(0)
        if self.val_size >= n:
            raise ConfigError(f"data.val_size must be < the {n} training images, got {self.val_size}")
        order = np.random.default_rng(self.split_seed).permutation(n)
        train = order[self.val_size :]
        if self.train_images:
            train = train[: self.train_images]  # a random subset: the permutation is already random
        return np.sort(train), np.sort(order[: self.val_size])

    def setup(self, stage: str | None = None) -> None:
        if getattr(self, "train_set", None) is not None:
            return
        self.prepare_data()  # idempotent; Lightning calls it too, this covers use outside a Trainer
        train_aug = self._dataset(True, self.train_transform())
        train_plain = self._dataset(True, self.eval_transform())
        train_idx, val_idx = self.split_indices(len(train_aug))
        self.train_set = Subset(train_aug, train_idx.tolist())
        self.val_set = Subset(train_plain, val_idx.tolist())
        self.bn_set = Subset(train_plain, train_idx.tolist())  # BN re-calibration: training images, no augmentation

    @property
    def test_set(self):
        """The test set, read on first use only: searches never touch it, final training reads it once."""
        if getattr(self, "_test_set", None) is None:
            self._test_set = self._dataset(False, self.eval_transform())
        return self._test_set

    def _loader(self, dataset, shuffle: bool, batch_size: int, drop_last: bool = False) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          pin_memory=torch.cuda.is_available(), drop_last=drop_last,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True, self.batch_size, drop_last=len(self.train_set) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False, self.eval_batch_size)


# ---------------------------------------------------------------------------- Fashion-MNIST
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
FASHION_COUNTS = {"train": 60_000, "test": 10_000}
_IDX_CACHE: dict[tuple, torch.Tensor] = {}  # decoded files per process (the supernet evaluator and the module share)


def find_idx_file(data_dir: str | Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``data_dir`` itself (a plain folder, as ``../shared/data/fashion-mnist``)
    or in torchvision's layout ``data_dir/FashionMNIST/raw`` (what ``download=true`` writes)."""
    for folder in (Path(data_dir), Path(data_dir) / "FashionMNIST" / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_idx(path: Path, labels: bool) -> torch.Tensor:
    """An idx file (``.gz`` or not) through torchvision's own parser; one-line errors naming the file.

    torchvision's ``FashionMNIST`` reads only the unpacked files under ``<root>/FashionMNIST/raw``;
    decompressing in memory (into a temporary file that torchvision's reader opens) lets the original
    ``.gz`` files be used where they lie, without a 55 MB unpacked copy of the data set.
    """
    import gzip
    import tempfile

    from torchvision.datasets.mnist import read_image_file, read_label_file

    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _IDX_CACHE:
        return _IDX_CACHE[key]
    reader = read_label_file if labels else read_image_file
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
            with tempfile.NamedTemporaryFile(suffix=".idx") as tmp:
                tmp.write(raw)
                tmp.flush()
                tensor = reader(tmp.name)
        else:
            tensor = reader(str(path))
    except (OSError, EOFError, RuntimeError, ValueError, TypeError, IndexError, KeyError) as err:
        # gzip's BadGzipFile/EOFError for a cut .gz; a view/shape error for a cut idx body.
        raise ConfigError(f"data file {path} is damaged or truncated ({type(err).__name__}: {err}); "
                          "replace it with the original Fashion-MNIST file") from None
    _IDX_CACHE[key] = tensor
    return tensor


class IdxDataset(torch.utils.data.Dataset):
    """Grey 28x28 images (uint8 tensor) and labels, PIL-converted per item like torchvision's MNIST."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img = Image.fromarray(self.images[index].numpy())  # uint8 HxW: grey ("L")
        return (self.transform(img) if self.transform else img), int(self.labels[index])


class FashionMNISTDataModule(CIFAR10DataModule):
    """Fashion-MNIST (60,000 + 10,000 grey 28x28 images, 10 classes) with CIFAR10DataModule's splits.

    ``data_dir``: a folder holding the four original idx files (``.gz`` or not), or a torchvision root
    (``download=true`` fetches them into ``<data_dir>/FashionMNIST/raw``). Augmentation: random crop
    (padding 2) and horizontal flip. ``fake_images`` is not supported (tests use slices of the real files).
    """

    channels = 1
    num_classes = 10
    full_size = 28
    mean = (0.2860,)
    std = (0.3530,)

    def __init__(self, data_dir: str = "data", batch_size: int = 128, val_size: int = 5000, image_size: int = 28,
                 **kwargs) -> None:
        super().__init__(data_dir=data_dir, batch_size=batch_size, val_size=val_size, image_size=image_size, **kwargs)
        if self.fake_images:
            raise ConfigError("data.fake_images is for CIFAR-10 only; dataset=fashion_mnist reads the real files "
                              "(data.data_dir)")

    def train_transform(self) -> transforms.Compose:
        steps = self._resize()
        if self.augment:
            steps += [transforms.RandomCrop(self.image_size, padding=max(self.image_size // 14, 1)),
                      transforms.RandomHorizontalFlip()]
        steps += [transforms.ToTensor(), transforms.Normalize(self.mean, self.std)]
        if self.cutout:
            steps.append(Cutout(self.cutout))
        return transforms.Compose(steps)

    def prepare_data(self) -> None:
        if self.download and any(find_idx_file(self.data_dir, f) is None for f in FASHION_FILES.values()):
            from torchvision.datasets import FashionMNIST

            print(f"note: downloading Fashion-MNIST (30 MB) into {self.data_dir} once", file=sys.stderr, flush=True)
            try:
                FashionMNIST(self.data_dir, train=True, download=True)
                FashionMNIST(self.data_dir, train=False, download=True)
            except (OSError, RuntimeError) as err:
                raise ConfigError(f"data.download: cannot fetch Fashion-MNIST into {self.data_dir} ({err}); "
                                  "point data.data_dir at a folder with the four idx files and set "
                                  "data.download=false") from None

    def _tensors(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        part = "train" if train else "test"
        found = {}
        for kind in ("images", "labels"):
            name = FASHION_FILES[f"{part}_{kind}"]
            path = find_idx_file(self.data_dir, name)
            if path is None:
                raise ConfigError(f"data.data_dir={self.data_dir!r} holds no {name}(.gz) (Fashion-MNIST); point "
                                  "it at the folder with the four idx files, or set data.download=true to fetch them")
            found[kind] = (path, read_idx(path, labels=kind == "labels"))
        (ipath, images), (lpath, labels) = found["images"], found["labels"]
        if images.shape[1:] != (28, 28) or len(images) != FASHION_COUNTS[part]:
            raise ConfigError(f"data file {ipath} holds {tuple(images.shape)} images, expected "
                              f"({FASHION_COUNTS[part]}, 28, 28) (Fashion-MNIST {part} set)")
        if len(labels) != len(images) or int(labels.max()) >= self.num_classes or int(labels.min()) < 0:
            raise ConfigError(f"data file {lpath} holds {len(labels)} labels in [{int(labels.min())}, "
                              f"{int(labels.max())}], expected {len(images)} in [0, 9]")
        return images, labels

    def _dataset(self, train: bool, transform) -> IdxDataset:
        return IdxDataset(*self._tensors(train), transform=transform)


def make_datamodule(dataset: str, **data) -> CIFAR10DataModule:
    """The data module of ``dataset`` (``dataset.name``) built from the ``data`` config section."""
    if dataset == "cifar10":
        return CIFAR10DataModule(**data)
    if dataset == "fashion_mnist":
        return FashionMNISTDataModule(**data)
    raise ConfigError(f"dataset={dataset!r} has no training data module; allowed: {', '.join(DATASETS)}")
