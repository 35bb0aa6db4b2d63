"""Training-time augmentation: what a face may suffer on its way to the model in training — geometric jitter,
whole-block shifts, blur and JPEG re-compression in the order uploads suffer them — then the one `preprocess`.
Disabled, a `TrainingTransform` is the serving transform exactly."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageFilter
from torchvision.transforms import v2

from detecteur.config import AugmentConfig, CropFiles, Framing
from detecteur.inputs.faces import canonical_face
from detecteur.inputs.preprocess import RESAMPLING, InputSpec, model_windows, preprocess


def recompress_jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as recompressed:
        return recompressed.convert("RGB")


JPEG_BLOCK = 8


class BlockShift:
    """Moves an image by a random whole number of 8×8 JPEG blocks, at most `max_blocks` each way, filling the
    uncovered border with its mirror image. No pixel is interpolated, and the JPEG block grid of a normalised
    face crop (anchored at its top-left corner) stays where it was."""

    def __init__(self, max_blocks: int) -> None:
        self.max_blocks = max_blocks

    def __call__(self, image: Image.Image) -> Image.Image:
        pad = JPEG_BLOCK * self.max_blocks
        if pad == 0 or pad >= min(image.size):
            return image
        dx, dy = (JPEG_BLOCK * random.randint(-self.max_blocks, self.max_blocks) for _ in range(2))
        pixels = np.asarray(image.convert("RGB"))
        padded = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
        height, width = pixels.shape[:2]
        return Image.fromarray(padded[pad - dy : pad - dy + height, pad - dx : pad - dx + width])


def random_window(image: Image.Image, size: int) -> Image.Image:
    """A `size`×`size` window at a random place in `image`, brought up to `size` first when it is smaller."""
    if min(image.size) < size:
        scale = size / min(image.size)
        image = image.resize(
            (max(size, round(image.width * scale)), max(size, round(image.height * scale))), RESAMPLING
        )
    left = random.randint(0, image.width - size)
    top = random.randint(0, image.height - size)
    return image.crop((left, top, left + size, top + size))


def random_downscale(image: Image.Image, scale_range: tuple[float, float]) -> Image.Image:
    scale = random.uniform(*scale_range)
    size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
    method = random.choice((Image.Resampling.BILINEAR, Image.Resampling.BICUBIC, Image.Resampling.LANCZOS))
    return image.resize(size, method)


class TrainingTransform:
    """Augmentation for training, then the one `preprocess`. Disabled, it *is* the serving transform.

    Degradations come last, in the order real uploads suffer them: blur from the camera or a resize,
    then JPEG re-compression by the platform. A `native_face_crop` model gets them on the face at its own scale,
    then a random window of its input size (grid phase random, as a crop of a served image would be).
    `canonicalise` (native crop files for a `face_crop` model) first normalises each crop exactly as serving does.
    """

    def __init__(
        self, spec: InputSpec, augment: AugmentConfig, native: bool = False, canonicalise: bool = False
    ) -> None:
        self.spec = spec
        self.augment = augment
        self.native = native
        self.canonicalise = canonicalise
        geometric: list[Callable[[Image.Image], Image.Image]] = []
        if augment.enabled and native:
            geometric += [v2.RandomHorizontalFlip()] if augment.horizontal_flip else []
        elif augment.enabled:
            crop = v2.RandomResizedCrop(spec.input_size, scale=augment.crop_scale, ratio=augment.crop_ratio)
            interpolation = v2.InterpolationMode(augment.rotation_interpolation)
            rotation = [v2.RandomRotation(augment.rotation_degrees, interpolation=interpolation)]
            rotation = rotation if augment.rotation_degrees > 0 else []
            flip = [v2.RandomHorizontalFlip()] if augment.horizontal_flip else []
            if augment.resampling_probability < 1.0:
                geometric += [v2.RandomApply([crop, *rotation], p=augment.resampling_probability), *flip]
            else:  # the original order (crop, flip, rotation), so older recipes draw the same random numbers
                geometric += [crop, *flip, *rotation]
            if augment.shift_blocks > 0:
                geometric.append(BlockShift(augment.shift_blocks))
        if augment.enabled and augment.color_jitter > 0:
            strength = augment.color_jitter
            geometric.append(v2.ColorJitter(strength, strength, strength, min(0.5, strength / 4)))
        self._pipeline = v2.Compose(geometric) if geometric else None

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if self.canonicalise:
            image = canonical_face(image, self.spec.input_size)
        if self._pipeline is not None:
            image = self._pipeline(image)
            if self.native and random.random() < self.augment.downscale_probability:
                image = random_downscale(image, self.augment.downscale_range)
            if random.random() < self.augment.blur_probability:
                image = image.filter(ImageFilter.GaussianBlur(random.uniform(*self.augment.blur_sigma)))
            if random.random() < self.augment.jpeg_probability:
                image = recompress_jpeg(image, random.randint(*self.augment.jpeg_quality))
        if self.native:
            image = random_window(image, self.spec.input_size) if self.augment.enabled else self._centre(image)
        return preprocess(image, self.spec)

    def _centre(self, image: Image.Image) -> Image.Image:
        return model_windows(image, self.spec.input_size)[0]


def training_transforms(
    spec: InputSpec, augment: AugmentConfig, framing: Framing, crop_files: CropFiles
) -> tuple[TrainingTransform, TrainingTransform]:
    """The (training, validation) transforms of a recipe: how its crop files reach the model."""
    native = framing == "native_face_crop"
    canonicalise = framing == "face_crop" and crop_files == "native"
    return (
        TrainingTransform(spec, augment, native, canonicalise),
        TrainingTransform(spec, AugmentConfig(enabled=False), native, canonicalise),
    )
