"""The one entry point: ``python run.py [overrides]`` or ``python run.py -m <sweep>``."""

from __future__ import annotations

import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from lanas.app import one_line_error, run
from lanas.errors import LanasError
from lanas.runner import RunInterrupted, summary_line


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    out_dir = cfg.get("resume") or HydraConfig.get().runtime.output_dir
    try:
        summary = run(cfg, out_dir)
    except RunInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        sys.exit(err.exit_code)  # 130 for SIGINT, 143 for SIGTERM, as a shell would report
    except LanasError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(summary_line(summary, out_dir), flush=True)
    return summary["best_reward"]


def cli() -> None:
    """Run ``main``, turning Hydra's multi-line composition errors into one line (HYDRA_FULL_ERROR=1: raw)."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        print(f"error: {one_line_error(err)}", file=sys.stderr)
        sys.exit(2)
    except LanasError as err:  # raised by the resume check before the run starts
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    cli()
