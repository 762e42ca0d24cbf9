"""NAS-Bench-201 networks: the weight-sharing supernet and stand-alone cell networks.

Macro skeleton of NAS-Bench-201 (Dong & Yang, 2020): a 3x3 conv stem (``C`` channels), three stages
of ``cells`` cells (``C``, ``2C``, ``4C`` channels) joined by residual reduction blocks (two
ReLU-conv3x3-BN, the first with stride 2, plus an avg-pool + 1x1 conv shortcut), then BN-ReLU,
global pooling and a linear classifier. The cell is a 4-node DAG whose 6 edges (in the order of
:data:`lanas.spaces.nasbench201.EDGES`) each carry one of ``none``, ``skip_connect``,
``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``; node ``j`` sums its incoming edges, node 3 is
the output.

In the **supernet** (``arch=None``) every edge owns all five ops (BN without affine parameters, as
in the NB201 one-shot baselines) and ``forward`` runs the one op per edge that the given
architecture names (one sampled path per batch); ``none`` edges are skipped, not multiplied by
zero. A **fixed** network owns only its cell's ops (affine BN).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lanas.spaces.nasbench201 import EDGES, NUM_EDGES, OPS, index_to_ops


def arch_ops(arch: int | Sequence[int]) -> tuple[int, ...]:
    """Op indices of the 6 edges of ``arch`` (a pool position, as the space hands out, or 6 op indices)."""
    if isinstance(arch, (int,)) or (hasattr(arch, "ndim") and getattr(arch, "ndim") == 0):
        return tuple(int(v) for v in index_to_ops(int(arch)))
    ops = tuple(int(v) for v in arch)
    if len(ops) != NUM_EDGES or not all(0 <= o < len(OPS) for o in ops):
        raise ValueError(f"a NAS-Bench-201 cell has {NUM_EDGES} op indices in [0, {len(OPS) - 1}], got {ops}")
    return ops


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine))


def make_op(name: str, channels: int, affine: bool) -> nn.Module | None:
    """One NB201 op (stride 1, channels to channels); ``None`` for ``none`` (the edge is dropped)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NAS-Bench-201 operation {name!r}")


class Cell(nn.Module):
    def __init__(self, channels: int, ops: Sequence[int] | None, affine: bool) -> None:
        super().__init__()
        self.edges = nn.ModuleDict()
        for e in range(NUM_EDGES):
            for k, name in enumerate(OPS):
                if ops is None or ops[e] == k:
                    op = make_op(name, channels, affine)
                    if op is not None:
                        self.edges[f"{e}_{k}"] = op

    def forward(self, x: torch.Tensor, ops: Sequence[int]) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for e, (target, source) in enumerate(EDGES):
            key = f"{e}_{ops[e]}"
            if key not in self.edges or nodes[source] is None:  # 'none', or an input that is all zeros
                continue
            out = self.edges[key](nodes[source])
            nodes[target] = out if nodes[target] is None else nodes[target] + out
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class ResidualReduction(nn.Module):
    """NB201's ResNet basic block between stages: stride 2, channels doubled."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.a = ReLUConvBN(c_in, c_out, 3, 2, affine)
        self.b = ReLUConvBN(c_out, c_out, 3, 1, affine)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    """Supernet (``arch=None``) or stand-alone NB201 network; see the module docstring."""

    def __init__(self, init_channels: int = 16, cells: int = 5, num_classes: int = 10,
                 arch: int | Sequence[int] | None = None, in_channels: int = 3) -> None:
        super().__init__()
        self.ops = None if arch is None else arch_ops(arch)
        affine = arch is not None
        c = init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.blocks = nn.ModuleList()
        for stage in range(3):
            if stage:
                self.blocks.append(ResidualReduction(c, 2 * c, affine))
                c *= 2
            self.blocks.extend(Cell(c, self.ops, affine) for _ in range(cells))
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, arch: int | Sequence[int] | None = None) -> torch.Tensor:
        ops = self.ops if arch is None else arch_ops(arch)
        if ops is None:
            raise ValueError("the supernet needs the architecture to run")
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, ops) if isinstance(block, Cell) else block(x)
        return self.classifier(self.head(x).flatten(1))
