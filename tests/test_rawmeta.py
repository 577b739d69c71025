"""curate.rawmeta against the real sample raws (values from SOURCES.md) and DNGs written by capture.dng."""
from __future__ import annotations

import hashlib
import struct
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import numpy as np
import pytest

from capture.dng import write_dng
from curate.librawinfo import read_libraw
from curate.rawmeta import (UnreadableRaw, check_pixels, exif_libraw_disagreements, missing_pixel_bytes,
                            read_metadata, sha256_file)
from curate.tiff import dng_black, dng_cfa

# SOURCES.md: exiftool 12.57's ExposureTime / ISO (the reference reader), make / model, rawpy's visible
# size, and black levels per position / white level / CFA where rawpy unpacks or (Z 9) exiftool reads
# the DNG tags (None: the table has none).
SAMPLES = {
    "CanonRaw.cr2": ("Canon", "Canon EOS 350D DIGITAL", 0.06666666667, 400, None, None),
    "CanonRaw.cr3": ("Canon", "Canon EOS M50", 0.0125, 12800, (6024, 4020), None),
    "CanonRaw.crw": ("Canon", "Canon EOS DIGITAL REBEL", 0.015625, 100, (3088, 2056), None),
    "Nikon.nef": ("NIKON CORPORATION", "NIKON D70", 0.05, 200, (3039, 2014), None),
    "FujiFilm.raf": ("FUJIFILM", "FinePix S5Pro", 0.004, 100, (3552, 3551), None),
    "Panasonic.rw2": ("Panasonic", "DMC-LX3", 0.004, 80, (3664, 2754), ([15, 15, 15, 15], 4095, "BGGR")),
    "DNG.dng": ("Canon", "Canon EOS 350D DIGITAL", 0.0666666666666667, 400, (3474, 2314),
                ([0, 0, 0, 0], 4095, "RGGB")),
    "nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng":
        ("NIKON CORPORATION", "NIKON Z 9", 30, 102400, (5392, 3592), ([0, 0, 0, 0], 65535, "")),  # exiftool
    "sony_alpha_a7iii_raw_image.ARW": ("SONY", "ILCE-7M3", 0.0025, 6400, None, None),
    "fixture-sony-zv-e10.arw": ("SONY", "ZV-E10", 0.00625, 100, None, None),
    "fixture.cr3": ("Canon", "Canon EOS R", 0.008, 100, (6742, 4498), None),
    "canon-r6.cr3": ("Canon", "Canon EOS R6", 0.01, 25600, (5496, 3670), None),
    "Canon-R6-pruned.CR3": ("Canon", "Canon EOS R6", 0.25, 100, (3584, 2386), None),
    "IMG_1361.dng": ("Apple", "iPhone 12 Pro", 0.0001799856012, 32, (4032, 3024), ([0, 0, 0, 0], 65535, "")),
    # complete files (SOURCES.md, 2026-12); the D30's CIFF shutter (APEX, exiftool 1/203 s) snaps to the nominal 1/200
    "RAW_CANON_D30_SRGB.CRW": ("Canon", "Canon EOS D30", 0.005, 100, (2176, 1448), ([126] * 4, 4095, "RGGB")),
}
NO_EXPOSURE = {  # exiftool finds no ExposureTime either
    "fixture-Leica-M10.dng": r"EXIF directory \(offset 28432210\) lies beyond the end of the file \(100000 bytes\)",
    "Nikon_uncompressed.nef": "no exposure time",
    "Blackmagic.dng": "no exposure time",      # a cinema camera's frame: complete, no exposure or ISO recorded
}
STRIPPED = {  # pixel data cut away: what check_pixels says (a prefix)
    "DNG.dng": "strip data missing: file declares 1 of 140 tiles",
    "IMG_1361.dng": "strip data missing: file holds 0 of 23620464 bytes",
    "Panasonic.rw2": "strip data missing: file holds 22 of 20511792 bytes",
    "canon-r6.cr3": "strip data missing: file holds 8 of ",
    "Canon-R6-pruned.CR3": "strip data missing: file holds 0 of ",
    "CanonRaw.cr3": "strip data missing: file holds ",
    "Nikon.nef": "LibRaw cannot decode the pixels: ",
    "CanonRaw.crw": "LibRaw cannot decode the pixels: ",
    "sony_alpha_a7iii_raw_image.ARW": "LibRaw cannot decode the pixels: ",
}


def test_every_sample_file_is_covered(raw_samples):
    names = {p.name for p in raw_samples.iterdir() if p.suffix != ".md"}
    assert names == set(SAMPLES) | set(NO_EXPOSURE)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_matches_sources_table(raw_samples, name):
    make, model, exposure, iso, size, levels = SAMPLES[name]
    meta = read_metadata(raw_samples / name)
    assert (meta.make, meta.model) == (make, model)
    assert float(meta.exposure_s) == pytest.approx(exposure, rel=1e-9)
    assert meta.iso == iso
    assert (meta.width, meta.height) == (size or (None, None))
    if levels is None:
        assert meta.black_level is None and meta.white_level is None
    else:
        assert (meta.black_level, meta.white_level, meta.cfa) == levels
    # the a7 III sample is cut to 8 KiB: its EXIF entries that point past the end are named
    cut_entries = [d for d in meta.disagreements if "lie past the end of the file (8255 bytes)" in d]
    assert meta.disagreements == cut_entries and bool(cut_entries) == (name == "sony_alpha_a7iii_raw_image.ARW")
    assert meta.has_pixels is None


def test_sources_say_where_values_came_from(raw_samples):
    dng = read_metadata(raw_samples / "DNG.dng")
    assert dng.sources["exposure_s"] == "exif" and dng.sources["black_level"] == "dng-tags"
    assert dng.sources["width"] == "libraw"
    rw2 = read_metadata(raw_samples / "Panasonic.rw2")
    assert rw2.sources["black_level"] == rw2.sources["cfa"] == "libraw"
    cr3 = read_metadata(raw_samples / "canon-r6.cr3")
    assert cr3.sources["exposure_s"] == "exif-embedded"
    assert (cr3.serial, cr3.fnumber, cr3.captured_at) == ("072021007989", 2.8, "2025-09-06T20:24:47.72-08:00")
    crw = read_metadata(raw_samples / "CanonRaw.crw")
    assert crw.sources["exposure_s"] == "ciff"
    assert (crw.serial, crw.fnumber, crw.captured_at) == ("0560018150", 3.6, "2003-11-10T17:39:26")


def test_exif_details(raw_samples):
    z9 = read_metadata(raw_samples / "nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng")
    assert z9.iso == 102400                      # ISO 65535 -> RecommendedExposureIndex
    assert (z9.camera, z9.serial, z9.exposure_s) == ("NIKON Z 9", "3020326", Fraction(30))
    assert z9.cfa == ""                          # LinearRaw: not a CFA
    sony = read_metadata(raw_samples / "sony_alpha_a7iii_raw_image.ARW")
    assert sony.fnumber is None                  # manual lens: FNumber 0
    assert sony.camera == "SONY ILCE-7M3"
    assert read_metadata(raw_samples / "IMG_1361.dng").exposure_s == Fraction(1, 5556)


@pytest.mark.parametrize("name", sorted(NO_EXPOSURE))
def test_samples_without_exposure_are_unreadable(raw_samples, name):
    with pytest.raises(UnreadableRaw, match=NO_EXPOSURE[name]) as caught:
        read_metadata(raw_samples / name)
    assert str(raw_samples / name) in str(caught.value)


def test_a_file_that_records_no_exposure_reads_where_none_is_needed(raw_samples):
    """--longs-only reads the cinema camera's DNG (no exposure time at all) with exposure_s None; a
    cut-off file (EXIF beyond its end) stays unreadable either way."""
    meta = read_metadata(raw_samples / "Blackmagic.dng", need_exposure=False)
    assert meta.exposure_s is None and meta.iso is None
    assert (meta.cfa, meta.black_level, meta.white_level, meta.width, meta.height) == (
        "RGGB", [512] * 4, 65535, 4128, 2176)
    assert check_pixels(raw_samples / "Blackmagic.dng") is None
    with pytest.raises(UnreadableRaw, match=NO_EXPOSURE["fixture-Leica-M10.dng"]):
        read_metadata(raw_samples / "fixture-Leica-M10.dng", need_exposure=False)


@pytest.mark.parametrize("name", sorted(STRIPPED))
def test_check_pixels_reports_stripped_samples(raw_samples, name):
    assert check_pixels(raw_samples / name).startswith(STRIPPED[name])


def test_check_pixels_passes_a_complete_file(raw_samples):
    assert check_pixels(raw_samples / "Nikon_uncompressed.nef") is None


def test_missing_pixel_bytes_reads_only_the_header(raw_samples):
    assert missing_pixel_bytes(raw_samples / "Panasonic.rw2") == "strip data missing: file holds 22 of 20511792 bytes"
    assert missing_pixel_bytes(raw_samples / "Nikon.nef") is None          # cut, but its header cannot tell
    assert missing_pixel_bytes(raw_samples / "Nikon_uncompressed.nef") is None


def test_sha256_file_streams(raw_samples, tmp_path):
    assert sha256_file(raw_samples / "Nikon.nef") == \
        "6fae30a2809b52ece100316f33a3fade4b65cf5690af2d62bb00f44ae052bdd6"
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 9000)
    assert sha256_file(big, chunk=4096) == hashlib.sha256(big.read_bytes()).hexdigest()


# --- DNGs written by capture.dng ------------------------------------------------------------------

BLACK = [60, 64, 68, 72]
WHEN = datetime(2025, 11, 1, 21, 5, 7, tzinfo=timezone(timedelta(hours=1)))


def write_test_dng(path, mosaic=None, cfa="GRBG", fnumber=Fraction(28, 10)):
    if mosaic is None:
        mosaic = np.random.default_rng(1).integers(80, 4000, (48, 64)).astype(np.uint16)
    return write_dng(path, mosaic, make="Sidkit", model="Sidkit SIM-1", serial="SN-7", cfa=cfa,
                     black_level=BLACK, white_level=4000, exposure_s=Fraction(1, 250), iso=800,
                     fnumber=fnumber, captured_at=WHEN)


@pytest.mark.parametrize("cfa", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_written_dng_round_trips(tmp_path, cfa):
    path = write_test_dng(tmp_path / "a.dng", cfa=cfa)
    meta = read_metadata(path, with_pixels=True)
    assert (meta.make, meta.model, meta.camera, meta.serial) == ("Sidkit", "Sidkit SIM-1", "Sidkit SIM-1", "SN-7")
    assert meta.exposure_s == Fraction(1, 250) and isinstance(meta.exposure_s, Fraction)
    assert (meta.iso, meta.fnumber, meta.captured_at) == (800, 2.8, "2025-11-01T21:05:07+01:00")
    assert (meta.cfa, meta.black_level, meta.white_level, meta.width, meta.height) == (cfa, BLACK, 4000, 64, 48)
    assert meta.sources["black_level"] == "dng-tags" and meta.has_pixels is True
    # LibRaw's view, converted from colour-index order to positions, agrees with the DNG tags
    libraw = read_libraw(path, unpack=True)
    assert (libraw.cfa, libraw.black_level, libraw.white_level) == (cfa, BLACK, 4000)
    assert libraw.shutter == pytest.approx(1 / 250) and libraw.iso == 800


def test_fnumber_zero_over_zero_is_none(tmp_path):
    path = write_test_dng(tmp_path / "manual-lens.dng", fnumber=Fraction(7, 3))
    data = path.read_bytes()
    assert data.count(struct.pack("<II", 7, 3)) == 1
    path.write_bytes(data.replace(struct.pack("<II", 7, 3), struct.pack("<II", 0, 0)))
    meta = read_metadata(path)
    assert meta.fnumber is None and "fnumber" not in meta.sources


def test_check_pixels_sees_zeros_and_missing_strips(tmp_path):
    zeros = write_test_dng(tmp_path / "zeros.dng", mosaic=np.zeros((48, 64), np.uint16))
    assert check_pixels(zeros) == "decodes to all zeros"
    cut = write_test_dng(tmp_path / "cut.dng")
    data = cut.read_bytes()
    cut.write_bytes(data[:-4000])
    assert check_pixels(cut) == f"strip data missing: file holds {48 * 64 * 2 - 4000} of {48 * 64 * 2} bytes"
    assert read_metadata(cut).exposure_s == Fraction(1, 250)       # the header is intact


def test_exif_libraw_disagreements():
    assert exif_libraw_disagreements(Fraction(1, 15), 0.0666667, 400.0, 400.0) == []
    assert exif_libraw_disagreements(Fraction(1, 80), 1 / 70, 12800.0, 12800.0) == \
        ["exposure: EXIF 1/80 s, LibRaw 0.0142857 s"]
    assert exif_libraw_disagreements(Fraction(1, 80), None, 100.0, 125.0) == ["iso: EXIF 100, LibRaw 125"]
    assert exif_libraw_disagreements(None, 0.01, None, 100.0) == []


def test_dng_black_levels_per_position():
    # 1x1 BlackLevel plus per-column (DeltaH) and per-row (DeltaV) deltas, averaged by parity
    assert dng_black({50714: (100,), 50715: (1, 3, 1, 3), 50716: (0, 2)}, 1) == [101, 103, 103, 105]
    # a 2x2 repeat, rational values, 3 samples per pixel (sample 0 is taken)
    levels = (Fraction(513, 2), 0, 0, 257, 0, 0, 258, 0, 0, 259, 0, 0)
    assert dng_black({50713: (2, 2), 50714: levels}, 3) == [256.5, 257, 258, 259]
    assert dng_black({}, 1) == [0, 0, 0, 0]


def test_dng_cfa_patterns():
    assert dng_cfa({33421: (2, 2), 33422: (1, 2, 0, 1)}) == "GBRG"
    assert dng_cfa({33421: (6, 6), 33422: tuple(range(36))}) == "XTRANS"
    assert dng_cfa({33421: (2, 2), 33422: (0, 1, 1, 2), 50710: (2, 1, 0)}) == "BGGR"


def test_exif_text_that_is_not_ascii_is_decoded_not_repr():
    """exifread hands out a Make with a byte above 0x7f as bytes; the camera name was "b'S\\xe9dkit'"."""
    from types import SimpleNamespace

    from curate import exif

    assert exif.text({"Image Make": SimpleNamespace(values=b"S\xe9dkit\0")}, "Make") == "Sédkit"
    assert exif.text({"Image Make": SimpleNamespace(values="Canon")}, "Make") == "Canon"
