"""The one-shot supernet as a LightningModule: a fresh random architecture per batch.

``search_space``: ``nasnet`` (NASNet-style cells, lanas.training.network) or ``nasbench201``
(NAS-Bench-201's cell in its macro skeleton, lanas.training.nb201). Every training batch runs a
uniformly sampled architecture (nasnet: a random mask over the 160-bit encoding, as in the one-shot
LaNAS reference code; nasbench201: a uniform cell of the 15,625) through the shared weights; SGD with momentum,
cosine annealing stepped per optimisation step. Architectures come from a numpy generator seeded
by ``seed`` whose state is saved in checkpoints, so a resumed run continues the same sequence.
Validation reports the mean accuracy over a fixed set of ``val_archs`` architectures.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from lanas.errors import ConfigError
from lanas.spaces.nasbench201 import NASBench201Space
from lanas.spaces.nasnet import NASNetSpace
from lanas.training.nb201 import NB201Network
from lanas.training.network import NASNetNetwork
from lanas.training.trainer import sgd_cosine

SUPERNET_SPACES = ("nasnet", "nasbench201")


class SupernetModule(L.LightningModule):
    def __init__(
        self, init_channels: int = 48, layers: int = 8, num_classes: int = 10, multiplier: int = 4,
        lr: float = 0.025, lr_min: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
        seed: int = 0, val_archs: int = 4, channels_last: bool = False, search_space: str = "nasnet",
        cells: int = 5, in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if search_space == "nasnet":
            self.net = NASNetNetwork(init_channels, layers, num_classes, arch=None, multiplier=multiplier,
                                     in_channels=in_channels)
            self.space = NASNetSpace()
        elif search_space == "nasbench201":  # `cells` per stage; `layers`, `multiplier` are nasnet's
            self.net = NB201Network(init_channels, cells, num_classes, arch=None, in_channels=in_channels)
            self.space = NASBench201Space()
        else:
            raise ConfigError(f"supernet.search_space={search_space!r} has no supernet; allowed: "
                              f"{', '.join(SUPERNET_SPACES)}")
        self.arch_rng = np.random.default_rng(seed)
        self.val_arch_list = self.space.sample(np.random.default_rng([seed, 1]), val_archs)
        self.criterion = nn.CrossEntropyLoss()
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, arch: tuple[int, ...]) -> torch.Tensor:
        if self.hparams.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x, arch)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        arch = self.space.sample(self.arch_rng, 1)[0]
        logits = self(x, arch)
        loss = self.criterion(logits, y)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == y).float().mean())
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        accs = [(self(x, arch).argmax(1) == y).float().mean() for arch in self.val_arch_list]
        self.log("val/acc", torch.stack(accs).mean(), prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        return sgd_cosine(self)

    # The architecture stream is part of the training state: keep it across resumes.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["arch_rng_state"] = self.arch_rng.bit_generator.state

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "arch_rng_state" in checkpoint:
            self.arch_rng.bit_generator.state = checkpoint["arch_rng_state"]
