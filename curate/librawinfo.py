"""What LibRaw (via rawpy) says about a raw: sizes from its header parse and, after unpacking, the
CFA, levels and shooting data; failures become an error string, never an exception."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rawpy

from .rawfile import check_sizes


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


def read_libraw(path: Path, unpack: bool) -> LibRawInfo:
    """Sizes from LibRaw's header parse; with ``unpack``, levels, CFA and LibRaw's shooting data too.

    rawpy only hands out raw_pattern, black levels and `other` after unpack, which reads the pixel
    data; it is skipped when the header declares an absurd size, and its failure is not fatal.
    """
    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawError as exc:
        return LibRawInfo(error=libraw_message(exc))
    with raw:
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
            other = raw.other
        except (rawpy.LibRawError, NotImplementedError) as exc:   # rawpy: NotImplementedError for odd filters
            info.error = libraw_message(exc)
            return info
    if pattern is None:
        info.cfa = ""
        info.black_level = [int(black[0])] * 4
    else:
        info.cfa = "XTRANS" if pattern.shape == (6, 6) else "".join(colours[i] for i in pattern[:2, :2].ravel())
        info.black_level = [int(black[i]) for i in pattern[:2, :2].ravel()]   # colour index -> position
    info.shutter = other.shutter_speed if other.shutter_speed > 0 else None
    info.iso = float(other.iso_speed) if other.iso_speed > 0 else None
    info.aperture = round(float(other.aperture), 2) if other.aperture > 0 else None
    info.timestamp = other.timestamp.isoformat() if other.timestamp.year > 1970 else None
    return info


def libraw_message(exc: Exception) -> str:
    """A LibRaw error's text (rawpy passes bytes or a bare exception)."""
    text = exc.args[0] if exc.args else type(exc).__name__
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
