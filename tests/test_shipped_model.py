"""The model in `models/` is the one the card describes; on held-out samples every real falls below its threshold and
every score is the one recorded when it shipped."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from detecteur.config import Settings
from detecteur.inference.engine import Detector
from detecteur.model.networks import read_metadata, verify_model_file
from detecteur.training.card import split_file_of_card
from detecteur.training.data import open_image

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / Settings().model_path
CARD = ROOT / "models" / "MODEL_CARD.md"
# Sample faces from the test split of each dataset preparation a shipped model was trained on (README in each
# folder: how they were picked); a model must be judged on faces it never trained on.
SAMPLE_FOLDERS = {"faces-v1": "samples", "faces-v2": "held-out-faces-v2"}


SAMPLES = sorted((ROOT / "tests" / "data" / SAMPLE_FOLDERS[split_file_of_card(CARD).parent.name]).glob("*.jpg"))


def test_the_default_model_file_is_shipped_and_loads() -> None:
    metadata = read_metadata(SHIPPED)
    assert metadata.version in SHIPPED.name
    assert metadata.framing in ("face_crop", "native_face_crop") and metadata.in_chans == 4


def test_the_samples_are_in_the_shipped_models_test_split() -> None:
    # A sample is named <source>-<class>-<original file name>, compared up to its first dot: UTKFace's files end in
    # `.jpg.chip.jpg`, which an older sample's name shortened.
    with split_file_of_card(CARD).open() as handle:
        test_faces = {
            (row["source"], Path(row["path"]).parts[-2], Path(row["path"]).name.split(".")[0])
            for row in csv.DictReader(handle)
            if row["split"] == "test"
        }
    assert SAMPLES
    for sample in SAMPLES:
        named = re.match(r"(.+)-(real|fake)-(.+)\.jpg$", sample.name)
        assert named is not None
        source, kind, original = named.groups()
        assert (source, kind, original.split(".")[0]) in test_faces, f"{sample.name} is not a test face of its split"


def test_the_shipped_model_carries_the_hash_of_its_weights() -> None:
    # The service refuses a model file whose weights do not match this hash; an unhashed file would only warn.
    assert read_metadata(SHIPPED).weights_sha256 is not None
    verify_model_file(SHIPPED)


def test_the_model_card_quotes_the_shipped_files_own_figures() -> None:
    metadata = read_metadata(SHIPPED)
    card = CARD.read_text()
    test = metadata.metrics["test"]
    assert f"`{SHIPPED.name}`" in card
    assert f"| test | {test['accuracy']:.4f} | {test['precision']:.4f} | {test['recall']:.4f} |" in card
    assert f"{test['roc_auc']:.4f}" in card
    assert f"decision threshold {metadata.threshold:.4f}" in card
    assert f"temperature {metadata.temperature:.4f}" in card


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(SHIPPED)


def recorded_scores() -> dict[str, float]:
    """The fake probability the shipped model gave each sample when it shipped (`scores.json` beside them)."""
    recorded = json.loads((SAMPLES[0].parent / "scores.json").read_text())
    assert recorded["model"] == read_metadata(SHIPPED).version, "re-record scores.json for the shipped model"
    return dict(recorded["fake_probability"])


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda path: path.name)
def test_held_out_samples_score_as_recorded_and_reals_fall_below_the_threshold(
    detector: Detector, sample: Path
) -> None:
    # Every real must stay on the authentic side: the threshold caps each real source's false positives. Fakes the
    # model misses are named in the folder's README; their scores must not drift from what the model shipped with.
    kind = re.match(r".+-(real|fake)-", sample.name)
    assert kind is not None
    judged = detector.judge(open_image(sample))
    assert judged.face_detected
    fake_probability = judged.most_suspicious.verdict.fake_probability
    assert fake_probability == pytest.approx(recorded_scores()[sample.name], abs=1e-3)
    if kind.group(1) == "real":
        assert fake_probability < detector.metadata.threshold
