"""A stand-alone cell network as a LightningModule (training from scratch, final training): a nasnet,
NAS-Bench-201 or NAS-Bench-101 cell (``search_space``; see lanas.training.models for the forms of ``arch``).

SGD with momentum and a cosine schedule stepped per optimisation step; optional auxiliary head
(its loss weighted by ``aux_weight``) and drop-path whose probability grows linearly from 0 to
``drop_path_prob`` over training (the NASNet/DARTS recipe). Logs ``val/acc`` and ``test/acc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from lanas.training.models import build_network
from lanas.training.trainer import sgd_cosine


class CellClassifier(L.LightningModule):
    def __init__(
        self, arch: Sequence[int] | dict, init_channels: int = 36, layers: int = 20, num_classes: int = 10,
        multiplier: int = 4, auxiliary: bool = False, aux_weight: float = 0.4, drop_path_prob: float = 0.0,
        lr: float = 0.025, lr_min: float = 0.0, momentum: float = 0.9, weight_decay: float = 3e-4,
        channels_last: bool = False, search_space: str = "nasnet", cells: int = 1, in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_network(search_space, arch, num_classes, in_channels, init_channels, layers, cells,
                                 multiplier, auxiliary)
        if drop_path_prob and search_space != "nasnet":
            from lanas.errors import ConfigError

            raise ConfigError(f"network.drop_path_prob applies to nasnet cells only, not search_space={search_space}")
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.criterion = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor):
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if not self.hparams.drop_path_prob:
            return
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        self.net.drop_path_prob = self.hparams.drop_path_prob * self.global_step / total

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        out = self(x)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = self.criterion(logits, y)
        if aux is not None:
            loss = loss + self.hparams.aux_weight * self.criterion(aux, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def _accuracy(self, batch: tuple[torch.Tensor, torch.Tensor], key: str) -> None:
        x, y = batch
        self.log(key, (self(x).argmax(1) == y).float().mean(), prog_bar=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._accuracy(batch, "val/acc")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._accuracy(batch, "test/acc")

    def configure_optimizers(self) -> dict[str, Any]:
        return sgd_cosine(self)
