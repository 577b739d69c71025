"""Raw file metadata: EXIF via exifread, levels/CFA/sizes from DNG tags or LibRaw, each with its source.

Headers are parsed with bounds checks before LibRaw sees a file (curate.rawfile, curate.tiff), so a
zero-byte, truncated, foreign or absurd file raises UnreadableRaw (one line naming the file, the
reason and the fix) instead of a crash, a hang or a huge allocation. exifread finds nothing in Canon
CR3, Fuji RAF and Canon CRW: curate.containers digs their EXIF blocks out (CR3 'CMT1'/'CMT2' boxes,
the JPEG inside a RAF) or reads CRW's CIFF records directly.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import rawpy

from . import exif
from .cfa import corrupt_tile
from .containers import ciff_values
from .exposure import snap_exposure
from .findings import Finding
from .common.errors import SidkitError
from .librawinfo import LibRawInfo, libraw_message, libraw_open, read_libraw
from .pixelbytes import CORRUPT_CFA, corrupt_cfa, header_shortfall, missing_pixel_bytes
from .rawfile import NOT_RAW_FIX, TIFF_KINDS, UnreadableRaw, check_sizes, container_kind, mapped, open_regular, shown
from .tiff import COMPRESSION_NONE, Tag, TiffDirectories, first_int

__all__ = ["RawMeta", "UnreadableRaw", "check_pixels", "exif_libraw_disagreements", "inspect_file",
           "missing_pixel_bytes", "read_metadata", "sha256_file"]

EXPOSURE_TOLERANCE = 0.03       # EXIF vs LibRaw exposure: relative difference beyond rounding
ISO_TOLERANCE = 0.01


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
    pixel_problem: str | None = None      # why the pixel data is missing or unusable (a `no-pixel-data` finding)
    bits_per_sample: int | None = None    # a DNG's BitsPerSample of its raw image; None for other raws
    unstated_levels: dict = field(default_factory=dict)  # a DNG's 'black_level'/'white_level' -> 'absent'
                                          # (the DNG default is used) or 'unusable' (an entry that is no level)
    bits_problem: str | None = None       # an uncompressed DNG whose BitsPerSample its strip bytes contradict


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a regular file, streamed and never past the size stat gave (a file growing
    while read, or /dev/zero, cannot keep it busy); UnreadableRaw for a FIFO, device or directory."""
    digest = hashlib.sha256()
    handle, size = open_regular(path)
    with handle:
        while size > 0 and (block := handle.read(min(chunk, size))):
            digest.update(block)
            size -= len(block)
    return digest.hexdigest()


def read_metadata(path: str | os.PathLike, *, with_pixels: bool = False, need_exposure: bool = True) -> RawMeta:
    """Everything a manifest needs from one raw file; UnreadableRaw when it is not a usable raw.

    Any failure of a reader on a damaged file (exifread, LibRaw, the header parsers, numpy) becomes
    UnreadableRaw with a one-line reason. A file whose metadata reads but whose header shows pixel
    data missing (cut off, stripped, a white level not above black) gets `pixel_problem`;
    ``with_pixels`` also decodes the pixels (check_pixels) and sets `has_pixels`. Without
    ``need_exposure`` a file that records no exposure time at all (a cinema camera's DNG) reads with
    ``exposure_s`` None; a corrupt or cut-off one is still UnreadableRaw.
    """
    path = Path(path)
    try:
        meta = _read_metadata(path, need_exposure)
        if with_pixels:
            reason = check_pixels(path)
            meta.has_pixels = reason is None
            meta.pixel_problem = meta.pixel_problem or reason
    except SidkitError:
        raise
    except Exception as exc:               # a reader choking on damaged bytes: a finding, not a crash
        raise UnreadableRaw(f"{shown(path)}: corrupt, a reader failed on it ({_brief(exc)}); {NOT_RAW_FIX}") from exc
    return meta


def inspect_file(path: str | os.PathLike, *, with_pixels: bool = True) -> tuple[RawMeta | None, list[Finding]]:
    """What `curate inspect` reports for one file: its metadata (None when unreadable) and its
    findings (`unreadable`, `no-pixel-data`), never an exception for a bad file."""
    name = shown(path)
    try:
        meta = read_metadata(path, with_pixels=with_pixels, need_exposure=False)
    except UnreadableRaw as exc:
        return None, [Finding("", name, "unreadable", str(exc).removeprefix(f"{name}: "))]
    found = [Finding("", name, "metadata-disagreement", text) for text in meta.disagreements]
    if meta.exposure_s is None:
        found.append(Finding("", name, "no-exposure", "records no exposure time: usable as a long exposure of "
                             "`curate scan --longs-only` (clean ground truth for synthesis), never in a pair"))
    if meta.pixel_problem:
        found.append(Finding("", name, "no-pixel-data", f"{meta.pixel_problem}: a truncated or stripped copy; "
                             "copy the original file from the camera again"))
    return meta, found


def _read_metadata(path: Path, need_exposure: bool = True) -> RawMeta:
    with mapped(path) as buf:
        kind, head = container_kind(path, buf), bytes(buf[:8])
        tiff = TiffDirectories(path, buf) if kind in TIFF_KINDS else None
        tags, exif_source = exif.read_tags(path, buf, kind)
        ciff = ciff_values(buf) if kind == "crw" else {}
        shortfall = header_shortfall(buf, kind, tiff)
    dng = tiff.dng_tags() if tiff else None
    libraw = read_libraw(path, unpack=dng is None)
    if kind is None and libraw.error:
        raise UnreadableRaw(f"{shown(path)}: not a camera raw (starts with {head!r}; LibRaw: "
                            f"{libraw.error}); {NOT_RAW_FIX}")
    meta = _assemble(path, tags, exif_source, ciff, dng, libraw, tiff, need_exposure)
    meta.pixel_problem = (shortfall or _level_problem(meta)
                          or (CORRUPT_CFA if dng and "cfa" in dng and dng["cfa"] is None else None))
    if dng is not None and tiff is not None:
        meta.bits_per_sample, meta.unstated_levels = _dng_level_entries(tiff, dng)
        meta.bits_problem = _bits_problem(tiff.raw_ifd())
    if tiff is not None:                   # damaged entries: worth a metadata-disagreement warning
        meta.disagreements += [f"header: {text}" for text in tiff.problems]
    return meta


def _dng_level_entries(tiff: TiffDirectories, dng: dict) -> tuple[int | None, dict]:
    """A DNG's BitsPerSample and the levels it does not state usably: a missing BlackLevel reads as
    0 and a missing WhiteLevel as 2**BitsPerSample - 1 (the DNG defaults); an unusable entry is
    replaced by LibRaw's guess. Validate says which (`level-unstated`, `bad-levels`)."""
    raw = tiff.raw_ifd()
    if raw is None:
        return None, {}
    unstated = {}
    for name, tag in (("black_level", Tag.BLACK_LEVEL), ("white_level", Tag.WHITE_LEVEL)):
        if tag not in raw:
            unstated[name] = "absent"
        elif dng.get(name) is None:
            unstated[name] = "unusable"
    if LINEARIZATION_TABLE in raw:         # levels are of the linearised values, not of BitsPerSample
        return None, unstated
    return first_int(raw, Tag.BITS_PER_SAMPLE, 0) or None, unstated


LINEARIZATION_TABLE = 50712            # DNG: stored samples map through it (a 12-bit cinema DNG to 16 bits)


def _bits_problem(raw: dict | None) -> str | None:
    """Why an uncompressed raw image's BitsPerSample cannot be right: its strips hold a whole number
    of bytes per sample at another depth (14 declared over 16-bit data decodes every pixel wrongly)."""
    if raw is None or first_int(raw, Tag.COMPRESSION, COMPRESSION_NONE) != COMPRESSION_NONE:
        return None
    width, height = first_int(raw, Tag.IMAGE_WIDTH, 0), first_int(raw, Tag.IMAGE_LENGTH, 0)
    samples, bits = max(1, first_int(raw, Tag.SAMPLES_PER_PIXEL, 1)), first_int(raw, Tag.BITS_PER_SAMPLE, 0)
    held = sum(v for v in raw.get(Tag.STRIP_BYTE_COUNTS, ()) if isinstance(v, int))
    count = width * height * samples
    if count <= 0 or not 0 < bits <= 32 or held * 8 < count * bits:
        return None                        # a shortfall: header_shortfall's `no-pixel-data`
    stored = held * 8 // count
    if stored > bits and held == count * stored // 8 and stored in (8, 16, 32):
        return f"BitsPerSample {bits}, but its strips hold {stored} bits per sample ({held} bytes)"
    return None


def _level_problem(meta: RawMeta) -> str | None:
    """Levels that leave no range for the pixels (a white level of 0 or not above black)."""
    if meta.white_level is not None and meta.black_level:
        if meta.white_level <= max(meta.black_level):
            return (f"white level {meta.white_level} is not above the black level "
                    f"{max(meta.black_level):g}: corrupt levels")
    return None


def _brief(exc: BaseException) -> str:
    """'ValueError: text' on one line, at most 200 characters."""
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def check_pixels(path: str | os.PathLike) -> str | None:
    """None when the pixel data decodes to something real, else the reason it does not.

    Stripped files "decode" into zeros or garbage in LibRaw, so the byte counts the container
    declares are compared with the file first (missing_pixel_bytes). UnreadableRaw when the file
    is not a regular file or its header is unusable.
    """
    path = Path(path)
    try:
        missing = missing_pixel_bytes(path) or corrupt_cfa(path)
        if missing:
            return missing
        with libraw_open(path) as raw:
            check_sizes(path, raw.sizes.raw_width, raw.sizes.raw_height)
            raw.unpack()
            mosaic = raw.raw_image_visible
            if not np.any(mosaic):
                return "decodes to all zeros"
            if mosaic.size and mosaic.min() == mosaic.max():
                return f"every raw value is {int(mosaic.min())}: the pixel data is missing"
            pattern, colours = raw.raw_pattern, raw.color_desc.decode("ascii", "replace")
            if pattern is not None and (corrupt := corrupt_tile(pattern, colours)):
                return corrupt
    except (rawpy.LibRawError, NotImplementedError) as exc:
        return f"LibRaw cannot decode the pixels: {libraw_message(exc)}"
    except SidkitError:
        raise
    except Exception as exc:
        return f"the pixels cannot be decoded ({_brief(exc)})"
    return None


def _assemble(path: Path, tags: dict, exif_source: str, ciff: dict, dng: dict | None,
              libraw: LibRawInfo, tiff: TiffDirectories | None, need_exposure: bool = True) -> RawMeta:
    """The record from every source, first found wins: EXIF, CIFF, DNG tags or LibRaw per field."""
    sources: dict[str, str] = {}
    disagreements: list[str] = []
    dng = dng or {}

    def pick(name: str, *candidates):
        for source, value in candidates:
            if value is not None:
                sources[name] = source
                return value
        return None

    make = pick("make", (exif_source, exif.text(tags, "Make")), ("ciff", ciff.get("make")),
                ("dng-tags", dng.get("make"))) or ""
    model = pick("model", (exif_source, exif.text(tags, "Model")), ("ciff", ciff.get("model")),
                 ("dng-tags", dng.get("model"))) or ""
    exposure_from_exif = exif.exposure(tags)
    libraw_exposure = snap_exposure(libraw.shutter) if libraw.shutter else None
    exposure = pick("exposure_s", (exif_source, _plausible(exposure_from_exif)),
                    ("ciff", _plausible(ciff.get("exposure_s"))), ("libraw", _plausible(libraw_exposure)))
    found = next((v for v in (exposure_from_exif, ciff.get("exposure_s"), libraw_exposure) if v is not None), None)
    if exposure is None and (need_exposure or found is not None or (tiff and tiff.exif_beyond_end)):
        reason = (tiff and tiff.exif_beyond_end) or (
            f"exposure time {found} s is not a real exposure (corrupt EXIF)" if found is not None
            else "no exposure time in its EXIF or from LibRaw")
        raise UnreadableRaw(f"{shown(path)}: {reason}; {NOT_RAW_FIX}")
    iso_from_exif = exif.iso(tags)
    iso = pick("iso", (exif_source, iso_from_exif), ("ciff", ciff.get("iso")), ("libraw", libraw.iso))
    disagreements += exif_libraw_disagreements(exposure_from_exif, libraw.shutter, iso_from_exif, libraw.iso)

    fnumber = pick("fnumber", (exif_source, exif.fnumber(tags)), ("ciff", ciff.get("fnumber")),
                   ("libraw", libraw.aperture))
    captured_at = pick("captured_at", (exif_source, exif.captured_at(tags)), ("ciff", ciff.get("captured_at")),
                       ("libraw", libraw.timestamp))
    serial = pick("serial", (exif_source, exif.text(tags, "BodySerialNumber", "CameraSerialNumber",
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


MAX_EXPOSURE_S = 86_400               # a day: longer exposure times are corrupt values


def _plausible(exposure: Fraction | None) -> Fraction | None:
    """An exposure time a camera can take (positive, at most a day); None otherwise."""
    return exposure if exposure is not None and 0 < exposure <= MAX_EXPOSURE_S else None


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
