"""Progress bars for every long loop: tqdm, shown on terminals only, silenced by ``adl -q``."""

from __future__ import annotations

from tqdm import tqdm

_quiet = False


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def progress(iterable=None, **kwargs) -> tqdm:
    # disable=None is tqdm's "only on a TTY": logs of batch jobs get no carriage-return spam.
    return tqdm(iterable, disable=True if _quiet else None, dynamic_ncols=True, **kwargs)
