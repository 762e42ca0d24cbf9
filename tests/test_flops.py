"""Multiply-adds and parameters with torch.utils.flop_counter, against the published figures (no weights downloaded)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from lanas.flops import count

# (model, published multiply-adds in millions, published parameters in millions) at 224x224: the
# MobileNetV2 paper (300 M MAdds, 3.4 M; torchvision lists 3.5 M) and the EfficientNet paper (0.39 B FLOPs
# meaning multiply-adds, 5.3 M).
PUBLISHED = [("mobilenet_v2", 300.0, 3.5), ("efficientnet_b0", 390.0, 5.3)]


@pytest.mark.parametrize(("name", "macs_m", "params_m"), PUBLISHED)
def test_torchvision_reference_models_within_2_percent(name, macs_m, params_m):
    torch.set_num_threads(1)
    cost = count(getattr(torchvision.models, name)(weights=None), image_size=224)
    assert cost.macs_m == pytest.approx(macs_m, rel=0.02)
    assert cost.params_m == pytest.approx(params_m, rel=0.02)


def test_count_is_multiply_adds_of_a_known_layer():
    layer = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)  # 32*32*8*3*9 multiply-adds
    cost = count(layer, image_size=32)
    assert cost.macs_m * 1e6 == 32 * 32 * 8 * 3 * 9 and cost.params_m * 1e6 == 8 * 3 * 9
