"""`detecteur` command line: serve, predict, export, score here; the training path's commands (data, train,
evaluate, ship, ensemble, history) in training/commands.py. Thin: every command calls library code."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from detecteur.config import CALIBRATION_IMAGES, FP32_CONVOLUTIONS, Settings
from detecteur.training.commands import register as register_training_commands

if TYPE_CHECKING:
    from detecteur.inference.engine import ImageVerdict
    from detecteur.inference.provenance import Provenance
    from detecteur.inference.video import VideoVerdict

app = typer.Typer(no_args_is_help=True, help="Détecteur: is this face authentic or synthetic?")
console = Console()
errors = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=2)


@app.callback()
def _logging(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    model: Annotated[Path | None, typer.Option(help="Model file (default: the shipped model).")] = None,
) -> None:
    """Run the HTTP API (and, once built, the dashboard) with the model loaded once."""
    from detecteur.api.server import serve as run_server
    from detecteur.model.file import ModelFileError, verify_model_file

    overrides = {"host": host, "port": port, "model_path": model}
    settings = Settings().model_copy(update={key: value for key, value in overrides.items() if value is not None})
    # A damaged or tampered model file stops the service here; a missing one is served as 503 by /health.
    if settings.model_path.exists():
        try:
            verify_model_file(settings.model_path)
        except ModelFileError as error:
            raise fail(f"refusing to serve: {error}") from error
    console.print(f"serving {settings.model_path} on http://{settings.host}:{settings.port} (docs at /docs)")
    run_server(settings)


# train, evaluate, ship, ensemble, history and data: the recipe -> model path, with the training code.
register_training_commands(app)


def _image_result(path: Path, judged: ImageVerdict, provenance: Provenance | None = None) -> dict[str, object]:
    from detecteur.api.responses import face_results
    from detecteur.inference.evidence import evidence_report

    top = judged.most_suspicious.verdict
    result: dict[str, object] = {
        "image": str(path),
        "verdict": top.verdict,
        "fake_probability": top.fake_probability,
        "confidence": top.confidence,
        "face_detected": judged.face_detected,
        # The API's per-face records; a heatmap is the dashboard's, not the terminal's.
        "faces": [face.model_dump(exclude={"heatmap_png"}) for face in face_results(judged)],
    }
    if provenance is not None:
        result["evidence"] = evidence_report(top, judged.face_detected, provenance)
    return result


def _image_evidence_text(result: dict[str, object]) -> str:
    """The evidence lines of one image under the table: the summary first, then each line."""
    evidence = result["evidence"]
    assert isinstance(evidence, dict)
    lines = [f"[bold]{result['image']}[/]: {evidence['summary']} [dim](strength: {evidence['strength']})[/]"]
    for line in evidence["lines"]:
        lines.append(f"  • {line['source'].replace('_', ' ')} ({line['strength']}): {line['statement']}")
    return "\n".join(lines)


def _video_result(path: Path, judged: VideoVerdict) -> dict[str, object]:
    from detecteur.api.responses import track_results

    top = judged.most_suspicious
    return {
        "video": str(path),
        "verdict": top.verdict.verdict,
        "fake_probability": top.mean_fake_probability,
        "confidence": top.verdict.confidence,
        "face_detected": judged.face_detected,
        "most_suspicious_track": top.track_id,
        "duration_s": judged.info.duration_s,
        "frames_sampled": judged.info.frames_sampled,
        # The API's per-track records, without the face in each frame.
        "tracks": [track.model_dump(exclude={"faces"}) for track in track_results(judged)],
    }


def _video_table(result: dict[str, object], caption: str) -> Table:
    """One row per track (per person followed across the sampled frames)."""
    if result["face_detected"]:
        verdict = f"{result['verdict']} (track {result['most_suspicious_track']} is the most suspicious)"
    else:
        verdict = f"{result['verdict']} (no face found: whole frames judged)"
    table = Table(
        title=f"{result['video']}: {verdict}\n{result['frames_sampled']} frames sampled over "
        f"{result['duration_s']:.1f} s",
        caption=caption,
    )
    for column in ("track", "frames", "seen (s)", "mean fake p", "≥ threshold", "verdict"):
        table.add_column(column)
    tracks = result["tracks"]
    assert isinstance(tracks, list)
    for track in tracks:
        table.add_row(
            str(track["track_id"]) if result["face_detected"] else "—",
            str(track["frames_seen"]),
            f"{track['first_s']:.1f}–{track['last_s']:.1f}",
            f"{track['fake_probability']:.3f}",
            f"{track['fraction_over_threshold']:.0%}",
            str(track["verdict"]),
        )
    return table


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image or video (MP4, MOV, WebM, AVI) files to judge.")],
    model: Annotated[Path | None, typer.Option(help="Model file (default: the shipped model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    stability: Annotated[
        bool | None,
        typer.Option(
            "--stability/--no-stability", help="Re-score each face under mild degradations (default: the setting)."
        ),
    ] = None,
) -> None:
    """Judge each image: per face (or the whole image) a calibrated fake probability, verdict and confidence
    ("uncertain" when the verdict does not hold under mild re-compression, resizing or a shift); the image's
    verdict is its most suspicious face. Each image also gets its evidence lines — pixel model, Content
    Credentials (C2PA), file metadata — and a summary that claims no more than the strongest line. A video gets
    one row per person followed across its sampled frames; its verdict is its most suspicious track."""
    from detecteur.inference.engine import STABILITY_MARGIN, Detector
    from detecteur.inference.provenance import load_trust_anchors, read_provenance
    from detecteur.inputs.decode import FileTooLarge, ImageError, decode_image
    from detecteur.model.file import ModelFileError

    settings = Settings()
    try:
        detector = Detector(
            model or settings.model_path,
            device=settings.device,
            backend=settings.backend,
            onnx_path=settings.onnx_path,
            precision=settings.precision,
            # One image at a time: every core goes to each inference.
            threads=settings.model_threads or len(os.sched_getaffinity(0)),
        )
    except ModelFileError as error:
        raise fail(str(error)) from error
    from detecteur.inference.video import judge_video
    from detecteur.inputs.video_frames import VideoError, VideoLimits, is_video_file

    video_paths = [path for path in images if is_video_file(path)]
    images = [path for path in images if path not in video_paths]
    videos: list[dict[str, object]] = []
    for path in video_paths:
        try:
            videos.append(_video_result(path, judge_video(path, detector, VideoLimits.from_settings(settings))))
        except (OSError, VideoError) as error:
            videos.append({"video": str(path), "error": f"cannot read video: {error}"})
    results: list[dict[str, object]] = []
    check = settings.stability_check if stability is None else stability
    margin = settings.stability_margin or STABILITY_MARGIN
    trust_anchors = load_trust_anchors(settings.c2pa_trust_anchors)
    for path in images:
        try:
            data = path.read_bytes()
            if len(data) > settings.max_upload_bytes:
                raise FileTooLarge(f"file is {len(data)} bytes; the limit is {settings.max_upload_bytes}")
            # The file's own evidence is read from its bytes before decoding, as the service does.
            provenance = read_provenance(data, trust_anchors)
            image = decode_image(data, max_pixels=settings.max_pixels, max_bytes=settings.max_upload_bytes).image
            results.append(_image_result(path, detector.judge(image, stability=check, margin=margin), provenance))
        except (OSError, ImageError) as error:
            results.append({"image": str(path), "error": f"cannot read image: {error}"})
    if as_json:
        console.print_json(json.dumps({"model": detector.metadata.version, "results": results, "videos": videos}))
    elif images or not videos:
        table = Table(title=f"model {detector.metadata.version} (threshold {detector.metadata.threshold:.3f})")
        for column in ("image", "verdict", "fake probability", "spread", "faces", "credentials", "metadata"):
            table.add_column(column)
        for result in results:
            if "error" in result:
                table.add_row(str(result["image"]), "[red]unreadable", "", "", "", "", "")
                continue
            faces = result["faces"]
            assert isinstance(faces, list)
            if detector.metadata.framing == "whole_image":
                found = "whole image"
            else:
                found = str(len(faces)) if result["face_detected"] else "none (whole image judged)"
            spreads = [face["stability"]["spread"] for face in faces if face.get("stability")]
            evidence = result["evidence"]
            assert isinstance(evidence, dict)
            table.add_row(
                str(result["image"]),
                str(result["verdict"]),
                f"{result['fake_probability']:.3f}",
                f"{max(spreads):.3f}" if spreads else "off",
                found,
                str(evidence["content_credentials"]["status"]),
                str(evidence["metadata"]["status"]),
            )
        console.print(table)
        for result in results:
            if "evidence" in result:
                console.print(_image_evidence_text(result), soft_wrap=True, highlight=False)
    if not as_json:
        threshold = f"threshold {detector.metadata.threshold:.3f}"
        for video in videos:
            if "error" not in video:
                console.print(_video_table(video, f"model {detector.metadata.version}, {threshold}"))
    failures = [result for result in [*results, *videos] if "error" in result]
    for failure in failures:
        name = failure.get("image", failure.get("video"))
        errors.print(f"[bold red]error:[/] {name}: {failure['error']}", soft_wrap=True)
    if failures:
        raise typer.Exit(code=1)


@app.command()
def export(
    export_format: Annotated[str, typer.Option("--format", help="Export format: onnx.")] = "onnx",
    model: Annotated[Path | None, typer.Option(help="Model file (default: the shipped model).")] = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default: where the service looks for it).")] = None,
) -> None:
    """Export a model file to ONNX for the onnxruntime backend, checked against torch before it is written."""
    from detecteur.model.export import MAX_PROBABILITY_DIFFERENCE, default_cache_dir, export_onnx, onnx_path_for
    from detecteur.model.file import ModelFileError

    if export_format != "onnx":
        raise fail(f"unknown export format {export_format!r}; supported: onnx")
    settings = Settings()
    model_path = model or settings.model_path
    try:
        target = out or settings.onnx_path or onnx_path_for(model_path, default_cache_dir())
        written = export_onnx(model_path, target)
    except (ModelFileError, OSError) as error:
        raise fail(f"cannot export {model_path}: {error}") from error
    console.print(
        f"wrote {written} (ONNX Runtime matches torch within {MAX_PROBABILITY_DIFFERENCE:g} on fake probabilities)"
    )


@app.command()
def quantise(
    split: Annotated[Path, typer.Option(help="Split CSV of the model's faces: val calibrates, test measures.")],
    model: Annotated[Path | None, typer.Option(help="Model file (default: the shipped model).")] = None,
    out: Annotated[Path | None, typer.Option(help="File to write (default: beside MODEL, .int8.onnx).")] = None,
    calibration_images: Annotated[
        int, typer.Option(min=1, help="Validation faces to calibrate on.")
    ] = CALIBRATION_IMAGES,
    max_test_images: Annotated[int | None, typer.Option(min=2, help="Cap on test faces (default: all).")] = None,
    fp32_convolutions: Annotated[
        int, typer.Option(min=0, help="How many of the first convolutions stay fp32 (the stem sees the raw input).")
    ] = FP32_CONVOLUTIONS,
) -> None:
    """Static int8 quantisation of the model's ONNX graph, measured against fp32 on the test split (AUC, ECE,
    forward speed); served by default only if it passes the gates (docs/lean-serving.md)."""
    from detecteur.model.file import ModelFileError
    from detecteur.model.quantise import QuantisationError
    from detecteur.training.int8 import quantise_model

    model_path = model or Settings().model_path
    try:
        written, report = quantise_model(
            model_path,
            split,
            out,
            calibration_images,
            max_test_images,
            say=lambda line: console.print(line),
            fp32_convolutions=fp32_convolutions,
        )
    except (QuantisationError, ModelFileError, OSError) as error:
        raise fail(f"cannot quantise {model_path}: {error}") from error
    console.print_json(data={"graph": str(written), **asdict(report)})
    verdict = "passes: served by default" if report.passed else "not served by default: " + "; ".join(report.reasons)
    console.print(f"int8 {verdict}")


@app.command()
def score(
    source: Annotated[str, typer.Argument(help="A folder (searched recursively) or a glob, e.g. 'data/**/*.jpg'.")],
    out: Annotated[Path, typer.Option(help="Parquet file of results: one row per face.")] = Path("results.parquet"),
    model: Annotated[Path | None, typer.Option(help="Model file (default: the shipped model).")] = None,
    use_ray: Annotated[bool, typer.Option("--ray", help="Score with Ray Data actors on a local Ray instance.")] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Join a Ray cluster instead: 'auto' or ADDRESS (implies --ray).")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ray actors (default: one per CPU of the cluster).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 32,
) -> None:
    """Score an image collection into a Parquet file: path, face box, fake probability, verdict, model version, or
    the error for a file that cannot be read. Re-running skips the files already in --out."""
    from detecteur.inference.scoring import Limits, RayOptions, ScoringError, find_images, score_collection
    from detecteur.model.file import ModelFileError

    settings = Settings()
    ray_options = RayOptions(ray_address, workers) if use_ray or ray_address else None
    try:
        summary = score_collection(
            find_images(source),
            out,
            model or settings.model_path,
            Limits(settings.max_upload_bytes, settings.max_pixels),
            device=settings.device,
            batch_size=batch_size,
            ray=ray_options,
            backend=settings.backend,
            onnx_path=settings.onnx_path,
        )
    except (ScoringError, ModelFileError, OSError) as error:
        raise fail(str(error)) from error
    console.print(
        f"{out}: scored {summary.images} images ({summary.faces} rows, {summary.errors} unreadable) in "
        f"{summary.seconds:.1f} s, {summary.images_per_second:.1f} images/s; {summary.skipped} already there"
    )
