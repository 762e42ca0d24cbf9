"""The project's Hydra config composed in-process, as ``run.py`` composes it from the command line.

For scripts and tests that build runs without ``run.py`` (``lanas.app.prepare(compose_config(...))``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from lanas.app import build
from lanas.searchers.base import Searcher
from lanas.spaces.base import SearchSpace

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def compose_config(*overrides: str) -> DictConfig:
    """``conf/config.yaml`` with ``overrides``; in-process runs get no tracker and no progress bar
    (``logger=none progress=false``, which later overrides can change)."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["logger=none", "progress=false", *overrides])


def build_searcher(name: str, space: SearchSpace, rng: np.random.Generator, *overrides: str) -> Searcher:
    """``searcher=<name>`` with its preset's defaults (``conf/searcher/<name>.yaml``) and ``overrides``
    (``searcher.<key>=<value>``), on any space, built as ``run.py`` builds it."""
    cfg = compose_config(f"searcher={name}", *overrides)
    return build("searcher", cfg.searcher, space=space, rng=rng)
