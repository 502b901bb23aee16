"""Atomic file writes (a reader never sees a half-written artifact under its final name) and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from adl.errors import AdlError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder so that the final ``os.replace`` is atomic.
    It ends in the target's suffix so that writers which pick a format, or append an
    extension, by suffix (PIL, ``np.save``) behave as they would on the final name.
    """
    target = Path(path)
    if target.is_dir():
        raise AdlError(f"{target}: is a folder; name a file to write instead")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AdlError(f"{target}: cannot create the folder {target.parent}, a file is in the way") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + target.suffix, dir=target.parent)
    except OSError as exc:  # permissions, a read-only or full disk, a name too long: say which file
        raise AdlError(f"{target}: cannot write here ({exc.strerror}); check the path and its permissions") from None
    os.close(fd)
    # mkstemp creates the file 0600; a finished artifact gets the permissions any new file would.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as exc:  # a full disk or a refused write inside the block: say which file, not just errno
        raise AdlError(f"{target}: cannot write it ({exc.strerror or exc}); check free space and permissions") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
