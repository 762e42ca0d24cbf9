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
