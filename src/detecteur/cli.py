"""`detecteur` command line: data, train, evaluate, predict. Thin: every command calls library code."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from detecteur.config import Settings, TrainConfig

if TYPE_CHECKING:
    from detecteur.inference.engine import ImageVerdict
    from detecteur.inference.provenance import Provenance
    from detecteur.inference.video import VideoVerdict

app = typer.Typer(no_args_is_help=True, help="Détecteur: is this face authentic or synthetic?")
data_app = typer.Typer(no_args_is_help=True, help="Dataset manifests and the subject-grouped split.")
app.add_typer(data_app, name="data")
console = Console()
errors = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return typer.Exit(code=2)


@app.callback()
def _logging(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


@data_app.command("manifest")
def data_manifest(
    roots: Annotated[list[Path], typer.Argument(help="Dataset folders, each with real/ and/or fake/.")],
    out: Annotated[Path, typer.Option(help="Manifest CSV to write.")] = Path("data/manifest.csv"),
) -> None:
    """Scan dataset folders, hash every image and merge near-duplicates into one subject."""
    from detecteur.training.data import DataError, build_manifest, summarise, write_records

    try:
        records = build_manifest(roots)
    except (DataError, OSError) as error:
        raise _fail(str(error)) from error
    write_records(records, out)
    merged = len(records) - len({r.subject_id for r in records})
    console.print(f"wrote {out}: {len(records)} images, {merged} merged into near-duplicate groups")
    console.print(summarise(records))


@data_app.command("faces")
def data_faces(
    roots: Annotated[list[Path], typer.Argument(help="Dataset folders, each with real/ and/or fake/.")],
    out: Annotated[Path, typer.Option(help="Folder for the normalised face crops.")] = Path("data/faces"),
    size: Annotated[int, typer.Option(help="Side of the square crops, in pixels (the model input size).")] = 224,
    native: Annotated[
        bool, typer.Option(help="Keep each face crop at its own scale, lossless (PNG), instead of resizing it.")
    ] = False,
) -> None:
    """Detect the face in every image and write its crop: the normalised crop/resize/JPEG for all sources, or
    with --native the face region at its own scale, its pixels untouched."""
    from detecteur.training.data import DataError, prepare_faces

    try:
        counts = prepare_faces(roots, out, None if native else size)
    except (DataError, OSError) as error:
        raise _fail(str(error)) from error
    console.print(f"wrote {counts['images']} crops to {out}: {counts['without_face']} without a face (whole image)")


@data_app.command("split")
def data_split(
    manifest: Annotated[Path, typer.Argument(help="Manifest CSV from `detecteur data manifest`.")],
    out: Annotated[Path, typer.Option(help="Split CSV to write.")] = Path("data/split.csv"),
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
) -> None:
    """Subject-independent 80/10/10 split, stratified by source × label, written once to disk."""
    from detecteur.training.data import DataError, assign_splits, read_records, summarise, write_records

    try:
        records = assign_splits(read_records(manifest), seed=seed)
    except DataError as error:
        raise _fail(str(error)) from error
    write_records(records, out)
    console.print(f"wrote {out}")
    console.print(summarise(records))


@data_app.command("reconstruct")
def data_reconstruct(
    split: Annotated[Path, typer.Argument(help="Split CSV of native crops (`detecteur data faces --native`).")],
    crops: Annotated[Path, typer.Option(help="The folder of native crops (holds faces.csv).")],
    out: Annotated[Path, typer.Option(help="Split CSV to write: the input split plus the reconstructions.")],
    per_source: Annotated[int, typer.Option(help="Training reals reconstructed per real source.")] = 100,
) -> None:
    """Aligned training fakes: training reals passed through the TAEF2 latent autoencoder (`synthesis.py`), added
    to a copy of the split as source `taef2` (training rows, each in its real's subject group)."""
    from dataclasses import replace

    from detecteur.config import SYNTHETIC
    from detecteur.training.data import DataError, read_records, summarise, write_records
    from detecteur.training.synthesis import ALIGNED_SOURCE, reconstruct_reals

    try:
        records = read_records(split)
    except DataError as error:
        raise _fail(str(error)) from error
    try:
        pairs = reconstruct_reals(records, crops, crops / ALIGNED_SOURCE, per_source)
    except OSError as error:
        raise _fail(
            f"{crops}: {error} (the folder `detecteur data faces --native` wrote, with its faces.csv)"
        ) from error
    added = [replace(real, path=file, label=SYNTHETIC, source=ALIGNED_SOURCE, phash=real.phash) for real, file in pairs]
    write_records([r for r in records if r.source != ALIGNED_SOURCE] + added, out)
    console.print(f"wrote {out}: {len(added)} reconstructions added")
    console.print(summarise(added))


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
            raise _fail(f"refusing to serve: {error}") from error
    console.print(f"serving {settings.model_path} on http://{settings.host}:{settings.port} (docs at /docs)")
    run_server(settings)


@app.command()
def train(
    split: Annotated[Path, typer.Option(help="Split CSV from `detecteur data split`.")],
    out: Annotated[Path, typer.Option(help="Run directory to write.")],
    config: Annotated[Path | None, typer.Option(help="Training recipe (TOML).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the interrupted run in --out.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:1 … (default: cuda if present).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    max_train_images: Annotated[int | None, typer.Option(help="Train on a stratified subset.")] = None,
    max_eval_images: Annotated[int | None, typer.Option(help="Validate on a stratified subset.")] = None,
    ddp: Annotated[
        bool, typer.Option("--ddp", help="Data-parallel over the processes torchrun starts (gloo on CPU, NCCL on GPU).")
    ] = False,
) -> None:
    """Train a detector; best model (by validation AUC) lands in OUT/best.safetensors."""
    from pydantic import ValidationError

    from detecteur.inputs.decode import ImageError
    from detecteur.training.data import DataError
    from detecteur.training.runs import RunError
    from detecteur.training.train import train as run_training

    try:
        recipe = TrainConfig.from_toml(config) if config else TrainConfig()
        overrides = {
            "epochs": epochs,
            "max_train_images": max_train_images,
            "max_eval_images": max_eval_images,
        }
        recipe = TrainConfig.model_validate(
            recipe.model_dump() | {key: value for key, value in overrides.items() if value is not None}
        )
        best = run_training(recipe, split, out, resume=resume, device_name=device, distributed_run=ddp)
    except (ValidationError, DataError, RunError, ImageError, OSError) as error:
        raise _fail(str(error)) from error
    if os.environ.get("RANK", "0") == "0":  # under torchrun, once: from the main process
        console.print(f"best model: {best}")


# (report key, column header): short headers keep the table readable in an 80-column terminal.
TABLE_METRICS = (
    ("n", "n"),
    ("accuracy", "acc"),
    ("precision", "prec"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("roc_auc", "AUC"),
    ("eer", "EER"),
    ("ece", "ECE"),
    ("false_positive_rate", "FPR"),
)


def _metrics_table(title: str, metrics: dict[str, object]) -> Table:
    table = Table(title=title)
    for _, header in TABLE_METRICS:
        table.add_column(header, justify="right")
    cells = [metrics.get(key) for key, _ in TABLE_METRICS]
    table.add_row(
        *[f"{value:.4f}" if isinstance(value, float) else "n/a" if value is None else str(value) for value in cells]
    )
    return table


@app.command()
def evaluate(
    run: Annotated[Path | None, typer.Option(help="Run directory: calibrate on val, report on test.")] = None,
    model: Annotated[Path | None, typer.Option(help="Model file, with --data.")] = None,
    data: Annotated[Path | None, typer.Option(help="Any folder with real/ and/or fake/.")] = None,
    out: Annotated[Path | None, typer.Option(help="Report directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    device: Annotated[str | None, typer.Option(help="cpu, cuda …")] = None,
    robustness: Annotated[bool, typer.Option(help="Also score the test split under JPEG/resize/blur.")] = False,
    logo: Annotated[
        Path | None, typer.Option(help="Recipe (TOML) to measure leave-one-generator-out, with --split and --out.")
    ] = None,
    split: Annotated[Path | None, typer.Option(help="Split CSV for --logo.")] = None,
    native_crops: Annotated[
        bool, typer.Option(help="With --data: the folder holds native crops (`detecteur data faces --native`).")
    ] = False,
    cross_dataset: Annotated[
        Path | None, typer.Option(help="With --logo: a {real,fake}/ folder of crops each fold model also scores.")
    ] = None,
) -> None:
    """Metrics, calibration, report and plots — for a run (val/test split) or for a folder of images; with --logo,
    a recipe's leave-one-generator-out sweep (its fold runs go to runs/logo-<recipe>/)."""
    from detecteur.inputs.decode import ImageError
    from detecteur.model.file import ModelFileError
    from detecteur.training.calibrate import save_calibrated_model
    from detecteur.training.data import DataError
    from detecteur.training.evaluate import evaluate_folder, evaluate_run

    if logo is not None:
        _evaluate_logo(logo, split, out, cross_dataset)
        return
    try:
        if run is not None:
            evaluation = evaluate_run(run, out_dir=out, device_name=device, robustness=robustness)
            save_calibrated_model(run, evaluation)
            report = evaluation.report
        elif model is not None and data is not None:
            report = evaluate_folder(
                model, data, out_dir=out, device_name=device, crop_files="native" if native_crops else "canonical"
            )
        else:
            raise _fail("give --run RUN_DIR, or --model FILE with --data DIR")
    except (DataError, ModelFileError, ImageError, OSError) as error:
        raise _fail(str(error)) from error
    if as_json:
        console.print_json(json.dumps(report))
        return
    console.print(_metrics_table(f"{report['dataset']} (threshold {report['threshold']:.3f})", report))
    for source, metrics in report.get("per_source", {}).items():
        console.print(_metrics_table(source, metrics))
    console.print(f"report and plots in {report['report_dir']}")


def _evaluate_logo(recipe_file: Path, split: Path | None, out: Path | None, cross_dataset: Path | None) -> None:
    from pydantic import ValidationError

    from detecteur.config import TrainConfig
    from detecteur.training.data import DataError
    from detecteur.training.logo import run_logo

    if split is None or out is None:
        raise _fail("--logo needs --split SPLIT.csv and --out REPORT_DIR")
    try:
        recipe = TrainConfig.from_toml(recipe_file)
    except (OSError, ValueError, ValidationError) as error:
        raise _fail(f"{recipe_file}: {error}") from error
    name = recipe_file.stem
    try:
        report = run_logo(recipe, name, split, Path("runs") / f"logo-{name}", out, cross_dataset)
    except (DataError, OSError) as error:
        raise _fail(str(error)) from error
    for condition, figures in report["summary"].items():
        console.print(
            f"{condition}: mean AUC {figures['mean_auc']:.4f}, worst {figures['worst_auc']:.4f} "
            f"({figures['worst_fold']})"
        )
    console.print(f"results in {out / 'logo.json'} and {out / 'logo.md'}")


@app.command()
def ship(
    run: Annotated[Path, typer.Option(help="Evaluated run directory.")],
    version: Annotated[str, typer.Option(help="Version of the shipped model, e.g. 0.2.0.")],
    models_dir: Annotated[Path, typer.Option("--models", help="Where shipped models live.")] = Path("models"),
    cross_dataset: Annotated[
        list[Path] | None, typer.Option(help="report.json of a cross-dataset evaluation to include.")
    ] = None,
    parent_run: Annotated[
        Path | None,
        typer.Option(
            help="For a fine-tuning run whose starting model records no training stages: the run that made it."
        ),
    ] = None,
    logo: Annotated[
        Path | None, typer.Option(help="logo.json of the recipe's leave-one-generator-out sweep, for the card.")
    ] = None,
) -> None:
    """Copy a run's calibrated model and figures into models/ and write MODEL_CARD.md from its files."""
    from detecteur.model.file import ModelFileError
    from detecteur.training.card import ship as ship_run

    try:
        model_file = ship_run(run, models_dir, version, cross_dataset, parent_run, logo)
    except (ModelFileError, OSError, KeyError) as error:
        raise _fail(f"cannot ship {run}: {error}") from error
    console.print(f"shipped {model_file} and {models_dir / 'MODEL_CARD.md'}")


@app.command()
def ensemble(
    members: Annotated[list[Path], typer.Argument(help="Finished training runs to combine (2 or more).")],
    out: Annotated[Path, typer.Option(help="Run directory to write; evaluate and ship it like a trained run.")],
) -> None:
    """One model from several trained runs: their logits averaged."""
    from detecteur.training.ensemble import EnsembleError, combine_runs

    try:
        model_file = combine_runs(members, out)
    except EnsembleError as error:
        raise _fail(str(error)) from error
    console.print(f"wrote {model_file}; next: detecteur evaluate --run {out}")


@app.command()
def history(
    runs: Annotated[Path, typer.Argument(help="Folder of run directories (nested ones are found too).")] = Path("runs"),
    out: Annotated[Path, typer.Option(help="Where run_history.md and run_history.png go.")] = Path("docs"),
    models_dir: Annotated[Path, typer.Option("--models", help="Released model files, to mark runs.")] = Path("models"),
    recipes: Annotated[Path, typer.Option(help="Recipes folder; a run named X is linked to X.toml.")] = Path("configs"),
) -> None:
    """Every training run in one table and one figure, read from the runs' own files."""
    from detecteur.training.history import HISTORY_MARKDOWN, write_history

    if not runs.is_dir():
        raise _fail(f"{runs} is not a folder of runs")
    try:
        summaries = write_history(runs, out, models_dir, recipes)
    except (OSError, KeyError, ValueError) as error:
        raise _fail(f"cannot read the runs in {runs}: {error}") from error
    console.print(f"wrote {out / HISTORY_MARKDOWN}: {len(summaries)} runs")


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
            # One image at a time: every core goes to each inference.
            threads=settings.model_threads or len(os.sched_getaffinity(0)),
        )
    except ModelFileError as error:
        raise _fail(str(error)) from error
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
        raise _fail(f"unknown export format {export_format!r}; supported: onnx")
    settings = Settings()
    model_path = model or settings.model_path
    try:
        target = out or settings.onnx_path or onnx_path_for(model_path, default_cache_dir())
        written = export_onnx(model_path, target)
    except (ModelFileError, OSError) as error:
        raise _fail(f"cannot export {model_path}: {error}") from error
    console.print(
        f"wrote {written} (ONNX Runtime matches torch within {MAX_PROBABILITY_DIFFERENCE:g} on fake probabilities)"
    )


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
        raise _fail(str(error)) from error
    console.print(
        f"{out}: scored {summary.images} images ({summary.faces} rows, {summary.errors} unreadable) in "
        f"{summary.seconds:.1f} s, {summary.images_per_second:.1f} images/s; {summary.skipped} already there"
    )
