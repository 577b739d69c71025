"""A bounded walk over the directories of a TIFF-structured raw (DNG, NEF, CR2, ARW, RW2, ORF) and
what the DNG tags say about levels, CFA and size, exact and without decoding any pixels."""
from __future__ import annotations

import struct
from enum import IntEnum
from fractions import Fraction
from pathlib import Path

from .cfa import TILE_SIDES, tile_name
from .rawfile import NOT_RAW_FIX, UnreadableRaw, check_sizes, shown

MAX_IFDS = 64                   # TIFF directories walked per file (loops and chains are cut here)
MAX_ENTRIES = 4096              # entries per directory (real raws hold < 200); more means a corrupt header
MAX_VALUES = 1 << 18            # values decoded per TIFF entry (strip lists of real files are far shorter)


class Tag(IntEnum):
    """The TIFF, TIFF/EP, EXIF and DNG tags sidkit reads."""

    NEW_SUBFILE_TYPE = 254
    IMAGE_WIDTH = 256
    IMAGE_LENGTH = 257
    BITS_PER_SAMPLE = 258
    COMPRESSION = 259
    PHOTOMETRIC = 262
    MAKE = 271
    MODEL = 272
    STRIP_OFFSETS = 273
    SAMPLES_PER_PIXEL = 277
    ROWS_PER_STRIP = 278
    STRIP_BYTE_COUNTS = 279
    RW2_RAW_DATA_OFFSET = 280           # Panasonic RW2 reuses 0x118 for its raw data's offset
    PLANAR_CONFIGURATION = 284
    TILE_WIDTH = 322
    TILE_LENGTH = 323
    TILE_OFFSETS = 324
    TILE_BYTE_COUNTS = 325
    SUB_IFDS = 330
    CFA_REPEAT_PATTERN_DIM = 33421
    CFA_PATTERN = 33422
    EXIF_IFD = 34665
    DNG_VERSION = 50706
    UNIQUE_CAMERA_MODEL = 50708         # a DNG's camera name: the body where Make and Model are absent
    CFA_PLANE_COLOR = 50710
    BLACK_LEVEL_REPEAT_DIM = 50713
    BLACK_LEVEL = 50714
    BLACK_LEVEL_DELTA_H = 50715
    BLACK_LEVEL_DELTA_V = 50716
    WHITE_LEVEL = 50717
    ACTIVE_AREA = 50829


PHOTOMETRIC_CFA = 32803
PHOTOMETRIC_LINEAR_RAW = 34892
COMPRESSION_NONE = 1
PLANAR_SEPARATE = 2


class TiffDirectories:
    """The entries of a TIFF's IFD0 chain and SubIFDs, as {tag: tuple of values} per directory.

    Offsets beyond the file, loops and absurd counts are cut off and listed in `problems` (one line
    each: no camera writes them, so they are worth a finding); the EXIF directory is checked the
    same way. A header too damaged to hold one directory, or one declaring absurd dimensions,
    raises UnreadableRaw.
    """

    _SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
    _FORMATS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d", 13: "I"}

    def __init__(self, path: Path, buf):
        self.path, self.buf, self.size = path, buf, len(buf)
        self.order = "<" if bytes(buf[:2]) == b"II" else ">"
        if self.size < 8:
            self._truncated(f"only {self.size} bytes, shorter than a TIFF header")
        first = self._u32(4)
        self.ifds: list[dict] = []
        self.problems: list[str] = []
        self.exif_beyond_end: str | None = None
        seen: set = set()
        self._walk(first, depth=0, seen=seen)
        if not self.ifds:
            self._truncated(f"its first TIFF directory (offset {first}) lies beyond the end of the file "
                            f"({self.size} bytes)")
        exif_offset = self.ifds[0].get(Tag.EXIF_IFD, (None,))[0]
        if isinstance(exif_offset, int) and exif_offset + 2 > self.size:
            self.exif_beyond_end = (f"truncated: its EXIF directory (offset {exif_offset}) lies beyond "
                                    f"the end of the file ({self.size} bytes)")
        elif isinstance(exif_offset, int) and exif_offset not in seen:
            self._directory(exif_offset)    # checked for damaged entries only
        for ifd in self.ifds:
            width, height = first_int(ifd, Tag.IMAGE_WIDTH, 0), first_int(ifd, Tag.IMAGE_LENGTH, 0)
            check_sizes(path, width, height)
        self.buf = None                    # the file's mapping closes once the header is parsed

    def _truncated(self, reason: str):
        raise UnreadableRaw(f"{shown(self.path)}: truncated or corrupt: {reason}; {NOT_RAW_FIX}")

    def _u32(self, offset: int) -> int:
        return struct.unpack_from(self.order + "I", self.buf, offset)[0]

    def _walk(self, offset: int, depth: int, seen: set) -> None:
        while offset and len(self.ifds) < MAX_IFDS and offset not in seen and offset + 2 <= self.size:
            seen.add(offset)
            count = struct.unpack_from(self.order + "H", self.buf, offset)[0]
            end = offset + 2 + 12 * count
            if end + 4 > self.size or count > MAX_ENTRIES:
                if not self.ifds:
                    where = "runs past the end of the file" if end + 4 > self.size else f"declares {count} entries"
                    self._truncated(f"its TIFF directory at offset {offset} {where} ({self.size} bytes)")
                return
            ifd = self._directory(offset)
            self.ifds.append(ifd)
            if depth < 3:
                for sub in ifd.get(Tag.SUB_IFDS, ())[:MAX_IFDS]:
                    if isinstance(sub, int):
                        self._walk(sub, depth + 1, seen)
            offset = self._u32(end)

    def _directory(self, offset: int) -> dict:
        """{tag: values} of the directory at ``offset`` (its entry count already checked)."""
        count = struct.unpack_from(self.order + "H", self.buf, offset)[0]
        ifd = {}
        for entry in range(offset + 2, min(offset + 2 + 12 * min(count, MAX_ENTRIES), self.size - 11), 12):
            tag, kind, n = struct.unpack_from(self.order + "HHI", self.buf, entry)
            value = self._value(tag, kind, n, entry + 8)
            if value is not None:
                ifd[tag] = value
        return ifd

    def _problem(self, tag: int, text: str) -> None:
        if len(self.problems) < 8:
            name = Tag(tag).name if tag in Tag._value2member_map_ else f"{tag}"
            self.problems.append(f"TIFF entry {name}: {text}")

    def _value(self, tag: int, kind: int, n: int, field_at: int):
        """The values of one entry as a tuple (Fractions for rationals, str for ASCII); None if unreadable."""
        size = self._SIZES.get(kind)
        if size is None:
            return None
        if n == 0 or n > MAX_VALUES:
            self._problem(tag, f"declares {n} values")
            return None
        start = field_at if size * n <= 4 else self._u32(field_at)
        if start + size * n > self.size:
            self._problem(tag, f"its {n} values at offset {start} lie past the end of the file ({self.size} bytes)")
            return None
        if kind == 2:
            return (bytes(self.buf[start:start + n]).split(b"\0")[0].decode("latin-1").strip(),)
        if kind in (5, 10):
            code = "I" if kind == 5 else "i"
            pairs = struct.unpack_from(f"{self.order}{2 * n}{code}", self.buf, start)
            return tuple(Fraction(a, b) if b else None for a, b in zip(pairs[::2], pairs[1::2]))
        if kind == 7:
            return tuple(bytes(self.buf[start:start + n]))
        return struct.unpack_from(f"{self.order}{n}{self._FORMATS[kind]}", self.buf, start)

    def raw_ifd(self) -> dict | None:
        """The full-resolution raw image: NewSubFileType 0 with CFA or LinearRaw photometric."""
        for ifd in self.ifds:
            if first_int(ifd, Tag.NEW_SUBFILE_TYPE, 0) == 0 and \
                    first_int(ifd, Tag.PHOTOMETRIC, 0) in (PHOTOMETRIC_CFA, PHOTOMETRIC_LINEAR_RAW):
                return ifd
        return None

    def dng_tags(self) -> dict | None:
        """Make, model, sizes, CFA and levels from the DNG tags of the raw IFD; None if not a DNG.

        Values a camera cannot write (a repeat dimension of three numbers, a size of zero, a
        negative level) are left out, so that LibRaw's reading or a finding takes their place.
        """
        if Tag.DNG_VERSION not in self.ifds[0]:
            return None
        raw = self.raw_ifd()
        info = {"make": _first_text(self.ifds[0], Tag.MAKE),
                "model": _first_text(self.ifds[0], Tag.MODEL) or _first_text(self.ifds[0], Tag.UNIQUE_CAMERA_MODEL)}
        if raw is None:
            return info
        width, height = first_int(raw, Tag.IMAGE_WIDTH, 0), first_int(raw, Tag.IMAGE_LENGTH, 0)
        area = _ints(raw.get(Tag.ACTIVE_AREA, ()))
        top, left, bottom, right = area if area and len(area) == 4 else (0, 0, height, width)
        info["width"] = right - left if right > left else None
        info["height"] = bottom - top if bottom > top else None
        samples = max(1, first_int(raw, Tag.SAMPLES_PER_PIXEL, 1))
        bits = first_int(raw, Tag.BITS_PER_SAMPLE, 16)
        ceiling = (1 << bits) - 1 if 0 < bits <= 32 else None
        white = raw.get(Tag.WHITE_LEVEL, (ceiling,))[0]
        info["white_level"] = int(white) if isinstance(white, (int, Fraction)) else None
        if info["white_level"] is not None and info["white_level"] > max(ceiling or 0, 65535):
            self.problems.append(f"DNG WhiteLevel {info['white_level']} is beyond any raw's range; not used")
            info["white_level"] = None
        info["black_level"] = dng_black(raw, samples)
        if info["black_level"] is None:
            self.problems.append("DNG BlackLevel or BlackLevelRepeatDim unusable "
                                 f"({raw.get(Tag.BLACK_LEVEL_REPEAT_DIM)}); not used")
        if first_int(raw, Tag.PHOTOMETRIC, 0) == PHOTOMETRIC_LINEAR_RAW:
            info["cfa"] = ""
        elif Tag.CFA_PATTERN in raw:
            info["cfa"] = dng_cfa(raw)
            if info["cfa"] is None:
                self.problems.append(f"DNG CFAPattern {raw[Tag.CFA_PATTERN]} with CFARepeatPatternDim "
                                     f"{raw.get(Tag.CFA_REPEAT_PATTERN_DIM)} names no colour pattern; not used")
        elif first_int(raw, Tag.PHOTOMETRIC, 0) == PHOTOMETRIC_CFA:
            self.problems.append("DNG CFAPattern missing or unreadable")
        return info


def first_int(ifd: dict, tag: int, default: int) -> int:
    """The first value of an entry as an int; ``default`` when absent or not an integer."""
    value = ifd.get(tag, (default,))[0]
    return value if isinstance(value, int) else default


def _ints(values) -> tuple | None:
    """The values as ints (rationals with integer value included); None when any is not one."""
    out = []
    for value in values:
        if isinstance(value, Fraction) and value.denominator == 1:
            value = value.numerator
        if not isinstance(value, int):
            return None
        out.append(value)
    return tuple(out)


def _first_text(ifd: dict, tag: int) -> str | None:
    value = ifd.get(tag, (None,))[0]
    return value if isinstance(value, str) and value else None


MAX_REPEAT = 16                 # CFA and black level repeat patterns of real sensors: 1x1 to 8x8


def _repeat_dim(raw: dict, tag: int, default: tuple[int, int]) -> tuple[int, int] | None:
    """A (rows, cols) repeat dimension; None when the entry holds other than two ints in 1..16."""
    dims = _ints(raw.get(tag, default))
    return dims if dims and len(dims) == 2 and all(0 < d <= MAX_REPEAT for d in dims) else None


def dng_cfa(raw: dict) -> str | None:
    """CFARepeatPatternDim/CFAPattern/CFAPlaneColor as 'RGGB' etc., 'XTRANS' for 6x6; None if odd
    (a repeat dimension that is not two numbers, colour indices beyond the plane colours)."""
    dims = _repeat_dim(raw, Tag.CFA_REPEAT_PATTERN_DIM, (2, 2))
    pattern = _ints(raw.get(Tag.CFA_PATTERN, ()))
    if dims is None or dims[0] != dims[1] or dims[0] not in TILE_SIDES or len(pattern or ()) != dims[0] ** 2:
        return None
    letters = dict(enumerate("RGBCMYW"))
    planes = _ints(raw.get(Tag.CFA_PLANE_COLOR, (0, 1, 2))) or ()
    colours = [letters.get(planes[i]) if 0 <= i < len(planes) else None for i in pattern]
    name = tile_name("".join(c or "?" for c in colours))       # any 6x6 tile is X-Trans, whatever its colours
    return None if "?" in name else name


def dng_black(raw: dict, samples: int) -> list | None:
    """BlackLevel (+ mean DeltaH/DeltaV by parity) per position of the 2x2 tile, row-major; sample 0.
    None when the levels are not numbers or a repeat dimension is not two positive numbers."""
    dims = _repeat_dim(raw, Tag.BLACK_LEVEL_REPEAT_DIM, (1, 1))
    if dims is None:
        return None
    rows, cols = dims
    levels = raw.get(Tag.BLACK_LEVEL, (0,) * (rows * cols * samples))
    if len(levels) < rows * cols * samples:
        return None
    delta_h, delta_v = raw.get(Tag.BLACK_LEVEL_DELTA_H, ()), raw.get(Tag.BLACK_LEVEL_DELTA_V, ())

    def mean_parity(deltas, parity):
        picked = [float(d) for d in deltas[parity::2] if isinstance(d, (int, float, Fraction))]
        return sum(picked) / len(picked) if picked else 0.0

    tile = []
    for r in range(2):
        for c in range(2):
            index = ((r % rows) * cols + (c % cols)) * samples
            level = levels[index] if index < len(levels) else 0
            if not isinstance(level, (int, float, Fraction)):
                return None
            value = float(level) + mean_parity(delta_v, r) + mean_parity(delta_h, c)
            if value != value or abs(value) == float("inf"):
                return None
            tile.append(int(value) if value.is_integer() else value)
    return tile
