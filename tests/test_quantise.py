"""Int8 graphs (`detecteur.model.quantise`): quantising a small graph, the gates, and which graph the service runs.
The figures of the shipped model come from `benchmarks/int8.py`, not from here (no timing, no real data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from detecteur.files import file_sha256
from detecteur.model.file import ModelFileError
from detecteur.model.quantise import (
    QualityFigures,
    QuantisationError,
    _attach_report,
    _outputs_held,
    even_batch,
    first_convolutions,
    int8_graph_path,
    quantise_graph,
    read_int8_report,
    serving_graph,
)
from detecteur.model.serving_session import serving_session
from detecteur.training.int8 import _report, quantise_model
from tests.test_lean_serving import native_graph, native_model  # noqa: F401 - shared fixtures

GOOD = QualityFigures(roc_auc=0.99, ece=0.01, accuracy=0.97)


def report_for(model: Path, int8: QualityFigures, speed_up: float) -> object:
    speed = {"fp32": {"batch1": 10.0, "batch32": 100.0}, "int8": {"batch1": 10.0 / speed_up, "batch32": 50.0}}
    return _report(file_sha256(model), 8, 16, {"fp32": GOOD, "int8": int8}, speed, {"batch1": speed_up})


def test_the_gates() -> None:
    model = Path(__file__)
    assert report_for(model, QualityFigures(0.989, 0.012, 0.97), 2.0).passed  # type: ignore[attr-defined]
    worse_auc = report_for(model, QualityFigures(0.987, 0.01, 0.97), 2.0)
    assert not worse_auc.passed and "AUC" in worse_auc.reasons[0]  # type: ignore[attr-defined]
    worse_ece = report_for(model, QualityFigures(0.99, 0.02, 0.97), 2.0)
    assert not worse_ece.passed and "ECE" in worse_ece.reasons[0]  # type: ignore[attr-defined]
    slow = report_for(model, GOOD, 1.2)
    assert not slow.passed and "speed-up" in slow.reasons[0]  # type: ignore[attr-defined]


def test_calibration_folds_never_leave_the_last_one_empty() -> None:
    for images in range(1, 600):
        batch = even_batch(images)
        assert images % batch == 0 and (batch == 16 or images % 16)  # equal batches, as large as allowed
        batches = images // batch
        held = _outputs_held(images)
        assert held > batches or batches % held


@pytest.fixture(scope="module")
def int8_model(native_model: Path, native_graph: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A copy of the small model with an int8 graph beside it (calibrated on random inputs)."""
    folder = tmp_path_factory.mktemp("int8")
    model = Path(shutil.copy(native_model, folder / native_model.name))
    calibration = np.random.default_rng(0).standard_normal((20, 4, 64, 64)).astype(np.float32)
    quantise_graph(native_graph, calibration, int8_graph_path(model))
    return model


def test_the_int8_graph_runs_and_keeps_the_model_metadata(
    int8_model: Path,
    native_graph: Path,  # noqa: F811 - the fixture
) -> None:
    graph = int8_graph_path(int8_model)
    assert graph.name == f"{int8_model.stem}.int8.onnx"
    inputs = np.random.default_rng(1).standard_normal((3, 4, 64, 64)).astype(np.float32)
    int8 = serving_session(graph).run(None, {"input": inputs})[0]
    fp32 = serving_session(native_graph).run(None, {"input": inputs})[0]
    assert int8.shape == fp32.shape == (3, 2) and np.isfinite(int8).all()
    assert read_int8_report(graph) is None  # no figures yet: never served by "auto"


def test_every_calibration_method_gives_a_graph_that_runs(
    tmp_path: Path,
    native_graph: Path,  # noqa: F811 - the fixture
) -> None:
    calibration = np.random.default_rng(0).standard_normal((20, 4, 64, 64)).astype(np.float32)
    inputs = np.random.default_rng(1).standard_normal((2, 4, 64, 64)).astype(np.float32)
    for method in ("MinMax", "Entropy"):  # Percentile, the default, is the int8_model fixture's
        graph = quantise_graph(native_graph, calibration, tmp_path / f"{method}.onnx", calibration_method=method)
        logits = serving_session(graph).run(None, {"input": inputs})[0]
        assert logits.shape == (2, 2) and np.isfinite(logits).all(), method


def test_the_first_convolutions_can_stay_fp32(
    tmp_path: Path,
    native_graph: Path,  # noqa: F811 - the fixture
) -> None:
    import onnx

    stem = first_convolutions(native_graph, 1)
    assert len(stem) == 1 and first_convolutions(native_graph, 3)[:1] == stem
    calibration = np.random.default_rng(0).standard_normal((20, 4, 64, 64)).astype(np.float32)

    def quantised_inputs_of_stem(keep: list[str]) -> list[str]:
        graph = onnx.load(str(quantise_graph(native_graph, calibration, tmp_path / f"{len(keep)}.onnx", keep)))
        stem_node = next(node for node in graph.graph.node if node.name == stem[0])
        producers = {output: node.op_type for node in graph.graph.node for output in node.output}
        return [producers.get(name, "") for name in stem_node.input]

    # Quantised, the stem reads dequantised inputs and weights; kept fp32, it reads the raw input and its weights.
    assert "DequantizeLinear" in quantised_inputs_of_stem([])
    assert "DequantizeLinear" not in quantised_inputs_of_stem(stem)


def test_which_graph_is_served(
    int8_model: Path,
    native_graph: Path,  # noqa: F811 - the fixture
) -> None:
    graph = int8_graph_path(int8_model)
    assert serving_graph(int8_model, native_graph, "auto") == native_graph  # no report
    assert serving_graph(int8_model, native_graph, "fp32") == native_graph
    with pytest.raises(ModelFileError, match="quantise"):
        serving_graph(int8_model, native_graph, "int8")  # no report: not known to be made from this file
    _attach_report(graph, report_for(int8_model, GOOD, 1.2))  # type: ignore[arg-type]
    assert read_int8_report(graph) is not None
    assert serving_graph(int8_model, native_graph, "auto") == native_graph  # failed its speed gate
    assert serving_graph(int8_model, native_graph, "int8") == graph  # asked for outright
    _attach_report(graph, report_for(int8_model, GOOD, 2.0))  # type: ignore[arg-type]
    assert serving_graph(int8_model, native_graph, "auto") == graph
    _attach_report(graph, report_for(native_graph, GOOD, 2.0))  # made from another file: never served
    assert serving_graph(int8_model, native_graph, "auto") == native_graph


def test_missing_crop_files_are_a_clear_error(tmp_path: Path, native_model: Path) -> None:  # noqa: F811
    split = tmp_path / "split.csv"
    split.write_text(
        "path,label,source,subject_id,phash,split\n"
        "faces/a.jpg,0,s,s/a,0,val\nfaces/b.jpg,1,s,s/b,0,test\nfaces/c.jpg,0,s,s/c,0,test\n"
    )
    with pytest.raises(QuantisationError, match="detecteur data faces"):
        quantise_model(native_model, split)
    split.write_text("path,label,source,subject_id,phash,split\nfaces/a.jpg,0,s,s/a,0,train\n")
    with pytest.raises(QuantisationError, match="val and a test"):
        quantise_model(native_model, split)
