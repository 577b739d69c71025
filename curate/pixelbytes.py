"""Whether a raw can hold its pixel data, from its header alone: the strip, tile or track byte counts
its container declares against the file's size. Stripped copies (DNG, RW2, CR3 with their image
data cut away) "decode" into zeros or plausible garbage in LibRaw; this check does not decode."""
from __future__ import annotations

import os
from pathlib import Path

from .containers import cr3_track_spans, raf_raw_spans
from .rawfile import TIFF_KINDS, container_kind, mapped
from .tiff import TiffDirectories


def missing_pixel_bytes(path: str | os.PathLike) -> str | None:
    """Why the main image data cannot all be in the file (cut off, or fewer strips/tiles than the
    image needs); None when nothing is visibly missing. UnreadableRaw when the header is unusable."""
    path = Path(path)
    with mapped(path) as buf:
        kind, size = container_kind(path, buf), len(buf)
        if kind in TIFF_KINDS:
            ifd = _main_image_ifd(TiffDirectories(path, buf))
            shortfall = ifd and _tile_shortfall(ifd)
            if shortfall:
                return shortfall
            spans = _strip_spans(ifd, kind, size) if ifd else []
        elif kind == "cr3":
            spans = cr3_track_spans(buf)
        elif kind == "raf":
            spans = raf_raw_spans(buf)
        else:
            spans = []
    declared = sum(count for _, count in spans)
    held = min(size, sum(max(0, min(offset + count, size) - offset) for offset, count in spans))
    return f"strip data missing: file holds {held} of {declared} bytes" if held < declared else None


def _strip_spans(ifd: dict, kind: str, size: int) -> list[tuple[int, int]]:
    """(offset, count) of the strips or tiles of one image directory (RW2: its own raw offset tag)."""
    counts = ifd.get(279) or ifd.get(325)
    offsets = ifd[280] if kind == "rw2" and 280 in ifd else ifd.get(273) or ifd.get(324) or ()
    return list(zip(offsets, counts)) if len(offsets) == len(counts) else [(size, sum(counts))]


def _main_image_ifd(tiff: TiffDirectories) -> dict | None:
    """The raw IFD, else (RW2, CR2) the directory declaring the most strip/tile bytes."""
    raw = tiff.raw_ifd()
    candidates = [i for i in ([raw] if raw else tiff.ifds) if 279 in i or 325 in i]
    return max(candidates, key=lambda i: sum(x for x in (i.get(279) or i.get(325)) if isinstance(x, int)),
               default=None)


def _tile_shortfall(ifd: dict) -> str | None:
    """Fewer tiles or strips than the image size needs, or (uncompressed) fewer bytes."""
    width, height = ifd.get(256, (0,))[0], ifd.get(257, (0,))[0]
    if not (width and height):
        return None
    if 325 in ifd:
        tile_w, tile_h = ifd.get(322, (0,))[0], ifd.get(323, (0,))[0]
        needed = -(-width // tile_w) * -(-height // tile_h) if tile_w and tile_h else 0
        declared, unit = len(ifd[325]), "tiles"
    else:
        rows = ifd.get(278, (height,))[0] or height
        needed, declared, unit = -(-height // rows), len(ifd.get(279, ())), "strips"
    planes = ifd.get(277, (1,))[0] if ifd.get(284, (1,))[0] == 2 else 1
    if declared < needed * planes:
        return f"strip data missing: file declares {declared} of {needed * planes} {unit}"
    if ifd.get(259, (1,))[0] == 1:
        bits = ifd.get(258, (16,))[0]
        expected = width * height * ifd.get(277, (1,))[0] * bits // 8
        total = sum(x for x in (ifd.get(279) or ifd.get(325)) if isinstance(x, int))
        if total < expected:
            return f"strip data missing: strips declare {total} of the {expected} bytes the image needs"
    return None
