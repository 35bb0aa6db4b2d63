from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detecteur.cli import app
from detecteur.config import RUN_CALIBRATED_MODEL_FILE
from detecteur.inference.engine import STABILITY_VIEWS, decide
from detecteur.model.networks import read_metadata
from detecteur.training.calibrate import save_calibrated_model
from detecteur.training.evaluate import evaluate_run
from tests import provenance_fixtures
from tests.toy_data import make_toy_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def calibrated_model(toy_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    save_calibrated_model(toy_run, evaluate_run(toy_run, out_dir=tmp_path_factory.mktemp("cli-report")))
    return toy_run / RUN_CALIBRATED_MODEL_FILE


def test_data_commands_write_a_manifest_and_a_split(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "toyset", per_class=20, size=32)
    manifest, split = tmp_path / "manifest.csv", tmp_path / "split.csv"
    result = runner.invoke(app, ["data", "manifest", str(root), "--out", str(manifest)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "split", str(manifest), "--out", str(split), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert split.read_text().splitlines()[0] == "path,label,source,subject_id,phash,split"


def test_predict_prints_a_verdict_per_image_as_json(calibrated_model: Path, toy_root: Path) -> None:
    fake, real = sorted((toy_root / "fake").iterdir())[0], sorted((toy_root / "real").iterdir())[0]
    arguments = ["predict", str(fake), str(real), "--model", str(calibrated_model), "--json", "--no-stability"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    results = json.loads(result.output)["results"]
    assert [r["image"] for r in results] == [str(fake), str(real)]
    metadata = read_metadata(calibrated_model)
    for r in results:
        assert r["verdict"] == decide(r["fake_probability"], metadata).verdict
        assert r["confidence"] == pytest.approx(max(r["fake_probability"], 1 - r["fake_probability"]))


def test_predict_shows_the_evidence_lines_and_the_stability_check(calibrated_model: Path, tmp_path: Path) -> None:
    signed = tmp_path / "signed.jpg"
    signed.write_bytes(provenance_fixtures.signed())
    as_json = runner.invoke(app, ["predict", str(signed), "--model", str(calibrated_model), "--json"])
    table = runner.invoke(app, ["predict", str(signed), "--model", str(calibrated_model)])

    assert as_json.exit_code == 0, as_json.output
    (result,) = json.loads(as_json.output)["results"]
    assert result["evidence"]["content_credentials"]["status"] == "untrusted"
    sources = [line["source"] for line in result["evidence"]["lines"]]
    assert sources == ["pixel_model", "content_credentials", "metadata"]
    assert set(result["faces"][0]["stability"]["probabilities"]) == set(STABILITY_VIEWS)
    assert table.exit_code == 0, table.output
    assert result["evidence"]["summary"].split(":")[0] in " ".join(table.output.split())
    assert "content credentials (" in table.output


def test_predict_reports_an_unreadable_file_without_a_traceback(calibrated_model: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    result = runner.invoke(app, ["predict", str(text), "--model", str(calibrated_model)])
    assert result.exit_code == 1
    assert "cannot read image" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_predict_with_a_missing_model_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["predict", "x.jpg", "--model", str(tmp_path / "absent.safetensors")])
    assert result.exit_code == 2
    assert "model file not found" in result.output


def test_evaluate_on_a_folder_prints_json_metrics(calibrated_model: Path, toy_root: Path, tmp_path: Path) -> None:
    args = [
        "evaluate",
        "--model",
        str(calibrated_model),
        "--data",
        str(toy_root),
        "--out",
        str(tmp_path),
        "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n"] == 160


def test_evaluate_without_a_target_explains_what_to_give() -> None:
    result = runner.invoke(app, ["evaluate"])
    assert result.exit_code == 2
    assert "--run" in result.output


def test_logo_sweep_refuses_a_fold_folder_left_by_another_protocol(tmp_path: Path) -> None:
    from detecteur.training.runs import describe_run, write_description

    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[logo]\nheld_out = ["gen-a"]\n')
    split = tmp_path / "split.csv"
    split.write_text("path,label,source,subject_id,phash,split\n")
    # A fold run of the first protocol, which left out the whole source (its reals too).
    (tmp_path / "folds" / "gen-a").mkdir(parents=True)
    first_protocol = describe_run({"exclude_sources": ["gen-a"]}, split, "0", "cpu", {}, 1)
    write_description(tmp_path / "folds" / "gen-a", first_protocol)
    arguments = ["evaluate", "--logo", str(recipe), "--split", str(split), "--out", str(tmp_path / "report")]
    result = runner.invoke(app, [*arguments, "--logo-runs", str(tmp_path / "folds")])
    assert result.exit_code == 2, result.output
    assert "leaves out ['gen-a/fake']" in result.output and "move that folder away" in result.output
    assert not (tmp_path / "report" / "logo.json").exists()


def test_logo_sweep_with_another_seed_refuses_the_folds_of_the_recipe_s_own_seed(tmp_path: Path) -> None:
    from detecteur.config import TrainConfig
    from detecteur.training.logo import fold_config
    from detecteur.training.runs import describe_run, write_description

    recipe = tmp_path / "recipe.toml"
    recipe.write_text('seed = 20\n[logo]\nheld_out = ["gen-a"]\n')
    split = tmp_path / "split.csv"
    split.write_text("path,label,source,subject_id,phash,split\n")
    seed_20_fold = fold_config(TrainConfig.from_toml(recipe), "gen-a").model_dump(mode="json")
    write_description(tmp_path / "folds" / "gen-a", describe_run(seed_20_fold, split, "0", "cpu", {}, 1))
    arguments = ["evaluate", "--logo", str(recipe), "--split", str(split), "--out", str(tmp_path / "report")]
    result = runner.invoke(app, [*arguments, "--logo-runs", str(tmp_path / "folds"), "--seed", "21"])
    assert result.exit_code == 2, result.output
    assert "other seed" in result.output and "--logo-runs" in result.output
    assert not (tmp_path / "report" / "logo.json").exists()


def test_evaluate_names_an_unreadable_file_in_the_folder(calibrated_model: Path, tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "set", per_class=3, size=32)
    (root / "fake" / "broken.png").write_text("not an image")
    result = runner.invoke(
        app, ["evaluate", "--model", str(calibrated_model), "--data", str(root), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "broken.png" in result.output


@pytest.fixture(scope="module")
def face_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_video import save_small_face_model

    return save_small_face_model(tmp_path_factory.mktemp("cli-video-model") / "model.safetensors")


def test_predict_on_a_video_prints_a_row_per_track(face_model: Path, tmp_path: Path) -> None:
    from tests.video_clips import FACE, OTHER_FACE, encode_clip, moving_faces

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(encode_clip(moving_faces(2, 4, (FACE, OTHER_FACE), size=(340, 180)), fps=4))
    result = runner.invoke(app, ["predict", str(clip), str(FACE), "--model", str(face_model)])
    assert result.exit_code == 0, result.output
    assert "4 frames sampled over 2.0 s" in result.output
    assert "is the most suspicious" in result.output
    assert "model video-test (threshold 0.500)" in result.output, "images given with the video are still judged"

    as_json = runner.invoke(app, ["predict", str(clip), "--model", str(face_model), "--json"])
    (video,) = json.loads(as_json.output)["videos"]
    assert video["video"] == str(clip) and video["face_detected"] is True
    assert [track["frames_seen"] for track in video["tracks"]] == [4, 4]
    top = max(video["tracks"], key=lambda track: track["fake_probability"])
    assert (video["most_suspicious_track"], video["verdict"]) == (top["track_id"], top["verdict"])


def test_predict_reports_a_broken_video_without_a_traceback(face_model: Path, tmp_path: Path) -> None:
    from tests.video_clips import encode_clip, plain_frames

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(encode_clip(plain_frames(2, 4), fps=4)[:1500])
    result = runner.invoke(app, ["predict", str(broken), "--model", str(face_model)])
    assert result.exit_code == 1
    assert "cannot read video" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
