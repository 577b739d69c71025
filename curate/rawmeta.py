"""Raw file metadata: EXIF via exifread, levels/CFA/sizes from DNG tags or LibRaw, each with its source.

Headers are parsed with bounds checks before LibRaw sees a file, so a zero-byte, truncated, foreign
or absurd file raises UnreadableRaw (one line naming the file, the reason and the fix) instead of a
crash, a hang or a huge allocation. exifread finds nothing in Canon CR3, Fuji RAF and Canon CRW:
their ordinary EXIF/TIFF blocks are dug out of the containers (CR3 'CMT1'/'CMT2' boxes, the JPEG
inside a RAF) and handed to exifread; CRW's CIFF records are read directly.
"""
from __future__ import annotations

import hashlib
import io
import logging
import mmap
import os
import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import exifread
import numpy as np
import rawpy

from .errors import SidkitError
from .exposure import snap_exposure

MAX_SIDE = 100_000              # pixels along one side; larger headers are corrupt, not cameras
MAX_PIXELS = 600_000_000        # the largest multi-shot backs stay well below this
MAX_IFDS = 64                   # TIFF directories walked per file (loops and chains are cut here)
MAX_VALUES = 1 << 18            # values decoded per TIFF entry (strip lists of real files are far shorter)
EXPOSURE_TOLERANCE = 0.03       # EXIF vs LibRaw exposure: relative difference beyond rounding
ISO_TOLERANCE = 0.01

# exifread logs a warning per damaged field; read_metadata reports unusable files itself.
logging.getLogger("exifread").setLevel(logging.ERROR)

CANON_CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")
_NOT_RAW_FIX = "remove it from the folder or copy the original file from the camera again"


class UnreadableRaw(SidkitError):
    """A file that is not a readable camera raw; the message names the file, the reason and the fix."""


@dataclass
class RawMeta:
    path: str
    make: str
    model: str
    camera: str                           # 'Make Model', the make not repeated
    serial: str
    exposure_s: Fraction
    iso: float | None
    fnumber: float | None                 # None for a manual lens (FNumber 0/0)
    captured_at: str | None               # ISO 8601
    cfa: str | None                       # RGGB, GRBG, GBRG, BGGR, XTRANS; '' not a CFA; None unknown
    black_level: list | None              # per position of the 2x2 tile, row-major
    white_level: int | None
    width: int | None                     # visible area
    height: int | None
    sources: dict = field(default_factory=dict)         # field -> exif|exif-embedded|ciff|libraw|dng-tags
    disagreements: list = field(default_factory=list)
    has_pixels: bool | None = None        # None unless checked
    sha256: str = ""                      # filled by callers that hash the file (sha256_file)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike, *, with_pixels: bool = False) -> RawMeta:
    """Everything a manifest needs from one raw file; UnreadableRaw when it is not a usable raw."""
    path = Path(path)
    with _mapped(path) as buf:
        kind, head = _container(path, buf), bytes(buf[:8])
        tiff = _Tiff(path, buf) if kind in _TIFF_KINDS else None
        tags, exif_source = _exif_tags(path, buf, kind)
        ciff = _ciff_values(buf) if kind == "crw" else {}
    dng = tiff.dng() if tiff else None
    libraw = _libraw(path, unpack=dng is None)
    if kind is None and libraw.error:
        raise UnreadableRaw(f"{path}: not a camera raw (starts with {head!r}; LibRaw: "
                            f"{libraw.error}); {_NOT_RAW_FIX}")
    meta = _assemble(path, tags, exif_source, ciff, dng, libraw, tiff)
    if with_pixels:
        meta.has_pixels = check_pixels(path) is None
    return meta


def check_pixels(path: str | os.PathLike) -> str | None:
    """None when the pixel data decodes to something real, else the reason it does not.

    Stripped files (DNG, RW2, CR3 with their image data cut away) "decode" into zeros or garbage
    in LibRaw, so the byte counts the container declares are compared with the file first.
    """
    path = Path(path)
    with _mapped(path) as buf:
        kind = _container(path, buf)
        missing = _missing_data(_Tiff(path, buf) if kind in _TIFF_KINDS else None, buf, kind)
    if missing:
        return missing
    try:
        with rawpy.imread(str(path)) as raw:
            _check_sizes(path, raw.sizes.raw_width, raw.sizes.raw_height)
            raw.unpack()
            visible = raw.raw_image_visible
            if not np.any(visible):
                return "decodes to all zeros"
    except rawpy.LibRawError as exc:
        return f"LibRaw cannot decode the pixels: {_libraw_message(exc)}"
    return None


# --- assembling the record ------------------------------------------------------------------------

def _assemble(path: Path, tags: dict, exif_source: str, ciff: dict, dng: dict | None,
              libraw: "_LibRaw", tiff: "_Tiff | None") -> RawMeta:
    sources: dict[str, str] = {}
    disagreements: list[str] = []
    dng = dng or {}

    def pick(name: str, *candidates):
        for source, value in candidates:
            if value is not None:
                sources[name] = source
                return value
        return None

    make = pick("make", (exif_source, _text(tags, "Make")), ("ciff", ciff.get("make")),
                ("dng-tags", dng.get("make"))) or ""
    model = pick("model", (exif_source, _text(tags, "Model")), ("ciff", ciff.get("model")),
                 ("dng-tags", dng.get("model"))) or ""
    exif_exposure = _exif_exposure(tags)
    libraw_exposure = snap_exposure(libraw.shutter) if libraw.shutter else None
    exposure = pick("exposure_s", (exif_source, exif_exposure), ("ciff", ciff.get("exposure_s")),
                    ("libraw", libraw_exposure))
    if exposure is None:
        reason = (tiff and tiff.exif_beyond_end) or "no exposure time in its EXIF or from LibRaw"
        raise UnreadableRaw(f"{path}: {reason}; {_NOT_RAW_FIX}")
    exif_iso = _exif_iso(tags)
    iso = pick("iso", (exif_source, exif_iso), ("ciff", ciff.get("iso")), ("libraw", libraw.iso))
    disagreements += exif_libraw_disagreements(exif_exposure, libraw.shutter, exif_iso, libraw.iso)

    fnumber = pick("fnumber", (exif_source, _exif_fnumber(tags)), ("ciff", ciff.get("fnumber")),
                   ("libraw", libraw.aperture))
    captured_at = pick("captured_at", (exif_source, _exif_time(tags)), ("ciff", ciff.get("captured_at")),
                       ("libraw", libraw.timestamp))
    serial = pick("serial", (exif_source, _text(tags, "BodySerialNumber", "CameraSerialNumber",
                                                "SerialNumber")), ("ciff", ciff.get("serial"))) or ""

    width = pick("width", ("libraw", libraw.width), ("dng-tags", dng.get("width")))
    height = pick("height", ("libraw", libraw.height), ("dng-tags", dng.get("height")))
    if dng.get("width") and libraw.width and (dng.get("width"), dng.get("height")) != (libraw.width, libraw.height):
        disagreements.append(f"size: DNG ActiveArea {dng.get('width')}x{dng.get('height')}, "
                             f"LibRaw {libraw.width}x{libraw.height}")
    cfa = pick("cfa", ("dng-tags", dng.get("cfa")), ("libraw", libraw.cfa))
    black = pick("black_level", ("dng-tags", dng.get("black_level")), ("libraw", libraw.black_level))
    white = pick("white_level", ("dng-tags", dng.get("white_level")), ("libraw", libraw.white_level))
    return RawMeta(path=str(path), make=make, model=model, camera=_camera(make, model), serial=serial,
                   exposure_s=exposure, iso=iso, fnumber=fnumber, captured_at=captured_at, cfa=cfa,
                   black_level=black, white_level=white, width=width, height=height,
                   sources=sources, disagreements=disagreements)


def exif_libraw_disagreements(exif_exposure: Fraction | None, libraw_shutter: float | None,
                              exif_iso: float | None, libraw_iso: float | None) -> list[str]:
    """EXIF and LibRaw exposure/ISO that differ beyond rounding (LibRaw stores floats: 0.0666667)."""
    found = []
    if exif_exposure and libraw_shutter and abs(libraw_shutter / float(exif_exposure) - 1) > EXPOSURE_TOLERANCE:
        found.append(f"exposure: EXIF {exif_exposure} s, LibRaw {libraw_shutter:.6g} s")
    if exif_iso and libraw_iso and abs(libraw_iso / exif_iso - 1) > ISO_TOLERANCE:
        found.append(f"iso: EXIF {exif_iso:g}, LibRaw {libraw_iso:g}")
    return found


def _camera(make: str, model: str) -> str:
    """'Canon EOS R6', 'NIKON D70' (from 'NIKON CORPORATION'), 'SONY ILCE-7M3'."""
    brand = make.split(" ")[0]
    if not make or model.lower().startswith(brand.lower()):
        return model
    return f"{make} {model}".strip()


# --- EXIF via exifread ----------------------------------------------------------------------------

def _exif_tags(path: Path, buf, kind: str | None) -> tuple[dict, str]:
    """exifread's tags (details=False) and their source: the file's own EXIF or an embedded block."""
    if kind in _TIFF_KINDS:
        with open(path, "rb") as handle:
            return _exifread(handle), "exif"
    if kind == "cr3":
        tags: dict = {}
        for blob in _cr3_tiff_blocks(buf):
            tags.update(_exifread(blob))
        return tags, "exif-embedded"
    if kind == "raf" and len(buf) >= 92:
        offset, length = struct.unpack_from(">II", buf, 84)
        if offset + length <= len(buf):
            return _exifread(buf[offset:offset + length]), "exif-embedded"
    return {}, "exif"


def _exifread(source) -> dict:
    """exifread's tags of a file handle or an in-memory block; {} when it finds none or chokes."""
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        return exifread.process_file(handle, details=False, extract_thumbnail=False)
    except Exception:                      # exifread raises many kinds on damaged blocks: no EXIF then
        return {}


def _tag(tags: dict, *names: str):
    """A tag under its EXIF or IFD0 name ('EXIF ExposureTime' or 'Image ExposureTime' in TIFF/EP)."""
    for name in names:
        for key in (f"EXIF {name}", f"Image {name}"):
            if key in tags:
                return tags[key]
    return None


def _text(tags: dict, *names: str) -> str | None:
    tag = _tag(tags, *names)
    text = str(tag.values).strip().strip("\0").strip() if tag is not None else ""
    return text or None


def _number(tags: dict, *names: str):
    """The first value of a numeric tag: an exact Fraction, an int, or None (absent, x/0, non-numeric)."""
    tag = _tag(tags, *names)
    if tag is None or isinstance(tag.values, (str, bytes)) or not tag.values:
        return None
    value = tag.values[0]
    if isinstance(value, Fraction):
        return None if value.denominator == 0 else Fraction(value.numerator, value.denominator)
    return value if isinstance(value, int) else None


def _exif_exposure(tags: dict) -> Fraction | None:
    value = _number(tags, "ExposureTime")
    return Fraction(value) if value else None


def _exif_iso(tags: dict) -> float | None:
    """ISO; 65535 (the field's ceiling) defers to RecommendedExposureIndex (0x8832) or ISOSpeed."""
    iso = _number(tags, "ISOSpeedRatings", "PhotographicSensitivity")
    if iso is None or iso == 65535:
        better = _number(tags, "RecommendedExposureIndex", "Tag 0x8832", "ISOSpeed", "Tag 0x8833")
        iso = better or iso
    if iso is None:
        iso = _number(tags, "Tag 0x0017") if _text(tags, "Make") in ("Panasonic", "LEICA") else None
    return float(iso) if iso else None


def _exif_fnumber(tags: dict) -> float | None:
    value = _number(tags, "FNumber")
    return float(value) if value else None


_DATE = re.compile(r"(\d{4})\D(\d\d)\D(\d\d)\D+(\d\d)\D(\d\d)\D(\d\d)")


def _exif_time(tags: dict) -> str | None:
    """DateTimeOriginal (else DateTime) as ISO 8601, with OffsetTimeOriginal when the camera wrote it."""
    for name, offset_name in (("DateTimeOriginal", "OffsetTimeOriginal"), ("DateTime", "OffsetTime")):
        match = _DATE.match(_text(tags, name) or "")
        if match and match[1] != "0000":
            y, mo, d, h, mi, s = match.groups()
            offset = _text(tags, offset_name) or ""
            return f"{y}-{mo}-{d}T{h}:{mi}:{s}" + (offset if re.fullmatch(r"[+-]\d\d:\d\d|Z", offset) else "")
    return None


# --- LibRaw via rawpy ------------------------------------------------------------------------------

@dataclass
class _LibRaw:
    error: str | None = None
    width: int | None = None
    height: int | None = None
    cfa: str | None = None
    black_level: list | None = None
    white_level: int | None = None
    shutter: float | None = None
    iso: float | None = None
    aperture: float | None = None
    timestamp: str | None = None


def _libraw(path: Path, unpack: bool) -> _LibRaw:
    """Sizes from LibRaw's header parse; with ``unpack``, levels, CFA and LibRaw's shooting data too.

    rawpy only hands out raw_pattern, black levels and `other` after unpack, which reads the pixel
    data; it is skipped when the header declares an absurd size, and its failure is not fatal.
    """
    try:
        raw = rawpy.imread(str(path))
    except rawpy.LibRawError as exc:
        return _LibRaw(error=_libraw_message(exc))
    with raw:
        sizes = raw.sizes
        _check_sizes(path, sizes.raw_width, sizes.raw_height)
        info = _LibRaw(width=sizes.width or None, height=sizes.height or None)
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
            info.error = _libraw_message(exc)
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


def _libraw_message(exc: Exception) -> str:
    text = exc.args[0] if exc.args else type(exc).__name__
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


def _check_sizes(path: Path, width: int, height: int) -> None:
    if width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise UnreadableRaw(f"{path}: absurd image dimensions {width}x{height} in the header (corrupt file); "
                            f"{_NOT_RAW_FIX}")


# --- containers -----------------------------------------------------------------------------------

_TIFF_KINDS = {"tiff", "rw2", "orf"}


class _mapped:
    """The file, memory-mapped read-only (only the pages read are loaded); UnreadableRaw if empty/absent."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        try:
            self.handle = open(self.path, "rb")
        except OSError as exc:
            raise UnreadableRaw(f"{self.path}: cannot open ({exc.strerror}); check the path and permissions")
        size = os.fstat(self.handle.fileno()).st_size
        if size == 0:
            self.handle.close()
            raise UnreadableRaw(f"{self.path}: empty file (0 bytes); {_NOT_RAW_FIX}")
        self.map = mmap.mmap(self.handle.fileno(), 0, access=mmap.ACCESS_READ)
        return self.map

    def __exit__(self, *exc):
        self.map.close()
        self.handle.close()


def _container(path: Path, buf) -> str | None:
    """The raw container a file's first bytes announce; a JPEG raises, anything unknown is None."""
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
        raise UnreadableRaw(f"{path}: a JPEG image, not a camera raw; {_NOT_RAW_FIX}")
    return None


class _Tiff:
    """A bounded walk over a TIFF-structured raw's directories (IFD0 chain and SubIFDs)."""

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
                _check_sizes(path, width, height)
        self.buf = None                    # the file's mapping closes once the header is parsed

    def _truncated(self, reason: str):
        raise UnreadableRaw(f"{self.path}: truncated or corrupt: {reason}; {_NOT_RAW_FIX}")

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

    def dng(self) -> dict | None:
        """Sizes, CFA and levels from the DNG tags of the raw IFD, exact and without decoding; None if no DNG."""
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
        info["black_level"] = _dng_black(raw, samples)
        if raw.get(262, (0,))[0] == 34892:
            info["cfa"] = ""
        elif 33422 in raw:
            info["cfa"] = _dng_cfa(raw)
        return info


def _first_text(ifd: dict, tag: int) -> str | None:
    value = ifd.get(tag, (None,))[0]
    return value if isinstance(value, str) and value else None


def _dng_cfa(raw: dict) -> str | None:
    rows, cols = raw.get(33421, (2, 2))
    pattern = raw[33422]
    if (rows, cols) == (6, 6):
        return "XTRANS"
    if (rows, cols) != (2, 2) or len(pattern) != 4:
        return None
    letters = dict(enumerate("RGBCMYW"))
    planes = raw.get(50710, (0, 1, 2))
    return "".join(letters.get(planes[i] if i < len(planes) else i, "?") for i in pattern)


def _dng_black(raw: dict, samples: int) -> list:
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


def _missing_data(tiff: _Tiff | None, buf, kind: str | None) -> str | None:
    """Why the main image data cannot all be in the file (cut off, or fewer tiles than the image
    needs), from the container's own declarations; None when nothing is visibly missing."""
    size = len(buf)
    spans: list[tuple[int, int]] = []
    if tiff is not None:
        ifd = _main_image_ifd(tiff)
        if ifd is None:
            return None
        problem = _tile_shortfall(ifd)
        if problem:
            return problem
        counts = ifd.get(279) or ifd.get(325)
        offsets = ifd[280] if kind == "rw2" and 280 in ifd else ifd.get(273) or ifd.get(324) or ()
        spans = list(zip(offsets, counts)) if len(offsets) == len(counts) else [(size, sum(counts))]
    elif kind == "cr3":
        spans = _cr3_track_spans(buf)
    elif kind == "raf" and size >= 108:
        spans = [struct.unpack_from(">II", buf, 100)]
    declared = sum(count for _, count in spans)
    held = min(size, sum(max(0, min(offset + count, size) - offset) for offset, count in spans))
    return f"strip data missing: file holds {held} of {declared} bytes" if held < declared else None


def _main_image_ifd(tiff: _Tiff) -> dict | None:
    """The raw IFD, else (RW2, CR2) the directory declaring the most strip/tile bytes."""
    candidates = [i for i in ([tiff.raw_ifd()] if tiff.raw_ifd() else tiff.ifds) if 279 in i or 325 in i]
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


# --- Canon CR3 (ISO base media boxes) ---------------------------------------------------------------

def _boxes(buf, start: int, end: int, clip: bool = True):
    """(type, payload start, payload end) of each box in [start, end); clipped to the buffer if ``clip``."""
    pos = start
    while pos + 8 <= end:
        size, name = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield name, pos + header, min(pos + size, end) if clip else pos + size
        pos += size


def _cr3_tiff_blocks(buf) -> list:
    """The TIFF blocks of a CR3: CMT1 (IFD0: make, model) and CMT2 (the EXIF IFD) in Canon's uuid box."""
    blocks = []
    for name, start, end in _boxes(buf, 0, len(buf)):
        if name != b"moov":
            continue
        for child, cstart, cend in _boxes(buf, start, end):
            if child == b"uuid" and bytes(buf[cstart:cstart + 16]) == CANON_CR3_UUID:
                blocks += [buf[s:e] for n, s, e in _boxes(buf, cstart + 16, cend) if n in (b"CMT1", b"CMT2")]
    return blocks


def _cr3_track_spans(buf) -> list[tuple[int, int]]:
    """(offset, size) of the first sample of every track (JPEG, preview, raw): stco/co64 and stsz."""
    def child(start, end, name):
        return next(((s, e) for n, s, e in _boxes(buf, start, end) if n == name), None)

    spans = []
    for name, start, end in _boxes(buf, 0, len(buf)):
        if name != b"moov":
            continue
        for track, tstart, tend in _boxes(buf, start, end):
            box = (tstart, tend) if track == b"trak" else None
            for step in (b"mdia", b"minf", b"stbl"):
                box = box and child(*box, step)
            sizes = box and child(*box, b"stsz")
            offsets, wide = (box and child(*box, b"co64"), True)
            if box and offsets is None:
                offsets, wide = child(*box, b"stco"), False
            if not (sizes and offsets) or sizes[0] + 12 > sizes[1] or offsets[0] + 8 + (8 if wide else 4) > offsets[1]:
                continue
            size = struct.unpack_from(">I", buf, sizes[0] + 4)[0]
            if size == 0 and sizes[0] + 16 <= sizes[1]:
                size = struct.unpack_from(">I", buf, sizes[0] + 12)[0]
            offset = struct.unpack_from(">Q" if wide else ">I", buf, offsets[0] + 8)[0]
            spans.append((offset, size))
    return spans


# --- Canon CRW (CIFF) ------------------------------------------------------------------------------

def _ciff_values(buf) -> dict:
    """Make, model, serial, time, exposure, ISO and f-number from a CRW's CIFF records (as exiftool)."""
    order = "<" if bytes(buf[:2]) == b"II" else ">"
    records = dict(_ciff_records(buf, order, struct.unpack_from(order + "I", buf, 2)[0], len(buf), 0))
    values: dict = {}
    if 0x080A in records:
        parts = bytes(records[0x080A]).split(b"\0")
        values["make"] = parts[0].decode("latin-1") or None
        values["model"] = parts[1].decode("latin-1") if len(parts) > 1 and parts[1] else None
    if 0x180B in records and len(records[0x180B]) >= 4:
        values["serial"] = f"{struct.unpack_from(order + 'I', records[0x180B])[0]:010d}"
    if 0x180E in records and len(records[0x180E]) >= 4:
        stamp = struct.unpack_from(order + "I", records[0x180E])[0]
        values["captured_at"] = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    shot = records.get(0x102A)
    if shot is not None and len(shot) >= 46:
        info = struct.unpack_from(f"{order}{len(shot) // 2}h", shot)
        if info[22]:
            values["exposure_s"] = snap_exposure(2.0 ** -_canon_ev(info[22]))
        values["iso"] = float(round(2 ** (info[2] / 32) * 100 / 32 * 2 ** (info[1] / 32)))
        if info[21]:
            values["fnumber"] = round(2 ** (_canon_ev(info[21]) / 2), 1)
    return values


def _ciff_records(buf, order: str, start: int, end: int, depth: int):
    """(tag id, bytes) of every value record in a CIFF heap, descending into sub-heaps."""
    if end - start < 4 or end > len(buf) or depth > 4:
        return
    table = start + struct.unpack_from(order + "I", buf, end - 4)[0]
    if table + 2 > end:
        return
    count = struct.unpack_from(order + "H", buf, table)[0]
    for entry in range(table + 2, min(table + 2 + 10 * count, end - 10 + 1), 10):
        tag, size, offset = struct.unpack_from(order + "HII", buf, entry)
        if tag & 0xC000 == 0x4000:                        # value stored in the record itself
            yield tag & 0x3FFF, bytes(buf[entry + 2:entry + 10])
            continue
        data_start, data_end = start + offset, start + offset + size
        if data_end > end:
            continue
        if tag & 0x3800 in (0x2800, 0x3000):              # a sub-heap
            yield from _ciff_records(buf, order, data_start, data_end, depth + 1)
        else:
            yield tag & 0x3FFF, bytes(buf[data_start:data_end])


def _canon_ev(value: int) -> float:
    """Canon's EV encoding: 1/32 steps, where fractions 0x0c and 0x14 mean thirds (exiftool's CanonEv)."""
    sign, value = (-1, -value) if value < 0 else (1, value)
    fraction = value & 0x1F
    value -= fraction
    fraction = {0x0C: 32 / 3, 0x14: 64 / 3}.get(fraction, fraction)
    return sign * (value + fraction) / 32
