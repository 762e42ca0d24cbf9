"""One entry point from (search space, cell) to a trainable network, for every training path.

A cell travels between processes (submitit jobs, checkpoints' hparams) as plain data: ``nasnet``
the 20 ints of :class:`lanas.spaces.nasnet.NASNetSpace`, ``nasbench201`` its 6 op indices,
``nasbench101`` ``{"matrix": 0/1 rows, "ops": op names}`` (the pruned cell, as the official API
gives it). :func:`portable_arch` turns a space's architecture into that form.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lanas.errors import ConfigError

SPACES = ("nasnet", "nasbench201", "nasbench101")


def portable_arch(space: Any, arch: Any) -> Any:
    """The plain-data form of ``arch`` of ``space`` (see the module docstring)."""
    name = getattr(space, "name", None)
    if name == "nasnet":
        return tuple(int(v) for v in arch)
    if name == "nasbench201":
        from lanas.training.nb201 import arch_ops

        return arch_ops(int(arch))
    if name == "nasbench101":
        matrix, ops = space.cell(int(arch))
        return {"matrix": [[int(v) for v in row] for row in matrix], "ops": list(ops)}
    raise ConfigError(f"search_space={name} has no trainable networks; allowed: {', '.join(SPACES)}")


def build_network(search_space: str, arch: Any, num_classes: int = 10, in_channels: int = 3,
                  init_channels: int = 16, layers: int = 8, cells: int = 1, multiplier: int = 4,
                  auxiliary: bool = False) -> nn.Module:
    """A stand-alone network of ``arch`` (portable form). ``layers``, ``multiplier`` and ``auxiliary``
    are nasnet's; ``cells`` is the number of cells per stage (3 stages) of nasbench201 and nasbench101;
    ``init_channels`` the first stage's channels (nasbench101: the stem's)."""
    if search_space == "nasnet":
        from lanas.training.network import NASNetNetwork

        return NASNetNetwork(init_channels, layers, num_classes, arch=tuple(arch), multiplier=multiplier,
                             auxiliary=auxiliary, in_channels=in_channels)
    if search_space == "nasbench201":
        from lanas.training.nb201 import NB201Network

        return NB201Network(init_channels, cells, num_classes, arch=tuple(arch), in_channels=in_channels)
    if search_space == "nasbench101":
        import numpy as np
        from nasbench_pytorch.model import Network

        # nasbench-pytorch's Network: stem conv, 3 stacks of `cells` cells, max-pool between stacks.
        spec = (np.asarray(arch["matrix"], dtype=np.int64), list(arch["ops"]))
        return Network(spec, num_labels=num_classes, in_channels=in_channels, stem_out_channels=init_channels,
                       num_stacks=3, num_modules_per_stack=cells)
    raise ConfigError(f"search_space={search_space} has no trainable networks; allowed: {', '.join(SPACES)}")
