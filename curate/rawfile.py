"""Opening a camera raw safely: the read-only memory map, the container its first bytes announce,
the size limits, and UnreadableRaw for anything that is not a usable raw."""
from __future__ import annotations

import mmap
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path

from .common.errors import SidkitError

MAX_SIDE = 100_000              # pixels along one side; larger headers are corrupt, not cameras
MAX_PIXELS = 600_000_000        # the largest multi-shot backs stay well below this
TIFF_KINDS = {"tiff", "rw2", "orf"}
NOT_RAW_FIX = "remove it from the folder or copy the original file from the camera again"


class UnreadableRaw(SidkitError):
    """A file that is not a readable camera raw; the message names the file, the reason and the fix."""


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


# control characters (C0, DEL, C1) and the two Unicode line breaks: each would end or rewrite a line
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with each control character written as an escape (CR as \\r, 0x01 as \\x01)."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def shown(path) -> str:
    """A path as text that prints anywhere on one line: bytes that are not UTF-8 appear as \\xNN
    escapes, control characters (CR, LF, tab, ...) as escapes too."""
    text = os.fsdecode(path)
    return escape_controls(text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def open_regular(path) -> tuple:
    """(read-only binary handle, size) of a regular file; UnreadableRaw for anything else.

    The file is checked with stat before it is opened (opening a FIFO blocks) and again with fstat
    after (it may have been swapped); non-UTF-8 names work (os.fsencode round-trips them).
    """
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:
        raise UnreadableRaw(f"{shown(path)}: cannot open ({getattr(exc, 'strerror', None) or exc}); "
                            "check the path and permissions") from None
    _require_regular(path, info.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise UnreadableRaw(f"{shown(path)}: cannot open ({exc.strerror}); check the path and permissions") from None
    handle = os.fdopen(fd, "rb")
    info = os.fstat(fd)
    try:
        _require_regular(path, info.st_mode)
    except UnreadableRaw:
        handle.close()
        raise
    return handle, info.st_size


def _require_regular(path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise UnreadableRaw(f"{shown(path)}: {what}, not a raw file; it is never opened or read; {NOT_RAW_FIX}")


@contextmanager
def mapped(path: Path):
    """The file, memory-mapped read-only (only the pages read are loaded); UnreadableRaw if empty/absent
    or not a regular file."""
    handle, size = open_regular(path)
    with handle:
        if size == 0:
            raise UnreadableRaw(f"{shown(path)}: empty file (0 bytes); {NOT_RAW_FIX}")
        with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as buf:
            yield buf


def container_kind(path: Path, buf) -> str | None:
    """The raw container a file's first bytes announce (tiff, rw2, orf, cr3, raf, crw); a JPEG
    raises, anything unknown is None."""
    head = bytes(buf[:16])
    if head[:4] in (b"II*\0", b"MM\0*"):
        return "tiff"
    if head[:4] == b"IIU\0":
        return "rw2"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "orf"
    if head[4:12] == b"ftypcrx ":
        return "cr3"
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "raf"
    if head[:2] in (b"II", b"MM") and head[6:14] == b"HEAPCCDR":
        return "crw"
    if head[:3] == b"\xff\xd8\xff":
        raise UnreadableRaw(f"{shown(path)}: a JPEG image, not a camera raw; {NOT_RAW_FIX}")
    return None


def check_sizes(path: Path, width: int, height: int) -> None:
    """UnreadableRaw when a header declares dimensions no camera has (a corrupt file)."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise UnreadableRaw(f"{shown(path)}: absurd image dimensions {width}x{height} in the header (corrupt file); "
                            f"{NOT_RAW_FIX}")
