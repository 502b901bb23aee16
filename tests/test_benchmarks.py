"""The benchmark scripts' --quick modes, so that the scripts cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script, rows", [("shard_layout.py", 8), ("generate.py", 4), ("train_sr.py", 2)])
def test_quick_benchmark_prints_its_table(script, rows):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    assert len(table) == rows + 1, result.stdout  # header + one row per measurement
    for line in table[1:]:
        figures = [cell.strip() for cell in line.strip("|").split("|")]
        assert all(cell for cell in figures), line
