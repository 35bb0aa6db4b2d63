"""Grad-CAM: where in the face crop the evidence for the model's verdict lies.

Own small implementation on the backbone's last convolutional feature map (timm's `forward_features` /
`forward_head` split, the same for every architecture the factory builds): the gradient of the margin of
the predicted class over the other weights each feature channel; the weighted sum, rectified and upsampled,
is the heatmap — the regions that pushed the model toward its verdict. For an ensemble, the margin is that of
the averaged logits and each member's map adds to the heatmap.
"""

from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from detecteur.config import AUTHENTIC, SYNTHETIC
from detecteur.model.networks import Ensemble, member_networks

OVERLAY_OPACITY = 0.45


def grad_cam(model: nn.Module, model_input: torch.Tensor) -> np.ndarray:
    """H×W heatmap on [0, 1] for one C×H×W model input, for the class the model predicts; all zeros when
    no region pushes toward it."""
    model.eval()
    networks = member_networks(model)
    with torch.enable_grad():
        inputs = model_input.unsqueeze(0).detach()
        features = [network.forward_features(inputs) for network in networks]  # type: ignore[operator]
        heads = [network.forward_head(maps) for network, maps in zip(networks, features, strict=True)]  # type: ignore[operator]
        # An ensemble's evidence is its combined logits: in an "either member fires" one, the member that fired.
        logits = model.combine(torch.stack(heads, dim=1)) if isinstance(model, Ensemble) else heads[0]
        predicted = int(logits[0].argmax())
        other = AUTHENTIC if predicted == SYNTHETIC else SYNTHETIC
        evidence = logits[0, predicted] - logits[0, other]
        gradients = torch.autograd.grad(evidence, features)
    cam = torch.zeros((1, 1, *model_input.shape[-2:]), device=model_input.device)
    for maps, gradient in zip(features, gradients, strict=True):
        channel_weights = gradient.mean(dim=(2, 3), keepdim=True)
        member_cam = F.relu((channel_weights * maps.detach()).sum(dim=1, keepdim=True))
        cam = cam + F.interpolate(member_cam, size=model_input.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[0, 0]
    peak = cam.max()
    heatmap = (cam / peak) if peak > 0 else torch.zeros_like(cam)
    result: np.ndarray = heatmap.cpu().numpy().astype(np.float32)
    return result


def overlay_png(crop: Image.Image, heatmap: np.ndarray) -> bytes:
    """PNG of the crop with the heatmap blended over it (inferno colour map), at the crop's size."""
    import matplotlib  # only when a heatmap is asked for: it costs the service's start-up a second

    colours = matplotlib.colormaps["inferno"](heatmap)[..., :3]
    heat = Image.fromarray((colours * 255).astype(np.uint8)).resize(crop.size, Image.Resampling.BILINEAR)
    blended = Image.blend(crop.convert("RGB"), heat, OVERLAY_OPACITY)
    buffer = io.BytesIO()
    blended.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
