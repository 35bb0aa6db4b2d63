"""Cold start: `detecteur serve` process start → first `/health` 200 (imports, model load, warm-up inference),
for each backend, with the exported ONNX graph already cached; and once with an empty cache, where the first
start also exports the graph.

    .venv/bin/python benchmarks/cold_start.py [--starts 2]

Writes benchmarks/results/cold_start.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from benchlib import Record, Server

from detecteur.config import Settings
from detecteur.model.export import ensure_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=2)
    parser.add_argument("--skip-first-export", action="store_true", help="skip the start with an empty cache")
    args = parser.parse_args()

    record = Record("cold_start", starts=args.starts)
    ensure_onnx(Settings().model_path)  # the cached graph every later start finds
    results: dict[str, object] = {}
    for backend in ("onnxruntime", "torch"):
        ready_s, rss = [], []
        for _ in range(args.starts):
            with Server({"DETECTEUR_BACKEND": backend}) as server:
                ready_s.append(server.ready_s)
                rss.append(server.rss_mib())
        results[backend] = {"ready_s": ready_s, "median_s": statistics.median(ready_s), "rss_mib_ready": rss}
        print(f"{backend}: ready after {ready_s} s (RSS {rss} MiB)", flush=True)
    if not args.skip_first_export:
        with (
            tempfile.TemporaryDirectory() as empty_cache,
            Server({"DETECTEUR_BACKEND": "onnxruntime", "XDG_CACHE_HOME": empty_cache}) as server,
        ):
            results["onnxruntime_first_start_with_export_s"] = server.ready_s
        print(
            f"first start with an empty cache (exports the graph): {results['onnxruntime_first_start_with_export_s']} s"
        )
    record.write(results)


if __name__ == "__main__":
    main()
