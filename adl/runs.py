"""Run folders shared by every trainer: options record, checkpoint, log, resume and signals.

RUN_DIR/config.json    every option, the seed, fingerprints of the training files, versions
RUN_DIR/checkpoint.pt  model and optimiser states, RNG states, iteration (weights_only-loadable)
RUN_DIR/log.csv        one row per logging interval: mean losses, extras, cumulative seconds

Running the same command on an existing RUN_DIR resumes from its checkpoint. Options that do
not change the result (``resumable``) may differ on resume; any other difference is refused.
SIGINT/SIGTERM finish the current iteration, write a checkpoint and exit with 128+signal.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import platform
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

import adl
from adl.atomic import atomic_path, file_sha256, write_text
from adl.errors import AdlError
from adl.progress import progress

log = logging.getLogger(__name__)


def data_fingerprint(paths: Sequence[Path]) -> str:
    """Names and sizes of the training files: cheap, and enough to notice a changed folder."""
    h = hashlib.sha256()
    for p in paths:
        h.update(f"{p.name}\0{p.stat().st_size}\n".encode())
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    return {"adl": adl.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def read_checkpoint(path: str | Path, kind: str, what: str, option: str = "--checkpoint") -> tuple[dict, Path]:
    """A checkpoint of ``kind`` (or the checkpoint.pt of a run folder), read with weights_only.

    ``what`` names the kind for people ("downsampler"); ``option`` is the command-line option
    that named ``path``, so the one-line errors say where the problem came from.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise AdlError(f"{option} {path}: no such file; pass a {what} checkpoint.pt or its run folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise AdlError(f"{option} {path}: not a readable torch checkpoint ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        found = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise AdlError(f"{option} {path}: not an adl {what} checkpoint (found {found!r})")
    return ckpt, path


_KIND_NAMES = {"adl-downsampler": "train-downsampler", "adl-sr": "train-sr"}


def _run_kind(config: dict) -> str | None:
    """Which trainer wrote a config.json; folders from before "kind" was recorded are told by their options."""
    if not isinstance(config, dict):
        return None
    if config.get("kind"):
        return config["kind"]
    options = config.get("options") or {}
    return "adl-downsampler" if "data_loss" in options else "adl-sr" if "lr_source" in options else None


class StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked between iterations; a second SIGINT aborts at once."""

    def __init__(self):
        self.signum: int | None = None

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


class TrainingInterrupted(AdlError):
    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class TrainingRun:
    """The loop and bookkeeping of one resumable training run; subclasses supply the model part.

    A subclass sets ``kind``, ``loss_names``, ``extra_columns`` and ``resumable``, calls
    ``check_folder`` before its expensive set-up and ``create_folder`` after it, then
    ``load_checkpoint``; it implements ``batches``, ``train_step``, ``state`` and ``restore``.
    """

    kind: str = ""
    loss_names: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    resumable: frozenset[str] = frozenset()
    # Options added after runs may have started, each with the value that does what a run from before
    # it did (for adl's options, their default): a run whose config.json lacks one resumes if the
    # option still has that value.
    added_options: ClassVar[dict[str, object]] = {}
    checkpoint_format = 1

    def __init__(self, run_dir: str | Path, options: dict, fingerprints: dict[str, tuple[str, str]],
                 device: torch.device, desc: str):
        """``fingerprints`` maps a record key to (the option it comes from, its value)."""
        self.run_dir = Path(run_dir)
        self.options = options
        self.device = device
        self.desc = desc
        self.record = {"kind": self.kind, "options": options, "seed": options["seed"], "versions": package_versions(),
                       **{key: value for key, (_, value) in fingerprints.items()}}
        self._fingerprint_flags = {key: flag for key, (flag, _) in fingerprints.items()}
        self.iteration = 0
        self.elapsed = 0.0

    # -- the folder ------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.run_dir / "log.csv"

    @property
    def log_columns(self) -> tuple[str, ...]:
        return ("iteration", *self.loss_names, *self.extra_columns, "seconds")

    def check_folder(self) -> None:
        """Refuse a RUN_DIR whose config.json records other options or other training files."""
        config_path = self.run_dir / "config.json"
        if not config_path.exists():
            return
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise AdlError(f"{config_path}: unreadable ({exc}); use a new --output folder") from None
        old, new = previous.get("options", {}), self.record["options"]
        found = _run_kind(previous)
        if found and found != self.kind:
            raise AdlError(f"{self.run_dir}: a {_KIND_NAMES.get(found, found)} run folder, not a "
                           f"{_KIND_NAMES.get(self.kind, self.kind)} one; give this command another --output")
        old = {**{k: v for k, v in self.added_options.items() if k in new}, **old}
        changed = [k for k in sorted(set(old) | set(new)) if k not in self.resumable and old.get(k) != new.get(k)]
        if changed:
            diffs = ", ".join(f"--{k.replace('_', '-')} {old.get(k)!r} (now {new.get(k)!r})" for k in changed)
            raise AdlError(f"{self.run_dir}: this run was started with other options: {diffs}; "
                           f"rerun with the original options or use a new --output")
        for key, flag in self._fingerprint_flags.items():
            if previous.get(key) != self.record[key]:
                raise AdlError(f"{self.run_dir}: the files under {flag} differ from those this run started with; "
                               f"restore them or use a new --output")

    def create_folder(self) -> None:
        """Write config.json, once the inputs are known to be usable.

        Not earlier: a config.json left by a run that failed on its images would pin the very
        options (or file set) that the error message tells the user to change.
        """
        self.check_folder()
        config_path = self.run_dir / "config.json"
        if not config_path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_text(config_path, json.dumps(self.record, indent=2) + "\n")

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict:
        raise NotImplementedError

    def restore(self, ckpt: dict) -> None:
        raise NotImplementedError

    def save_checkpoint(self) -> None:
        ckpt = {
            "kind": self.kind,
            "format": self.checkpoint_format,
            "adl_version": adl.__version__,
            "config": self.options,
            "seed": self.options["seed"],
            "iteration": self.iteration,
            "elapsed": self.elapsed,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            **self.state(),
        }
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(ckpt, tmp)

    def load_checkpoint(self) -> None:
        path = self.checkpoint_path
        if not path.exists():
            return
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a foreign or truncated file: say which, never traceback
            raise AdlError(f"{path}: unreadable checkpoint ({type(exc).__name__}); delete it to restart the run") from None
        if not isinstance(ckpt, dict) or ckpt.get("kind") != self.kind:
            raise AdlError(f"{path}: not an {self.kind} checkpoint; use a new --output")
        try:
            self.restore(ckpt)
            torch.set_rng_state(ckpt["rng"]["torch"])
            if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
            self.iteration = int(ckpt["iteration"])
            self.elapsed = float(ckpt["elapsed"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise AdlError(f"{path}: incomplete or damaged checkpoint ({type(exc).__name__}); "
                           f"delete it to restart the run") from None
        self._truncate_log()
        log.info("resuming %s at iteration %d", self.run_dir, self.iteration)

    def _truncate_log(self) -> None:
        """Drop log rows past the checkpoint we resume from, so the log matches the weights."""
        if not self.log_path.exists():
            return
        with open(self.log_path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= self.iteration]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.log_columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        write_text(self.log_path, buf.getvalue())

    # -- the loop --------------------------------------------------------------------------------
    def batches(self) -> Iterable:
        """The batches of iterations ``self.iteration`` … ``total`` − 1, in order."""
        raise NotImplementedError

    def train_step(self, batch) -> torch.Tensor:
        """One iteration; returns the detached losses named by ``loss_names`` as a 1-D tensor."""
        raise NotImplementedError

    def before_step(self) -> None:
        """Called before each iteration (ADL refreshes its kernel here)."""

    def row_extras(self) -> list:
        """Values of ``extra_columns`` for the log row being written."""
        return []

    def row_due(self) -> bool:
        """Whether this iteration needs a log row besides the regular ones (e.g. a validation)."""
        return False

    def summary_extras(self) -> dict:
        """More entries for summary.json (how the run was computed, e.g. its precision)."""
        return {}

    @property
    def summary_path(self) -> Path:
        return self.run_dir / "summary.json"

    def write_summary(self) -> None:
        """summary.json marks a finished run. Workflows declare it, not checkpoint.pt, as the output:
        a scheduler that deletes the outputs of an interrupted job then leaves the checkpoint to resume."""
        with open(self.log_path, newline="") as f:
            rows = list(csv.DictReader(f))
        summary = {"kind": self.kind, "iterations": self.iteration, "seconds": self.elapsed,
                   "seed": self.options["seed"], "last_log_row": rows[-1] if rows else None,
                   "checkpoint": self.checkpoint_path.name, "checkpoint_sha256": file_sha256(self.checkpoint_path),
                   **self.summary_extras()}
        write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")

    def run(self, total: int, log_every: int, checkpoint_every: int) -> Path:
        if self.iteration >= total:
            log.warning("%s: already trained for %d iterations; nothing to do", self.run_dir, self.iteration)
            if not self.summary_path.exists():
                self.write_summary()
            return self.checkpoint_path
        self.summary_path.unlink(missing_ok=True)  # extending a finished run: it is not finished any more
        new_log = not self.log_path.exists()
        sums = torch.zeros(len(self.loss_names), device=self.device)
        in_sum = 0
        with open(self.log_path, "a", newline="") as log_file, StopRequest() as stop:
            writer = csv.writer(log_file, lineterminator="\n")
            if new_log:
                writer.writerow(self.log_columns)
            bar = progress(total=total, initial=self.iteration, desc=self.desc, unit="it")
            started = time.perf_counter() - self.elapsed
            for batch in self.batches():
                self.before_step()
                # Losses stay on the device until a row is written: no host sync per iteration.
                sums += self.train_step(batch)
                in_sum += 1
                self.iteration += 1
                bar.update(1)
                done = self.iteration == total
                checkpoint_due = self.iteration % checkpoint_every == 0 or done or stop.signum is not None
                if self.iteration % log_every == 0 or checkpoint_due or self.row_due():
                    self.elapsed = time.perf_counter() - started
                    means = (sums / in_sum).tolist()
                    writer.writerow([self.iteration, *(f"{v:.6g}" for v in means), *self.row_extras(),
                                     f"{self.elapsed:.3f}"])
                    log_file.flush()
                    bar.set_postfix({name: f"{v:.4g}" for name, v in zip(self.loss_names, means)})
                    sums.zero_()
                    in_sum = 0
                if checkpoint_due:
                    self.save_checkpoint()
                if stop.signum is not None and not done:
                    bar.close()
                    raise TrainingInterrupted(
                        f"{signal.Signals(stop.signum).name} at iteration {self.iteration}: checkpoint saved in "
                        f"{self.run_dir}; rerun the same command to resume", stop.signum)
            bar.close()
        self.write_summary()
        return self.checkpoint_path
