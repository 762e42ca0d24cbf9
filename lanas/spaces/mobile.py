"""A mobile ImageNet search space (``search_space=mobile``): EfficientNet-B0's macro network, per-stage choices.

The skeleton is fixed (EfficientNet-B0, Tan & Le 2019; MnasNet's factorised per-stage space, Tan et
al. 2019): a 3x3 stride-2 stem of 32 channels, a fixed first stage (one MBConv1, 3x3, 16 channels,
squeeze-and-excitation), six searched stages, a 1x1 head of 1,280 channels, global pooling and a
linear classifier. Searched stages (output channels, stride of their first block):

    stage:     2    3    4    5     6     7
    channels:  24   40   80   112   192   320
    stride:    2    2    2    1     2     1

Each searched stage chooses, for all its blocks (MBConv: 1x1 expansion, depthwise k x k, optional
squeeze-and-excitation with ``max(1, c_in // 4)`` channels, 1x1 projection; SiLU; residual where the
shape allows):

    kernel k in {3, 5, 7}, expansion e in {3, 4, 6}, depth d in {1, 2, 3, 4}, SE in {off, on}

72 options per stage, 72**6 = 139,314,069,504 architectures. An architecture is a tuple of 24 ints
(per stage: kernel index, expansion index, depth index, SE bit), which is also its fixed decision
sequence (MCTS, TPE). Encoding: one-hot of each decision (72 values). Strings:
``k5e6d3s1-k3e4d2s0-...`` (one group per searched stage).

Costs in closed form (:meth:`MobileSpace.cost`): the channels and resolution entering every stage
are fixed by the skeleton, so multiply-adds and parameters are a constant plus one table lookup per
stage (6 x 72 entries, built from per-layer formulas at construction): millions of architectures per
second, checked against ``torch.utils.flop_counter`` on the built network in ``tests/test_mobile.py``.
Multiply-adds, as the LaNAS paper counts "MFLOPs" (:mod:`lanas.flops`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from lanas.errors import ConfigError, InvalidArchitectureError, require_int
from lanas.spaces.base import SearchSpace

KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
DEPTHS = (1, 2, 3, 4)
SE = (0, 1)
CHOICES = (len(KERNELS), len(EXPANSIONS), len(DEPTHS), len(SE))
STAGES: tuple[tuple[int, int], ...] = ((24, 2), (40, 2), (80, 2), (112, 1), (192, 2), (320, 1))  # (channels, stride)
STEM = 32
FIRST = 16  # the fixed first stage's output channels (MBConv1, 3x3, SE)
HEAD = 1280
NUM_STAGES = len(STAGES)
OPTIONS = int(np.prod(CHOICES))  # per stage
_STAGE = re.compile(r"^k(\d)e(\d)d(\d)s([01])$")


def conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded convolution (padding k // 2, odd k)."""
    return (size - 1) // stride + 1


def _conv(c_in: int, c_out: int, k: int, size_out: int, groups: int = 1, bias: bool = False) -> tuple[int, int]:
    """(multiply-adds, parameters) of a convolution; bias adds parameters, not multiply-adds (torch's counter)."""
    per_out = c_in // groups * k * k
    return size_out * size_out * c_out * per_out, c_out * per_out + (c_out if bias else 0)


def _bn(c: int) -> tuple[int, int]:
    return 0, 2 * c  # affine weight and bias; running statistics are buffers


def block_cost(c_in: int, c_out: int, k: int, e: int, stride: int, se: bool, size_in: int) -> tuple[int, int]:
    """(multiply-adds, parameters) of one MBConv block as :class:`lanas.training.mobile.MBConv` builds it."""
    mid = c_in * e
    size_out = conv_out(size_in, stride)
    parts = []
    if e != 1:
        parts += [_conv(c_in, mid, 1, size_in), _bn(mid)]
    parts += [_conv(mid, mid, k, size_out, groups=mid), _bn(mid)]
    if se:
        squeeze = max(1, c_in // 4)
        parts += [_conv(mid, squeeze, 1, 1, bias=True), _conv(squeeze, mid, 1, 1, bias=True)]
    parts += [_conv(mid, c_out, 1, size_out), _bn(c_out)]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


class MobileSpace(SearchSpace):
    """EfficientNet-B0-style per-stage search space; see the module docstring for the exact space."""

    name = "mobile"

    def __init__(self, image_size: int = 224, num_classes: int = 1000) -> None:
        self.image_size = require_int("search_space.image_size", image_size, 32)
        self.num_classes = require_int("search_space.num_classes", num_classes, 2)
        self._tables: tuple[float, float, np.ndarray, np.ndarray] | None = None

    def __getstate__(self) -> dict:
        return {"image_size": self.image_size, "num_classes": self.num_classes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    # ------------------------------------------------------------------ sizes and costs
    def stage_inputs(self) -> list[tuple[int, int]]:
        """(channels, resolution) entering each searched stage: fixed by the skeleton."""
        size = conv_out(conv_out(self.image_size, 2), 1)  # stem (stride 2), then the first stage (stride 1)
        channels, out = FIRST, []
        for c_out, stride in STAGES:
            out.append((channels, size))
            channels, size = c_out, conv_out(size, stride)
        return out

    def _cost_tables(self) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Constant (stem, first stage, head, classifier) and per-stage (macs, params) lookups, in millions."""
        if self._tables is None:
            size = conv_out(self.image_size, 2)
            fixed = [_conv(3, STEM, 3, size), _bn(STEM), block_cost(STEM, FIRST, 3, 1, 1, True, size)]
            inputs = self.stage_inputs()
            final = conv_out(inputs[-1][1], STAGES[-1][1])
            fixed += [_conv(STAGES[-1][0], HEAD, 1, final), _bn(HEAD),
                      (HEAD * self.num_classes, HEAD * self.num_classes + self.num_classes)]
            macs = np.zeros((NUM_STAGES, OPTIONS))
            params = np.zeros((NUM_STAGES, OPTIONS))
            for s, ((c_out, stride), (c_in, size_in)) in enumerate(zip(STAGES, inputs)):
                for option in range(OPTIONS):
                    ki, ei, di, se = np.unravel_index(option, CHOICES)
                    k, e, depth = KERNELS[ki], EXPANSIONS[ei], DEPTHS[di]
                    first = block_cost(c_in, c_out, k, e, stride, bool(se), size_in)
                    rest = block_cost(c_out, c_out, k, e, 1, bool(se), conv_out(size_in, stride))
                    macs[s, option] = (first[0] + (depth - 1) * rest[0]) / 1e6
                    params[s, option] = (first[1] + (depth - 1) * rest[1]) / 1e6
            self._tables = (sum(f[0] for f in fixed) / 1e6, sum(f[1] for f in fixed) / 1e6, macs, params)
        return self._tables

    def option_index(self, archs: np.ndarray) -> np.ndarray:
        """Per-stage option (0..71) of decision rows, shape ``(n, 6)``."""
        rows = np.asarray(archs, dtype=np.int64).reshape(-1, NUM_STAGES, len(CHOICES))
        return np.ravel_multi_index(tuple(rows[..., j] for j in range(len(CHOICES))), CHOICES)

    def cost_array(self, archs: np.ndarray) -> dict[str, np.ndarray]:
        """``flops_m`` (multiply-adds) and ``params_mb`` (parameters, millions) of decision rows ``(n, 24)``."""
        base_macs, base_params, macs, params = self._cost_tables()
        options = self.option_index(archs)
        stages = np.arange(NUM_STAGES)
        return {"flops_m": base_macs + macs[stages, options].sum(axis=1),
                "params_mb": base_params + params[stages, options].sum(axis=1)}

    def cost(self, archs: Sequence[tuple[int, ...]]) -> dict[str, np.ndarray]:
        """Costs of architectures (what ``constraints`` filter on): see :meth:`cost_array`."""
        return self.cost_array(np.asarray(list(archs), dtype=np.int64).reshape(-1, NUM_STAGES * len(CHOICES)))

    # ------------------------------------------------------------------ SearchSpace
    @property
    def dim(self) -> int:
        return NUM_STAGES * sum(CHOICES)

    def decisions(self) -> list[int]:
        return list(CHOICES) * NUM_STAGES

    def from_decisions(self, choices: np.ndarray) -> list[tuple[int, ...]]:
        return [tuple(int(c) for c in row) for row in np.asarray(choices).reshape(-1, len(self.decisions()))]

    def to_decisions(self, archs: Sequence[tuple[int, ...]]) -> np.ndarray:
        return np.asarray(list(archs), dtype=np.int64).reshape(-1, len(self.decisions()))

    def sample_array(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, np.array(self.decisions()), size=(n, len(self.decisions())))

    def sample(self, rng: np.random.Generator, n: int = 1) -> list[tuple[int, ...]]:
        return self.from_decisions(self.sample_array(rng, n))

    def encode_array(self, rows: np.ndarray) -> np.ndarray:
        """One-hot encodings of decision rows ``(n, 24)``."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, len(self.decisions()))
        offsets = np.cumsum([0, *self.decisions()[:-1]])
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        out[np.arange(len(rows))[:, None], offsets + rows] = 1.0
        return out

    def encode(self, archs: Sequence[tuple[int, ...]]) -> np.ndarray:
        return self.encode_array(self.to_decisions(archs))

    def mutate_array(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One :meth:`mutate` step applied to every decision row."""
        rows = np.array(rows, dtype=np.int64).reshape(-1, len(self.decisions()))
        sizes = np.array(self.decisions())
        i = rng.integers(rows.shape[1], size=len(rows))
        n = sizes[i]
        shift = 1 + np.floor(rng.random(len(rows)) * (n - 1)).astype(np.int64)
        rows[np.arange(len(rows)), i] = (rows[np.arange(len(rows)), i] + shift) % n
        return rows

    def mutate(self, arch: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """One decision of one stage changed to another value."""
        row = list(arch)
        i = int(rng.integers(len(row)))
        n = self.decisions()[i]
        row[i] = (row[i] + int(rng.integers(1, n))) % n
        return tuple(row)

    def to_string(self, arch: tuple[int, ...]) -> str:
        rows = np.asarray(arch).reshape(NUM_STAGES, len(CHOICES))
        return "-".join(f"k{KERNELS[k]}e{EXPANSIONS[e]}d{DEPTHS[d]}s{s}" for k, e, d, s in rows)

    def from_string(self, text: str) -> tuple[int, ...]:
        groups = text.strip().split("-")
        example = "k5e6d3s1-k3e4d2s0-k5e4d3s1-k3e6d3s1-k5e6d4s1-k3e6d1s1"
        if len(groups) != NUM_STAGES:
            raise InvalidArchitectureError(f"not a mobile architecture ({len(groups)} stages, not 6): {text!r}; "
                                           f"expected e.g. '{example}'")
        out: list[int] = []
        for group in groups:
            match = _STAGE.match(group)
            if match is None or int(match.group(1)) not in KERNELS or int(match.group(2)) not in EXPANSIONS \
                    or int(match.group(3)) not in DEPTHS:
                raise InvalidArchitectureError(
                    f"stage {group!r} of {text!r}: expected k{{3,5,7}}e{{3,4,6}}d{{1,2,3,4}}s{{0,1}}, e.g. '{example}'")
            out += [KERNELS.index(int(match.group(1))), EXPANSIONS.index(int(match.group(2))),
                    DEPTHS.index(int(match.group(3))), int(match.group(4))]
        return tuple(out)

    def stage_config(self, arch: tuple[int, ...]) -> list[dict[str, int]]:
        """Per searched stage: channels, stride, kernel, expansion, depth, se (for building the network)."""
        rows = np.asarray(arch).reshape(NUM_STAGES, len(CHOICES))
        if rows.min() < 0 or any(rows[:, j].max() >= CHOICES[j] for j in range(len(CHOICES))):
            raise ConfigError(f"mobile architecture {arch!r} has a decision out of range")
        return [{"channels": c, "stride": st, "kernel": KERNELS[k], "expansion": EXPANSIONS[e],
                 "depth": DEPTHS[d], "se": int(s)} for (c, st), (k, e, d, s) in zip(STAGES, rows)]
