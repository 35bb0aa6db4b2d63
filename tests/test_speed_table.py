"""The README's and docs/speed.md's speed table is the one `benchmarks/speed_table.py` writes from the results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_speed_table_is_written_from_the_results() -> None:
    done = subprocess.run(
        [sys.executable, "benchmarks/speed_table.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
