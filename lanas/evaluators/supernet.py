"""``evaluator=supernet``: the validation accuracy of an architecture run through a trained supernet.

The validation split (``val_size`` training images held out by ``split_seed``, never the test set:
the reference code selects on test accuracy, which we do not copy) is loaded once onto the device
and evaluated in batches of ``batch_size``; ``max_val_images`` limits it for quick searches.
BatchNorm re-calibration (``bn_batches`` > 0): the supernet's running statistics mix every path,
so before scoring an architecture its BN statistics are re-estimated on ``bn_batches`` training
batches (cumulative average) with that architecture. ``stats()`` reports seconds per evaluation.
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
from lanas.spaces.nasnet import NASNetSpace
from lanas.training.data import CIFAR10DataModule


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class SupernetEvaluator(Evaluator):
    name = "supernet"

    def __init__(
        self, checkpoint: str | None, dataset: str = "cifar10", data: dict[str, Any] | None = None,
        batch_size: int = 500, max_val_images: int | None = None, bn_batches: int = 0, device: str = "auto",
        amp: bool = True,
    ) -> None:
        if dataset != "cifar10":
            raise ConfigError(f"evaluator=supernet supports dataset=cifar10 only, got dataset={dataset!r}")
        if not checkpoint:
            raise ConfigError("evaluator.checkpoint must name a trained supernet (last.ckpt of the supernet run)")
        if not Path(checkpoint).is_file():
            # Fail before the search starts rather than at its first evaluation.
            raise ConfigError(f"evaluator.checkpoint={str(checkpoint)!r} does not exist; train the supernet first "
                              "(python -m lanas.training.train_supernet experiment=...)")
        self.dataset = dataset
        self.checkpoint = str(checkpoint)
        self.data = dict(data or {})
        self.batch_size = require_int("evaluator.batch_size", batch_size, 1)
        self.max_val_images = None if max_val_images is None else require_int(
            "evaluator.max_val_images", max_val_images, 1)
        self.bn_batches = require_int("evaluator.bn_batches", bn_batches, 0)
        self.device = device
        self.amp = amp
        self.seconds: list[float] = []
        self._model = None

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        if not isinstance(space, NASNetSpace):
            raise ConfigError(f"evaluator=supernet needs search_space=nasnet, got search_space={space.name}")
        return space

    # ------------------------------------------------------------------ loading (lazily, once)
    def _load(self) -> None:
        from lanas.training.supernet import SupernetModule

        device = pick_device(self.device)
        try:
            module = SupernetModule.load_from_checkpoint(self.checkpoint, map_location=device)
        except FileNotFoundError:
            raise ConfigError(f"evaluator.checkpoint={self.checkpoint!r} does not exist") from None
        self._model = module.net.to(device).eval()
        self._channels_last = bool(module.hparams.channels_last)
        self._device = device
        dm = CIFAR10DataModule(**{**self.data, "num_workers": 0})
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

    def _recalibrate(self, arch: tuple[int, ...]) -> None:
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
    def accuracy(self, arch: tuple[int, ...]) -> float:
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

    def query(self, archs: Sequence[tuple[int, ...]], rng: np.random.Generator) -> np.ndarray:
        rewards = np.empty(len(archs))
        for i, arch in enumerate(archs):
            start = time.perf_counter()
            rewards[i] = self.accuracy(tuple(arch))
            self.seconds.append(time.perf_counter() - start)
        return rewards

    def stats(self) -> dict[str, Any]:
        """Cost per evaluation (the first includes loading the checkpoint and the data)."""
        if not self.seconds:
            return {}
        return {"evaluations": len(self.seconds), "seconds_per_eval": float(np.mean(self.seconds)),
                "seconds_total": float(np.sum(self.seconds))}

    def __getstate__(self) -> dict[str, Any]:
        # Checkpoints of a search pickle the loop's objects; the model and tensors are reloaded.
        state = self.__dict__.copy()
        for key in ("_model", "_val_x", "_val_y", "_bn_x"):
            state.pop(key, None)
        state["_model"] = None
        return state
