"""``evaluator=supernet``: the validation accuracy of an architecture run through a trained supernet.

The validation split (``val_size`` training images held out by ``split_seed``, never the test set:
the reference code selects on test accuracy, which we do not copy) is loaded once onto the device
and evaluated in batches of ``batch_size``; ``max_val_images`` limits it for quick searches.
BatchNorm re-calibration (``bn_batches`` > 0): the supernet's running statistics mix every path,
so before scoring an architecture its BN statistics are re-estimated on ``bn_batches`` training
batches (cumulative average) with that architecture. ``stats()`` reports seconds per evaluation.

Spaces: ``nasnet`` and ``nasbench201`` (the checkpoint's ``search_space`` must be the run's);
datasets: ``cifar10`` and ``fashion_mnist`` (the checkpoint's input channels must be the data's).
``train`` (optional: ``{out_dir, supernet, trainer, seed, logger}``) trains or resumes the supernet
into ``out_dir`` before the first evaluation when it is not finished yet, so one sweep command
covers both steps (lanas.training.train_supernet.fit_supernet; a sweep's jobs share one supernet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lanas.evaluators.base import Evaluator
from lanas.errors import ConfigError, require_int
from lanas.spaces.base import SearchSpace
from lanas.training.data import DATASETS, make_datamodule

# Checkpoint hyper-parameters that must match the configured supernet (evaluator.supernet), when given.
SIZE_KEYS = ("search_space", "init_channels", "layers", "cells", "multiplier")


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SupernetEvaluator(Evaluator):
    name = "supernet"

    def __init__(
        self, checkpoint: str | None, dataset: str = "cifar10", data: dict[str, Any] | None = None,
        batch_size: int = 500, max_val_images: int | None = None, bn_batches: int = 0, device: str = "auto",
        amp: bool = True, train: dict[str, Any] | None = None, supernet: dict[str, Any] | None = None,
    ) -> None:
        if dataset not in DATASETS:
            raise ConfigError(f"evaluator=supernet supports dataset={' | '.join(DATASETS)}, got dataset={dataset!r}")
        if not checkpoint:
            raise ConfigError("evaluator.checkpoint must name a trained supernet (last.ckpt of the supernet run)")
        self.train = dict(train) if train else None
        if not self.train and not Path(checkpoint).is_file():
            # Fail before the search starts rather than at its first evaluation.
            raise ConfigError(f"evaluator.checkpoint={str(checkpoint)!r} does not exist; train the supernet first "
                              "(python -m lanas.training.train_supernet experiment=...)")
        self.dataset = dataset
        self.checkpoint = str(checkpoint)
        self.data = dict(data or {})
        self.supernet = dict(supernet) if supernet else None
        self.batch_size = require_int("evaluator.batch_size", batch_size, 1)
        self.max_val_images = None if max_val_images is None else require_int(
            "evaluator.max_val_images", max_val_images, 1)
        self.bn_batches = require_int("evaluator.bn_batches", bn_batches, 0)
        self.device = device
        self.amp = amp
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._model = None

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        from lanas.training.supernet import SUPERNET_SPACES

        if space.name not in SUPERNET_SPACES:
            raise ConfigError(f"evaluator=supernet needs search_space={' | '.join(SUPERNET_SPACES)}, "
                              f"got search_space={space.name}")
        if self.supernet and str(self.supernet.get("search_space", "nasnet")) != space.name:
            raise ConfigError(f"supernet.search_space={self.supernet.get('search_space', 'nasnet')} does not match "
                              f"search_space={space.name}")
        self.space_name = space.name
        if self.train:
            self._fit()
        self._check_checkpoint(self.read_hparams(self.checkpoint))
        return space

    # ------------------------------------------------------------------ the checkpoint
    def _fit(self) -> None:
        from lanas.training.train_supernet import fit_supernet

        train = dict(self.train)
        out_dir = Path(train.pop("out_dir"))
        if (out_dir / "checkpoints" / "last.ckpt").resolve() != Path(self.checkpoint).resolve():
            raise ConfigError(f"evaluator.train.out_dir={str(out_dir)!r} does not hold evaluator.checkpoint="
                              f"{self.checkpoint!r}")
        fit_supernet(out_dir, self.dataset, self.data, train.pop("supernet", None) or self.supernet or {},
                     train.pop("trainer", {}), seed=int(train.pop("seed", 0)), logger=train.pop("logger", "csv"))

    @staticmethod
    def read_hparams(path: str) -> dict[str, Any]:
        """The supernet hyper-parameters saved in a Lightning checkpoint; one-line errors naming the file."""
        try:
            # weights_only: reading the hyper-parameters runs no code from the file (tensors and plain data only).
            saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except FileNotFoundError:
            raise ConfigError(f"evaluator.checkpoint={path!r} does not exist") from None
        except Exception as err:  # a cut or foreign file: zipfile/pickle/runtime errors of torch.load
            raise ConfigError(f"evaluator.checkpoint={path!r} is not a readable checkpoint "
                              f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})") from None
        if not isinstance(saved, dict) or "state_dict" not in saved or "hyper_parameters" not in saved:
            raise ConfigError(f"evaluator.checkpoint={path!r} is not a supernet checkpoint of lanas "
                              "(no state_dict / hyper_parameters)")
        return dict(saved["hyper_parameters"])

    def _check_checkpoint(self, hp: dict[str, Any]) -> None:
        """The checkpoint must be a supernet of the run's space, take the data's images and, when
        ``evaluator.supernet`` is given, have its size."""
        saved_space = str(hp.get("search_space", "nasnet"))
        if saved_space != self.space_name:
            raise ConfigError(f"evaluator.checkpoint={self.checkpoint!r} is a {saved_space} supernet, "
                              f"not one of search_space={self.space_name}")
        from lanas.training.data import FashionMNISTDataModule, CIFAR10DataModule

        channels = (FashionMNISTDataModule if self.dataset == "fashion_mnist" else CIFAR10DataModule).channels
        if int(hp.get("in_channels", 3)) != channels:
            raise ConfigError(f"evaluator.checkpoint={self.checkpoint!r} takes {hp.get('in_channels', 3)}-channel "
                              f"images; dataset={self.dataset} has {channels}")
        for key in SIZE_KEYS if self.supernet else ():
            if key in self.supernet and key in hp and str(self.supernet[key]) != str(hp[key]):
                raise ConfigError(f"evaluator.checkpoint={self.checkpoint!r} has {key}={hp[key]}, the config "
                                  f"supernet.{key}={self.supernet[key]}")

    # ------------------------------------------------------------------ loading (lazily, once)
    def _load(self) -> None:
        from lanas.training.supernet import SupernetModule

        device = pick_device(self.device)
        try:
            module = SupernetModule.load_from_checkpoint(self.checkpoint, map_location=device)
        except FileNotFoundError:
            raise ConfigError(f"evaluator.checkpoint={self.checkpoint!r} does not exist") from None
        except RuntimeError as err:  # weights of another shape than the saved hyper-parameters say
            raise ConfigError(f"evaluator.checkpoint={self.checkpoint!r} does not load "
                              f"({str(err).splitlines()[0]})") from None
        self._model = module.net.to(device).eval()
        self._channels_last = bool(module.hparams.channels_last)
        self._device = device
        dm = make_datamodule(self.dataset, **{**self.data, "num_workers": 0})
        dm.setup()
        n = len(dm.val_set) if self.max_val_images is None else min(self.max_val_images, len(dm.val_set))
        xs, ys = zip(*(dm.val_set[i] for i in range(n)))
        self._val_x = torch.stack(xs).to(device)
        self._val_y = torch.as_tensor(ys).to(device)
        # Re-calibration images: a fixed random subset of the training split, so an architecture's
        # score is a function of the architecture alone (no augmentation, no shuffling noise).
        self._bn_x = None
        if self.bn_batches:
            count = min(self.bn_batches * dm.batch_size, len(dm.bn_set))
            pick = np.random.default_rng(dm.split_seed).permutation(len(dm.bn_set))[:count]
            self._bn_x = torch.stack([dm.bn_set[int(i)][0] for i in pick]).to(device)
            self._bn_batch = dm.batch_size

    def _recalibrate(self, arch: Any) -> None:
        bns = [m for m in self._model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the re-calibration batches
        self._model.train()
        with torch.no_grad():
            for lo in range(0, len(self._bn_x), self._bn_batch):
                self._model(self._prepare(self._bn_x[lo : lo + self._bn_batch]), arch)
        self._model.eval()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self._channels_last else x

    @torch.no_grad()
    def accuracy(self, arch: Any) -> float:
        if self._model is None:
            self._load()
        if self.bn_batches:
            self._recalibrate(arch)
        correct = 0
        use_amp = self.amp and self._device.type == "cuda"
        for lo in range(0, len(self._val_y), self.batch_size):
            x = self._prepare(self._val_x[lo : lo + self.batch_size])
            with torch.autocast(self._device.type, enabled=use_amp):
                logits = self._model(x, arch)
            correct += int((logits.argmax(1) == self._val_y[lo : lo + self.batch_size]).sum())
        return correct / len(self._val_y)

    def query(self, archs: Sequence[Any], rng: np.random.Generator) -> np.ndarray:
        rewards = np.empty(len(archs))
        for i, arch in enumerate(archs):
            start, cpu = time.perf_counter(), time.process_time()
            rewards[i] = self.accuracy(int(arch) if np.ndim(arch) == 0 else tuple(arch))
            self.seconds.append(time.perf_counter() - start)
            self.cpu_seconds.append(time.process_time() - cpu)
        return rewards

    def stats(self) -> dict[str, Any]:
        """Cost per evaluation (the first includes loading the checkpoint and the data)."""
        if not self.seconds:
            return {}
        cpu = getattr(self, "cpu_seconds", [])
        later = cpu[1:] or cpu  # the first evaluation also loads the checkpoint and the data
        return {"evaluations": len(self.seconds), "seconds_per_eval": float(np.mean(self.seconds)),
                "seconds_total": float(np.sum(self.seconds)),
                **({"cpu_seconds_per_eval": float(np.median(later)), "cpu_seconds_first": float(cpu[0])} if cpu else {})}

    def __getstate__(self) -> dict[str, Any]:
        # Checkpoints of a search pickle the loop's objects; the model and tensors are reloaded.
        state = self.__dict__.copy()
        for key in ("_model", "_val_x", "_val_y", "_bn_x"):
            state.pop(key, None)
        state["_model"] = None
        return state
