"""Timing `adl generate` as a child process, torch-free: a child's peak RSS starts at its parent's on
Linux, so the parent that measures it must stay small (benchmarks/generate.py, generate_memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def run_generate(args: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "adl", "-q", "generate", *args])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"adl generate failed: {' '.join(args)}")
    return seconds, usage.ru_maxrss / 1024
