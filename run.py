"""The one entry point: ``python run.py [overrides]`` or ``python run.py -m <sweep>``."""

from __future__ import annotations

import os
import sys

from lanas.cli import install_stop_handlers, interrupted_exit, quiet_third_party

if __name__ == "__main__":
    # Before the heavy imports and the tracker's start-up: a Ctrl-C or SIGTERM at any moment ends
    # with one line and exit 130 / 143 (the search loop installs its own handler while it runs).
    install_stop_handlers()
    quiet_third_party()

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from lanas.app import mark_incomplete, run, with_stored_overrides  # noqa: E402
from lanas.cli import run_hydra_main  # noqa: E402
from lanas.errors import LanasError  # noqa: E402
from lanas.loop import RunInterrupted, summary_line  # noqa: E402


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
    except KeyboardInterrupt as err:
        # Stopped while setting up (loading a benchmark, starting wandb): nothing evaluated yet.
        mark_incomplete(out_dir, cfg)
        interrupted_exit(err, f"before the search started; nothing evaluated, continue with: "
                              f"python run.py resume={out_dir}")
    print(summary_line(summary, out_dir), flush=True)
    return summary["best_reward"]


def cli() -> None:
    """Run ``main`` with one-line errors; ``resume=<dir>`` brings back the run's stored overrides."""
    try:
        try:
            sys.argv[1:] = with_stored_overrides(sys.argv[1:])
        except LanasError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        run_hydra_main(main)
    except KeyboardInterrupt as err:
        interrupted_exit(err, "before the run started; nothing written")


if __name__ == "__main__":
    cli()
