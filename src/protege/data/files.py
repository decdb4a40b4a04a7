"""File access for the store: only regular files are opened, writes are durable or atomic.

A store's files are untrusted input. Anything that is not a regular file where one should be
(a FIFO, a directory, a device, a symlink loop) is refused with a :class:`DataError` before it
is opened, so a reader never blocks on a FIFO; every operating-system error while reading
becomes a ``DataError`` naming the file.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
import stat
import tempfile
from pathlib import Path

from protege.errors import DataError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def file_size(path: Path) -> int | None:
    """The size of the regular file ``path``; None if there is none. Raises a DataError if
    something else is there (a FIFO, a directory, a symlink loop) or it cannot be examined."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: {_kind(st.st_mode)}, not a regular file")
    return st.st_size


def require_size(path: Path) -> int:
    """:func:`file_size`, raising ``"<path>: missing"`` if there is no file."""
    size = file_size(path)
    if size is None:
        raise DataError(f"{path}: missing")
    return size


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A file descriptor of the regular file ``path`` (created if ``flags`` say so).

    Checked before opening (never a FIFO) and again on the open descriptor."""
    file_size(path)
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        raise DataError(f"{path}: cannot be opened ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise DataError(f"{path}: {_kind(st.st_mode)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_bytes(path: Path, start: int = 0, count: int | None = None) -> bytes:
    """``count`` bytes (default: all) of the regular file ``path`` from ``start``."""
    fd = open_regular(path)
    try:
        with os.fdopen(fd, "rb", closefd=True) as f:
            f.seek(start)
            return f.read() if count is None else f.read(count)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None


def append_durably(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and fsync it before returning."""
    with open(path, "ab") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new, never half.

    The temporary file has a unique name, so two writers never share it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (files created, renamed) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_dir(path: Path) -> int:
    """An exclusive lock on the directory ``path`` (its ``.lock`` file), held until the
    returned descriptor is closed; a DataError if another process holds it."""
    fd = open_regular(path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataError(f"{path}: another process is writing to this store") from None
    return fd


def create_dir(path: Path, files: dict[str, str], last: str, text: str) -> int:
    """Create the directory ``path`` holding ``files`` (name → content) and finally ``last``,
    all at once: built in a private directory next to it, locked (:func:`lock_dir`), then
    renamed into place. Returns the lock's descriptor.

    ``path`` must not exist or be an empty directory; raises FileExistsError if something
    took its place first (another process won the race), DataError if it is in the way."""
    if path.is_symlink() and path.is_dir():
        path = path.resolve()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if (path / last).exists():
            raise FileExistsError(errno.EEXIST, "a store is there", str(path))
        raise DataError(
            f"{path}: exists and is not an empty directory (no {last}: not a protege store); "
            "a new store needs a new or empty directory"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.creating-{os.getpid()}-{secrets.token_hex(6)}"
    os.mkdir(tmp)
    lock_fd = None
    try:
        for name, content in files.items():
            with open(tmp / name, "x") as f:
                f.write(content)
        write_atomic(tmp / last, text)
        fsync_dir(tmp)
        lock_fd = lock_dir(tmp)
        os.rename(tmp, path)  # the claim: atomic, and it fails if another took the place
    except BaseException as exc:
        if lock_fd is not None:
            os.close(lock_fd)
        shutil.rmtree(tmp, ignore_errors=True)
        lost = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR)
        if isinstance(exc, OSError) and exc.errno in lost:
            raise FileExistsError(exc.errno, exc.strerror, str(path)) from None
        if isinstance(exc, OSError):
            raise DataError(f"{path}: cannot create a store here ({exc.strerror})") from None
        raise
    fsync_dir(path.parent)
    return lock_fd
