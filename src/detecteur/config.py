"""Typed configuration in one place: label order, the training recipe, and service settings.

Nothing here touches the file system at import time; `TrainConfig.from_toml` reads a recipe when asked.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The one label order, used by data, training, evaluation, the model file and the service.
# The reference implementation inverted this between trainer and API; never re-type it elsewhere.
AUTHENTIC = 0
SYNTHETIC = 1
LABEL_NAMES: tuple[str, str] = ("authentic", "synthetic")

# Files of a run directory (written by `train`, read by `evaluate`).
RUN_CONFIG_FILE = "config.json"
RUN_METRICS_FILE = "metrics.jsonl"
RUN_CHECKPOINT_FILE = "checkpoint.pt"
RUN_BEST_MODEL_FILE = "best.safetensors"  # best validation AUC, uncalibrated
RUN_CALIBRATED_MODEL_FILE = "model.safetensors"  # the same weights + temperature, threshold, test metrics
# A leave-one-generator-out sweep's fold runs go to runs/<this><recipe>/<fold>/ (`detecteur evaluate --logo`).
LOGO_RUNS_PREFIX = "logo-"

Arch = Literal["resnet18", "efficientnet_lite0", "efficientnet_lite2"]
# Blocks (stages) of every EfficientNet in `Arch`, stem not counted: what `frozen_stages` can freeze.
EFFICIENTNET_BLOCKS = 7
# What a model file holds: one network the factory builds, or an ensemble of them (`detecteur ensemble`): the
# average of its members' logits, calibrated as one model.
ENSEMBLE = "ensemble"
ModelArch = Arch | Literal["ensemble"]
# What turns the backbone's features into the two logits (`model_file.ModelMetadata.head`).
Head = Literal["classifier", "stage_statistics_probe"]
# How a recipe trains: the whole network by gradient descent, or only a linear probe on a frozen ImageNet backbone.
TrainingMethod = Literal["fine_tune", "frozen_probe"]
# What the model was trained to look at: the whole image resized, or the normalised face crop of
# `faces.normalise_face` (serving must then detect and crop faces the same way).
# `native_face_crop`: the face region at the image's own scale, never resampled down; the model sees windows of
# `input_size` cut from it (scored in several windows, averaged, when it is larger), so that the pixel-level
# traces generators leave survive.
Framing = Literal["whole_image", "face_crop", "native_face_crop"]
# What the files of a split hold: `canonical` crops already normalised to the input size (`detecteur data faces`),
# or `native` crops at their own scale (`detecteur data faces --native`), which a `face_crop` model gets
# normalised on loading, exactly as serving normalises them.
CropFiles = Literal["canonical", "native"]
# What a model's colour channels carry: "rgb", the picture normalised; "npr", its neighbouring-pixel residual
# (`preprocess.npr_residual`).
PixelSignal = Literal["rgb", "npr"]
# How the service runs the network: torch, or ONNX Runtime on the graph exported from the same model file.
BackendName = Literal["torch", "onnxruntime"]
# Static int8 quantisation (`detecteur quantise`): how many validation faces calibrate the activation ranges, and how
# many of the graph's first convolutions stay fp32. The stem alone sees the raw input (colour and the Laplacian
# channel, whose range int8 clips); for 0.9.0 it brings back 0.0046 of AUC for ~0.06 ms a window
# (docs/lean-serving.md, "Int8").
CALIBRATION_IMAGES = 128
FP32_CONVOLUTIONS = 1


class AugmentConfig(BaseModel):
    """Training-time augmentation strengths. `enabled = false` gives the serving transform exactly."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    crop_scale: tuple[float, float] = (0.6, 1.0)
    crop_ratio: tuple[float, float] = (0.9, 1.1)
    horizontal_flip: bool = True
    rotation_degrees: float = 10.0
    # torchvision's default for rotation is nearest-neighbour, which puts staircase edges into the Laplacian
    # channel of every rotated image — edges no served image has. Kept as the default so older recipes
    # reproduce; newer recipes say "bilinear".
    rotation_interpolation: Literal["nearest", "bilinear"] = "nearest"
    # Share of training images that get the resampling steps (resized crop, rotation). The others reach the
    # model with their pixels on the same grid as a served face crop, keeping the high-frequency traces intact.
    resampling_probability: float = Field(1.0, ge=0.0, le=1.0)
    # Variety that resamples nothing: the crop moves by up to this many whole 8×8 JPEG blocks each way (the
    # uncovered border is mirrored in), so pixels stay on the served grid and the normalised JPEG's block grid
    # keeps its phase. 0 (the default) leaves older recipes as they were.
    shift_blocks: int = Field(0, ge=0, le=4)
    color_jitter: float = 0.2
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (50, 95)
    blur_probability: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.5)
    # `native_face_crop` only: share of training faces shrunk by a random factor in `downscale_range` before the
    # degradations (a web thumbnail of the same face), identically for reals and fakes.
    downscale_probability: float = Field(0.0, ge=0.0, le=1.0)
    downscale_range: tuple[float, float] = (0.5, 1.0)

    @model_validator(mode="after")
    def _check_ranges(self) -> AugmentConfig:
        for name in ("crop_scale", "crop_ratio", "jpeg_quality", "blur_sigma", "downscale_range"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"augment.{name}: lower bound {low} is above upper bound {high}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError("augment.jpeg_quality must lie within 1..100")
        return self


class LogoConfig(BaseModel):
    """The fixed budget of one leave-one-generator-out fold (`detecteur evaluate --logo`): short runs that rank
    recipes, not the shipped model's training."""

    model_config = ConfigDict(extra="forbid")

    # Fake sources each held out in turn; the others train. Sources of made-from-reals fakes never are.
    held_out: list[str] = ["stylegan-ffhq", "stylegan2-tpdne", "sdfd-sd21", "lfw-faceswap", "inswapper-ffhq"]
    epochs: int = Field(2, ge=1)
    max_train_images: int | None = Field(3000, ge=2)
    max_eval_images: int | None = Field(600, ge=2)
    # Folds train on the whole recipe, the budget above ignored: for recipes whose full run is cheap (a frozen
    # probe's features are cached across folds), so the LOGO figures are those of the recipe itself.
    full_recipe: bool = False


class TrainConfig(BaseModel):
    """One training recipe; a TOML file under `configs/` holds a versioned copy of it."""

    model_config = ConfigDict(extra="forbid")

    arch: Arch = "efficientnet_lite0"
    # "frozen_probe" (`probe.fit_probe`): the ImageNet backbone stays as it is and a logistic regression is fitted
    # on its stage statistics (`model.StageStatisticsProbe`); needs in_chans = 3 and pretrained = true. Epochs,
    # learning rate and batch size do not apply; `probe_views`, `probe_c` and `self_blend_probability` do.
    method: TrainingMethod = "fine_tune"
    # frozen_probe: augmented views of each training image (features computed once and cached per view).
    probe_views: int = Field(2, ge=1, le=16)
    # frozen_probe: inverse L2 strength of the logistic regression on standardised features.
    probe_c: float = Field(0.001, gt=0)
    # frozen_probe: where computed features are kept, so that folds and reruns do not recompute them.
    feature_cache: Path = Path("runs/feature-cache")
    in_chans: Literal[3, 4] = 4
    # What the colour channels carry: the picture ("rgb") or its neighbouring-pixel residual ("npr",
    # `preprocess.npr_residual`), which keeps upsampling traces and drops most of the face's look.
    pixel_signal: PixelSignal = "rgb"
    framing: Framing = "whole_image"
    pretrained: bool = True
    # A fine-tuning stage: start from this saved model's weights (same arch, channels and input size) instead of
    # ImageNet's; the run records its sha256.
    init_weights: Path | None = None
    # The sha256 of the `init_weights` file, checked before training starts from it: released models leave the
    # checkout (the recipe's comment names the commit that still holds the file), so the pin says which file it is.
    init_weights_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    # The stem and this many of an EfficientNet's first blocks keep their starting weights and BatchNorm statistics
    # (`networks.freeze_leading_stages`): with `init_weights`, what the starting model learned at the pixel level
    # stays while the later layers learn the new fakes. 0 = every layer trains.
    frozen_stages: int = Field(0, ge=0)
    input_size: int = Field(224, ge=32, le=1024)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-4, gt=0)
    # "cosine": the learning rate falls from `lr` (first epoch) towards `min_lr` (after the last one), set at
    # the start of each epoch from its number alone, so that a resumed run follows the same schedule.
    lr_schedule: Literal["constant", "cosine"] = "constant"
    min_lr: float = Field(1e-6, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    # Missing a fake costs five times missing a real: index 0 = authentic, 1 = synthetic.
    class_weights: tuple[float, float] = (1.0, 5.0)
    # Calibration's threshold rule: Youden's J on validation, raised where needed so that no real source has more
    # than this share of its validation faces called synthetic (a reviewer's queue is set by the worst-served
    # source, not the pooled average). None = Youden's J alone. Read at evaluation; a finished run may change it.
    max_real_source_fpr: float | None = Field(None, gt=0.0, lt=1.0)
    early_stopping_patience: int = Field(3, ge=1)
    seed: int = 0
    num_workers: int = Field(2, ge=0)
    mixed_precision: bool = True
    # Caps for reduced-size runs (smoke tests, quick checks); None = the whole split.
    max_train_images: int | None = Field(None, ge=2)
    max_eval_images: int | None = Field(None, ge=2)
    # Re-weight training sampling so that sharpness alone cannot tell the classes apart (see
    # `sampling.sharpness_balancing_weights`): needed when sources of different sharpness are mixed.
    balance_sharpness: bool = False
    # Give every (source, class) group the same share of draws (`sampling.source_balancing_weights`), before any
    # sharpness balancing: otherwise the largest sources set what the model spends its epochs on.
    balance_sources: bool = False
    # With `balance_sources`: a source's (source, class) groups get this many shares of draws each instead of one,
    # e.g. {"taef2" = 3} for the made-from-reals fakes. Empty = every group one share.
    source_shares: dict[str, Annotated[float, Field(gt=0)]] = {}
    # Fake source -> the real source whose look (framing, size, JPEG history) it shares, e.g. StyleGAN2 faces are
    # FFHQ-aligned crops like FFHQ's reals. The reals of each look are then drawn as often as its fakes
    # (`sampling.look_balancing_weights`), so that a look says nothing about the label. Empty = off.
    look_alike_reals: dict[str, str] = {}
    crop_files: CropFiles = "canonical"
    # Sources left out of training and validation (leave-one-generator-out folds add theirs).
    exclude_sources: list[str] = []
    # Share of the real faces drawn that become self-blended fakes (`synthesis.self_blend`) for that draw.
    self_blend_probability: float = Field(0.0, ge=0.0, le=1.0)
    # The same share for the real sources whose look no fake in training shares (neither their own fakes nor a
    # `look_alike_reals` source; `sampling.reals_without_look_alike_fakes`), e.g. LFW when its swaps are held out:
    # their look would otherwise only ever mean "real". None = `self_blend_probability`.
    self_blend_probability_unmatched: float | None = Field(None, ge=0.0, le=1.0)
    # Share of the real faces drawn (and not self-blended) that become upsampling-trace fakes
    # (`synthesis.upsampling_trace`) for that draw.
    upsampling_trace_probability: float = Field(0.0, ge=0.0, le=1.0)
    augment: AugmentConfig = AugmentConfig()
    logo: LogoConfig = LogoConfig()

    @model_validator(mode="after")
    def _check_method(self) -> TrainConfig:
        if self.method == "frozen_probe" and (
            self.in_chans != 3 or self.pixel_signal != "rgb" or not self.pretrained or self.init_weights
        ):
            raise ValueError(
                "method frozen_probe reads an ImageNet backbone: in_chans = 3, pixel_signal rgb, pretrained = true, "
                "no init_weights"
            )
        if self.source_shares and not self.balance_sources:
            raise ValueError("source_shares are shares of source balancing: set balance_sources = true")
        if self.method == "frozen_probe" and self.self_blend_probability_unmatched is not None:
            raise ValueError("method frozen_probe takes self_blend_probability only, not per look")
        if self.frozen_stages and not self.arch.startswith("efficientnet"):
            raise ValueError("frozen_stages applies to the EfficientNet backbones only")
        if self.frozen_stages > EFFICIENTNET_BLOCKS:
            raise ValueError(f"frozen_stages: an EfficientNet has {EFFICIENTNET_BLOCKS} blocks to freeze")
        if self.method == "frozen_probe" and self.upsampling_trace_probability:
            raise ValueError("method frozen_probe makes self-blended fakes only, not upsampling traces")
        if self.method == "frozen_probe" and self.framing != "native_face_crop":
            raise ValueError("method frozen_probe is implemented for framing native_face_crop")
        return self

    @classmethod
    def from_toml(cls, path: Path) -> TrainConfig:
        with path.open("rb") as handle:
            return cls.model_validate(tomllib.load(handle))


class Settings(BaseSettings):
    """Service and CLI settings, overridable with `DETECTEUR_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DETECTEUR_", extra="ignore")

    model_path: Path = Path("models/detecteur-efficientnet_lite0-0.11.0.safetensors")
    device: str = "cpu"
    batch_size: int = Field(32, ge=1)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Images judged at once, each in a worker thread, so the event loop never blocks on the model. With batching
    # (`batch_window_ms` > 0) a thread mostly waits for the shared forward pass, and more of them make larger
    # batches; without it, each runs the network on cores / inference_threads cores: set 2 on 2 cores then.
    inference_threads: int = Field(8, ge=1)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_pixels: int = Field(40_000_000, ge=10_000)
    max_files: int = Field(8, ge=1)
    # Origins allowed to call the API from a browser: the dashboard's own, and the seed's dev client.
    cors_origins: list[str] = ["http://127.0.0.1:8000", "http://localhost:8000", "http://localhost:3000"]
    # Video (`POST /v1/predict/video`, `detecteur predict clip.mp4`): frames are sampled uniformly at
    # `video_sample_fps`, spread wider when a clip would give more than `video_max_frames`.
    video_sample_fps: float = Field(2.0, gt=0, le=60)
    video_max_frames: int = Field(60, ge=1)
    video_max_seconds: float = Field(120.0, gt=0)
    video_max_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    # The dashboard's static export (`cd frontend && npm ci && npm run build`), served at `/` when it exists.
    dashboard_dir: Path = Path("frontend/out")
    # How the network runs; the default is the faster one measured on 2 cores (benchmarks/README.md).
    backend: BackendName = "onnxruntime"
    # The exported graph for the onnxruntime backend; None: exported once per model file into
    # $XDG_CACHE_HOME/detecteur (~/.cache/detecteur), re-exported when the model file changes.
    onnx_path: Path | None = None
    # Intra-op threads of one inference; None: the cores shared out among the inference threads, so concurrent
    # requests never oversubscribe the CPU.
    model_threads: int | None = Field(None, ge=1)

    # Batching across requests (`batching`, ONNX Runtime only): the windows of concurrent requests run as one
    # forward pass of up to `batch_size` windows, the worker waiting at most this long for requests already being
    # judged (a lone request never waits). 0 = off: each inference thread runs the network itself.
    batch_window_ms: float = Field(2.0, ge=0, le=100)
    # Which graph ONNX Runtime runs (`quantise`): "auto" serves the int8 graph `detecteur quantise` wrote beside the
    # model file only when it passed its gates (AUC, ECE, speed) for this very file; "int8" insists; "fp32" never.
    precision: Literal["auto", "fp32", "int8"] = "auto"

    @property
    def threads_per_inference(self) -> int:
        """Intra-op threads of one forward pass: with batching one worker runs them all, so it gets every core."""
        cores = len(os.sched_getaffinity(0))
        if self.batch_window_ms > 0 and self.backend == "onnxruntime":
            return self.model_threads or cores
        return self.model_threads or max(1, cores // self.inference_threads)

    # The stability check (`engine.degrade`): each face is also scored on its degraded copies
    # (`engine.STABILITY_VIEWS`: shifted 4 px), in the same batch, and a decided verdict that does not hold becomes
    # "uncertain". Costs the face's windows once more per view (benchmarks/stability_latency.py); False turns it
    # off for speed. None: the margin chosen on validation data (`engine.STABILITY_MARGIN`).
    stability_check: bool = True
    stability_margin: float | None = Field(None, gt=0, le=1)
    # PEM file of C2PA trust anchors: Content Credentials whose certificate chains to one of them are `valid`;
    # any other intact credential is `untrusted`. None: nothing is trusted.
    c2pa_trust_anchors: Path | None = None

    # Images waiting for an inference thread, beyond those being judged; past it: 503 + Retry-After at once.
    max_queue: int = Field(32, ge=0)
    # A request still unanswered after this long (upload included) gets 408 (body still arriving) or 503.
    request_timeout_seconds: float = Field(60.0, gt=0)
    # DETECTEUR_API_KEYS="key1,key2": the prediction, model and metrics routes then need one of them in X-API-Key
    # or `Authorization: Bearer`; /health, the dashboard and the docs stay open. Empty: no authentication.
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    # Requests a minute per API key (per client address without keys) on those routes, in bursts of up to
    # `rate_limit_burst`; 0 = no rate limit.
    rate_limit_per_minute: float = Field(0.0, ge=0)
    rate_limit_burst: int = Field(10, ge=1)

    # Cases store (`detecteur.cases`): every judged image or video is recorded (sha256, size, type, the full
    # response, model version, time, the API key's *name*) for later review. On by default, in an SQLite file
    # under `cases_dir`; DETECTEUR_DATABASE_URL (e.g. postgresql+psycopg://user:pass@host/db) points it at a
    # shared PostgreSQL instead. `cases = false` records nothing.
    cases: bool = True
    database_url: SecretStr | None = None
    cases_dir: Path = Path("var/cases")
    # PostgreSQL only. True (the default): a case's commit has reached the disk before the answer leaves — it
    # survives a crash of the service, of PostgreSQL and of the machine. False: the commit is acknowledged once in
    # PostgreSQL's WAL buffers (`synchronous_commit = off` for this service's sessions): it is visible to every
    # reader and survives a SIGKILL of the service, but a crash of the PostgreSQL server or of its machine can
    # lose the last ~0.6 s of cases (3 × wal_writer_delay), never corrupt the database. That is the guarantee
    # SQLite's WAL + synchronous=NORMAL gives by default; it saves one disk flush per check.
    cases_synchronous_commit: bool = True
    # Privacy: the uploaded bytes are NOT kept unless `store_images` is set, nor a thumbnail unless
    # `case_thumbnails` is; both are erased `image_retention_days` after the check, the record itself is kept.
    store_images: bool = False
    case_thumbnails: bool = False
    image_retention_days: float = Field(30.0, gt=0)
    # `POST /v1/admin/reload` (swap in a new model without a restart) needs this key in `X-Admin-Key`; unset, the
    # route answers 404 and only SIGHUP reloads.
    admin_key: SecretStr | None = None
    # SIGTERM drains: /health and every new request answer 503 + Retry-After at once; requests already accepted
    # finish. The server keeps answering for at least `drain_seconds` (time for a load balancer to see /health
    # fail) and stops when the last accepted request is answered, or after `drain_timeout_seconds` at most.
    drain_seconds: float = Field(0.0, ge=0)
    drain_timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_api_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @property
    def named_api_keys(self) -> list[tuple[str, str]]:
        """`(name, key)` per API key. A key given as `name:key` is called `name` (letters, digits, `._-`, up to
        64); any other key is `key-<n>`, its 1-based position in the list. Only names are ever recorded."""
        return [split_api_key(secret.get_secret_value(), index) for index, secret in enumerate(self.api_keys, 1)]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.cases_dir / 'cases.sqlite3'}"


_KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def split_api_key(value: str, index: int) -> tuple[str, str]:
    name, separator, key = value.partition(":")
    if separator and key and _KEY_NAME.fullmatch(name):
        return name, key
    return f"key-{index}", value
