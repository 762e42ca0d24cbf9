"""``evaluator=imagenet_proxy``: train each proposed mobile network briefly on an ImageNet subset and
return its validation top-1 accuracy (the paper's search scored candidates on a short proxy schedule).

Each evaluation is :func:`lanas.training.imagenet.train_proxy` with a seed drawn from the loop's
evaluation generator, one after the other in this process. The budget (``constraints.flops_m``) is
counted on the search space's ``image_size`` (224: the final network), not the proxy's smaller images.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lanas.errors import ConfigError
from lanas.evaluators.base import Evaluator
from lanas.spaces.base import SearchSpace
from lanas.spaces.mobile import MobileSpace


class ImageNetProxyEvaluator(Evaluator):
    name = "imagenet_proxy"

    def __init__(self, dataset: str = "imagenet", out_dir: str = "outputs/imagenet_proxy",
                 data: dict[str, Any] | None = None, network: dict[str, Any] | None = None,
                 trainer: dict[str, Any] | None = None, threads: int | None = None) -> None:
        if dataset != "imagenet":
            raise ConfigError(f"evaluator=imagenet_proxy needs dataset=imagenet, got dataset={dataset!r}")
        self.dataset = dataset
        self.out_dir = str(out_dir)
        self.data = dict(data or {})
        self.network = dict(network or {})
        self.trainer = dict(trainer or {})
        self.threads = threads
        self.num_evaluations = 0
        self.seconds: list[float] = []

    def candidate_space(self, space: SearchSpace) -> SearchSpace:
        if not isinstance(space, MobileSpace):
            raise ConfigError(f"evaluator=imagenet_proxy needs search_space=mobile, got search_space={space.name}")
        return space

    def query(self, archs: Sequence[Sequence[int]], rng: np.random.Generator) -> np.ndarray:
        from lanas.training.imagenet import train_proxy

        seeds = [int(s) for s in rng.integers(2**31 - 1, size=len(archs))]
        rewards = []
        for arch, seed in zip(archs, seeds):
            start = time.perf_counter()
            out = str(Path(self.out_dir) / f"{self.num_evaluations:05d}")
            rewards.append(train_proxy(tuple(arch), seed, out, self.data, self.network, self.trainer, self.threads))
            self.num_evaluations += 1
            self.seconds.append(time.perf_counter() - start)
        return np.asarray(rewards, dtype=np.float64)

    def stats(self) -> dict[str, Any]:
        if not self.seconds:
            return {}
        return {"evaluations": self.num_evaluations, "seconds_per_eval": float(np.mean(self.seconds))}
