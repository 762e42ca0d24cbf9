"""A tiny Hydra application for the LaNAS sweeper (docs/optuna.md): its return value is the objective."""

from __future__ import annotations

from math import log10

import hydra
from omegaconf import DictConfig


@hydra.main(config_path=".", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    # A bowl with its minimum at x=1.3, lr=1e-3, layers=3, opt=adam.
    penalty = {"adam": 0.0, "sgd": 0.5, "rmsprop": 1.0}[cfg.opt]
    return (cfg.x - 1.3) ** 2 + (log10(cfg.lr) + 3) ** 2 + (cfg.layers - 3) ** 2 + penalty


if __name__ == "__main__":
    main()
