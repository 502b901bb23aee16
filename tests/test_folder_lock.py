"""Issue 12 §2: two processes never write one folder. Every command that writes --output holds an
exclusive lock on it; a second process gets one line naming the holder and touches nothing; a lock
left by a killed process never blocks the rerun."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_error, run_cli

from adl.imageio import write_png

HOLD = """
import sys, time
from adl.folder_lock import locked_folder
with locked_folder(sys.argv[1]):
    print("held", flush=True)
    if sys.argv[2] == "die":
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
"""

COMMANDS = {
    "generate": ["--model", "m.onnx", "--hr", "hr"],
    "train-downsampler": ["--hr", "hr", "--lr", "lr"],
    "train-sr": ["--hr", "hr", "--lr-source", "bicubic"],
    "degrade": ["--input", "hr", "--scale", "2", "--kernel", "k0"],
    "downsample": ["--checkpoint", "run", "--input", "hr"],
    "upscale": ["--checkpoint", "run", "--input", "hr"],
}


def holder(folder: Path, then: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), then], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lock") / "busy"
    folder.mkdir()
    (folder / "work.txt").write_text("the first process's output")
    proc = holder(folder, "hold")
    yield folder, proc.pid
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_second_process_gets_one_line_and_touches_nothing(held, capsys, command):
    folder, pid = held
    before = snapshot(folder)
    assert_one_error(capsys, [command, *COMMANDS[command], "--output", folder], folder, f"in use by process {pid}")
    assert snapshot(folder) == before


def test_a_lock_left_by_a_killed_process_never_blocks_a_rerun(tmp_path, capsys):
    out = tmp_path / "lr"
    proc = holder(out, "die")
    assert proc.wait() == -signal.SIGKILL
    hr = tmp_path / "hr"
    write_png(hr / "a.png", np.full((16, 16, 3), 100, np.uint8))
    code, _, err = run_cli(capsys, ["degrade", "--input", hr, "--output", out, "--scale", "2", "--kernel", "k0",
                                    "--device", "cpu"])
    assert code == 0, err
    assert (out / "a.png").exists() and not (out / ".adl.lock.pid").exists()


def test_failed_command_leaves_no_folder_and_no_lock_file(tmp_path, capsys):
    out = tmp_path / "new"
    assert_one_error(capsys, ["degrade", "--input", tmp_path / "missing", "--output", out, "--scale", "2",
                              "--kernel", "k0"], "--input")
    assert not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert_one_error(capsys, ["degrade", "--input", tmp_path / "missing", "--output", foreign, "--scale", "2",
                              "--kernel", "k0"], "--input")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


def test_output_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "taken.txt"
    path.write_text("x")
    for command in sorted(COMMANDS):
        line = assert_one_error(capsys, [command, *COMMANDS[command], "--output", path], path)
        assert "is a file; give a folder" in line
    assert path.read_text() == "x"
