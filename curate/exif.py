"""EXIF via exifread: the tags of a raw (its own EXIF or a block dug out of its container) and the
values a manifest needs from them, exact (Fractions) and with the cameras' quirks handled."""
from __future__ import annotations

import io
import logging
import re
from fractions import Fraction
from pathlib import Path

import exifread

from .containers import cr3_tiff_blocks, raf_jpeg
from .rawfile import TIFF_KINDS

# exifread logs a warning per damaged field; read_metadata reports unusable files itself.
logging.getLogger("exifread").setLevel(logging.ERROR)

_DATE = re.compile(r"(\d{4})\D(\d\d)\D(\d\d)\D+(\d\d)\D(\d\d)\D(\d\d)")


def read_tags(path: Path, buf, kind: str | None) -> tuple[dict, str]:
    """exifread's tags (details=False) and their source: 'exif' (the file's own) or 'exif-embedded'."""
    if kind in TIFF_KINDS:
        with open(path, "rb") as handle:
            return _exifread(handle), "exif"
    if kind == "cr3":
        tags: dict = {}
        for blob in cr3_tiff_blocks(buf):
            tags.update(_exifread(blob))
        return tags, "exif-embedded"
    if kind == "raf" and (jpeg := raf_jpeg(buf)) is not None:
        return _exifread(jpeg), "exif-embedded"
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


def text(tags: dict, *names: str) -> str | None:
    """The first of the named tags as stripped text; None when absent or empty."""
    tag = _tag(tags, *names)
    values = tag.values if tag is not None else ""
    if isinstance(values, bytes):          # exifread hands out text that is not ASCII as bytes
        values = values.decode("latin-1")
    value = str(values).strip().strip("\0").strip()
    return value or None


def _numeric_tag(tags: dict, *names: str):
    """The first value of a numeric tag: an exact Fraction, an int, or None (absent, x/0, non-numeric)."""
    tag = _tag(tags, *names)
    if tag is None or isinstance(tag.values, (str, bytes)) or not tag.values:
        return None
    value = tag.values[0]
    if isinstance(value, Fraction):
        return None if value.denominator == 0 else Fraction(value.numerator, value.denominator)
    return value if isinstance(value, int) else None


def exposure(tags: dict) -> Fraction | None:
    value = _numeric_tag(tags, "ExposureTime")
    return Fraction(value) if value else None


def iso(tags: dict) -> float | None:
    """ISO; 65535 (the field's ceiling) defers to RecommendedExposureIndex (0x8832) or ISOSpeed."""
    iso = _numeric_tag(tags, "ISOSpeedRatings", "PhotographicSensitivity")
    if iso is None or iso == 65535:
        better = _numeric_tag(tags, "RecommendedExposureIndex", "Tag 0x8832", "ISOSpeed", "Tag 0x8833")
        iso = better or iso
    if iso is None:
        iso = _numeric_tag(tags, "Tag 0x0017") if text(tags, "Make") in ("Panasonic", "LEICA") else None
    return float(iso) if iso else None


def fnumber(tags: dict) -> float | None:
    value = _numeric_tag(tags, "FNumber")
    return float(value) if value else None


def captured_at(tags: dict) -> str | None:
    """DateTimeOriginal (else DateTime) as ISO 8601, with its sub-seconds (SubSecTimeOriginal: '27' is
    .27 s; card dumps order bursts by it) and OffsetTimeOriginal when the camera wrote them."""
    for name, sub_name, offset_name in (("DateTimeOriginal", "SubSecTimeOriginal", "OffsetTimeOriginal"),
                                        ("DateTime", "SubSecTime", "OffsetTime")):
        match = _DATE.match(text(tags, name) or "")
        if match and match[1] != "0000":
            y, mo, d, h, mi, s = match.groups()
            digits = (text(tags, sub_name) or "").strip()
            fraction = f".{digits[:6]}" if re.fullmatch(r"\d{1,9}", digits) and int(digits) else ""
            offset = text(tags, offset_name) or ""
            return (f"{y}-{mo}-{d}T{h}:{mi}:{s}{fraction}"
                    + (offset if re.fullmatch(r"[+-]\d\d:\d\d|Z", offset) else ""))
    return None
