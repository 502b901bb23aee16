"""One adl process per output folder: an exclusive lock held for the whole command.

The lock is filelock's (flock on POSIX), so the kernel drops it when its process dies, however
it dies: a lock left by a killed run never blocks the rerun. The holder's process id sits in a
file beside the lock, because filelock truncates the lock file itself on every attempt.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from filelock import FileLock, Timeout

from adl.atomic import write_text
from adl.errors import AdlError

LOCK_FILE = ".adl.lock"
PID_FILE = ".adl.lock.pid"


@contextlib.contextmanager
def locked_folder(folder: str | os.PathLike, option: str = "--output"):
    """Hold ``folder`` (created if missing) for this process; AdlError at once if another holds it.

    A folder this call created is removed again if the command fails before writing anything
    into it, and a refused folder keeps no trace of the attempt.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise AdlError(f"{option} {folder}: is a file; give a folder")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AdlError(f"{option} {folder}: a file is in the way of this folder; give another path") from None
    except OSError as exc:
        raise AdlError(f"{option} {folder}: cannot create it ({exc.strerror}); check the path and its permissions") from None
    lock_path, pid_path = folder / LOCK_FILE, folder / PID_FILE
    had_lock_file = lock_path.exists()
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise AdlError(f"{option} {folder}: in use by process {_holder(pid_path)} (another adl command is writing "
                       f"there); wait for it to finish or give another folder") from None
    except OSError as exc:
        raise AdlError(f"{option} {folder}: cannot lock it ({exc.strerror}); check its permissions") from None
    finished = False
    # A holder killed while writing its pid leaves that write's temporary; only a holder could write one.
    for stale in folder.glob(f".{PID_FILE}.*.part*"):
        stale.unlink(missing_ok=True)
    try:
        write_text(pid_path, f"{os.getpid()}\n")
        yield folder
        finished = True
    finally:
        pid_path.unlink(missing_ok=True)
        leave_no_trace = not finished and (created or not had_lock_file)
        if leave_no_trace:
            # Unlinked while still held: a process that opened the old file in this instant would
            # lock a file nobody else uses, so this happens only on failure, never under a running job.
            lock_path.unlink(missing_ok=True)
        lock.release()
        if leave_no_trace and created:
            with contextlib.suppress(OSError):  # not empty: the command wrote something worth keeping
                folder.rmdir()


def _holder(pid_path: Path) -> str:
    try:
        return pid_path.read_text().strip() or "(unknown)"
    except OSError:
        return "(unknown)"
