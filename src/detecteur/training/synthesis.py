"""Training fakes made from reals: generator-agnostic, unlimited, each teaching one kind of trace.

- `self_blend`: a face blended into a slightly warped, recoloured copy of itself inside a soft face-shaped mask
  (self-blended images, Shiohara & Yamasaki, CVPR 2022): the blending boundary a face swap or a composite leaves,
  with no identity or generator to memorise.
- `Taef2`: the tiny autoencoder of FLUX.2's latent space (`../shared/weights/taef2/`, MIT). A real face passed
  through its encoder and decoder looks the same but carries the decoder's pixel traces, which latent-diffusion
  images share (Rajan et al., ICLR 2025, dataset alignment); re-encoded with its real's own JPEG tables, the
  compression says nothing.
- `upsampling_trace`: a face halved and brought back by zero insertion and a slightly unbalanced kernel, as a
  generator's transposed convolution upsamples: the period-2 grid and spectral peaks GAN decoders leave, which no
  camera pipeline and none of the resamplers in augmentation make (the artefact simulator of Zhang, Karaman & Chang,
  WIFS 2019, without its learned network).
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter
from torch import nn

if TYPE_CHECKING:
    from detecteur.training.data import ImageRecord

# --- Self-blended images ------------------------------------------------------------------------------------


def _face_mask(side: int, rng: random.Random) -> Image.Image:
    """A soft elliptical mask around the face of a square face crop (the face fills the middle ~70 % of it,
    `faces.FACE_MARGIN`), with random size, aspect, offset and edge softness."""
    mask = Image.new("L", (side, side), 0)
    centre_x = side * (0.5 + rng.uniform(-0.03, 0.03))
    centre_y = side * (0.53 + rng.uniform(-0.03, 0.03))
    half_width = side * rng.uniform(0.24, 0.33)
    half_height = side * rng.uniform(0.30, 0.40)
    ImageDraw.Draw(mask).ellipse(
        (centre_x - half_width, centre_y - half_height, centre_x + half_width, centre_y + half_height), fill=255
    )
    return mask.filter(ImageFilter.GaussianBlur(side * rng.uniform(0.02, 0.08)))


def _altered_copy(image: Image.Image, rng: random.Random) -> Image.Image:
    """The same face slightly recoloured, re-sharpened or softened, and moved / rescaled by a few per cent."""
    copy = ImageEnhance.Brightness(image).enhance(rng.uniform(0.9, 1.1))
    copy = ImageEnhance.Contrast(copy).enhance(rng.uniform(0.9, 1.1))
    copy = ImageEnhance.Color(copy).enhance(rng.uniform(0.85, 1.15))
    if rng.random() < 0.5:
        copy = copy.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    else:
        copy = ImageEnhance.Sharpness(copy).enhance(rng.uniform(1.2, 2.0))
    side = image.width
    scale = rng.uniform(0.96, 1.04)
    shift_x, shift_y = (rng.uniform(-0.03, 0.03) * side for _ in range(2))
    # Affine map output→input: scale about the centre, then shift.
    centre = side / 2
    coefficients = (1 / scale, 0, centre - centre / scale + shift_x, 0, 1 / scale, centre - centre / scale + shift_y)
    return copy.transform(image.size, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR)


def self_blend(image: Image.Image, rng: random.Random) -> Image.Image:
    """A self-blended fake of a real face crop (RGB, any size): its altered copy pasted back through a soft mask,
    at a random blend strength."""
    image = image.convert("RGB")
    if image.width != image.height:
        side = min(image.size)
        image = image.crop((0, 0, side, side))
    mask = np.asarray(_face_mask(image.width, rng), dtype=np.float32) / 255.0
    mask *= rng.choice((0.25, 0.5, 0.75, 1.0, 1.0, 1.0))
    source = np.asarray(image, dtype=np.float32)
    altered = np.asarray(_altered_copy(image, rng), dtype=np.float32)
    blended = source * (1 - mask[..., None]) + altered * mask[..., None]
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


# --- Upsampling traces ---------------------------------------------------------------------------------------

# Bilinear ×2 upsampling as a transposed convolution's 4-tap kernel: each output phase sums to 1.
_BILINEAR_TAPS = (0.25, 0.75, 0.75, 0.25)


def _unbalanced_taps(rng: random.Random) -> torch.Tensor:
    """Bilinear's taps each moved by a few per cent: the two output phases then gain a little differently, as a
    learned kernel's do, and the difference repeats every second pixel."""
    spread = rng.uniform(0.005, 0.08)
    return torch.tensor([tap + rng.gauss(0.0, spread) for tap in _BILINEAR_TAPS])


def upsampling_trace(image: Image.Image, rng: random.Random) -> Image.Image:
    """A real face crop (RGB, any size ≥ 4 px) averaged down 2×2 and upsampled back by zero insertion and an
    unbalanced separable kernel; an odd last row or column is dropped."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    height, width = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
    channels = torch.from_numpy(pixels[:height, :width]).permute(2, 0, 1).unsqueeze(1)  # 3 × 1 × H × W
    halved = F.avg_pool2d(channels, 2)
    kernel = torch.outer(_unbalanced_taps(rng), _unbalanced_taps(rng))[None, None]
    # One replicated pixel around the halved image keeps the border rows from seeing only half the kernel.
    upsampled = F.conv_transpose2d(F.pad(halved, (1, 1, 1, 1), mode="replicate"), kernel, stride=2, padding=1)
    traced = upsampled[:, 0, 2 : height + 2, 2 : width + 2].permute(1, 2, 0).numpy()
    return Image.fromarray(np.clip(np.rint(traced), 0, 255).astype(np.uint8))


# --- TAEF2 reconstructions ----------------------------------------------------------------------------------

TAEF2_DIR = Path(__file__).resolve().parents[4] / "shared" / "weights" / "taef2"
LATENT_CHANNELS = 32
TAEF2_GRID = 8  # sides must be a multiple of this


def _conv(n_in: int, n_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, bias=bias)


class _Block(nn.Module):
    """Three convs on a residual path; a "mid" block first adds a pooled 1×1 bottleneck of its input."""

    def __init__(self, mid: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(64, 64), nn.ReLU(), _conv(64, 64), nn.ReLU(), _conv(64, 64))
        self.pool = (
            nn.Sequential(
                nn.Conv2d(64, 256, 1, bias=False), nn.GroupNorm(4, 256), nn.ReLU(), nn.Conv2d(256, 64, 1, bias=False)
            )
            if mid
            else None
        )
        self.fuse = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        fused: torch.Tensor = self.fuse(self.conv(x) + x)
        return fused


class _Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


def taef2_encoder() -> nn.Sequential:
    def down() -> nn.Conv2d:
        return nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)

    return nn.Sequential(
        _conv(3, 64), _Block(),
        down(), _Block(), _Block(), _Block(),
        down(), _Block(), _Block(), _Block(),
        down(), _Block(mid=True), _Block(mid=True), _Block(mid=True),
        _conv(64, LATENT_CHANNELS),
    )  # fmt: skip


def taef2_decoder() -> nn.Sequential:
    def up() -> list[nn.Module]:
        return [nn.Upsample(scale_factor=2), _conv(64, 64, bias=False)]

    return nn.Sequential(
        _Clamp(), _conv(LATENT_CHANNELS, 64), nn.ReLU(), _Block(mid=True), _Block(mid=True), _Block(mid=True),
        *up(), _Block(), _Block(), _Block(),
        *up(), _Block(), _Block(), _Block(),
        *up(), _Block(),
        _conv(64, 3),
    )  # fmt: skip


class Taef2:
    """Encoder + decoder, loaded once from `weights_dir`; `reconstruct` passes one image through both."""

    def __init__(self, weights_dir: Path = TAEF2_DIR) -> None:
        self.encoder, self.decoder = taef2_encoder().eval(), taef2_decoder().eval()
        for module, name in ((self.encoder, "taef2_encoder.pth"), (self.decoder, "taef2_decoder.pth")):
            module.load_state_dict(torch.load(weights_dir / name, map_location="cpu", weights_only=True))

    @torch.inference_mode()
    def reconstruct(self, image: Image.Image) -> Image.Image:
        """`image` through the latent space and back, cropped to a multiple of 8 per side (top-left kept)."""
        width, height = (side - side % TAEF2_GRID for side in image.size)
        pixels = np.asarray(image.convert("RGB").crop((0, 0, width, height)), dtype=np.float32) / 255.0
        batch = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
        decoded = self.decoder(self.encoder(batch)).clamp(0, 1)[0].permute(1, 2, 0).numpy()
        return Image.fromarray(np.rint(decoded * 255).astype(np.uint8))


def jpeg_like(image: Image.Image, reference: Image.Image | None) -> Image.Image:
    """`image` JPEG-encoded with `reference`'s own quantisation tables when it is a JPEG (so a reconstruction
    carries its real's compression exactly), losslessly kept otherwise."""
    tables = getattr(reference, "quantization", None)
    if reference is None or reference.format != "JPEG" or not tables:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", qtables=tables, subsampling=_subsampling(reference))
    with Image.open(io.BytesIO(buffer.getvalue())) as encoded:
        return encoded.convert("RGB")


def _subsampling(reference: Image.Image) -> int:
    from PIL import JpegImagePlugin

    value = JpegImagePlugin.get_sampling(reference)
    return value if value >= 0 else 0


def blend_into_real(real: Image.Image, reconstruction: Image.Image, rng: random.Random) -> Image.Image:
    """`reconstruction`'s face pasted into its `real` through a soft face-shaped mask: the face carries the
    decoder's traces and, around it, a blending boundary between two compression histories — what a face swap or
    an inpainted face leaves, with the real's own pixels everywhere else."""
    real = real.convert("RGB")
    if reconstruction.size != real.size:
        reconstruction = reconstruction.resize(real.size, Image.Resampling.BICUBIC)
    mask = _face_mask(min(real.size), rng).resize(real.size, Image.Resampling.BILINEAR)
    weights = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    blended = (
        np.asarray(real, dtype=np.float32) * (1 - weights)
        + np.asarray(reconstruction.convert("RGB"), dtype=np.float32) * weights
    )
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


# --- Aligned fakes for a split ------------------------------------------------------------------------------

ALIGNED_SOURCE = "taef2"
# The same reconstructions blended into their reals (`blend_into_real`), a source of their own.
BLENDED_SOURCE = "taef2-blend"


def source_files_of_crops(crops_dir: Path) -> dict[Path, Path]:
    """Native crop file → the dataset image it was cut from, from the log `detecteur data faces` wrote."""
    import csv

    with (crops_dir / "faces.csv").open(newline="") as handle:
        return {(crops_dir / row["crop_path"]).resolve(): Path(row["source_path"]) for row in csv.DictReader(handle)}


def reconstruct_reals(
    records: list[ImageRecord],
    crops_dir: Path,
    out_dir: Path,
    per_source: int,
    seed: int = 0,
    split: str = "train",
) -> list[tuple[ImageRecord, Path]]:
    """TAEF2 reconstructions of up to `per_source` reals of each source in `split`, written as PNG under
    `out_dir/fake/`, each JPEG-encoded with the tables of the dataset image its real was cut from. Returns (real,
    reconstruction file) pairs; files already written are kept, so an interrupted run resumes."""
    from rich.progress import track

    from detecteur.config import AUTHENTIC

    rng = random.Random(seed)
    by_source: dict[str, list[ImageRecord]] = {}
    for record in records:
        if record.label == AUTHENTIC and record.split == split:
            by_source.setdefault(record.source, []).append(record)
    chosen = [
        r
        for source in sorted(by_source)
        for r in rng.sample(by_source[source], min(per_source, len(by_source[source])))
    ]
    originals = source_files_of_crops(crops_dir)
    autoencoder = Taef2()
    pairs = []
    (out_dir / "fake").mkdir(parents=True, exist_ok=True)
    for record in track(chosen, description="TAEF2 reconstructions"):
        target = out_dir / "fake" / f"{record.source}--{record.path.stem}.png"
        if not target.exists():
            with Image.open(record.path) as crop:
                reconstruction = autoencoder.reconstruct(crop)
            original = originals.get(record.path.resolve())
            reference = Image.open(original) if original else None
            try:
                reconstruction = jpeg_like(reconstruction, reference)
            finally:
                if reference is not None:
                    reference.close()
            reconstruction.save(target, format="PNG", compress_level=1)
        pairs.append((record, target))
    return pairs


def blend_reconstructions(pairs: list[tuple[ImageRecord, Path]], out_dir: Path, seed: int = 0) -> list[Path]:
    """Each (real, reconstruction file) pair's `blend_into_real`, written as PNG under `out_dir/fake/`; files
    already written are kept."""
    from rich.progress import track

    (out_dir / "fake").mkdir(parents=True, exist_ok=True)
    written = []
    for record, reconstruction_file in track(pairs, description="blending reconstructions into their reals"):
        target = out_dir / "fake" / reconstruction_file.name
        if not target.exists():
            # One generator per file, seeded by its name: the same blend whatever else is written alongside.
            rng = random.Random(f"{seed}:{reconstruction_file.name}")
            with Image.open(record.path) as real, Image.open(reconstruction_file) as reconstruction:
                blend_into_real(real, reconstruction, rng).save(target, format="PNG", compress_level=1)
        written.append(target)
    return written
