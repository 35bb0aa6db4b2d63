"""Leave-one-generator-out figures of two or more recipes' fold models combined: would their ensemble generalise better?

For each held-out generator, the fold model of each recipe's sweep (`runs/logo-<recipe>/<generator>/`, or the one
model of a recipe that trains on no generator, `recipe-holds-all-out/`) is loaded and combined: `--combine mean`
averages their logits (`networks.LogitAverage`, as `detecteur ensemble` does); `--combine largest` takes the
largest of their margins, each in standard deviations above its own margins on the fold's validation reals
(`networks.LargestStandardised`: a face is fake if either member says so). The ensemble is scored exactly as a
fold is (`logo.fold_reference`, `logo.score_fold`: threshold on the validation reals no member left out, held-out
fakes against matched test reals, stored and web copies, the cross-dataset folder). Nothing is trained. Writes
`logo.json` / `logo.md` in `--out`, which `scripts/logo_compare.py` reads like any sweep's (the ensemble is named
after that folder).

    python -m scripts.logo_ensemble runs/logo-generalise-native-fakes-taef2-200 runs/logo-generalise-made-from-reals \
        --split data/splits/faces-v2/split-taef2-200.csv --cross-dataset data/faces-native/ciplab-photoshop \
        --out docs/logo/reals-kept/ensemble-h-n [--combine largest]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from torch import nn

from detecteur.config import RUN_BEST_MODEL_FILE, TrainConfig
from detecteur.inference.windows import network_region_logits
from detecteur.model.networks import LargestStandardised, LogitAverage, ModelMetadata, load_model
from detecteur.training.data import ImageRecord, open_image, read_records
from detecteur.training.logo import (
    SHARED_FOLD,
    fold_reference,
    fold_validation_reals,
    score_fold,
    summary_lines,
    write_logo_report,
)
from detecteur.training.runs import read_description


def fold_folder(sweep_runs: Path, held_out: str) -> Path:
    """The fold model folder of `held_out` in a sweep's runs: its own fold, else the recipe's one shared model."""
    own = sweep_runs / held_out
    return own if (own / RUN_BEST_MODEL_FILE).is_file() else sweep_runs / SHARED_FOLD


def largest_standardised(
    loaded: list[tuple[nn.Module, ModelMetadata]], validation_reals: list[ImageRecord]
) -> LargestStandardised:
    """The members combined by `LargestStandardised`, each standardised on its margins on `validation_reals`."""
    regions = [open_image(record.path) for record in validation_reals]
    means, stds = [], []
    for model, metadata in loaded:
        logits = network_region_logits(model.eval(), metadata.input_spec, metadata.framing, regions)
        margins = logits[:, 1] - logits[:, 0]
        means.append(float(np.mean(margins)))
        stds.append(float(np.std(margins)))
    return LargestStandardised([model for model, _ in loaded], means, stds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+", help="runs folders of finished sweeps (--logo-runs)")
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--cross-dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--held-out", nargs="+", default=TrainConfig().logo.held_out)
    parser.add_argument("--combine", choices=("mean", "largest"), default="mean")
    args = parser.parse_args()
    if len(args.sweeps) < 2:
        parser.error("an ensemble needs at least two sweeps")
    args.out.mkdir(parents=True, exist_ok=True)
    folds = []
    for held_out in args.held_out:
        folders = [fold_folder(sweep, held_out) for sweep in args.sweeps]
        missing = [str(folder) for folder in folders if not (folder / RUN_BEST_MODEL_FILE).is_file()]
        if missing:
            parser.error(f"no fold model for {held_out} in: {', '.join(missing)}")
        loaded = [load_model(folder / RUN_BEST_MODEL_FILE) for folder in folders]
        excluded = sorted({s for f in folders for s in read_description(f).config.get("exclude_sources", [])})
        # The members share one input (channels, size, framing): the first member's metadata says which.
        if args.combine == "mean":
            ensemble: nn.Module = LogitAverage([model for model, _ in loaded])
        else:
            ensemble = largest_standardised(loaded, fold_validation_reals(read_records(args.split), excluded))
        ensemble.eval()
        print(f"{held_out}: {' + '.join(str(folder) for folder in folders)}")
        reference = fold_reference(ensemble, loaded[0][1], args.split, excluded, args.cross_dataset)
        fold = score_fold(ensemble, loaded[0][1], held_out, args.split, reference)
        folds.append({**fold, "members": [str(folder) for folder in folders], "val_auc": None})
    about = {
        # Named after its folder, so that `logo_compare` averages `<name>` and `<name>-seed<N>` over seeds.
        "recipe": args.out.name,
        "members": [sweep.name.removeprefix("logo-") for sweep in args.sweeps],
        "combine": args.combine,
        "split_file": str(args.split),
    }
    print("\n".join(summary_lines(write_logo_report(args.out, about, folds))))


if __name__ == "__main__":
    main()
