"""The benchmark scripts' --quick modes, so that the scripts cannot rot unnoticed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


# Table lines, headers included: train_downsampler.py prints 3 levers, the 12 top kernels and 2 fidelity rows.
# shard_read.py prints a write table and a read table, 5 layouts each; generate_memory.py 2 sizes × 2 backends.
@pytest.mark.parametrize("script, lines", [("shard_layout.py", 1 + 8), ("shard_read.py", 1 + 5 + 1 + 5),
                                           ("generate.py", 1 + 6), ("generate_memory.py", 1 + 4),
                                           ("train_sr.py", 1 + 2),
                                           ("train_downsampler.py", 1 + 3 + 1 + 12 + 1 + 2)])
def test_quick_benchmark_prints_its_tables(script, lines):
    result = subprocess.run([sys.executable, str(BENCHMARKS / script), "--quick"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("|---")]
    assert len(table) == lines, result.stdout
    for line in table:
        figures = [cell.strip() for cell in line.strip("|").split("|")]
        assert all(cell for cell in figures) and "failed" not in line, line
