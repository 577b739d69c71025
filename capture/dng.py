"""A minimal DNG writer: one uncompressed 16-bit CFA strip, the DNG colour tags in IFD0 and the
shooting data (exposure, aperture, ISO, time, serial) in a real EXIF IFD, where LibRaw reads them.

pidng and tifffile put every tag into IFD0, where LibRaw ignores the ISO; this writes the TIFF
structure itself: little endian, tags sorted, every offset 4-byte aligned.
"""
from __future__ import annotations

import os
import struct
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np

from curate.common.atomic import atomic_write
from curate.cfa import colour_tile, tile_name
from curate.common.errors import SidkitError

# XYZ (D65) -> linear sRGB: the colour matrix of a camera whose primaries are sRGB's.
XYZ_TO_SRGB = ((3.2404542, -1.5371385, -0.4985314),
               (-0.9692660, 1.8760108, 0.0415560),
               (0.0556434, -0.2040259, 1.0572252))
D65_XYZ = (0.95047, 1.0, 1.08883)
ILLUMINANT_D65 = 21


_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED, _SRATIONAL = 1, 2, 3, 4, 5, 7, 10


def write_dng(path: str | os.PathLike, mosaic: np.ndarray, *, make: str, model: str, serial: str,
              cfa: str, black_level, white_level: int, exposure_s: Fraction, iso: int,
              fnumber: float | Fraction | None, captured_at: datetime,
              color_matrix=None, as_shot_neutral=None) -> Path:
    """Write ``mosaic`` (uint16, H x W) as a DNG, atomically; returns the path.

    ``cfa`` is a Bayer name (RGGB, GRBG, GBRG, BGGR) or a 6x6 X-Trans tile: its 36 letters row
    by row, or 'XTRANS' for curate.cfa.XTRANS_LAYOUT. ``black_level`` has one value per position of the
    2x2 tile, row-major (4 values, whatever the CFA); an X-Trans tile also takes 1 value or 36.
    X-Trans mosaics need a height and width that are multiples of 6. ``color_matrix`` (XYZ ->
    camera, 3x3) defaults to sRGB primaries; ``as_shot_neutral`` (camera RGB of a white object)
    defaults to the matrix's response to D65.
    """
    path = Path(path)
    mosaic = np.asarray(mosaic)
    try:
        tile = colour_tile(cfa)
    except SidkitError as exc:
        raise SidkitError(f"{path}: {exc}") from None
    t = tile.shape[0]
    if mosaic.dtype != np.uint16 or mosaic.ndim != 2 or mosaic.shape[0] % t or mosaic.shape[1] % t:
        raise SidkitError(f"{path}: a {tile_name(cfa)} DNG mosaic must be uint16 with height and width multiples "
                          f"of {t}, got {mosaic.dtype} {mosaic.shape}; convert or crop it before writing")
    black_level = [int(v) for v in black_level]
    allowed = (4,) if t == 2 else (1, 4, 36)
    if len(black_level) not in allowed or not all(0 <= b < white_level < 65536 for b in black_level):
        raise SidkitError(f"{path}: need {' or '.join(map(str, allowed))} black levels below the white level "
                          f"{white_level} (< 65536), got {black_level}")
    if t == 6 and len(set(black_level)) == 1:
        black_level = black_level[:1]                  # one level for every position: BlackLevelRepeatDim 1x1
    black_dim = (1, 1) if len(black_level) == 1 else (2, 2) if len(black_level) == 4 else (6, 6)
    matrix = np.asarray(XYZ_TO_SRGB if color_matrix is None else color_matrix, dtype=float)
    if matrix.shape != (3, 3):
        raise SidkitError(f"{path}: the colour matrix must be 3x3, got shape {matrix.shape}")
    neutral = matrix @ D65_XYZ if as_shot_neutral is None else np.asarray(as_shot_neutral, dtype=float)
    if neutral.shape != (3,) or not (neutral > 0).all():
        raise SidkitError(f"{path}: AsShotNeutral must be 3 positive values, got {neutral}")
    neutral = neutral / neutral.max()
    height, width = mosaic.shape
    stamp = captured_at.strftime("%Y:%m:%d %H:%M:%S")

    exif = [
        _rational(33434, _RATIONAL, Fraction(exposure_s)),                # ExposureTime
        _short(34855, int(iso)),                                           # ISOSpeedRatings
        (36864, _UNDEFINED, 4, b"0231"),                                   # ExifVersion
        _ascii(36867, stamp),                                              # DateTimeOriginal
        _ascii(42033, serial),                                             # BodySerialNumber
    ]
    if fnumber is not None:
        exif.append(_rational(33437, _RATIONAL, fnumber))                 # FNumber
    offset = captured_at.strftime("%z")
    if offset:
        exif.append(_ascii(36881, f"{offset[:3]}:{offset[3:5]}"))         # OffsetTimeOriginal

    def ifd0(strip_offset: int, exif_offset: int) -> list:
        return [
            _long(254, 0),                                                 # NewSubFileType: main image
            _long(256, width), _long(257, height),
            _short(258, 16), _short(259, 1), _short(262, 32803),           # 16 bit, uncompressed, CFA
            _ascii(271, make), _ascii(272, model),
            _long(273, strip_offset),
            _short(274, 1),                                                # Orientation: top-left
            _short(277, 1), _long(278, height), _long(279, mosaic.nbytes),
            _short(284, 1),                                                # PlanarConfiguration: chunky
            _ascii(305, "sidkit"), _ascii(306, stamp),
            _short(33421, t, t),                                           # CFARepeatPatternDim
            (33422, _BYTE, t * t, tile.tobytes()),                         # CFAPattern, row by row
            _long(34665, exif_offset),                                     # ExifIFD
            (50706, _BYTE, 4, bytes((1, 4, 0, 0))),                        # DNGVersion
            (50707, _BYTE, 4, bytes((1, 1, 0, 0))),                        # DNGBackwardVersion
            _ascii(50708, f"{make} {model}"),                              # UniqueCameraModel
            _short(50713, *black_dim),                                     # BlackLevelRepeatDim
            _long(50714, *black_level),                                    # BlackLevel, tile order
            _long(50717, int(white_level)),
            _rational(50721, _SRATIONAL, *matrix.ravel()),                 # ColorMatrix1
            _rational(50728, _RATIONAL, *neutral),                         # AsShotNeutral
            _short(50778, ILLUMINANT_D65),                                 # CalibrationIlluminant1
        ]

    ifd0_offset = 8
    exif_offset = _align(ifd0_offset + _ifd_size(ifd0(0, 0)))
    strip_offset = _align(exif_offset + _ifd_size(exif), 16)
    head = struct.pack("<2sHI", b"II", 42, ifd0_offset) + _ifd_bytes(ifd0(strip_offset, exif_offset), ifd0_offset)
    head = head.ljust(exif_offset, b"\0") + _ifd_bytes(exif, exif_offset)
    with atomic_write(path, "wb") as handle:
        handle.write(head.ljust(strip_offset, b"\0"))
        handle.write(mosaic.astype("<u2", copy=False).tobytes())
    return path


def _align(offset: int, to: int = 4) -> int:
    return -(-offset // to) * to


def _short(tag: int, *values: int) -> tuple:
    return tag, _SHORT, len(values), struct.pack(f"<{len(values)}H", *values)


def _long(tag: int, *values: int) -> tuple:
    return tag, _LONG, len(values), struct.pack(f"<{len(values)}I", *values)


def _ascii(tag: int, text: str) -> tuple:
    data = text.encode("ascii", "replace") + b"\0"
    return tag, _ASCII, len(data), data


def _rational(tag: int, kind: int, *values) -> tuple:
    """RATIONAL or SRATIONAL values; Fractions stay exact, floats get denominators up to 10**6."""
    parts = []
    for value in values:
        ratio = Fraction(value) if isinstance(value, (int, Fraction)) else Fraction(float(value))
        ratio = ratio.limit_denominator(1_000_000)
        if not (-2**31 <= ratio.numerator < 2**31 and ratio.denominator < 2**31):
            raise ValueError(f"tag {tag}: {value} does not fit a TIFF rational")
        if kind == _RATIONAL and ratio < 0:
            raise ValueError(f"tag {tag}: {value} is negative")
        parts += [ratio.numerator, ratio.denominator]
    code = "i" if kind == _SRATIONAL else "I"
    return tag, kind, len(values), struct.pack(f"<{len(parts)}{code}", *parts)


def _ifd_size(entries: list) -> int:
    """Bytes of an IFD that starts on a 4-byte boundary, its overflow values included."""
    return _align(2 + 12 * len(entries) + 4) + sum(_align(len(e[3])) for e in entries if len(e[3]) > 4)


def _ifd_bytes(entries: list, offset: int) -> bytes:
    """An IFD at ``offset``: entries sorted by tag, values over 4 bytes right after it, no next IFD."""
    entries = sorted(entries)
    table_end = offset + 2 + 12 * len(entries) + 4
    data_offset = _align(table_end)
    table, data = [struct.pack("<H", len(entries))], b""
    for tag, kind, count, payload in entries:
        if len(payload) <= 4:
            table.append(struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0"))
        else:
            table.append(struct.pack("<HHII", tag, kind, count, data_offset + len(data)))
            data += payload.ljust(_align(len(payload)), b"\0")
    table.append(struct.pack("<I", 0))
    return b"".join(table) + bytes(data_offset - table_end) + data
