"""Which int8 graph of the served model keeps its AUC? For 0.9.0, int8 everywhere with MinMax ranges loses ~0.07
test AUC (`benchmarks/int8.py`); this quantises the graph again with the first 1 and 8 `Conv` nodes kept fp32
(`quantise.quantise_graph(keep_fp32=…)`) and with ONNX Runtime's other calibration methods (Percentile, Entropy;
Percentile also with the first 1, 8 and 16 convolutions fp32, and with the stem and the head fp32),
all calibrated on the same validation faces, and scores every graph on every other test face, with the forward pass
at batch 1, in one run. A look, not a gate: nothing here is served.

    .venv/bin/python benchmarks/int8_variants.py [--split SPLIT_CSV (default: the split the model card names)]

Writes benchmarks/results/int8_variants.json.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from benchlib import ROOT, Record, cpu_cores

from detecteur.config import CALIBRATION_IMAGES, Settings
from detecteur.model.export import graph_for_serving
from detecteur.model.file import read_metadata
from detecteur.model.quantise import first_convolutions, quantise_graph
from detecteur.model.serving_session import serving_session
from detecteur.training.card import split_file_of_card
from detecteur.training.data import read_records
from detecteur.training.int8 import _logits, _quality, _region_logits, forward_p50_ms, model_inputs

# (calibration method, how many of the first convolutions stay fp32, whether the head stays fp32)
VARIANTS: tuple[tuple[Literal["MinMax", "Percentile", "Entropy"], int, bool], ...] = (
    ("MinMax", 0, False),
    ("MinMax", 1, False),
    ("MinMax", 8, False),
    ("Percentile", 0, False),
    ("Percentile", 1, False),
    ("Percentile", 1, True),
    ("Percentile", 8, False),
    ("Percentile", 16, False),
    ("Entropy", 0, False),
)


def head_nodes(graph: Path) -> list[str]:
    """The network's head: its last convolution (to the pooled features) and the classifier (`Gemm`)."""
    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    return [
        [node.name for node in nodes if node.op_type == "Conv"][-1],
        *(n.name for n in nodes if n.op_type == "Gemm"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, default=split_file_of_card(ROOT / "models" / "MODEL_CARD.md"))
    args = parser.parse_args()
    model_path = Settings().model_path
    metadata = read_metadata(model_path)
    records = read_records(args.split)
    validation = [record for record in records if record.split == "val"]
    test = [record for record in records if record.split == "test"][::2]
    missing = [record.path for record in validation + test if not record.path.is_file()]
    if missing:
        print(f"skipped: {len(missing)} crop files of {args.split} are missing (first: {missing[0]}); docs/training.md")
        return
    record = Record("int8_variants", model=str(model_path), split=str(args.split), test_images=len(test))
    step = max(1, len(validation) // CALIBRATION_IMAGES)
    calibration, _ = model_inputs([r.path for r in validation[::step][:CALIBRATION_IMAGES]], metadata)
    test_inputs, counts = model_inputs([r.path for r in test], metadata)
    labels = np.array([r.label for r in test], dtype=np.int64)
    fp32_graph = graph_for_serving(model_path)
    sessions = {"fp32": serving_session(fp32_graph, cpu_cores())}
    with tempfile.TemporaryDirectory() as folder:
        for method, kept, head in VARIANTS:
            out = Path(folder) / f"int8-{method}-{kept}-{head}.onnx"
            fp32_nodes = first_convolutions(fp32_graph, kept) + (head_nodes(fp32_graph) if head else [])
            graph = quantise_graph(fp32_graph, calibration, out, fp32_nodes, method)
            name = f"int8 {method}, first {kept} convolutions{' and the head' if head else ''} fp32"
            sessions[name] = serving_session(graph, cpu_cores())
        quality = {
            name: _quality(_region_logits(_logits(session, test_inputs), counts), labels, metadata)
            for name, session in sessions.items()
        }
        speed = forward_p50_ms(sessions, test_inputs, {1: 30})
    results = {name: {"roc_auc": quality[name].roc_auc, "ece": quality[name].ece, **speed[name]} for name in sessions}
    for name, figures in results.items():
        print(f"{name}: {figures}")
    record.write(results)


if __name__ == "__main__":
    main()
