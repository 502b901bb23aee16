"""Issue 18: a real BasicSR. Builds (or reuses) the client environment of .ci/basicsr-env.sh (BasicSR 1.4.2,
torch 2.14.1, torchvision 0.29.1, lmdb) and runs tests/basicsr_client.py there: AdlShardDataset against stock
PairedImageDataset, LMDB output read by stock BasicSR, and EDSR trained through BasicSR's train pipeline
from each of adl's formats. An environment that cannot be built fails this test with the reason."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_real_basicsr_client_suite():
    start = time.monotonic()
    env = subprocess.run(["bash", str(REPO / ".ci" / "basicsr-env.sh")], capture_output=True, text=True,
                         timeout=3600)
    assert env.returncode == 0, f"cannot build the BasicSR client environment:\n{env.stderr[-3000:]}"
    python = env.stdout.strip().splitlines()[-1]
    built = time.monotonic() - start
    run = subprocess.run([python, "-m", "pytest", str(REPO / "tests" / "basicsr_client.py"), "-q",
                          "-p", "no:cacheprovider"], cwd=REPO, capture_output=True, text=True, timeout=1800,
                         env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
    print(f"BasicSR client environment ready in {built:.0f} s; its tests took {time.monotonic() - start - built:.0f} s")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout.splitlines()[-1]
