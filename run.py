"""The one entry point: ``python run.py [overrides]`` or ``python run.py -m <sweep>``."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from lanas.app import run
from lanas.errors import LanasError
from lanas.loop import summary_line


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    out_dir = HydraConfig.get().runtime.output_dir
    try:
        summary = run(cfg, out_dir)
    except LanasError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(summary_line(summary, out_dir), flush=True)
    return summary["best_reward"]


if __name__ == "__main__":
    main()
