"""What LibRaw (via rawpy) says about a raw: sizes from its header parse and, after unpacking, the
CFA, levels and shooting data; failures become an error string, never an exception."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import rawpy

from .cfa import pattern_name, position_black
from .rawfile import UnreadableRaw, check_sizes, open_regular, shown


@dataclass
class LibRawInfo:
    error: str | None = None
    width: int | None = None              # visible area
    height: int | None = None
    cfa: str | None = None                # RGGB..., XTRANS, '' not a CFA
    black_level: list | None = None       # per position of the 2x2 tile, row-major
    white_level: int | None = None
    shutter: float | None = None          # seconds, as LibRaw's float (0.0666667)
    iso: float | None = None
    aperture: float | None = None
    timestamp: str | None = None


@contextmanager
def quiet_stderr(name: str):
    """LibRaw's own C messages ('x.CRW: Unexpected end of file') would print beside sidkit's findings,
    which already say the same (LibRaw's error text is in them): while LibRaw works, the process's
    stderr (file descriptor 2) goes to a scratch file; afterwards every line of it that is not LibRaw's
    ('NAME: ...') goes on to stderr, so a progress bar drawn meanwhile is not lost."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                sink.seek(0)
                text = sink.read()
                prefix = f"{name}: ".encode(errors="surrogateescape")
                kept = b"".join(line for line in text.splitlines(keepends=True) if not line.startswith(prefix))
                if kept:
                    os.write(2, kept)
    finally:
        os.close(saved)


@contextmanager
def libraw_open(path):
    """A rawpy.RawPy with ``path`` opened (not unpacked); UnreadableRaw for a non-regular file.

    The file is checked here first (a FIFO or device is never opened). A name that is not UTF-8,
    which rawpy cannot encode, reaches LibRaw as /proc/self/fd/N (where /proc is missing: the
    file's bytes). LibRaw's own errors (rawpy.LibRawError) pass through.
    """
    handle, _ = open_regular(path)
    raw = rawpy.RawPy()
    with quiet_stderr(os.fsdecode(path)):      # open, unpack and close: LibRaw talks in all three
        try:
            with handle:
                name = os.fsdecode(path)
                proc = f"/proc/self/fd/{handle.fileno()}"
                try:
                    name.encode("utf-8")
                    raw.open_file(name)            # LibRaw's messages name the file
                except UnicodeEncodeError:
                    if os.path.exists(proc):
                        raw.open_file(proc)
                    else:
                        raw.open_buffer(handle.read())
            yield raw
        finally:
            raw.close()


def read_libraw(path: Path, unpack: bool) -> LibRawInfo:
    """Sizes from LibRaw's header parse; with ``unpack``, levels, CFA and LibRaw's shooting data too.

    rawpy only hands out raw_pattern, black levels and `other` after unpack, which reads the pixel
    data; it is skipped when the header declares an absurd size, and its failure is not fatal.
    `other` (shutter, ISO, aperture, time) needs rawpy 0.27; older rawpy leaves them to EXIF.
    """
    try:
        with libraw_open(path) as raw:
            return _read(path, raw, unpack)
    except (rawpy.LibRawError, NotImplementedError) as exc:   # rawpy: NotImplementedError for odd filters
        return LibRawInfo(error=libraw_message(exc))


def _read(path: Path, raw, unpack: bool) -> LibRawInfo:
    sizes = raw.sizes
    check_sizes(path, sizes.raw_width, sizes.raw_height)
    info = LibRawInfo(width=sizes.width or None, height=sizes.height or None)
    if not unpack:
        return info
    try:
        raw.unpack()
        pattern = raw.raw_pattern
        colours = raw.color_desc.decode("ascii", "replace")
        black = raw.black_level_per_channel
        info.white_level = int(raw.white_level)
    except (rawpy.LibRawError, NotImplementedError) as exc:
        info.error = libraw_message(exc)
        return info
    try:
        other = getattr(raw, "other", None)
    except (ValueError, OverflowError, OSError):           # a time LibRaw cannot convert
        other = None
    if pattern is None:
        info.cfa = ""
        info.black_level = [int(black[0])] * 4
    elif pattern.size and int(pattern.max()) >= min(len(colours), len(black)):
        info.error = f"its CFA pattern names colour {int(pattern.max())}, LibRaw knows {len(colours)} ({colours})"
    else:
        info.cfa = pattern_name(pattern, colours)
        info.black_level = [int(b) for b in position_black(black, pattern)]
    if other is not None:
        info.shutter = other.shutter_speed if 0 < other.shutter_speed < float("inf") else None
        info.iso = float(other.iso_speed) if 0 < other.iso_speed < float("inf") else None
        info.aperture = round(float(other.aperture), 2) if 0 < other.aperture < float("inf") else None
        info.timestamp = other.timestamp.isoformat() if other.timestamp.year > 1970 else None
    return info


def libraw_message(exc: Exception) -> str:
    """A LibRaw error's text (rawpy passes bytes or a bare exception)."""
    text = exc.args[0] if exc.args else type(exc).__name__
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


__all__ = ["LibRawInfo", "UnreadableRaw", "libraw_message", "libraw_open", "read_libraw", "shown"]
