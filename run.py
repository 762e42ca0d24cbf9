"""The one entry point: ``python run.py [overrides]`` or ``python run.py -m <sweep>``."""

from __future__ import annotations

import sys
from pathlib import Path

from lanas.cli import interrupted_exit, settle_stop_handlers, starting

# Before the heavy imports and the tracker's start-up: a Ctrl-C or SIGTERM at any moment ends with
# one line and exit 130 / 143 (the search loop installs its own handler while it runs).
with starting(__name__ == "__main__"):
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    from lanas.app import ResumeGuard, mark_incomplete, run, with_stored_overrides
    from lanas.cli import error_line, os_error_message, run_hydra_main
    from lanas.errors import LanasError
    from lanas.runner import RunInterrupted, summary_line


def _stopped_before_the_search(err: BaseException, out_dir: str | Path, cfg: DictConfig | None) -> None:
    """Stopped while setting up (Hydra's job set-up, loading a benchmark, starting wandb): leave a
    summary.json saying the run is incomplete, one line, exit 130 / 143."""
    mark_incomplete(out_dir, cfg, overrides=[a for a in sys.argv[1:] if not a.startswith(("hydra.", "-"))])
    interrupted_exit(err, f"before the search loop started; continue with: python run.py resume={out_dir}")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    out_dir = cfg.get("resume") or HydraConfig.get().runtime.output_dir
    try:
        summary = run(cfg, out_dir, overrides=list(HydraConfig.get().overrides.task))
    except RunInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr)
        sys.exit(err.exit_code)  # 130 for SIGINT, 143 for SIGTERM, as a shell would report
    except LanasError as err:
        print(error_line(err), file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        print(error_line(os_error_message(err)), file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        _stopped_before_the_search(err, out_dir, cfg)
    print(summary_line(summary, out_dir), flush=True)
    return summary["best_reward"]


def _job_dir() -> Path | None:
    """The run directory Hydra has already created for this job, if it got that far.

    Hydra forgets its job config when an interrupt leaves its job set-up (after it wrote ``.hydra/``,
    before our ``main``), so the folder our callback saw chosen is the fallback.
    """
    out_dir = OmegaConf.select(HydraConfig.get(), "runtime.output_dir") if HydraConfig.initialized() else None
    out_dir = out_dir or ResumeGuard.run_dir
    return Path(out_dir) if out_dir and Path(out_dir).is_dir() else None


def cli() -> None:
    """Run ``main`` with one-line errors; ``resume=<dir>`` brings back the run's stored overrides."""
    try:
        try:
            sys.argv[1:] = with_stored_overrides(sys.argv[1:])
        except LanasError as err:
            print(error_line(err), file=sys.stderr)
            sys.exit(2)
        run_hydra_main(main)
        settle_stop_handlers()
    except KeyboardInterrupt as err:
        if {"-m", "--multirun"} & set(sys.argv[1:]):
            interrupted_exit(err, "during the sweep; finished jobs are kept, the same command continues the rest")
        out_dir = _job_dir()
        if out_dir is not None:  # between Hydra's set-up of the job and our main()
            saved = out_dir / ".hydra" / "config.yaml"
            _stopped_before_the_search(err, out_dir, OmegaConf.load(saved) if saved.is_file() else None)
        interrupted_exit(err, "before the run started; nothing written")


if __name__ == "__main__":
    cli()
