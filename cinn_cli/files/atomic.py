"""Files are written whole or not at all, and opened only when they are regular files."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file in the same folder, then rename it over ``path``.

    A killed process leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A short fixed-length temporary name (".cinn-tmp-" + 8 random characters), not one built from
    # the target's: a legal 250-byte name must not become an illegal 264-byte one while it is
    # written. remove_stale_temps recognises the pattern after a SIGKILL.
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


TEMP_PREFIX = ".cinn-tmp-"
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"[a-z0-9_]{8}")


def remove_stale_temps(folder: str | os.PathLike, before: float) -> None:
    """Remove our own temporary files that a killed run (SIGKILL, power loss) left in ``folder``:
    only names of exactly ``atomic_write_bytes``'s pattern, only regular files, and only those
    last modified before ``before`` (this run's start), so a file another run is writing right now
    is left alone. Never anything else: a user's file never matches the pattern."""
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet, or unreadable: nothing of ours to remove
        return
    for e in entries:
        if _TEMP_NAME.fullmatch(e.name):
            try:
                if e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_mtime < before:
                    os.unlink(e.path)
            except OSError:
                pass  # gone already, or not ours to remove


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NotReadable(ValueError):
    """A path that cannot be opened as a regular file; the message is the reason, without the path."""


def open_regular(path: str | os.PathLike, what: str = "a file"):
    """Open ``path`` for binary reading only if it is a regular file; raises ``NotReadable``.

    A FIFO or device would block ``open`` forever (and a blocked ``open`` ignores SIGTERM), so
    the type is checked with ``os.stat`` first and the file opened with ``O_NONBLOCK``, then
    checked again on the descriptor (the path may have been swapped in between). ``what`` names
    the expected kind of file in the reason for a folder ("is a folder, not an image").
    """
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise NotReadable(f"is a folder, not {what}")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)) if stat.S_ISREG(st.st_mode) else None
    except FileNotFoundError:
        raise NotReadable("is a broken symbolic link" if os.path.islink(path) else "no such file") from None
    except PermissionError:
        raise NotReadable("cannot be read (permission denied)") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise NotReadable("is a symbolic link loop") from None
        if e.errno == errno.ENAMETOOLONG:
            raise NotReadable("has a name too long for this file system") from None
        raise NotReadable(f"cannot be read ({e.strerror or e})") from None
    if fd is None or not stat.S_ISREG(os.fstat(fd).st_mode):
        if fd is not None:
            os.close(fd)
        raise NotReadable("is not a regular file (a FIFO, socket or device)")
    return os.fdopen(fd, "rb")
