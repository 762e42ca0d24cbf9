"""Final training of a found cell: ``python -m lanas.training.final experiment=final_cifar10 arch='normal:...'``.

The cell (a ``nasnet`` architecture string, as in ``summary.json``'s ``best_arch``) is stacked into
a full network and trained with the recipe in conf/experiment/final_cifar10.yaml (cutout,
drop-path, auxiliary head, cosine schedule, long schedule) on the whole training set
(``data.train_on_full``). The test set is used exactly once, at the end; the result goes to
``<final_dir>/final.json`` and one printed line. Checkpoints (``last.ckpt``) make a second
invocation resume; metrics go to Lightning's WandbLogger (offline unless configured).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lanas.cli import interrupted_exit, starting

# Stop handlers before the heavy imports: Ctrl-C at any moment gives one line.
with starting(__name__ == "__main__"):
    import hydra
    import lightning as L
    from omegaconf import DictConfig

    from lanas.cli import apply_torch_threads, run_hydra_main
    from lanas.errors import ConfigError, LanasError
    from lanas.training.classifier import CellClassifier
    from lanas.training.data import make_datamodule
    from lanas.training.trainer import (config_section, dataset_name, finish_loggers, fit_resumable, make_trainer,
                                        network_io)

CONF = str(Path(__file__).resolve().parents[2] / "conf")


def _section(cfg: DictConfig, key: str) -> dict:
    return config_section(cfg, key, "final_cifar10")


def parse_arch(search_space: str, text: str) -> tuple[Any, Any]:
    """``(architecture of the space, portable cell)`` of a cell string of ``search_space``."""
    from lanas.spaces.nasbench201 import NASBench201Space
    from lanas.spaces.nasnet import NASNetSpace
    from lanas.training.models import SPACES, portable_arch

    if search_space == "nasnet":
        space = NASNetSpace()
    elif search_space == "nasbench201":
        space = NASBench201Space()
    elif search_space == "nasbench101":
        from lanas.spaces.nasbench101 import NASBench101Space

        space = NASBench101Space()
    else:
        raise ConfigError(f"network.search_space={search_space!r} has no trainable networks; allowed: "
                          f"{', '.join(SPACES)}")
    arch = space.from_string(text)
    return arch, portable_arch(space, arch)


def train_cell(arch: Any, seed: int, out_dir: str | Path, dataset: str, data: dict[str, Any],
               network: dict[str, Any], trainer: dict[str, Any], logger: str = "csv", resume: bool = True,
               run_name: str | None = None) -> dict[str, Any]:
    """Train the cell ``arch`` (portable form, lanas.training.models) on ``data`` and test it once.

    The test set is read here only, at the end; returns test accuracy, parameters, steps and the
    CPU-seconds of this process spent on training and testing (``cpu_s``)."""
    import time

    start_cpu, start_wall = time.process_time(), time.perf_counter()
    L.seed_everything(int(seed), workers=True, verbose=False)
    dm = make_datamodule(dataset, **data)
    dm.setup()  # a bad data file stops here, before the trainer writes anything
    model = CellClassifier(arch, **network_io(network, dm, "network"))
    run = make_trainer(out_dir, trainer, logger=logger, run_name=run_name)
    last = fit_resumable(run, model, dm, Path(out_dir), resume=resume)
    test = run.test(model, dm, verbose=False)[0]
    finish_loggers(run)
    return {"test_acc": float(test["test/acc"]), "seed": int(seed),
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6, "epochs": run.current_epoch,
            "steps": run.global_step, "checkpoint": str(last), "cpu_s": time.process_time() - start_cpu,
            "wall_s": time.perf_counter() - start_wall}


def train_final(cfg: DictConfig) -> dict[str, Any]:
    """Train the cell ``cfg.arch`` and test it once; returns (and writes) the result."""
    network = _section(cfg, "network")
    search_space = str(network.get("search_space", "nasnet"))
    if not cfg.get("arch"):
        raise ConfigError(f"arch must be set to a {search_space} cell string, e.g. the best_arch of a search's "
                          "summary.json")
    _, portable = parse_arch(search_space, str(cfg.arch))
    out_dir = Path(cfg.final_dir)
    apply_torch_threads(cfg.get("threads"))
    training = _section(cfg, "training")
    result = train_cell(portable, int(cfg.seed), out_dir, dataset_name(cfg), _section(cfg, "data"), network,
                        _section(cfg, "trainer"), logger=training.get("logger", "wandb"),
                        resume=training.get("resume", True), run_name=f"final-seed{cfg.seed}")
    result = {"arch": str(cfg.arch), **result}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "final.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def quote_arch_override(args: list[str]) -> list[str]:
    """Quote the value of an ``arch=...`` argument for Hydra's override grammar.

    A cell string (``normal:|skip_connect~1|...|;reduce:|...|``) holds ``|``, ``~`` and ``;``, which
    Hydra only accepts inside quotes; the shell has already removed the quotes a user typed, so
    ``arch='normal:|...|'`` would otherwise fail with Hydra's multi-line lexer error.
    """
    quoted = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") == "arch" and value and value[0] not in "'\"":
            quote = "'" if "'" not in value else '"'
            arg = f"{key}={quote}{value}{quote}"
        quoted.append(arg)
    return quoted


@hydra.main(version_base="1.3", config_path=CONF, config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        result = train_final(cfg)
    except LanasError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"final training: test_acc={result['test_acc']:.4f} params={result['params_M']:.2f}M "
          f"steps={result['steps']} out={cfg.final_dir}", flush=True)


def cli() -> None:
    """``python -m lanas.training.final``: the README's ``arch='...'`` form works, errors are one line."""
    sys.argv[1:] = quote_arch_override(sys.argv[1:])
    try:
        run_hydra_main(main)
    except KeyboardInterrupt as err:
        interrupted_exit(err, "during training; the same command continues from the last saved epoch")


if __name__ == "__main__":
    cli()
