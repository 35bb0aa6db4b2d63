"""Recipes side by side from their leave-one-generator-out results (`detecteur evaluate --logo … --out DIR`).

    python -m scripts.logo_compare reports/logo/generalise-native reports/logo/generalise-native-fakes …

Prints a Markdown table: per recipe (and the split it was swept on) and condition, the mean and worst fold AUC (reals
matched to the held-out fakes on sharpness and size), each fold's AUC, the mean recall at the folds' thresholds and the
cross-dataset mean AUC — the figures recipes are chosen by. Folds missing from a sweep (an unfinished one) are shown as
"—". Then, for every recipe swept on two or more seeds (`--seed N` names a sweep `<recipe>-seed<N>`), the same figures
averaged over its seeds: one seed's fold budget moves a recipe's mean by up to 0.05, so recipes are ranked on these.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def comparison_table(report_dirs: list[Path]) -> str:
    reports = [json.loads((directory / "logo.json").read_text()) for directory in report_dirs]
    held_out = list(dict.fromkeys(fold["held_out"] for report in reports for fold in report["folds"]))
    header = ["recipe", "split", "condition", "mean AUC", "worst AUC", *held_out, "mean recall", "ciplab AUC"]
    lines = ["| " + " | ".join(header) + " |", "| --- | --- | --- | " + " | ".join("---:" for _ in header[3:]) + " |"]
    for report in reports:
        for condition, summary in report["summary"].items():
            by_fold = {fold["held_out"]: fold["conditions"][condition]["auc"] for fold in report["folds"]}
            complete = "" if len(by_fold) == len(held_out) else f" ({len(by_fold)} folds)"
            cells = [
                f"`{report['recipe']}`{complete}",
                f"`{Path(report['split_file']).name}`",
                condition,
                f"{summary['mean_auc']:.3f}",
                f"{summary['worst_auc']:.3f}",
                *[f"{by_fold[name]:.3f}" if name in by_fold else "—" for name in held_out],
                f"{summary['mean_recall']:.3f}",
                f"{summary.get('cross_dataset_mean_auc', float('nan')):.3f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_means_table(report_dirs: list[Path]) -> str:
    """Per recipe (its name without `-seed<N>`) and split swept on ≥ 2 seeds and condition: the mean over seeds of the
    mean fold AUC, of the worst fold AUC and of each fold's AUC. Only complete sweeps count."""
    by_recipe: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for directory in report_dirs:
        report = json.loads((directory / "logo.json").read_text())
        recipe = re.sub(r"-seed\d+$", "", report["recipe"])
        by_recipe[(recipe, Path(report["split_file"]).name)].append(report)
    held_out = list(dict.fromkeys(fold["held_out"] for reports in by_recipe.values() for fold in reports[0]["folds"]))
    header = ["recipe", "split", "seeds", "condition", "mean AUC", "worst AUC", *held_out]
    lines = [
        "| " + " | ".join(header) + " |",
        "| --- | --- | ---: | --- | " + " | ".join("---:" for _ in header[4:]) + " |",
    ]
    for (recipe, split), reports in by_recipe.items():
        complete = [report for report in reports if len(report["folds"]) == len(held_out)]
        if len(complete) < 2:
            continue
        for condition in complete[0]["summary"]:
            folds = [{f["held_out"]: f["conditions"][condition]["auc"] for f in r["folds"]} for r in complete]
            cells = [
                f"`{recipe}`",
                f"`{split}`",
                str(len(complete)),
                condition,
                f"{np.mean([r['summary'][condition]['mean_auc'] for r in complete]):.3f}",
                f"{np.mean([r['summary'][condition]['worst_auc'] for r in complete]):.3f}",
                *[f"{np.mean([fold[name] for fold in folds]):.3f}" for name in held_out],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    folders = [Path(argument) for argument in sys.argv[1:]]
    without_results = [str(folder) for folder in folders if not (folder / "logo.json").is_file()]
    if without_results:
        sys.exit(f"no logo.json (a sweep's --out folder) in: {', '.join(without_results)}")
    print(comparison_table(folders))
    print()
    print("Averaged over seeds:")
    print()
    print(seed_means_table(folders))
