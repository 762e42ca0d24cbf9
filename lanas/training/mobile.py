"""The network of a ``search_space=mobile`` architecture (EfficientNet-B0 skeleton, per-stage MBConv choices).

Built from torchvision's layers (``Conv2dNormActivation``, ``SqueezeExcitation``) exactly as
:func:`lanas.spaces.mobile.block_cost` counts them, so the space's closed-form multiply-adds and
parameters equal ``torch.utils.flop_counter``'s count of this module (``tests/test_mobile.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

from lanas.spaces.mobile import FIRST, HEAD, STEM, MobileSpace


class MBConv(nn.Module):
    """Inverted residual: 1x1 expansion (if e > 1), depthwise k x k, optional SE (c_in // 4), 1x1 projection."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int, se: bool,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        mid = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(Conv2dNormActivation(c_in, mid, 1, activation_layer=nn.SiLU))
        layers.append(Conv2dNormActivation(mid, mid, kernel, stride=stride, groups=mid, activation_layer=nn.SiLU))
        if se:
            layers.append(SqueezeExcitation(mid, max(1, c_in // 4), activation=nn.SiLU))
        layers.append(Conv2dNormActivation(mid, c_out, 1, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if not self.residual:
            return out
        if self.training and self.drop_path > 0:
            # Stochastic depth per sample (EfficientNet's final training).
            keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop_path
            out = out * keep / (1.0 - self.drop_path)
        return x + out


class MobileNet(nn.Module):
    """Stem, fixed first stage, the six searched stages of ``arch``, 1x1 head, pooling, dropout, classifier."""

    def __init__(self, space: MobileSpace, arch: Sequence[int], dropout: float = 0.2,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [Conv2dNormActivation(3, STEM, 3, stride=2, activation_layer=nn.SiLU),
                                   MBConv(STEM, FIRST, 3, 1, 1, True)]
        stages = space.stage_config(tuple(arch))
        total = sum(s["depth"] for s in stages)
        channels, index = FIRST, 0
        for stage in stages:
            for i in range(stage["depth"]):
                rate = drop_path * index / max(1, total - 1)  # linearly deeper, as EfficientNet
                layers.append(MBConv(channels, stage["channels"], stage["kernel"], stage["expansion"],
                                     stage["stride"] if i == 0 else 1, bool(stage["se"]), rate))
                channels, index = stage["channels"], index + 1
        layers.append(Conv2dNormActivation(channels, HEAD, 1, activation_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(HEAD, space.num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))
