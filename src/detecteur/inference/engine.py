"""`Detector`: a model file loaded once, judging images with the same face crop and `preprocess` as
training. With the ONNX Runtime backend nothing here imports torch (docs/lean-serving.md): torch loads for the torch
backend, and for Grad-CAM on the first `explain`."""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image

from detecteur.config import BackendName, Settings
from detecteur.inference.batching import announce_request, batched_backend
from detecteur.inference.windows import region_logits
from detecteur.inputs.faces import FaceBox, FaceFinder, framed_windows, native_face_crop
from detecteur.inputs.image_source import ImageLimits, ImageSource, open_source
from detecteur.model.backends import Backend, OnnxRuntimeBackend, TorchBackend
from detecteur.model.export import graph_for_serving
from detecteur.model.file import ModelFileError, ModelMetadata, read_metadata
from detecteur.model.probabilities import fake_probabilities
from detecteur.model.quantise import Precision, serving_graph
from detecteur.model.serving_session import release_freed_memory

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

# The clone this module was imported from (src/detecteur/inference/engine.py → the repository root), where
# `Detector.load` also looks for a relative model path, so it finds the shipped model from any working directory.
CHECKOUT_ROOT = Path(__file__).resolve().parents[3]

VerdictLabel = Literal["authentic", "borderline", "synthetic", "uncertain"]

# The stability check scores each face once more, on ONE degraded copy (`STABILITY_VIEWS`): one extra model window
# per face instead of three, the latency budget (benchmarks/stability_latency.py). scripts/stability_margin.py
# compares every rule on `VIEWS` on validation faces; the 4 px shift is the one-window rule whose decided faces
# were most often right (docs/stability-margin.json: `best_one_window_rule_on_validation`).
STABILITY_VIEWS: tuple[str, ...] = ("shift_4px",)
DEGRADATIONS = STABILITY_VIEWS  # the name the API docs and older callers use
# A decided face whose fake probability moves by more than this between the original and its degraded copy (or
# whose copy lands on the other side of the threshold) is `uncertain`. Chosen on validation faces with
# scripts/stability_margin.py (docs/stability-margin.json, model card); `Settings.stability_margin` overrides it.
STABILITY_MARGIN = 0.3
EXPLAIN_NEEDS_TORCH = "Grad-CAM heatmaps need torch: install the `train` extra (pip install 'detecteur[train]')"


@dataclass(frozen=True)
class Verdict:
    fake_probability: float  # calibrated with the model file's logit adjustment and temperature
    verdict: VerdictLabel
    confidence: float  # max(softmax): the probability of the more likely class


@dataclass(frozen=True)
class Stability:
    """The face's fake probability under each degraded view, and whether its verdict held across them."""

    probabilities: dict[str, float]
    spread: float  # max - min over the original and the degraded copies
    straddles_threshold: bool  # some copies at or above the threshold, some below
    stable: bool


@dataclass(frozen=True)
class FaceVerdict:
    """One judged region: a detected face, or the whole image when `box` is None. With the stability check on,
    `verdict.verdict` is "uncertain" when a decided verdict did not hold under `STABILITY_VIEWS`."""

    box: FaceBox | None
    verdict: Verdict
    heatmap_png: bytes | None = None  # Grad-CAM overlay on the crop, when asked for
    stability: Stability | None = None  # None when the check was off


@dataclass(frozen=True)
class ImageVerdict:
    faces: list[FaceVerdict]
    face_detected: bool
    faces_ms: float = 0.0  # face detection and cropping
    model_ms: float = 0.0  # preprocessing and the model

    @property
    def most_suspicious(self) -> FaceVerdict:
        """The image-level verdict: an image is as suspicious as its most suspicious face."""
        return max(self.faces, key=lambda face: face.verdict.fake_probability)


def decide(fake_probability: float, metadata: ModelMetadata) -> Verdict:
    """Verdict from a calibrated fake probability, with the threshold and band the model file carries."""
    low, high = metadata.borderline_band
    label: VerdictLabel
    if low <= fake_probability <= high:
        label = "borderline"
    elif fake_probability >= metadata.threshold:
        label = "synthetic"
    else:
        label = "authentic"
    return Verdict(fake_probability, label, max(fake_probability, 1.0 - fake_probability))


def jpeg_q75(crop: Image.Image) -> Image.Image:
    """Re-saved as JPEG at quality 75."""
    buffer = io.BytesIO()
    crop.convert("RGB").save(buffer, format="JPEG", quality=75)
    buffer.seek(0)
    with Image.open(buffer) as reencoded:
        return reencoded.convert("RGB")


def shrink_075(crop: Image.Image) -> Image.Image:
    """Shrunk to 0.75× (the model's resize brings it back)."""
    width, height = crop.size
    return crop.resize((max(1, round(width * 0.75)), max(1, round(height * 0.75))), Image.Resampling.BILINEAR)


def shift_4px(crop: Image.Image) -> Image.Image:
    """Moved 4 px right and down, the border replicated."""
    width, height = crop.size
    pixels = np.asarray(crop.convert("RGB"))
    shifted = np.pad(pixels, ((4, 0), (4, 0), (0, 0)), mode="edge")[:height, :width]
    return Image.fromarray(np.ascontiguousarray(shifted))


# Every view the stability check knows, by the name the API reports it under.
VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q75": jpeg_q75,
    "resize_0.75": shrink_075,
    "shift_4px": shift_4px,
    "combined": lambda crop: jpeg_q75(shrink_075(shift_4px(crop))),  # shifted, shrunk, then re-saved as JPEG q75
}


def degrade(crop: Image.Image, views: Sequence[str] = STABILITY_VIEWS) -> list[Image.Image]:
    """The copies of a model-ready crop the stability check scores, one per name in `views` (see `VIEWS`).
    Deterministic: the same crop always gives the same copies."""
    return [VIEWS[name](crop) for name in views]


def stability_of(
    verdict: Verdict,
    degraded: Sequence[float],
    metadata: ModelMetadata,
    margin: float,
    views: Sequence[str] = STABILITY_VIEWS,
) -> tuple[Verdict, Stability]:
    """The stability rule: a face is stable when its original and degraded probabilities sit on one side of the
    threshold and spread by at most `margin`. An unstable decided verdict becomes "uncertain" (its probability and
    confidence are the original's); a borderline one stays borderline, which already decides nothing."""
    everything = [verdict.fake_probability, *degraded]
    spread = max(everything) - min(everything)
    above = [p >= metadata.threshold for p in everything]
    straddles = any(above) and not all(above)
    stable = not straddles and spread <= margin
    stability = Stability(dict(zip(views, degraded, strict=True)), spread, straddles, stable)
    if not stable and verdict.verdict in ("authentic", "synthetic"):
        verdict = Verdict(verdict.fake_probability, "uncertain", verdict.confidence)
    return verdict, stability


class Detector:
    """Loads a model file once. `judge` finds and judges the faces of an image; `predict` scores model-ready
    crops in batches.

    `backend` runs the network with torch or with ONNX Runtime on the graph exported from the same file
    (`onnx_path`, default: exported once into `export.default_cache_dir()`, see `export.graph_for_serving`), each
    fed by its twin of `preprocess`. `threads` caps the intra-op threads of one inference (None: leave torch's
    default). Grad-CAM needs gradients, so `explain` always uses the torch model, loaded on first use under ONNX
    Runtime (torch is imported then, not before).
    `limits` bound the files and bytes `judge` decodes (default: the service's default upload limits)."""

    def __init__(
        self,
        model_path: Path,
        device: str = "cpu",
        batch_size: int = 32,
        face_finder: FaceFinder | None = None,
        backend: BackendName = "torch",
        onnx_path: Path | None = None,
        threads: int | None = None,
        limits: ImageLimits | None = None,
        batch_window_ms: float = 0.0,
        precision: Precision = "fp32",
    ) -> None:
        self.model_path = model_path
        self.limits = limits or ImageLimits()
        self.device_name = device
        self.threads = threads
        self.precision = precision
        self._torch_model: nn.Module | None = None
        self._torch_lock = threading.Lock()
        self.backend: Backend
        if backend == "onnxruntime" and device.split(":")[0] != "cpu":
            log.warning("the onnxruntime backend runs on the CPU only; running on %s with torch", device)
            backend = "torch"
        if backend == "onnxruntime":
            self.metadata = read_metadata(model_path)
            self.backend = self._onnx_runtime_backend(onnx_path)
        else:
            self._torch_model, self.metadata = self._load_torch_model()
            self.backend = TorchBackend(self._torch_model, self.device)
        self.batch_size = batch_size
        self.backend = batched_backend(self.backend, batch_window_ms, batch_size)
        self.face_finder = face_finder
        # Both face framings judge each detected face; only a whole-image model does without the finder.
        if self.metadata.framing != "whole_image" and face_finder is None:
            self.face_finder = FaceFinder()

    @classmethod
    def load(cls, model_path: str | os.PathLike[str] | None = None, *, backend: BackendName = "torch") -> Detector:
        """The shipped model (`Settings().model_path`, which `DETECTEUR_MODEL_PATH` overrides), or `model_path`,
        on `Settings().device`, with the service's upload limits for the paths and bytes `judge` decodes.

        A relative path is looked up in the working directory, then in the checkout this package runs from.
        The default backend is torch, the reference one: nothing is exported or cached on disk, and `explain`
        needs no second copy of the model (the service defaults to ONNX Runtime for speed)."""
        settings = Settings()
        return cls(
            _locate_model(Path(model_path) if model_path is not None else settings.model_path),
            device=settings.device,
            batch_size=settings.batch_size,
            backend=backend,
            limits=ImageLimits(max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels),
        )

    def regions(self, image: Image.Image) -> tuple[list[tuple[FaceBox | None, Image.Image]], bool]:
        """The crops this model judges in `image`, each with its face box, and whether a face was found.
        A whole-image model judges the image itself; a face-crop model every detected face, or the whole
        image framed the same way when no face is found."""
        if self.face_finder is None or self.metadata.framing == "whole_image":
            return [(None, image)], False
        boxes = self.face_finder.detect(image)
        if not boxes:
            return [(None, native_face_crop(image, None))], False
        return [(box, native_face_crop(image, box)) for box in boxes], True

    def _onnx_runtime_backend(self, onnx_path: Path | None) -> Backend:
        """ONNX Runtime on this model file's graph; torch when the graph cannot be had and torch is installed
        (a read-only cache or an exporter failure costs speed, not the service)."""
        try:
            graph = serving_graph(self.model_path, graph_for_serving(self.model_path, onnx_path), self.precision)
            return OnnxRuntimeBackend(graph, self.threads or 1)
        except (ModelFileError, OSError) as error:
            if find_spec("torch") is None:
                raise
            log.warning("onnxruntime backend unavailable (%s); running %s with torch", error, self.model_path)
            return TorchBackend(self.model, self.device)

    @property
    def device(self) -> torch.device:
        """The torch device (imports torch: only the torch backend and Grad-CAM ask for it)."""
        import torch

        return torch.device(self.device_name)

    def _load_torch_model(self) -> tuple[nn.Module, ModelMetadata]:
        """The torch model and its metadata, with the intra-op threads capped at `threads` (process-wide)."""
        import torch

        from detecteur.model.networks import load_model

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        return load_model(self.model_path, self.device)

    @property
    def model(self) -> nn.Module:
        """The torch model (loaded on first use when the backend is ONNX Runtime)."""
        with self._torch_lock:
            if self._torch_model is None:
                log.info("loading the torch model of %s for Grad-CAM", self.model_path)
                self._torch_model, _ = self._load_torch_model()
            return self._torch_model

    def region_logits(self, regions: Sequence[Image.Image]) -> np.ndarray:
        """N×2 logits, one row per region (see `regions`), windows averaged (`windows.region_logits`)."""
        return region_logits(self.backend, self.metadata.input_spec, self.metadata.framing, regions, self.batch_size)

    def predict(self, regions: Sequence[Image.Image]) -> list[Verdict]:
        """Calibrated verdicts, one per region (a native face crop, or the image for a whole-image model)."""
        if not regions:
            return []
        logits = self.region_logits(regions)
        probabilities = fake_probabilities(logits, self.metadata.temperature, self.metadata.logit_adjustment)
        return [decide(float(p), self.metadata) for p in probabilities]

    @property
    def can_explain(self) -> bool:
        """Whether `explain` can run here: Grad-CAM needs torch, which a `detecteur[serve]` install lacks."""
        return find_spec("torch") is not None

    def explain(self, region: Image.Image) -> bytes:
        """Grad-CAM overlay (PNG) of the evidence for the model's verdict in one region (its first window)."""
        from detecteur.inference.explain import grad_cam, overlay_png
        from detecteur.inputs.preprocess import preprocess

        window = framed_windows(region, self.metadata.framing, self.metadata.input_size)[0]
        model_input = preprocess(window, self.metadata.input_spec).to(self.device)
        return overlay_png(window.resize((self.metadata.input_size,) * 2), grad_cam(self.model, model_input))

    def judge(
        self,
        image: ImageSource,
        explain: bool = False,
        stability: bool = False,
        margin: float = STABILITY_MARGIN,
        views: Sequence[str] = STABILITY_VIEWS,
    ) -> ImageVerdict:
        """Verdicts for every face in `image` (see `regions`); with `explain`, a heatmap for each. With
        `stability`, each face is also scored under `views` in the same batch (see `stability_of`).
        `image` is a PIL image, or a file path or bytes decoded within `limits` (see `image_source.open_source`
        for what bad input raises)."""
        decoded = open_source(image, self.limits)  # before the clock: decoding is not face time
        with announce_request(self.backend):  # batching waits (a few ms at most) for this image's faces
            return self._judge_decoded(decoded, explain, stability, margin, views)

    def _judge_decoded(
        self, decoded: Image.Image, explain: bool, stability: bool, margin: float, views: Sequence[str]
    ) -> ImageVerdict:
        started = time.perf_counter()
        regions, face_detected = self.regions(decoded)
        cropped = time.perf_counter()
        crops = [crop for _, crop in regions]
        copies = [copy for crop in crops for copy in degrade(crop, views)] if stability else []
        scored = self.predict(crops + copies)
        verdicts = scored[: len(crops)]
        checks: list[Stability | None] = [None] * len(crops)
        if stability:
            n = len(views)
            for index, verdict in enumerate(scored[: len(crops)]):
                degraded = scored[len(crops) + index * n : len(crops) + (index + 1) * n]
                verdicts[index], checks[index] = stability_of(
                    verdict, [d.fake_probability for d in degraded], self.metadata, margin, views
                )
        heatmaps = [self.explain(crop) if explain else None for _, crop in regions]
        finished = time.perf_counter()
        return ImageVerdict(
            [
                FaceVerdict(box, verdict, heatmap, check)
                for (box, _), verdict, heatmap, check in zip(regions, verdicts, heatmaps, checks, strict=True)
            ],
            face_detected,
            faces_ms=(cropped - started) * 1000,
            model_ms=(finished - cropped) * 1000,
        )

    def warm_up(self) -> None:
        """One throw-away inference so the first request does not pay for lazy initialisation."""
        size = self.metadata.input_size
        self.judge(Image.new("RGB", (size, size), (128, 128, 128)))
        release_freed_memory()  # the heap's leftovers of loading and optimising the graph go back to the system


def _locate_model(path: Path) -> Path:
    """`path` itself when it exists, else the same relative path inside the checkout; a clear error if neither."""
    if path.exists():
        return path
    if not path.is_absolute() and (CHECKOUT_ROOT / path).exists():
        return CHECKOUT_ROOT / path
    where = str(path) if path.is_absolute() else f"{path} (looked in {Path.cwd()} and {CHECKOUT_ROOT})"
    raise ModelFileError(f"model file not found: {where}; pass its path or set DETECTEUR_MODEL_PATH")
