from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from detecteur.config import AugmentConfig
from detecteur.inputs.preprocess import LAPLACIAN_KERNEL, NPR_GAIN, InputSpec, preprocess
from detecteur.model.networks import input_spec_for
from detecteur.training.augment import BlockShift, TrainingTransform

SPEC = InputSpec(input_size=32, in_chans=4, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_a_constant_image_gives_an_exactly_zero_laplacian_channel() -> None:
    tensor = preprocess(Image.new("RGB", (32, 32), (120, 200, 30)), SPEC)
    assert tensor.shape == (4, 32, 32)
    assert torch.count_nonzero(tensor[3]) == 0


def test_a_single_bright_pixel_gives_the_kernel_pattern() -> None:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[10, 20] = 255
    laplacian = preprocess(Image.fromarray(pixels), SPEC)[3]
    gray = 0.2989 + 0.587 + 0.114  # the bright pixel's grayscale value on [0, 1]
    expected = torch.zeros(32, 32)
    expected[9:12, 19:22] = torch.tensor(LAPLACIAN_KERNEL) * gray
    torch.testing.assert_close(laplacian, expected, rtol=0, atol=1e-6)


def test_rgb_channels_are_normalised_with_the_backbone_mean_and_std() -> None:
    tensor = preprocess(Image.new("RGB", (32, 32), (255, 0, 128)), SPEC)
    expected = [(1.0 - 0.485) / 0.229, (0.0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    for channel, value in enumerate(expected):
        assert tensor[channel].mean().item() == pytest.approx(value, abs=1e-5)


def test_the_laplacian_channel_is_not_normalised() -> None:
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[:, 16:] = 255
    laplacian = preprocess(Image.fromarray(pixels), SPEC)[3]
    assert laplacian.max().item() == pytest.approx(0.2989 + 0.587 + 0.114, abs=1e-5)
    assert laplacian.min().item() == pytest.approx(-(0.2989 + 0.587 + 0.114), abs=1e-5)


def test_three_channel_variant_drops_only_the_laplacian() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    three = preprocess(image, InputSpec(32, 3, SPEC.mean, SPEC.std))
    four = preprocess(image, SPEC)
    assert three.shape == (3, 32, 32)
    assert torch.equal(three, four[:3])


def test_the_npr_signal_is_each_pixel_minus_the_top_left_pixel_of_its_two_by_two_cell() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    npr_spec = InputSpec(32, 4, SPEC.mean, SPEC.std, pixel_signal="npr")
    tensor = preprocess(Image.fromarray(pixels), npr_spec)
    unit = torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)
    anchors = unit[:, 0::2, 0::2]
    assert torch.count_nonzero(tensor[:3, 0::2, 0::2]) == 0
    for row, column in ((0, 1), (1, 0), (1, 1)):
        expected = (unit[:, row::2, column::2] - anchors) * NPR_GAIN
        torch.testing.assert_close(tensor[:3, row::2, column::2], expected, rtol=0, atol=1e-5)
    # The Laplacian channel does not depend on what the colour channels carry.
    assert torch.equal(tensor[3], preprocess(Image.fromarray(pixels), SPEC)[3])


def test_a_flat_image_has_no_npr_signal() -> None:
    tensor = preprocess(Image.new("RGB", (32, 32), (10, 200, 90)), InputSpec(32, 3, SPEC.mean, SPEC.std, "npr"))
    assert tensor.shape == (3, 32, 32) and torch.count_nonzero(tensor) == 0


def test_any_input_size_and_mode_is_brought_to_the_model_input() -> None:
    tensor = preprocess(Image.new("L", (300, 120), 90), SPEC)
    assert tensor.shape == (4, 32, 32)
    assert tensor.dtype == torch.float32


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_lite0"])
def test_training_transform_without_augmentation_is_bit_identical_to_serving(arch: str) -> None:
    spec = input_spec_for(arch, 4, 64)  # type: ignore[arg-type]
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    training = TrainingTransform(spec, AugmentConfig(enabled=False))(image)
    assert torch.equal(training, preprocess(image, spec))


def test_augmented_training_transform_still_gives_the_model_input_shape() -> None:
    augment = AugmentConfig(jpeg_probability=1.0, blur_probability=1.0)
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (90, 70, 3), dtype=np.uint8))
    tensor = TrainingTransform(SPEC, augment)(image)
    assert tensor.shape == (4, 32, 32)
    assert not torch.equal(tensor, preprocess(image, SPEC))


def _pixel_only_augment(**changes: object) -> AugmentConfig:
    """Augmentation with every pixel-changing step off, so only the geometry under test acts."""
    settings: dict[str, object] = {"color_jitter": 0.0, "jpeg_probability": 0.0, "blur_probability": 0.0}
    return AugmentConfig.model_validate(settings | changes)


def test_without_resampling_a_training_crop_keeps_the_served_pixels_up_to_a_mirror() -> None:
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    served = preprocess(image, SPEC)
    transform = TrainingTransform(SPEC, _pixel_only_augment(resampling_probability=0.0))
    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(8)]
    mirrored = preprocess(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), SPEC)
    assert all(torch.equal(out, served) or torch.equal(out, mirrored) for out in outputs)
    assert any(torch.equal(out, served) for out in outputs) and any(torch.equal(out, mirrored) for out in outputs)


def test_resampling_probability_decides_how_many_crops_are_resampled() -> None:
    image = Image.fromarray(np.random.default_rng(4).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    served = preprocess(image, SPEC)
    augment = _pixel_only_augment(resampling_probability=0.5, horizontal_flip=False, rotation_interpolation="bilinear")
    transform = TrainingTransform(SPEC, augment)
    torch.manual_seed(0)
    untouched = sum(torch.equal(transform(image), served) for _ in range(200))
    assert 70 <= untouched <= 130  # binomial(200, 0.5): outside this range has probability < 1e-4


def test_bilinear_rotation_leaves_no_staircase_in_the_laplacian_channel() -> None:
    # A smooth diagonal ramp: nearest-neighbour rotation turns it into steps (large Laplacian values),
    # bilinear keeps it smooth.
    ramp = np.add.outer(np.arange(32), np.arange(32)).astype(np.float64) * 4
    image = Image.fromarray(np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8))
    peaks = {}
    for interpolation in ("nearest", "bilinear"):
        augment = _pixel_only_augment(
            crop_scale=(1.0, 1.0),
            crop_ratio=(1.0, 1.0),
            horizontal_flip=False,
            rotation_degrees=10.0,
            rotation_interpolation=interpolation,
        )
        torch.manual_seed(1)
        laplacian = TrainingTransform(SPEC, augment)(image)[3]
        peaks[interpolation] = laplacian[8:24, 8:24].abs().max().item()  # inside the rotated corners
    assert peaks["bilinear"] < peaks["nearest"] / 2


def test_block_shift_moves_the_crop_by_whole_jpeg_blocks_without_resampling() -> None:
    pixels = np.random.default_rng(5).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    shift = BlockShift(max_blocks=1)
    random.seed(0)
    seen = set()
    for _ in range(40):
        moved = np.asarray(shift(Image.fromarray(pixels)))
        assert moved.shape == pixels.shape
        # The input's interior reappears exactly, moved by (dy, dx) ∈ {-8, 0, 8}².
        matches = [
            (dy, dx)
            for dy in (-8, 0, 8)
            for dx in (-8, 0, 8)
            if np.array_equal(moved[8 + dy : 40 + dy, 8 + dx : 32 + dx], pixels[8:40, 8:32])
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) >= 7  # the shifts are drawn, not fixed


def test_block_shifted_training_crops_carry_the_served_laplacian_unchanged() -> None:
    image = Image.fromarray(np.random.default_rng(6).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    served_laplacian = preprocess(image, SPEC)[3]
    transform = TrainingTransform(
        SPEC, _pixel_only_augment(resampling_probability=0.0, horizontal_flip=False, shift_blocks=1)
    )
    random.seed(1)
    for _ in range(10):
        laplacian = transform(image)[3]
        # Away from the mirrored border, the high-frequency channel is the served one, moved by whole blocks.
        assert any(
            torch.equal(laplacian[9 + dy : 23 + dy, 9 + dx : 23 + dx], served_laplacian[9:23, 9:23])
            for dy in (-8, 0, 8)
            for dx in (-8, 0, 8)
        )


def test_a_block_shift_beyond_four_blocks_is_refused() -> None:
    with pytest.raises(ValueError, match="shift_blocks"):
        AugmentConfig(shift_blocks=5)
