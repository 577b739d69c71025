"""Atomic file writes (a temp file in the same folder, fsynced, then renamed into place) and the
lock two commands writing one file take (``<file>.lock`` beside it, fcntl.flock)."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path

from .errors import SidkitError

try:
    import fcntl
except ImportError:        # Windows: no flock; writes stay atomic but are not serialised
    fcntl = None

# how long a second writer waits for the first before refusing (SIDKIT_LOCK_WAIT seconds)
LOCK_WAIT_S = float(os.environ.get("SIDKIT_LOCK_WAIT", "10"))
_held: dict[str, int] = {}  # resolved path -> depth, so one process can nest locks on one file


def new_file_mode() -> int:
    """The mode a plain open() would give a new file under the current umask (mkstemp gives 0600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True, suffix: str = ".tmp"):
    """A temp path beside ``path`` to write; on success it is fsynced and moved into place, on error
    it vanishes. With ``overwrite=False`` an existing ``path`` is never replaced (FileExistsError,
    also when the name appears while writing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not overwrite and path.exists():
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, new_file_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)          # fails if the name appeared meanwhile
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs):
    """Open a temp file beside ``path``; on success it replaces ``path``, on error it vanishes."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle


def lock_path(path: str | os.PathLike) -> Path:
    return Path(path).with_name(Path(path).name + ".lock")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, wait: float | None = None):
    """Hold the exclusive lock of ``path`` (flock on ``<path>.lock``, which holds the owner's pid).

    A second process waits up to ``wait`` seconds (LOCK_WAIT_S) for the first, then gets a
    SidkitError naming the first one's pid. The lock dies with its process (no stale locks); the
    lock file is removed on release. Nested use in one process is allowed.
    """
    path = Path(path)
    key = str(path.resolve())
    if key in _held or fcntl is None:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(lock, path, LOCK_WAIT_S if wait is None else wait)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)       # releases the flock


def _acquire(lock: Path, path: Path, wait: float) -> int:
    """The fd of ``lock``, flocked and holding our pid; SidkitError after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if time.monotonic() >= deadline:
                raise SidkitError(f"{path}: another command (pid {holder}) is writing it (lock {lock.name}); "
                                  f"let it finish or stop it, then run this again") from None
            time.sleep(0.05)
            continue
        try:       # the previous owner removes the file on release: lock the one that is there now
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if not current:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd
