"""Networks of stacked nasnet cells: the weight-sharing supernet and stand-alone cell networks.

Layout (NASNet/DARTS): a 3x3 stem with ``stem_multiplier * C`` channels, then ``layers`` cells;
the cells at 1/3 and 2/3 of the depth are reduction cells (stride 2, channels doubled). Each cell
reads the outputs of the two previous cells (1x1 preprocessing, or a factorized reduction after a
reduction cell), computes its 5 nodes as the sum of their two (input, op) pairs, and concatenates
the last ``multiplier`` of its states (4, as the one-shot LaNAS reference code does).

In the **supernet** (``arch=None``) every (node, input, op) triple owns weights and ``forward``
takes the architecture to run; only the two active pairs of each node are computed, so a step
costs what the sampled network costs (the reference code multiplies inactive ops by zero instead,
which computes every op). A **fixed** network (``arch`` given) owns only the ops it uses and adds
the final-training extras: drop-path and an auxiliary head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lanas.spaces.nasnet import NUM_NODES, NUM_OPS, OPS
from lanas.training.ops import FactorizedReduce, ReLUConvBN, drop_path, make_op


def node_pairs(arch: Sequence[int], reduction: bool) -> list[list[tuple[int, int]]]:
    """``[[(input, op index), (input, op index)] per node]`` of one cell of ``arch`` (20 ints)."""
    base = NUM_NODES * 2 if reduction else 0
    return [
        [(int(p) // NUM_OPS, int(p) % NUM_OPS) for p in arch[base + 2 * i : base + 2 * i + 2]]
        for i in range(NUM_NODES)
    ]


class Cell(nn.Module):
    def __init__(
        self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, multiplier: int,
        affine: bool, arch: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.multiplier = multiplier
        self.pre0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)
        self.ops = nn.ModuleDict()
        used = None if arch is None else {(i, j, k) for i, pairs in enumerate(node_pairs(arch, reduction))
                                          for j, k in pairs}
        for i in range(NUM_NODES):
            for j in range(i + 2):
                for k, name in enumerate(OPS):
                    if used is None or (i, j, k) in used:
                        stride = 2 if reduction and j < 2 else 1
                        self.ops[f"{i}_{j}_{k}"] = make_op(name, c, stride, affine)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, pairs: list[list[tuple[int, int]]],
                drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i, node in enumerate(pairs):
            total = 0
            for j, k in node:
                out = self.ops[f"{i}_{j}_{k}"](states[j])
                if self.training and drop_prob > 0 and not isinstance(self.ops[f"{i}_{j}_{k}"], nn.Identity):
                    out = drop_path(out, drop_prob)
                total = total + out
            states.append(total)
        return torch.cat(states[-self.multiplier :], dim=1)


class AuxiliaryHead(nn.Module):
    """Classifier on the 2/3-depth features (NASNet's auxiliary tower), for 8x8 (or smaller) inputs."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(channels, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class NASNetNetwork(nn.Module):
    """Supernet (``arch=None``) or stand-alone network of nasnet cells; see the module docstring."""

    def __init__(
        self, init_channels: int = 16, layers: int = 8, num_classes: int = 10, arch: Sequence[int] | None = None,
        multiplier: int = 4, stem_multiplier: int = 3, auxiliary: bool = False, in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.arch = None if arch is None else tuple(int(v) for v in arch)
        self.layers = layers
        affine = arch is not None
        c = stem_multiplier * init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        c_pp, c_p, c = c, c, init_channels
        self.cells = nn.ModuleList()
        self.aux_index = 2 * layers // 3
        self.auxiliary = None
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            self.cells.append(Cell(c_pp, c_p, c, reduction, reduction_prev, multiplier, affine, self.arch))
            reduction_prev = reduction
            c_pp, c_p = c_p, multiplier * c
            if auxiliary and i == self.aux_index:
                self.auxiliary = AuxiliaryHead(c_p, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor, arch: Sequence[int] | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits; ``(logits, auxiliary logits)`` while training with an auxiliary head."""
        arch = self.arch if arch is None else arch
        if arch is None:
            raise ValueError("the supernet needs the architecture to run")
        normal, reduce = node_pairs(arch, False), node_pairs(arch, True)
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal, self.drop_path_prob)
            if self.auxiliary is not None and i == self.aux_index and self.training:
                aux = self.auxiliary(s1)
        logits = self.classifier(self.pool(s1).flatten(1))
        return (logits, aux) if aux is not None else logits
