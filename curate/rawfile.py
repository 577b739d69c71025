"""Opening a camera raw safely: the read-only memory map, the container its first bytes announce,
the size limits, and UnreadableRaw for anything that is not a usable raw."""
from __future__ import annotations

import mmap
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import SidkitError

MAX_SIDE = 100_000              # pixels along one side; larger headers are corrupt, not cameras
MAX_PIXELS = 600_000_000        # the largest multi-shot backs stay well below this
TIFF_KINDS = {"tiff", "rw2", "orf"}
NOT_RAW_FIX = "remove it from the folder or copy the original file from the camera again"


class UnreadableRaw(SidkitError):
    """A file that is not a readable camera raw; the message names the file, the reason and the fix."""


@contextmanager
def mapped(path: Path):
    """The file, memory-mapped read-only (only the pages read are loaded); UnreadableRaw if empty/absent."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise UnreadableRaw(f"{path}: cannot open ({exc.strerror}); check the path and permissions")
    with handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise UnreadableRaw(f"{path}: empty file (0 bytes); {NOT_RAW_FIX}")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
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
        raise UnreadableRaw(f"{path}: a JPEG image, not a camera raw; {NOT_RAW_FIX}")
    return None


def check_sizes(path: Path, width: int, height: int) -> None:
    """UnreadableRaw when a header declares dimensions no camera has (a corrupt file)."""
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise UnreadableRaw(f"{path}: absurd image dimensions {width}x{height} in the header (corrupt file); "
                            f"{NOT_RAW_FIX}")
