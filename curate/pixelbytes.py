"""Whether a raw can hold its pixel data, from its header alone: the strip, tile or track byte counts
its container declares against the file's size. Stripped copies (DNG, RW2, CR3 with their image
data cut away) "decode" into zeros or plausible garbage in LibRaw; this check does not decode."""
from __future__ import annotations

import os
from pathlib import Path

from .containers import cr3_track_spans, raf_raw_spans
from .rawfile import TIFF_KINDS, container_kind, mapped
from .tiff import COMPRESSION_NONE, PLANAR_SEPARATE, Tag, TiffDirectories, first_int


def missing_pixel_bytes(path: str | os.PathLike) -> str | None:
    """Why the main image data cannot all be in the file (cut off, or fewer strips/tiles than the
    image needs) or cannot be used (DNG levels that leave it no range); None when nothing is visibly
    wrong. UnreadableRaw when the header is unusable."""
    path = Path(path)
    with mapped(path) as buf:
        kind = container_kind(path, buf)
        tiff = TiffDirectories(path, buf) if kind in TIFF_KINDS else None
        return header_shortfall(buf, kind, tiff)


def corrupt_cfa(path: str | os.PathLike) -> str | None:
    """Why a DNG's CFAPattern is unusable (it names no 2x2 Bayer or 6x6 X-Trans colour pattern), from
    the tags themselves: LibRaw makes up a pattern for such a file, differently from run to run."""
    path = Path(path)
    with mapped(path) as buf:
        if container_kind(path, buf) not in TIFF_KINDS:
            return None
        dng = TiffDirectories(path, buf).dng_tags() or {}
    return CORRUPT_CFA if "cfa" in dng and dng["cfa"] is None else None


CORRUPT_CFA = "its DNG CFAPattern names no 2x2 Bayer or 6x6 X-Trans colour pattern: a corrupt CFAPattern"


def header_shortfall(buf, kind: str | None, tiff: TiffDirectories | None) -> str | None:
    """missing_pixel_bytes on a file already mapped (``buf``) and parsed (``tiff`` for TIFF kinds)."""
    size = len(buf)
    if tiff is not None:
        levels = _dng_level_problem(tiff)
        if levels:
            return levels
        ifd = _main_image_ifd(tiff)
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


def _dng_level_problem(tiff: TiffDirectories) -> str | None:
    """A DNG WhiteLevel not above its BlackLevel: every pixel would come out black or clipped."""
    dng = tiff.dng_tags() or {}
    white, black = dng.get("white_level"), dng.get("black_level")
    if white is not None and black and white <= max(black):
        return f"DNG WhiteLevel {white} is not above the BlackLevel {max(black):g}: no range for the pixels"
    return None


def _counts(ifd: dict) -> tuple:
    """The strip (else tile) byte counts, integers only."""
    values = ifd.get(Tag.STRIP_BYTE_COUNTS) or ifd.get(Tag.TILE_BYTE_COUNTS) or ()
    return tuple(v for v in values if isinstance(v, int))


def _strip_spans(ifd: dict, kind: str, size: int) -> list[tuple[int, int]]:
    """(offset, count) of the strips or tiles of one image directory (RW2: its own raw offset tag)."""
    counts = _counts(ifd)
    if kind == "rw2" and Tag.RW2_RAW_DATA_OFFSET in ifd:
        offsets = ifd[Tag.RW2_RAW_DATA_OFFSET]
    else:
        offsets = ifd.get(Tag.STRIP_OFFSETS) or ifd.get(Tag.TILE_OFFSETS) or ()
    offsets = tuple(v for v in offsets if isinstance(v, int))
    return list(zip(offsets, counts)) if len(offsets) == len(counts) else [(size, sum(counts))]


def _main_image_ifd(tiff: TiffDirectories) -> dict | None:
    """The raw IFD, else (RW2, CR2) the directory declaring the most strip/tile bytes."""
    raw = tiff.raw_ifd()
    candidates = [i for i in ([raw] if raw else tiff.ifds)
                  if Tag.STRIP_BYTE_COUNTS in i or Tag.TILE_BYTE_COUNTS in i]
    return max(candidates, key=lambda i: sum(_counts(i)), default=None)


def _tile_shortfall(ifd: dict) -> str | None:
    """Fewer tiles or strips than the image size needs, or (uncompressed) fewer bytes."""
    width, height = first_int(ifd, Tag.IMAGE_WIDTH, 0), first_int(ifd, Tag.IMAGE_LENGTH, 0)
    if not (width > 0 and height > 0):
        return None
    bits = first_int(ifd, Tag.BITS_PER_SAMPLE, 16)
    if not 1 <= bits <= 32:
        return f"BitsPerSample {bits} is no raw's sample size: the pixel data cannot be read"
    if Tag.TILE_BYTE_COUNTS in ifd:
        tile_w, tile_h = first_int(ifd, Tag.TILE_WIDTH, 0), first_int(ifd, Tag.TILE_LENGTH, 0)
        needed = -(-width // tile_w) * -(-height // tile_h) if tile_w > 0 and tile_h > 0 else 0
        declared, unit = len(ifd[Tag.TILE_BYTE_COUNTS]), "tiles"
    else:
        rows = first_int(ifd, Tag.ROWS_PER_STRIP, height)
        rows = rows if rows > 0 else height
        needed, declared, unit = -(-height // rows), len(ifd.get(Tag.STRIP_BYTE_COUNTS, ())), "strips"
    samples = max(1, first_int(ifd, Tag.SAMPLES_PER_PIXEL, 1))
    planes = samples if first_int(ifd, Tag.PLANAR_CONFIGURATION, 1) == PLANAR_SEPARATE else 1
    if declared < needed * planes:
        return f"strip data missing: file declares {declared} of {needed * planes} {unit}"
    if first_int(ifd, Tag.COMPRESSION, COMPRESSION_NONE) == COMPRESSION_NONE:
        bits = first_int(ifd, Tag.BITS_PER_SAMPLE, 16)
        expected = width * height * samples * bits // 8
        total = sum(_counts(ifd))
        if total < expected:
            return f"strip data missing: strips declare {total} of the {expected} bytes the image needs"
    return None
