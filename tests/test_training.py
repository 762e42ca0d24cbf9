"""Training from scratch (evaluator=train, in process and through submitit) and final training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lanas.errors import ConfigError
from lanas.evaluators.train import TrainEvaluator
from lanas.spaces.nasnet import NASNetSpace
from lanas.training.final import train_final
from lanas.training.network import NASNetNetwork
from lanas.config import compose_config

TINY_DATA = {"fake_images": 200, "image_size": 8, "batch_size": 32, "val_size": 40, "num_workers": 0,
             "download": False}
TINY_NET = {"init_channels": 4, "layers": 3}
TINY_TRAINER = {"max_steps": 5, "max_epochs": -1, "accelerator": "cpu", "enable_checkpointing": True}


def test_fixed_network_owns_only_the_ops_it_uses():
    space = NASNetSpace()
    arch = space.sample(np.random.default_rng(0), 1)[0]
    supernet = NASNetNetwork(4, 3)
    plain = NASNetNetwork(4, 3, arch=arch)
    assert sum(p.numel() for p in plain.parameters()) < sum(p.numel() for p in supernet.parameters())
    fixed = NASNetNetwork(4, 3, arch=arch, auxiliary=True)
    assert all(len(cell.ops) <= 10 for cell in fixed.cells)
    assert all(len(cell.ops) == 80 for cell in supernet.cells)
    fixed.train()
    fixed.drop_path_prob = 0.5
    logits, aux = fixed(torch.randn(4, 3, 8, 8))
    assert logits.shape == aux.shape == (4, 10)
    fixed.eval()
    assert fixed(torch.randn(4, 3, 8, 8)).shape == (4, 10)


def test_train_evaluator_in_process(tmp_path):
    evaluator = TrainEvaluator(out_dir=str(tmp_path), data={**TINY_DATA, "data_dir": str(tmp_path / "data")},
                               network=TINY_NET, trainer=TINY_TRAINER)
    archs = NASNetSpace().sample(np.random.default_rng(1), 2)
    rewards = evaluator.query(archs, np.random.default_rng(0))
    assert rewards.shape == (2,) and np.all((0 <= rewards) & (rewards <= 1))
    assert (tmp_path / "00001" / "checkpoints" / "last.ckpt").exists()
    assert evaluator.stats()["evaluations"] == 2
    with pytest.raises(ConfigError, match="evaluator.executor"):
        TrainEvaluator(executor="ray")


@pytest.mark.slow  # subprocesses import torch afresh: about 15 s on two busy cores
def test_train_evaluator_through_submitit_local(tmp_path):
    data_dir = tmp_path / "data"
    from lanas.training.data import write_fake_cifar10

    write_fake_cifar10(data_dir, 200, 40)
    evaluator = TrainEvaluator(out_dir=str(tmp_path), data={**TINY_DATA, "data_dir": str(data_dir)},
                               network=TINY_NET, trainer={**TINY_TRAINER, "max_steps": 2}, executor="local",
                               executor_params={"timeout_min": 5})
    rewards = evaluator.query(NASNetSpace().sample(np.random.default_rng(2), 1), np.random.default_rng(0))
    assert rewards.shape == (1,) and 0 <= rewards[0] <= 1
    assert any((tmp_path / "submitit").iterdir())


def test_final_training_smoke(tmp_path):
    arch = NASNetSpace().to_string(NASNetSpace().sample(np.random.default_rng(3), 1)[0])
    cfg = compose_config("experiment=final_smoke", f"final_dir={tmp_path}", f"arch='{arch}'")
    result = train_final(cfg)
    assert 0 <= result["test_acc"] <= 1 and result["steps"] == 20
    assert json.loads((tmp_path / "final.json").read_text())["test_acc"] == result["test_acc"]
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert list(Path(tmp_path).glob("wandb/offline-run-*"))  # WandbLogger, offline
    with pytest.raises(ConfigError, match="arch must be set"):
        train_final(compose_config("experiment=final_smoke", f"final_dir={tmp_path}"))


def test_speed_benchmark_measures_a_positive_rate():
    from perf.supernet_speed import throughput

    rate = throughput(torch.device("cpu"), channels=4, layers=3, batch=4, steps=1, warmup=0,
                      channels_last=True, amp_dtype=torch.bfloat16)
    assert rate > 0


def test_nasbench101_cells_train_through_nasbench_pytorch(tmp_path):
    """search_space=nasbench101 evaluator=train: a random search whose cells are built by
    nasbench-pytorch's Network from the cell's adjacency matrix and ops (tiny: 8x8 generated images)."""
    from lanas.app import run

    cfg = compose_config(
        "search_space=nasbench101", "+evaluator=train", "searcher=random", "budget=2", "logger=none", "threads=1",
        f"evaluator.out_dir={tmp_path / 'evals'}", f"evaluator.data.data_dir={tmp_path / 'data'}",
        "+evaluator.data.fake_images=200", "+evaluator.data.image_size=8", "evaluator.data.batch_size=32",
        "evaluator.data.val_size=40", "evaluator.data.num_workers=0", "evaluator.data.download=false",
        "evaluator.network.init_channels=8", "evaluator.network.cells=1", "evaluator.trainer.max_epochs=-1",
        "+evaluator.trainer.max_steps=3", "evaluator.trainer.accelerator=cpu")
    summary = run(cfg, tmp_path / "run")
    assert summary["search_space"] == "nasbench101" and summary["benchmark"] == "train"
    assert summary["num_samples"] == 2 and 0 <= summary["best_reward"] <= 1
    saved = torch.load(tmp_path / "evals" / "00000" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=False)
    hp = saved["hyper_parameters"]
    assert hp["search_space"] == "nasbench101" and hp["arch"]["ops"][0] == "input"
    from nasbench_pytorch.model import Network

    from lanas.training.classifier import CellClassifier

    model = CellClassifier(**hp)
    assert isinstance(model.net, Network)
    model.load_state_dict(saved["state_dict"])  # the same cell again from its plain-data form


def test_train_evaluator_refuses_datasets_and_spaces_it_cannot_train():
    from lanas.spaces.nasbench201 import NASBench201Space

    with pytest.raises(ConfigError, match="dataset='cifar100'"):
        TrainEvaluator(dataset="cifar100")
    evaluator = TrainEvaluator(dataset="fashion_mnist")
    assert evaluator.candidate_space(NASBench201Space()).name == "nasbench201"
    from lanas.evaluators import train as train_module
    from lanas.training import data, models

    assert train_module.DATASETS == data.DATASETS and train_module.SPACES == models.SPACES


def test_speed_script_covers_both_supernets_on_real_or_random_inputs(tmp_path):
    from perf.supernet_speed import main

    tiny = ["--cpu-only", "--channels", "4", "--layers", "3", "--batch", "4", "--nb201-channels", "4",
            "--nb201-cells", "1", "--nb201-batch", "4", "--steps", "1", "--warmup", "0", "--threads", "1"]
    rows = main(["--space", "both", *tiny, "--json", str(tmp_path / "speed.json")])
    assert [(r["space"], r["variant"]) for r in rows][::3] == [("nasnet", "float32"), ("nasbench201", "float32")]
    assert len(rows) == 6 and all(r["images_per_s"] > 0 for r in rows)
    assert json.loads((tmp_path / "speed.json").read_text()) == rows
    assert main(["--space", "nasbench201", *tiny, "--budget-s", "0"]) == []  # every variant skipped
