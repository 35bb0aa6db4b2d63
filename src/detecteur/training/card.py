"""Ship a finished run: copy its calibrated model and figures into `models/` and write the model card from
the run's own files (`report.json`, `metrics.jsonl`, the model metadata). No figure in the card is typed in."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from detecteur.config import RUN_CALIBRATED_MODEL_FILE, RUN_CONFIG_FILE, RUN_METRICS_FILE
from detecteur.files import atomic_write_text
from detecteur.model.networks import (
    ModelFileError,
    TrainingStage,
    load_model,
    read_metadata,
    save_model,
    weights_sha256,
)
from detecteur.training import plots, stability_report
from detecteur.training.ensemble import ENSEMBLE_KEY, is_ensemble_run
from detecteur.training.evaluate import nested_table
from detecteur.training.train import read_epoch_metrics

# Licences as stated in each dataset's PROVENANCE.md (../shared/datasets/*/PROVENANCE.md).
DATASET_LICENCES = {
    "stylegan-ffhq": "FFHQ images under their own licences (CC BY / CC BY-NC-SA 4.0 for the compilation); "
    "Kaggle 140k set lists no licence beyond its sources",
    "lfw-faceswap": "LFW: no explicit licence (research use); the FaceSwap repository has no LICENSE",
    "sdfd-sd21": "not stated (research/evaluation use; cite SDFD, FG 2024)",
    "stylegan2-tpdne": "repository GPL-3.0 covers the crawler; image rights unclear (boredhumans.com)",
    "utkface-real": "UTKFace: non-commercial research only",
    "ciplab-photoshop": "not stated; Kaggle page reportedly CC BY-NC-SA 4.0 / unknown",
}
HEADLINE = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "average_precision",
    "eer",
    "ece",
    "false_positive_rate",
)
ROBUSTNESS_COLUMNS = ("roc_auc", "auc_drop", "accuracy", "recall", "false_positive_rate")


def _shortcut_section(data_summary: dict[str, Any], shortcut_table: Path) -> list[str]:
    """What the run measured of the sharpness shortcut, and the shortcut check of the training input."""
    lines = ["## Shortcut checks", ""]
    proof = data_summary.get("sharpness_shortcut")
    if proof:
        lines += [
            f"Sharpness alone as a real/fake score on the training images: ROC AUC "
            f"{proof['sharpness_auc_unweighted']:.3f}; under the sharpness-balanced sampling the model trained with: "
            f"{proof['sharpness_auc_weighted']:.3f} (0.5 = no information).",
            "",
        ]
    if shortcut_table.is_file():
        lines += [
            "A logistic regression on image statistics that say nothing about forgery, 5-fold cross-validated ROC AUC "
            "per source pairing (`scripts/shortcut_check.py`; 0.5 = chance):",
            "",
            shortcut_table.read_text().strip(),
            "",
        ]
    return lines if len(lines) > 2 else []


def _recipe(run_dir: Path) -> dict[str, Any]:
    recipe: dict[str, Any] = json.loads((run_dir / RUN_CONFIG_FILE).read_text())["config"]
    return recipe


def _chain(stages: list[TrainingStage]) -> str:
    return " → ".join(
        f"`{stage.run}` ({stage.epochs} epochs, {stage.training_minutes:.1f} min, from {stage.started_from})"
        for stage in stages
    )


def _stages_lines(stages: list[TrainingStage]) -> list[str]:
    total = f"{sum(s.epochs for s in stages)} epochs, {sum(s.training_minutes for s in stages):.1f} min in all"
    members = sorted({stage.member for stage in stages if stage.member is not None})
    if members:
        return [
            *[
                f"- Training history of member {member}: {_chain([s for s in stages if s.member == member])}."
                for member in members
            ],
            f"- All members together: {total}.",
        ]
    if len(stages) < 2:
        return []
    return [f"- Training history: {_chain(stages)}; {total}."]


def training_stages(run_dir: Path, parent_run: Path | None = None) -> list[TrainingStage]:
    """The runs that led to `run_dir`'s weights, oldest first. A fine-tuning run inherits the stages recorded in
    the model it started from; a model shipped before stages were recorded gets them from `parent_run`, which
    must be the run that made it (its calibrated weights are compared with the model's). A model started from
    another run's `model.safetensors` gets them from that run. An ensemble lists each member's chain in turn,
    every stage marked with its member's index."""
    description = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    if is_ensemble_run(description):
        return [
            stage.model_copy(update={"member": index})
            for index, member in enumerate(description[ENSEMBLE_KEY])
            for stage in training_stages(Path(member))
        ]
    config = description["config"]
    epochs = read_epoch_metrics(run_dir)
    started_from = "ImageNet weights" if config["pretrained"] else "random weights"
    earlier: list[TrainingStage] = []
    if init := config.get("init_weights"):
        parent = read_metadata(Path(init))
        started_from = f"model {parent.version} ({Path(init).name})"
        if parent_run is None and (Path(init).parent / RUN_CONFIG_FILE).is_file():
            parent_run = Path(init).parent  # started from a run's own calibrated model
        if parent.training_stages:
            earlier = parent.training_stages
        elif parent_run is None:
            raise ModelFileError(f"{init} records no training stages; pass --parent-run with the run that made it")
        else:
            made, _ = load_model(parent_run / RUN_CALIBRATED_MODEL_FILE)
            started, _ = load_model(Path(init))
            if weights_sha256(made.state_dict()) != weights_sha256(started.state_dict()):
                raise ModelFileError(f"{parent_run} did not make {init}: their weights differ")
            earlier = training_stages(parent_run)
    stage = TrainingStage(
        run=run_dir.name,
        epochs=len(epochs),
        training_minutes=round(sum(e["seconds"] for e in epochs) / 60, 1),
        device=description["device"],
        started_from=started_from,
    )
    return [*earlier, stage]


def ship(
    run_dir: Path,
    models_dir: Path,
    version: str,
    extra_reports: list[Path] | None = None,
    parent_run: Path | None = None,
    logo_report: Path | None = None,
) -> Path:
    """Write `run_dir`'s calibrated model as `models_dir/detecteur-<arch>-<version>.safetensors` (its metadata
    version set to `version`, its training stages recorded), its figures to `models_dir/figures/`, and
    `models_dir/MODEL_CARD.md`. Returns the model file path."""
    model, metadata = load_model(run_dir / RUN_CALIBRATED_MODEL_FILE)
    stages = training_stages(run_dir, parent_run)
    metadata = metadata.model_copy(update={"version": version, "training_stages": stages})
    report = json.loads((run_dir / "report" / "report.json").read_text())
    description = json.loads((run_dir / RUN_CONFIG_FILE).read_text())
    epochs = read_epoch_metrics(run_dir)
    model_file = models_dir / f"detecteur-{metadata.arch}-{version}.safetensors"
    save_model(model, metadata, model_file)
    figures = models_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    # The service shows every figure in this folder: none may be left from the model shipped before.
    shipped_names = {Path(figure).name for figure in report["figures"]}
    for stale in [*figures.glob("*.png"), figures / "metrics.jsonl"]:
        if stale.name not in shipped_names:
            stale.unlink(missing_ok=True)
    for figure in report["figures"]:
        shutil.copyfile(figure, figures / Path(figure).name)
    if epochs:
        shutil.copyfile(run_dir / RUN_METRICS_FILE, figures / "metrics.jsonl")
    atomic_write_text(figures / "report.json", json.dumps(_shareable_report(report), indent=2) + "\n")

    config = description["config"]
    if is_ensemble_run(description):
        members = ", ".join(
            f"`{Path(run).name}` ({arch})"
            for run, arch in zip(description[ENSEMBLE_KEY], metadata.members, strict=True)
        )
        how_made = [
            f"- An ensemble of {len(metadata.members)} trained runs — {members} — whose logits are averaged; "
            f"calibrated and evaluated as one model (`detecteur ensemble`). Validation AUC of the ensemble "
            f"{report['validation']['roc_auc']:.4f}. Git commit `{metadata.git_commit}`.",
            *_stages_lines(stages),
            *[
                f"- Recipe of `{Path(run).name}`: `{json.dumps(_recipe(Path(run)))}`"
                for run in description[ENSEMBLE_KEY]
            ],
        ]
    else:
        training_seconds = sum(e["seconds"] for e in epochs)
        best_epoch = max(epochs, key=lambda e: e["val_auc"])
        how_made = [
            f"- Trained on {description['device']} for {len(epochs)} epochs ({training_seconds / 60:.1f} min of "
            f"training-loop time); best validation AUC {best_epoch['val_auc']:.4f} at epoch {best_epoch['epoch']}. "
            f"Git commit `{metadata.git_commit}`.",
            *_stages_lines(stages),
            f"- Recipe: `{json.dumps(config)}`",
        ]
    lines = [
        f"# Model card — `{model_file.name}`",
        "",
        "Generated by `detecteur ship` from the run's own files; every number below comes from them.",
        "",
        "## Model",
        "",
        f"- Version `{metadata.version}` (run `{run_dir.name}`), architecture `{metadata.arch}`, "
        f"{metadata.in_chans} input channels ({'RGB + Laplacian' if metadata.in_chans == 4 else 'RGB'}), "
        f"input {metadata.input_size} px, framing `{metadata.framing}`.",
        f"- Label order {list(metadata.labels)}; decision threshold {metadata.threshold:.4f} on the calibrated fake "
        f"probability; borderline band {metadata.borderline_band[0]:.2f}–{metadata.borderline_band[1]:.2f}.",
        f"- Calibration: logit adjustment {list(metadata.logit_adjustment)} (log class weights), temperature "
        f"{metadata.temperature:.4f}, both fitted without the test split.",
        *how_made,
        f"- Split file `{description['split_file']}` (sha256 `{description['split_sha256'][:16]}…`).",
        "",
        "## Intended use",
        "",
        "A second opinion on whether a face photo is authentic or synthetic / manipulated, for analysts who look at "
        "the evidence themselves. Not for automated decisions about people, not for video face-swap deepfakes "
        "(a different task), and only for the kinds of fakes listed under training data.",
        "",
        "## Training data",
        "",
        "| split | images per source/class |",
        "| --- | --- |",
        *[
            f"| {split} | {metadata.data_summary[split]} |"
            for split in ("train", "val")
            if split in metadata.data_summary
        ],
        "",
        "| source | licence as stated |",
        "| --- | --- |",
        *[
            f"| {source} | {licence} |"
            for source, licence in DATASET_LICENCES.items()
            if any(source in key for counts in metadata.data_summary.values() for key in counts)
        ],
        "",
        "The images' terms are mostly **non-commercial**; this model inherits that restriction.",
        "",
        *_shortcut_section(metadata.data_summary, models_dir / "figures" / "shortcut_check.md"),
        "## Test metrics",
        "",
        f"Held-out test split ({report['n']} images: {report['n_authentic']} authentic, "
        f"{report['n_synthetic']} synthetic), threshold {report['threshold']:.4f}:",
        "",
        *nested_table({"test": report, "validation": report.get("validation", {})}, "split", HEADLINE),
        "",
        "Per source (test split):",
        "",
        *nested_table(report.get("per_source", {}), "source", ("n", *HEADLINE)),
        "",
        f"Calibration (test): ECE {report['calibration']['ece_before']:.4f} before, "
        f"{report['calibration']['ece_after']:.4f} after.",
        "",
    ]
    if "robustness" in report:
        lines += [
            "Robustness (test split, each degradation applied to the face crop before the model):",
            "",
            *nested_table({"clean": report, **report["robustness"]}, "input", ROBUSTNESS_COLUMNS),
            "",
        ]
    if "fairness_utkface" in report:
        lines += [
            "False-positive rate on UTKFace's real test faces by group (from the file names):",
            "",
            *nested_table(report["fairness_utkface"], "group", ("n", "false_positive_rate")),
            "",
        ]
    for extra in extra_reports or []:
        other = json.loads(extra.read_text())
        lines += [
            f"Cross-dataset: `{other['dataset']}`",
            "",
            *nested_table({"cross-dataset": other}, "set", ("n", *HEADLINE)),
            "",
        ]
    if logo_report is not None:
        lines += _logo_section(json.loads(logo_report.read_text()), figures)
    ablation = figures / "ablation.md"
    if ablation.is_file():
        lines += ["## Ablation (`scripts/ablation.py`)", "", ablation.read_text().strip(), ""]
    lines += stability_report.section_for(version)
    lines += [
        "## Figures",
        "",
        *[f"![{Path(f).stem}](figures/{Path(f).name})" for f in report["figures"]],
        "",
        "## Limitations and known failure modes",
        "",
        "- Read the per-source table, not only the headline: the weakest source is where the model is least to be "
        "trusted. Fakes of a kind absent from training (see the cross-dataset rows, e.g. Photoshop composites) are "
        "not detected reliably.",
        "- The shortcut checks above show what image statistics alone can tell apart; where a pairing stays well "
        "above 0.5 under the training sampling, part of the model's skill on that source may rest on it.",
        "- Faces are found by a short-range detector (faces large in the frame); small faces in big photos may be "
        "missed, and the whole image is then judged (`face_detected: false`).",
        "- Video face-swap deepfakes are a different task; this model judges still images.",
        "",
        "Most confidently wrong test images:",
        "",
        "| image | true label | fake probability |",
        "| --- | --- | ---: |",
        *[
            f"| `{_dataset_relative(e['path'])}` | {e['label']} | {e['fake_probability']:.4f} |"
            for e in report["hardest_errors"]
        ],
        "",
    ]
    atomic_write_text(models_dir / "MODEL_CARD.md", "\n".join(lines))
    return model_file


def _logo_section(logo: dict[str, Any], figures: Path) -> list[str]:
    """The leave-one-generator-out tables the recipe was chosen by, and the gallery of its worst failures."""
    from detecteur.training.logo import logo_markdown

    gallery = plots.plot_logo_gallery(logo, figures / "logo_failures.png")
    tables = logo_markdown(logo).split("\n", 1)[1].replace("\n## ", "\n### ")
    return [
        "## Generators never trained on (leave-one-generator-out)",
        "",
        f"Recipe `{logo['recipe']}` on the fold budget {logo['budget']}: each fold trains without one generator and "
        "scores it against the test split's reals, matched to its fakes on sharpness and size. Short runs rank "
        "recipes; the shipped model trained longer, on every generator.",
        tables.strip(),
        "",
        f"![worst failures](figures/{gallery.name})",
        "",
    ]


def _shareable_report(report: dict[str, Any]) -> dict[str, Any]:
    """The run's report as it ships beside the model: images named `source/class/file` and figures by their
    place in `models/figures/`, so the committed copy holds no path of the machine that evaluated it."""
    return {
        **report,
        "hardest_errors": [{**e, "path": _dataset_relative(e["path"])} for e in report.get("hardest_errors", [])],
        "figures": [f"figures/{Path(figure).name}" for figure in report.get("figures", [])],
        "report_dir": "figures",
    }


def _dataset_relative(image_path: str) -> str:
    """`source/class/file`: names the image in any copy of the datasets, without this machine's directories."""
    return "/".join(Path(image_path).parts[-3:])
