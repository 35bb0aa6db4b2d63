from __future__ import annotations

import numpy as np
import pytest
import torch

from detecteur.inference.explain import grad_cam
from detecteur.model.networks import build


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_grad_cam_has_the_input_size_lies_on_0_1_and_is_not_constant(arch: str) -> None:
    torch.manual_seed(0)
    model = build(arch, in_chans=4, pretrained=False).eval()  # type: ignore[arg-type]
    heatmap = grad_cam(model, torch.randn(4, 96, 96))
    assert heatmap.shape == (96, 96)
    assert heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
    assert np.std(heatmap) > 0.01


def test_grad_cam_leaves_the_model_without_gradients() -> None:
    model = build("efficientnet_lite0", in_chans=4, pretrained=False).eval()
    grad_cam(model, torch.randn(4, 64, 64))
    assert all(parameter.grad is None for parameter in model.parameters())
