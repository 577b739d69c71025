"""A bounded walk over the directories of a TIFF-structured raw (DNG, NEF, CR2, ARW, RW2, ORF) and
what the DNG tags say about levels, CFA and size, exact and without decoding any pixels."""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

from .rawfile import NOT_RAW_FIX, UnreadableRaw, check_sizes

MAX_IFDS = 64                   # TIFF directories walked per file (loops and chains are cut here)
MAX_VALUES = 1 << 18            # values decoded per TIFF entry (strip lists of real files are far shorter)


class TiffDirectories:
    """The entries of a TIFF's IFD0 chain and SubIFDs, as {tag: tuple of values} per directory.

    Offsets beyond the file, loops and absurd counts are cut off; a header too damaged to hold one
    directory, or one declaring absurd dimensions, raises UnreadableRaw.
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
        self.exif_beyond_end: str | None = None
        self._walk(first, depth=0, seen=set())
        if not self.ifds:
            self._truncated(f"its first TIFF directory (offset {first}) lies beyond the end of the file "
                            f"({self.size} bytes)")
        exif_offset = self.ifds[0].get(34665, (None,))[0]
        if exif_offset is not None and exif_offset + 2 > self.size:
            self.exif_beyond_end = (f"truncated: its EXIF directory (offset {exif_offset}) lies beyond "
                                    f"the end of the file ({self.size} bytes)")
        for ifd in self.ifds:
            width, height = ifd.get(256, (0,))[0], ifd.get(257, (0,))[0]
            if isinstance(width, int) and isinstance(height, int):
                check_sizes(path, width, height)
        self.buf = None                    # the file's mapping closes once the header is parsed

    def _truncated(self, reason: str):
        raise UnreadableRaw(f"{self.path}: truncated or corrupt: {reason}; {NOT_RAW_FIX}")

    def _u32(self, offset: int) -> int:
        return struct.unpack_from(self.order + "I", self.buf, offset)[0]

    def _walk(self, offset: int, depth: int, seen: set) -> None:
        while offset and len(self.ifds) < MAX_IFDS and offset not in seen and offset + 2 <= self.size:
            seen.add(offset)
            count = struct.unpack_from(self.order + "H", self.buf, offset)[0]
            end = offset + 2 + 12 * count
            if end + 4 > self.size:
                if not self.ifds:
                    self._truncated(f"its TIFF directory at offset {offset} runs past the end of the file "
                                    f"({self.size} bytes)")
                return
            ifd = {}
            for entry in range(offset + 2, end, 12):
                tag, kind, n = struct.unpack_from(self.order + "HHI", self.buf, entry)
                value = self._value(kind, n, entry + 8)
                if value is not None:
                    ifd[tag] = value
            self.ifds.append(ifd)
            if depth < 3:
                for sub in ifd.get(330, ()):
                    if isinstance(sub, int):
                        self._walk(sub, depth + 1, seen)
            offset = self._u32(end)

    def _value(self, kind: int, n: int, field_at: int):
        """The values of one entry as a tuple (Fractions for rationals, str for ASCII); None if unreadable."""
        size = self._SIZES.get(kind)
        if size is None or n == 0 or n > MAX_VALUES:
            return None
        start = field_at if size * n <= 4 else self._u32(field_at)
        if start + size * n > self.size:
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
            if ifd.get(254, (0,))[0] == 0 and ifd.get(262, (0,))[0] in (32803, 34892):
                return ifd
        return None

    def dng_tags(self) -> dict | None:
        """Make, model, sizes, CFA and levels from the DNG tags of the raw IFD; None if not a DNG."""
        if 50706 not in self.ifds[0]:
            return None
        raw = self.raw_ifd()
        info = {"make": _first_text(self.ifds[0], 271), "model": _first_text(self.ifds[0], 272)}
        if raw is None:
            return info
        top, left, bottom, right = raw.get(50829, (0, 0, raw.get(257, (0,))[0], raw.get(256, (0,))[0]))
        info["width"], info["height"] = int(right - left) or None, int(bottom - top) or None
        samples = raw.get(277, (1,))[0]
        bits = raw.get(258, (16,))[0]
        info["white_level"] = int(raw.get(50717, ((1 << bits) - 1,))[0])
        info["black_level"] = dng_black(raw, samples)
        if raw.get(262, (0,))[0] == 34892:
            info["cfa"] = ""
        elif 33422 in raw:
            info["cfa"] = dng_cfa(raw)
        return info


def _first_text(ifd: dict, tag: int) -> str | None:
    value = ifd.get(tag, (None,))[0]
    return value if isinstance(value, str) and value else None


def dng_cfa(raw: dict) -> str | None:
    """CFARepeatPatternDim/CFAPattern/CFAPlaneColor as 'RGGB' etc., 'XTRANS' for 6x6; None if odd."""
    rows, cols = raw.get(33421, (2, 2))
    pattern = raw[33422]
    if (rows, cols) == (6, 6):
        return "XTRANS"
    if (rows, cols) != (2, 2) or len(pattern) != 4:
        return None
    letters = dict(enumerate("RGBCMYW"))
    planes = raw.get(50710, (0, 1, 2))
    return "".join(letters.get(planes[i] if i < len(planes) else i, "?") for i in pattern)


def dng_black(raw: dict, samples: int) -> list:
    """BlackLevel (+ mean DeltaH/DeltaV by parity) per position of the 2x2 tile, row-major; sample 0."""
    rows, cols = raw.get(50713, (1, 1))
    levels = raw.get(50714, (0,) * (rows * cols * samples))
    delta_h, delta_v = raw.get(50715, ()), raw.get(50716, ())

    def mean_parity(deltas, parity):
        picked = [float(d) for d in deltas[parity::2] if d is not None]
        return sum(picked) / len(picked) if picked else 0.0

    tile = []
    for r in range(2):
        for c in range(2):
            index = ((r % rows) * cols + (c % cols)) * samples
            value = float(levels[index] if index < len(levels) and levels[index] is not None else 0)
            value += mean_parity(delta_v, r) + mean_parity(delta_h, c)
            tile.append(int(value) if value.is_integer() else value)
    return tile
