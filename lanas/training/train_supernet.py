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
    from lanas.training.data import CIFAR10DataModule
    from lanas.training.supernet import SupernetModule
    from lanas.training.trainer import config_section, finish_loggers, fit_resumable, make_trainer

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _section(cfg: DictConfig, key: str) -> dict:
    return config_section(cfg, key, "oneshot_cifar10")


def train_supernet(cfg: DictConfig) -> Path:
    """Train (or resume) the supernet described by ``cfg``; returns the path of ``last.ckpt``."""
    out_dir = Path(cfg.supernet_dir)
    apply_torch_threads(cfg.get("threads"))
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    data = CIFAR10DataModule(**_section(cfg, "data"))
    module = SupernetModule(**_section(cfg, "supernet"))
    training = _section(cfg, "training")
    trainer = make_trainer(out_dir, _section(cfg, "trainer"), logger=training.get("logger", "csv"),
                           run_name=f"supernet-seed{cfg.seed}")
    last = fit_resumable(trainer, module, data, out_dir, resume=training.get("resume", True))
    finish_loggers(trainer)
    return last


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
