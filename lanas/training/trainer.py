"""A Lightning Trainer from a plain config dict, with the project's defaults (no surprises on CPU)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

from lanas.cli import quiet_third_party


def make_trainer(out_dir: str | Path, trainer: dict[str, Any] | None = None, logger: str = "csv",
                 project: str = "lanas", run_name: str | None = None, monitor: str | None = None) -> L.Trainer:
    """Trainer writing checkpoints (``last.ckpt`` every epoch, for resume) and logs under ``out_dir``.

    ``logger``: ``wandb`` (Lightning's WandbLogger; offline unless configured), ``csv`` or ``none``.
    """
    out_dir = Path(out_dir)
    kwargs = dict(trainer or {})
    if logger == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        log = WandbLogger(project=project, name=run_name, save_dir=str(out_dir),
                          offline=kwargs.pop("wandb_offline", True))
        # Lightning 2.6.6 always passes anonymous=None, which wandb 0.31 answers with a deprecation
        # warning ("The anonymous setting has no effect") on every final training.
        log._wandb_init.pop("anonymous", None)
    elif logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        log = CSVLogger(str(out_dir), name="logs")
    else:
        log = False
    kwargs.pop("wandb_offline", None)
    quiet_third_party()
    # enable_version_counter=False: the folder is ours, last.ckpt is always the latest. With the
    # counter, a run resumed from a copied or moved folder wrote last-v1.ckpt beside a stale last.ckpt,
    # and the next resume silently went back to the stale one.
    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0 if monitor is None else 1,
                                 monitor=monitor, mode="max", enable_version_counter=False)
    callbacks = [checkpoint] + ([LearningRateMonitor("step")] if log else [])
    kwargs.setdefault("enable_progress_bar", False)
    kwargs.setdefault("enable_model_summary", False)
    return L.Trainer(default_root_dir=str(out_dir), logger=log, callbacks=callbacks, **kwargs)


def finish_loggers(trainer: L.Trainer) -> None:
    """Close a wandb run opened by Lightning's WandbLogger (Lightning leaves it open), so that a
    later ``wandb.init`` in the same process starts its own run instead of reusing this one."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish()


def sgd_cosine(module: L.LightningModule) -> dict[str, Any]:
    """SGD with momentum and a per-step cosine schedule, from the module's hparams (the paper's recipe)."""
    hp = module.hparams
    opt = torch.optim.SGD(module.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    total = max(int(module.trainer.estimated_stepping_batches), 1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=hp.lr_min)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def fit_resumable(trainer: L.Trainer, module: L.LightningModule, data: L.LightningDataModule, out_dir: Path,
                  resume: bool = True) -> Path:
    """Fit, continuing from ``<out_dir>/checkpoints/last.ckpt`` when it exists and ``resume`` is on."""
    last = Path(out_dir) / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(module, data, ckpt_path=str(last) if resume and last.exists() else None)
    except SystemExit as err:
        # Lightning turns a Ctrl-C (or SIGTERM) during fit into sys.exit(1) after its own shutdown;
        # hand the stop back to the entry point, which reports it in one line with exit 130 / 143.
        if not (trainer.interrupted or getattr(trainer, "received_sigterm", False)):
            raise
        from lanas import cli

        raise cli.EarlyStop(cli.last_stop_signal or signal.SIGINT) from err
    return last


def config_section(cfg: Any, key: str, preset: str) -> dict:
    """``cfg[key]`` as a plain dict; a one-line error naming the preset that provides it when missing."""
    from omegaconf import OmegaConf

    from lanas.errors import ConfigError

    if cfg.get(key) is None:
        raise ConfigError(f"config key '{key}' is missing: add experiment={preset} (or {preset.split('_')[0]}_smoke)")
    return OmegaConf.to_container(cfg[key], resolve=True)


def dataset_name(cfg: Any) -> str:
    """``dataset.name`` of a composed config (``cifar10`` where a test config has no dataset group)."""
    node = cfg.get("dataset")
    return str(node.get("name", "cifar10")) if node is not None else "cifar10"


def network_io(params: dict, data: Any, section: str) -> dict:
    """``params`` with the data's image channels and classes as ``in_channels`` / ``num_classes``; a
    one-line error naming ``section`` when the config sets them to something the data cannot feed."""
    from lanas.errors import ConfigError

    params = dict(params)
    for key, value in (("in_channels", data.channels), ("num_classes", data.num_classes)):
        if params.get(key) is not None and int(params[key]) != value:
            raise ConfigError(f"{section}.{key}={params[key]} does not match the data ({type(data).__name__}: "
                              f"{value}); leave it out, it follows the dataset")
        params[key] = value
    return params
