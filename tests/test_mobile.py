"""search_space=mobile: the exact space, strings, decisions, mutation and closed-form costs checked against the counter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanas.errors import InvalidArchitectureError
from lanas.flops import count
from lanas.spaces.mobile import CHOICES, NUM_STAGES, MobileSpace
from lanas.training.mobile import MobileNet


def test_space_size_strings_decisions_and_mutation():
    space = MobileSpace()
    assert np.prod(space.decisions(), dtype=np.int64) == 72**6 == 139_314_069_504
    rng = np.random.default_rng(0)
    archs = space.sample(rng, 100)
    for arch in archs:
        assert space.from_string(space.to_string(arch)) == arch
        child = space.mutate(arch, rng)
        assert sum(a != b for a, b in zip(arch, child)) == 1
    assert space.from_decisions(space.to_decisions(archs)) == archs
    enc = space.encode(archs)
    assert enc.shape == (100, space.dim) and np.all(enc.sum(axis=1) == NUM_STAGES * len(CHOICES))
    kids = space.mutate_array(space.to_decisions(archs), rng)
    assert np.all((kids != space.to_decisions(archs)).sum(axis=1) == 1)
    assert np.all(kids < np.array(space.decisions())) and np.all(kids >= 0)
    assert space.to_string(archs[0]).count("-") == 5
    for bad in ("k5e6d3s1", "k4e6d3s1-" * 5 + "k3e3d1s0", "k5e6d5s1-" * 5 + "k3e3d1s0"):
        with pytest.raises(InvalidArchitectureError):
            space.from_string(bad)


@pytest.mark.parametrize("image_size", [224, 96])
def test_closed_form_costs_equal_the_counter_on_the_built_network(image_size):
    torch.set_num_threads(1)
    space = MobileSpace(image_size=image_size)
    rng = np.random.default_rng(image_size)
    archs = space.sample(rng, 2) if image_size == 224 else space.sample(rng, 4)
    costs = space.cost(archs)
    for i, arch in enumerate(archs):
        counted = count(MobileNet(space, arch), image_size=image_size)
        assert costs["flops_m"][i] == pytest.approx(counted.macs_m, rel=1e-9)
        assert costs["params_mb"][i] == pytest.approx(counted.params_m, rel=1e-9)


def test_efficientnet_b0_choice_costs_what_efficientnet_b0_costs():
    # B0's stages 2-7: k3e6d2, k5e6d2, k3e6d3, k5e6d3, k5e6d4, k3e6d1, all with SE.
    space = MobileSpace()
    b0 = space.from_string("k3e6d2s1-k5e6d2s1-k3e6d3s1-k5e6d3s1-k5e6d4s1-k3e6d1s1")
    cost = space.cost([b0])
    # torchvision's efficientnet_b0 (same layers): 385.8 M multiply-adds, 5.29 M parameters (tests/test_flops.py).
    assert cost["flops_m"][0] == pytest.approx(385.8, rel=0.005) and cost["params_mb"][0] == pytest.approx(5.29, rel=0.005)


def test_imagenet_mobile_smoke_runs_on_a_generated_imagefolder(tmp_path):
    from lanas.app import run
    from lanas.training.imagenet import make_fake_imagenet
    from tests.helpers import compose_config

    data = make_fake_imagenet(tmp_path / "fake_imagenet", classes=3, train_per_class=8, val_per_class=2, size=36)
    cfg = compose_config("experiment=imagenet_mobile_smoke", f"evaluator.data.data_dir={data}",
                         f"evaluator.out_dir={tmp_path / 'evaluations'}", "trace_timing=false")
    summary = run(cfg, tmp_path / "run")
    assert summary["complete"] and summary["num_samples"] == 3 and summary["constraints"] == {"flops_m": 600.0}
    assert summary["evaluator_stats"]["evaluations"] == 3
    space = MobileSpace()
    rows = [line.split(",") for line in (tmp_path / "run" / "trace.csv").read_text().splitlines()[1:]]
    archs = [space.from_string(row[1]) for row in rows]
    assert space.cost(archs)["flops_m"].max() <= 600
    assert all(0.0 <= float(row[2]) <= 1.0 for row in rows)


def test_missing_imagefolder_is_one_line(tmp_path):
    from lanas.errors import BenchmarkDataError
    from lanas.training.imagenet import ImageFolderDataModule

    with pytest.raises(BenchmarkDataError, match="is not a folder: data.data_dir must hold ImageNet in ImageFolder"):
        ImageFolderDataModule(str(tmp_path)).setup()
