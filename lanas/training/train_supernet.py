"""Train the one-shot supernet: ``python -m lanas.training.train_supernet experiment=oneshot_cifar10``.

Reads ``data``, ``supernet``, ``trainer``, ``training`` and ``supernet_dir`` from the composed
config (see conf/experiment/oneshot_cifar10.yaml). Checkpoints go to ``<supernet_dir>/checkpoints``
(``last.ckpt`` every epoch); a second invocation resumes from it through Lightning's own
``ckpt_path="last"`` mechanism (optimizer, scheduler, epoch and the architecture stream included).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lanas.cli import interrupted_exit, starting

# Stop handlers before the heavy imports: Ctrl-C at any moment gives one line.
with starting(__name__ == "__main__"):
    import hydra
    import lightning as L
    from omegaconf import DictConfig

    from lanas.cli import apply_torch_threads, run_hydra_main
    from lanas.errors import LanasError
    from lanas.training.data import make_datamodule
    from lanas.training.supernet import SupernetModule
    from lanas.training.trainer import (config_section, dataset_name, finish_loggers, fit_resumable, make_trainer,
                                        network_io)

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _section(cfg: DictConfig, key: str) -> dict:
    return config_section(cfg, key, "oneshot_cifar10")


def fit_supernet(out_dir: str | Path, dataset: str, data: dict, supernet: dict, trainer: dict, seed: int = 0,
                 logger: str = "csv", resume: bool = True) -> Path:
    """Train (or resume, or find finished) the supernet in ``out_dir``; returns the path of ``last.ckpt``.

    One process at a time per folder (an flock on ``<out_dir>/.fit.lock``: a second sweep job waits
    for the first one's training instead of training alongside it). The CPU-seconds spent in this
    process add up in ``<out_dir>/fit_cost.json`` (``cpu_s``, ``wall_s``), for the RQ4 cost table.
    """
    import fcntl
    import json
    import time

    out_dir = Path(out_dir)
    cpu, wall = time.process_time(), time.perf_counter()
    # Data and network first: a bad data file or key stops here, before anything is written.
    dm = make_datamodule(dataset, **data)
    dm.setup()
    module_args = network_io(supernet, dm, "supernet")
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".fit.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        L.seed_everything(int(seed), workers=True, verbose=False)
        module = SupernetModule(**module_args)
        run = make_trainer(out_dir, trainer, logger=logger, run_name=f"supernet-seed{seed}")
        last = fit_resumable(run, module, dm, out_dir, resume=resume)
        finish_loggers(run)
        cost_path = out_dir / "fit_cost.json"
        cost = json.loads(cost_path.read_text()) if cost_path.is_file() else {"cpu_s": 0.0, "wall_s": 0.0,
                                                                                "global_step": 0}
        if run.global_step != cost["global_step"]:  # a finished supernet found again costs nothing more
            cost = {"cpu_s": cost["cpu_s"] + time.process_time() - cpu,
                    "wall_s": cost["wall_s"] + time.perf_counter() - wall, "global_step": run.global_step,
                    "epochs": run.current_epoch, "train_images": len(dm.train_set),
                    "threads": __import__("torch").get_num_threads()}
            tmp = cost_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(cost, indent=2) + "\n")
            tmp.replace(cost_path)
    return last


def train_supernet(cfg: DictConfig) -> Path:
    """Train (or resume) the supernet described by ``cfg``; returns the path of ``last.ckpt``."""
    apply_torch_threads(cfg.get("threads"))
    training = _section(cfg, "training")
    supernet = _section(cfg, "supernet")
    return fit_supernet(cfg.supernet_dir, dataset_name(cfg), _section(cfg, "data"), supernet, _section(cfg, "trainer"),
                        seed=int(supernet.get("seed", cfg.seed)), logger=training.get("logger", "csv"),
                        resume=training.get("resume", True))


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        path = train_supernet(cfg)
    except LanasError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"supernet checkpoint: {path}", flush=True)


def cli() -> None:
    try:
        run_hydra_main(main)
    except KeyboardInterrupt as err:
        # Lightning saves last.ckpt every epoch: the same command continues from there.
        interrupted_exit(err, "during training; the same command continues from the last saved epoch")


if __name__ == "__main__":
    cli()
