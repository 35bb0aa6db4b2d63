"""Ship a finished run: copy its calibrated model and figures into `models/` and write the model card from
the run's own files (`report.json`, `metrics.jsonl`, the model metadata). No figure in the card is typed in."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from string import Template
from typing import Any

from detecteur.config import RUN_BEST_MODEL_FILE, RUN_CALIBRATED_MODEL_FILE, RUN_CONFIG_FILE, RUN_METRICS_FILE
from detecteur.files import atomic_write_text, file_sha256
from detecteur.model.networks import (
    ModelFileError,
    ModelMetadata,
    TrainingStage,
    load_model,
    read_metadata,
    save_model,
    weights_sha256,
)
from detecteur.training import int8_report, plots, stability_report
from detecteur.training.runs import (
    best_epoch,
    nested_table,
    read_description,
    read_epochs,
    read_report,
    report_file,
    training_seconds,
)
from detecteur.training.sources import DATASET_LICENCES, GENERATOR_DESCRIPTIONS

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
# The card's prose, with a `${name}` for each figure or block filled in from the run's files.
CARD_TEMPLATE = Template((Path(__file__).parent / "card_template.md").read_text(encoding="utf-8"))


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
    the model it started from; a model shipped before stages were recorded gets them from `parent_run`, the run
    that made it (weights compared). A model started from another run's `model.safetensors` (or, never evaluated,
    `best.safetensors`) gets them from that run. An ensemble lists each member's chain, stages marked by member."""
    description = read_description(run_dir)
    if description.is_ensemble:
        return [
            stage.model_copy(update={"member": index})
            for index, member in enumerate(description.member_runs)
            for stage in training_stages(member)
        ]
    config = description.config
    epochs = read_epochs(run_dir)
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
            made_file = parent_run / RUN_CALIBRATED_MODEL_FILE  # else best: calibrating never changes weights
            made, _ = load_model(made_file if made_file.is_file() else parent_run / RUN_BEST_MODEL_FILE)
            started, _ = load_model(Path(init))
            if weights_sha256(made.state_dict()) != weights_sha256(started.state_dict()):
                raise ModelFileError(f"{parent_run} did not make {init}: their weights differ")
            earlier = training_stages(parent_run)
    stage = TrainingStage(
        run=run_dir.name,
        epochs=len(epochs),
        training_minutes=round(training_seconds(epochs) / 60, 1),
        device=description.device,
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
    """Ship `run_dir`'s calibrated model in three steps: publish the model file, copy the figures, render the card
    (`models_dir/MODEL_CARD.md`). Returns the model file path."""
    model_file, metadata = publish_model(run_dir, models_dir, version, parent_run)
    report = read_report(report_file(run_dir)).model_dump(exclude_unset=True)
    figures = copy_figures(run_dir, report, models_dir / "figures")
    card = render_card(run_dir, model_file, metadata, report, figures, extra_reports or [], logo_report)
    atomic_write_text(models_dir / "MODEL_CARD.md", card)
    return model_file


def split_file_of_card(card: Path) -> Path:
    """The split a shipped model was trained and tested on, as its card names it (`Split file `…``), relative to
    the checkout the card is in. Scripts that measure the shipped model on its own test faces start from it."""
    found = re.search(r"Split file `([^`]+)`", card.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"{card} names no split file")
    return card.resolve().parents[1] / found.group(1)


def publish_model(
    run_dir: Path, models_dir: Path, version: str, parent_run: Path | None = None
) -> tuple[Path, ModelMetadata]:
    """Write `run_dir`'s calibrated model as `models_dir/detecteur-<arch>-<version>.safetensors`, its metadata
    version set to `version` and its training stages recorded."""
    model, metadata = load_model(run_dir / RUN_CALIBRATED_MODEL_FILE)
    stages = training_stages(run_dir, parent_run)
    metadata = metadata.model_copy(update={"version": version, "training_stages": stages})
    model_file = models_dir / f"detecteur-{metadata.arch}-{version}.safetensors"
    save_model(model, metadata, model_file)
    return model_file, metadata


def copy_figures(run_dir: Path, report: dict[str, Any], figures: Path) -> Path:
    """The report's figures, the training log and a shareable copy of the report into `figures`, and no figure
    left from the model shipped before (the service shows every figure in this folder)."""
    figures.mkdir(parents=True, exist_ok=True)
    shipped_names = {Path(figure).name for figure in report["figures"]}
    for stale in [*figures.glob("*.png"), figures / "metrics.jsonl"]:
        if stale.name not in shipped_names:
            stale.unlink(missing_ok=True)
    for figure in report["figures"]:
        shutil.copyfile(figure, figures / Path(figure).name)
    if read_epochs(run_dir):
        shutil.copyfile(run_dir / RUN_METRICS_FILE, figures / "metrics.jsonl")
    atomic_write_text(figures / "report.json", json.dumps(_shareable_report(report), indent=2) + "\n")
    return figures


def _lines(lines: list[str]) -> str:
    """Lines for a block of the card template: each ends its line, and none leaves no trace."""
    return "".join(line + "\n" for line in lines)


def _how_made(run_dir: Path, metadata: ModelMetadata, report: dict[str, Any]) -> list[str]:
    description = read_description(run_dir)
    stages = metadata.training_stages
    if description.is_ensemble:
        members = ", ".join(
            f"`{run.name}` ({arch})" for run, arch in zip(description.member_runs, metadata.members, strict=True)
        )
        return [
            f"- An ensemble of {len(metadata.members)} trained runs — {members} — whose logits are averaged; "
            f"calibrated and evaluated as one model (`detecteur ensemble`). Validation AUC of the ensemble "
            f"{report['validation']['roc_auc']:.4f}. Git commit `{metadata.git_commit}`.",
            *_stages_lines(stages),
            *[
                f"- Recipe of `{run.name}`: `{json.dumps(read_description(run).config)}`"
                for run in description.member_runs
            ],
        ]
    epochs = read_epochs(run_dir)
    best = best_epoch(epochs)
    return [
        f"- Trained on {description.device} for {len(epochs)} epochs ({training_seconds(epochs) / 60:.1f} min "
        f"of training-loop time); best validation AUC {best.val_auc:.4f} at epoch {best.epoch}. "
        f"Git commit `{metadata.git_commit}`.",
        *_stages_lines(stages),
        f"- Recipe: `{json.dumps(description.config)}`",
    ]


def _more_sections(
    report: dict[str, Any], extra_reports: list[Path], logo_report: Path | None, figures: Path
) -> list[str]:
    """The card's optional sections: robustness, fairness, cross-dataset, leave-one-generator-out, ablation."""
    lines: list[str] = []
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
    for extra in extra_reports:
        other = read_report(extra).model_dump(exclude_unset=True)
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
    return lines


def _channels(metadata: ModelMetadata) -> str:
    colour = "RGB neighbouring-pixel residual" if metadata.pixel_signal == "npr" else "RGB"
    return f"{colour} + Laplacian" if metadata.in_chans == 4 else colour


def _threshold_rule(report: dict[str, Any]) -> str:
    """How the decision threshold was chosen on validation, in words."""
    cap = report["calibration"].get("max_real_source_fpr")
    if cap is None:
        return "Youden's J on the validation split"
    return (
        f"Youden's J on the validation split, raised so that no real source has more than {cap:.0%} of its "
        "validation faces called synthetic"
    )


def render_card(
    run_dir: Path,
    model_file: Path,
    metadata: ModelMetadata,
    report: dict[str, Any],
    figures: Path,
    extra_reports: list[Path],
    logo_report: Path | None,
) -> str:
    """MODEL_CARD.md: `card_template.md` filled in from the run's files and the published model's metadata."""
    summary = metadata.data_summary
    licences = [
        f"| {source} | {licence} |"
        for source, licence in DATASET_LICENCES.items()
        if any(source in key for counts in summary.values() for key in counts)
    ]
    return CARD_TEMPLATE.substitute(
        model_file=model_file.name,
        version=metadata.version,
        run=run_dir.name,
        arch=metadata.arch,
        in_chans=metadata.in_chans,
        channels=_channels(metadata),
        input_size=metadata.input_size,
        framing=metadata.framing,
        labels=list(metadata.labels),
        threshold=f"{metadata.threshold:.4f}",
        threshold_rule=_threshold_rule(report),
        band_low=f"{metadata.borderline_band[0]:.2f}",
        band_high=f"{metadata.borderline_band[1]:.2f}",
        logit_adjustment=list(metadata.logit_adjustment),
        temperature=f"{metadata.temperature:.4f}",
        how_made=_lines(_how_made(run_dir, metadata, report)),
        split_file=read_description(run_dir).split_file,
        split_sha256=read_description(run_dir).split_sha256[:16],
        data_rows=_lines([f"| {split} | {summary[split]} |" for split in ("train", "val") if split in summary]),
        licence_rows=_lines(licences),
        shortcut_checks=_lines(_shortcut_section(summary, figures / "shortcut_check.md")),
        n=report["n"],
        n_authentic=report["n_authentic"],
        n_synthetic=report["n_synthetic"],
        report_threshold=f"{report['threshold']:.4f}",
        headline_table=_lines(
            nested_table({"test": report, "validation": report.get("validation", {})}, "split", HEADLINE)
        ),
        per_source_table=_lines(nested_table(report.get("per_source", {}), "source", ("n", *HEADLINE))),
        ece_before=f"{report['calibration']['ece_before']:.4f}",
        ece_after=f"{report['calibration']['ece_after']:.4f}",
        more_sections=_lines(
            _more_sections(report, extra_reports, logo_report, figures)
            + stability_report.section_for(metadata.version)
            + int8_report.section_for(file_sha256(model_file))
        ),
        figures=_lines([f"![{Path(f).stem}](figures/{Path(f).name})" for f in report["figures"]]),
        hardest_errors=_lines(
            [
                f"| `{_dataset_relative(e['path'])}` | {e['label']} | {e['fake_probability']:.4f} |"
                for e in report["hardest_errors"]
            ]
        ),
    )


def logo_in_plain_words(logo: dict[str, Any], condition: str = "web") -> list[str]:
    """What the leave-one-generator-out figures mean for a user, from the sweep's own numbers: how well faces of a
    generator the recipe never saw are told apart, and how many are caught at the folds' thresholds."""
    summary = logo["summary"][condition]
    folds = [(fold["held_out"], fold["conditions"][condition]) for fold in logo["folds"]]
    missed = [name for name, figures in folds if figures["recall"] < 0.5]
    lines = [
        f"In plain words, on web-sized JPEG copies ({condition}): faces from a generator the recipe did not train on "
        f"are told from real faces with an AUC of {summary['mean_auc']:.2f} on average (0.5 is chance, 1 is "
        f"perfect), and at a threshold that flags 3 % of real validation faces it catches "
        f"{summary['mean_recall']:.0%} of them.",
        "",
        *[
            f"- {GENERATOR_DESCRIPTIONS.get(name, name)}, never seen: AUC {figures['auc']:.2f}, "
            f"{figures['recall']:.0%} caught."
            for name, figures in folds
        ],
        "",
        f"It misses more than half of the faces of {len(missed)} of the {len(folds)} generators held out in turn. "
        "Expect the same of a new generator: a verdict of *authentic* is weak evidence against a kind of fake this "
        "model has not been trained on.",
        "",
    ]
    return lines


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
        "",
        *logo_in_plain_words(logo),
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
