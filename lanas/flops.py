"""Multiply-adds and parameters of a torch network, counted by ``torch.utils.flop_counter``.

Convention: **multiply-adds** (MACs), as the LaNAS paper ("600 MFLOPs"), MobileNet and EfficientNet
report them. torch's :class:`~torch.utils.flop_counter.FlopCounterMode` counts 2 FLOPs per
multiply-add of convolutions and matrix products (and nothing for element-wise operations: batch
norm, activations, the squeeze-and-excitation product, pooling), so :func:`count` halves its total.
Measured with this convention: torchvision's ``mobilenet_v2`` 300.8 M MACs / 3.50 M parameters,
``efficientnet_b0`` 385.8 M / 5.29 M at 224x224 (published: 300 M / 3.5 M and 390 M / 5.3 M;
``tests/test_flops.py``). Parameters are ``numel`` of every parameter (buffers such as batch-norm
running statistics are not parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Cost:
    """What a network costs for one input: multiply-adds and parameters, in millions."""

    macs_m: float
    params_m: float


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count(model: nn.Module, image_size: int = 224, channels: int = 3) -> Cost:
    """Multiply-adds of one forward pass on a ``channels x image_size x image_size`` image (batch 1, eval mode)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, channels, image_size, image_size))
    finally:
        model.train(was_training)
    return Cost(macs_m=counter.get_total_flops() / 2 / 1e6, params_m=count_params(model) / 1e6)
