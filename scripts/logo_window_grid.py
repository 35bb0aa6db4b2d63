"""A finished sweep's fold models scored again with a grid of windows per face instead of the served two.

A `native_face_crop` model judges a face crop larger than its input in the windows at `preprocess.WINDOW_CENTRES`
(the centre and the eyes), their logits averaged. For a model on small windows (96 px) two windows see about a
third of a face: is a recipe's leave-one-generator-out figure held down by what the windows cover rather than by
what the model learnt? This scores each fold model of the sweep exactly as the sweep did (`logo.fold_reference`,
`logo.score_fold`: threshold on the fold's validation reals, held-out fakes against matched test reals, stored and
web copies, the cross-dataset folder), with the windows centred on an N×N grid over the crop's spare room, for this
process only. Nothing is trained. Writes `logo.json` / `logo.md` in `--out`, which `scripts/logo_compare.py` reads
like any sweep's (named after that folder).

    python -m scripts.logo_window_grid runs/logo-generalise-reals-then-fakes-patches \
        --split data/splits/faces-v2/split-taef2-200.csv \
        --out docs/logo/reals-kept/generalise-reals-then-fakes-patches-grid3 [--grid 3] [--cross-dataset DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scripts.logo_ensemble import fold_folder

from detecteur.config import RUN_BEST_MODEL_FILE, TrainConfig
from detecteur.inputs import preprocess
from detecteur.model.networks import load_model
from detecteur.training.logo import fold_reference, score_fold, summary_lines, write_logo_report
from detecteur.training.runs import read_description


def grid_centres(size: int) -> tuple[tuple[float, float], ...]:
    """`size`×`size` window centres as fractions of a crop's spare room, corners included."""
    steps = [index / (size - 1) for index in range(size)] if size > 1 else [0.5]
    return tuple((x, y) for y in steps for x in steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="runs folder of a finished sweep (--logo-runs)")
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--cross-dataset", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--grid", type=int, default=3, help="windows per side of the grid")
    parser.add_argument("--held-out", nargs="+", default=TrainConfig().logo.held_out)
    args = parser.parse_args()
    if args.grid < 1:
        parser.error("--grid must be at least 1")
    preprocess.WINDOW_CENTRES = grid_centres(args.grid)  # what `model_windows` cuts, for this process only
    args.out.mkdir(parents=True, exist_ok=True)
    folds = []
    for held_out in args.held_out:
        folder = fold_folder(args.sweep, held_out)
        if not (folder / RUN_BEST_MODEL_FILE).is_file():
            parser.error(f"no fold model for {held_out} in {folder}")
        model, metadata = load_model(folder / RUN_BEST_MODEL_FILE)
        excluded = read_description(folder).config.get("exclude_sources", [])
        print(f"{held_out}: {folder}, {args.grid}×{args.grid} windows of {metadata.input_size} px", flush=True)
        reference = fold_reference(model.eval(), metadata, args.split, excluded, args.cross_dataset)
        folds.append({**score_fold(model, metadata, held_out, args.split, reference), "val_auc": None})
    about = {
        "recipe": args.out.name,
        "sweep": str(args.sweep),
        "window_centres": list(preprocess.WINDOW_CENTRES),
        "split_file": str(args.split),
    }
    print("\n".join(summary_lines(write_logo_report(args.out, about, folds))))


if __name__ == "__main__":
    main()
