"""The `detecteur` commands of the recipe -> model path: data, train, evaluate, ship, ensemble, history.

`cli.register_training_commands` adds them to the command line. Thin, like the rest of it: every command imports
and calls library code inside itself, so `detecteur --help` stays fast and a serve-only install (no torch) starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from detecteur.config import TrainConfig

data_app = typer.Typer(no_args_is_help=True, help="Dataset manifests and the subject-grouped split.")


def register(app: typer.Typer) -> None:
    """Add the training path's commands to `app`, in the order `--help` lists them."""
    for command in (train, evaluate, ship, ensemble, history):
        app.command()(command)
    app.add_typer(data_app, name="data")


# The command line's own console and error exit (cli.py), imported on use: cli.py imports this module.
def _fail(message: str) -> typer.Exit:
    from detecteur.cli import fail

    return fail(message)


def _print(*objects: object) -> None:
    from detecteur.cli import console

    console.print(*objects)


def _print_json(text: str) -> None:
    from detecteur.cli import console

    console.print_json(text)


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
    _print(f"wrote {out}: {len(records)} images, {merged} merged into near-duplicate groups")
    _print(summarise(records))


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
    _print(f"wrote {counts['images']} crops to {out}: {counts['without_face']} without a face (whole image)")


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
    _print(f"wrote {out}")
    _print(summarise(records))


@data_app.command("reconstruct")
def data_reconstruct(
    split: Annotated[Path, typer.Argument(help="Split CSV of native crops (`detecteur data faces --native`).")],
    crops: Annotated[Path, typer.Option(help="The folder of native crops (holds faces.csv).")],
    out: Annotated[Path, typer.Option(help="Split CSV to write: the input split plus the reconstructions.")],
    per_source: Annotated[int, typer.Option(min=0, help="Training reals reconstructed per real source.")] = 100,
    val_per_source: Annotated[
        int,
        typer.Option(
            min=0,
            help="Validation reals reconstructed per real source: a validation AUC for a recipe whose only "
            "fakes are made from reals.",
        ),
    ] = 0,
    blend: Annotated[
        bool, typer.Option(help="Also add each reconstruction blended into its real (source `taef2-blend`).")
    ] = False,
) -> None:
    """Aligned training fakes: training reals passed through the TAEF2 latent autoencoder (`synthesis.py`), added
    to a copy of the split as source `taef2` (each row in its real's split and subject group); with --blend, also
    each reconstruction's face pasted into its real through a soft mask, as source `taef2-blend`."""
    from dataclasses import replace

    from detecteur.config import SYNTHETIC
    from detecteur.training.data import DataError, read_records, summarise, write_records
    from detecteur.training.synthesis import ALIGNED_SOURCE, BLENDED_SOURCE, blend_reconstructions, reconstruct_reals

    try:
        records = read_records(split)
    except DataError as error:
        raise _fail(str(error)) from error
    try:
        pairs = reconstruct_reals(records, crops, crops / ALIGNED_SOURCE, per_source)
        if val_per_source:
            pairs += reconstruct_reals(records, crops, crops / ALIGNED_SOURCE, val_per_source, split="val")
        blends = blend_reconstructions(pairs, crops / BLENDED_SOURCE) if blend else []
    except OSError as error:
        raise _fail(
            f"{crops}: {error} (the folder `detecteur data faces --native` wrote, with its faces.csv)"
        ) from error
    added = [replace(real, path=file, label=SYNTHETIC, source=ALIGNED_SOURCE, phash=real.phash) for real, file in pairs]
    if blend:
        added += [
            replace(real, path=file, label=SYNTHETIC, source=BLENDED_SOURCE)
            for (real, _), file in zip(pairs, blends, strict=True)
        ]
    made_here = {ALIGNED_SOURCE, BLENDED_SOURCE}
    write_records([r for r in records if r.source not in made_here] + added, out)
    _print(f"wrote {out}: {len(added)} made-from-real fakes added")
    _print(summarise(added))


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
        _print(f"best model: {best}")


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
    logo_runs: Annotated[
        Path | None,
        typer.Option(help="With --logo: where the fold runs go (default runs/logo-<recipe>; one folder per split)."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="With --logo: the recipe with this seed instead of its own (named <recipe>-seed<N>)."),
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
        _evaluate_logo(logo, split, out, cross_dataset, logo_runs, seed)
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
        _print_json(json.dumps(report))
        return
    _print(_metrics_table(f"{report['dataset']} (threshold {report['threshold']:.3f})", report))
    for source, metrics in report.get("per_source", {}).items():
        _print(_metrics_table(source, metrics))
    _print(f"report and plots in {report['report_dir']}")


def _evaluate_logo(
    recipe_file: Path,
    split: Path | None,
    out: Path | None,
    cross_dataset: Path | None,
    runs_dir: Path | None,
    seed: int | None,
) -> None:
    from pydantic import ValidationError

    from detecteur.config import LOGO_RUNS_PREFIX, TrainConfig
    from detecteur.training.data import DataError
    from detecteur.training.logo import run_logo, summary_lines

    if split is None or out is None:
        raise _fail("--logo needs --split SPLIT.csv and --out REPORT_DIR")
    try:
        recipe = TrainConfig.from_toml(recipe_file)
    except (OSError, ValueError, ValidationError) as error:
        raise _fail(f"{recipe_file}: {error}") from error
    name = recipe_file.stem
    if seed is not None:  # ranking recipes needs more than one seed each (docs/generalisation.md)
        recipe = recipe.model_copy(update={"seed": seed})
        name = f"{name}-seed{seed}"
    try:
        report = run_logo(
            recipe, name, split, runs_dir or Path("runs") / f"{LOGO_RUNS_PREFIX}{name}", out, cross_dataset
        )
    except (DataError, OSError) as error:
        raise _fail(str(error)) from error
    for line in summary_lines(report):
        _print(line)
    _print(f"results in {out / 'logo.json'} and {out / 'logo.md'}")


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
    _print(f"shipped {model_file} and {models_dir / 'MODEL_CARD.md'}")


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
    _print(f"wrote {model_file}; next: detecteur evaluate --run {out}")


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
    _print(f"wrote {out / HISTORY_MARKDOWN}: {len(summaries)} runs")
