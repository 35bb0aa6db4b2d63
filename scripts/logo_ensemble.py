"""Leave-one-generator-out figures of two or more recipes' fold models averaged: would their ensemble generalise better?

For each held-out generator, the fold model of each recipe's sweep (`runs/logo-<recipe>/<generator>/`, or the one
model of a recipe that trains on no generator, `recipe-holds-all-out/`) is loaded, their logits are averaged
(`networks.LogitAverage`, as `detecteur ensemble` does) and the ensemble is scored exactly as a fold is
(`logo.score_fold`: threshold on the validation reals no member left out, held-out fakes against matched test
reals, stored and web copies, the cross-dataset folder). Nothing is trained. Writes `logo.json` / `logo.md` in
`--out`, which `scripts/logo_compare.py` reads like any sweep's (the ensemble is named after that folder).

    python -m scripts.logo_ensemble runs/logo-generalise-native-fakes-taef2-200 runs/logo-generalise-made-from-reals \
        --split data/splits/faces-v2/split-taef2-200.csv --cross-dataset data/faces-native/ciplab-photoshop \
        --out docs/logo/reals-kept/ensemble-h-n
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from detecteur.config import RUN_BEST_MODEL_FILE, TrainConfig
from detecteur.files import atomic_write_text
from detecteur.model.networks import LogitAverage, load_model
from detecteur.training.logo import SHARED_FOLD, logo_markdown, score_fold, summarise_folds
from detecteur.training.runs import read_description


def fold_folder(sweep_runs: Path, held_out: str) -> Path:
    """The fold model folder of `held_out` in a sweep's runs: its own fold, else the recipe's one shared model."""
    own = sweep_runs / held_out
    return own if (own / RUN_BEST_MODEL_FILE).is_file() else sweep_runs / SHARED_FOLD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+", help="runs folders of finished sweeps (--logo-runs)")
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--cross-dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--held-out", nargs="+", default=TrainConfig().logo.held_out)
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
        ensemble = LogitAverage([model for model, _ in loaded]).eval()
        print(f"{held_out}: {' + '.join(str(folder) for folder in folders)}")
        fold = score_fold(ensemble, loaded[0][1], held_out, args.split, excluded, args.cross_dataset)
        folds.append({**fold, "members": [str(folder) for folder in folders], "val_auc": None})
    report = {
        # Named after its folder, so that `logo_compare` averages `<name>` and `<name>-seed<N>` over seeds.
        "recipe": args.out.name,
        "members": [sweep.name.removeprefix("logo-") for sweep in args.sweeps],
        "split_file": str(args.split),
        "folds": folds,
        "summary": summarise_folds(folds),
    }
    atomic_write_text(args.out / "logo.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(args.out / "logo.md", logo_markdown(report))
    for condition, figures in report["summary"].items():
        print(f"{condition}: mean AUC {figures['mean_auc']:.4f}, worst {figures['worst_auc']:.4f}")


if __name__ == "__main__":
    main()
