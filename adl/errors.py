"""The one exception type that the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations

import contextlib
import os


class AdlError(Exception):
    """A problem with the user's input or environment, phrased as: what, where, and how to fix it."""


class UsageError(AdlError):
    """An option the user gave is out of range or inconsistent with another: exit 2, as argparse's errors."""

    exit_code = 2


@contextlib.contextmanager
def naming(path: str | os.PathLike):
    """Prefix the file being processed to an AdlError about it (the library sees arrays, not files)."""
    try:
        yield
    except AdlError as exc:
        raise AdlError(f"{path}: {exc}") from None
