"""Model files side by side on a split's test images, as shipped (their own calibration and threshold).

    python -m scripts.compare_models data/splits/faces-v2/split.csv models/a.safetensors runs/b/model.safetensors

For each model and condition (`stored`, and `web`: every face shrunk to 150–230 px and re-encoded at JPEG q75, as in
`logo.web_version`), prints: per fake source, ROC AUC of its fakes against all the test reals and recall at the
model's threshold; per real source, the false-positive rate. Native crop files are scored through each model's own
framing (`faces.framed_windows`), so a canonical-crop model and a native-crop model see the same faces as served.
The release decision of #20 reads this beside the leave-one-generator-out tables.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from detecteur.config import AUTHENTIC, SYNTHETIC
from detecteur.inference.windows import network_region_logits
from detecteur.model.networks import load_model
from detecteur.model.probabilities import fake_probabilities
from detecteur.training.data import open_image, read_records, select_split
from detecteur.training.logo import CONDITIONS, web_version


def compare(split_file: Path, model_files: list[Path]) -> str:
    records = select_split(read_records(split_file), "test")
    stored = [open_image(r.path) for r in records]
    views = {"stored": stored, "web": [web_version(im, str(r.path)) for im, r in zip(stored, records, strict=True)]}
    labels = np.array([r.label for r in records])
    sources = np.array([r.source for r in records])
    fake_sources = sorted({r.source for r in records if r.label == SYNTHETIC})
    real_sources = sorted({r.source for r in records if r.label == AUTHENTIC})
    header = ["model", "condition", *[f"{s} AUC / recall" for s in fake_sources], *[f"{s} FPR" for s in real_sources]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * 2 + " ---: |" * (len(header) - 2)]
    for model_file in model_files:
        model, metadata = load_model(model_file)
        for condition in CONDITIONS:
            logits = network_region_logits(model, metadata.input_spec, metadata.framing, views[condition])
            probabilities = fake_probabilities(logits, metadata.temperature, metadata.logit_adjustment)
            flagged = probabilities >= metadata.threshold
            reals = labels == AUTHENTIC
            cells = [f"`{metadata.version}`", condition]
            for source in fake_sources:
                fakes = (labels == SYNTHETIC) & (sources == source)
                chosen = fakes | reals
                auc = roc_auc_score(labels[chosen], probabilities[chosen])
                cells.append(f"{auc:.3f} / {flagged[fakes].mean():.2f}")
            cells += [f"{flagged[reals & (sources == source)].mean():.3f}" for source in real_sources]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(compare(Path(sys.argv[1]), [Path(argument) for argument in sys.argv[2:]]))
