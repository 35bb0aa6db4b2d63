"""Recipes side by side from their leave-one-generator-out results (`detecteur evaluate --logo … --out DIR`).

    python -m scripts.logo_compare reports/logo/generalise-native reports/logo/generalise-native-fakes …

Prints a Markdown table: per recipe (and the split it was swept on) and condition, the mean and worst fold AUC (reals
matched to the held-out fakes on sharpness and size), each fold's AUC, the mean recall at the folds' thresholds and the
cross-dataset mean AUC — the figures recipes are chosen by. Folds missing from a sweep (an unfinished one) are shown as
"—".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


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


if __name__ == "__main__":
    folders = [Path(argument) for argument in sys.argv[1:]]
    without_results = [str(folder) for folder in folders if not (folder / "logo.json").is_file()]
    if without_results:
        sys.exit(f"no logo.json (a sweep's --out folder) in: {', '.join(without_results)}")
    print(comparison_table(folders))
