"""capture.dng: rawpy (LibRaw) and exifread read back exactly what write_dng wrote."""
from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone
from fractions import Fraction

import exifread
import numpy as np
import pytest
import rawpy

from capture.dng import XYZ_TO_SRGB, write_dng
from curate.common.errors import SidkitError

BLACK = [2040, 2044, 2048, 2052]          # distinct per tile position: an ordering bug shows
WHITE = 16383
WHEN = datetime(2025, 11, 1, 21, 5, 7, tzinfo=timezone(timedelta(hours=1)))


def _write(path, cfa="RGGB", mosaic=None, **overrides):
    if mosaic is None:
        mosaic = np.random.default_rng(0).integers(2000, WHITE, (96, 128)).astype(np.uint16)
    settings = dict(make="Sidkit", model="SIM-TEST", serial="SN-42", cfa=cfa, black_level=BLACK,
                    white_level=WHITE, exposure_s=Fraction(1, 25), iso=3200, fnumber=Fraction(28, 5),
                    captured_at=WHEN)
    settings.update(overrides)
    return write_dng(path, mosaic, **settings), mosaic


@pytest.mark.parametrize("cfa", ["RGGB", "GRBG", "GBRG", "BGGR"])
def test_rawpy_reads_mosaic_pattern_and_levels(tmp_path, cfa):
    path, mosaic = _write(tmp_path / "a.dng", cfa)
    with rawpy.imread(str(path)) as raw:
        assert np.array_equal(raw.raw_image_visible, mosaic)
        desc = raw.color_desc.decode()
        assert "".join(desc[raw.raw_pattern[i, j]] for i in (0, 1) for j in (0, 1)) == cfa
        # black_level_per_channel is ordered by colour index; map it back to tile positions
        per_position = [raw.black_level_per_channel[raw.raw_pattern[i, j]] for i in (0, 1) for j in (0, 1)]
        assert per_position == BLACK
        assert raw.white_level == WHITE


def test_libraw_sees_iso_shutter_aperture_and_time(tmp_path):
    path, _ = _write(tmp_path / "a.dng")
    with rawpy.imread(str(path)) as raw:
        assert raw.other.iso_speed == 3200
        assert raw.other.shutter_speed == pytest.approx(1 / 25, rel=1e-6)
        assert raw.other.aperture == pytest.approx(5.6, rel=1e-6)
        assert raw.other.timestamp == datetime(2025, 11, 1, 21, 5, 7)


def test_exifread_reports_shooting_data(tmp_path):
    path, _ = _write(tmp_path / "a.dng", exposure_s=Fraction(10, 13))
    with open(path, "rb") as handle:
        tags = exifread.process_file(handle, details=False)
    assert tags["EXIF ExposureTime"].values[0] == Fraction(10, 13)   # exact, not 0.769
    assert tags["EXIF ISOSpeedRatings"].values == [3200]
    assert tags["EXIF FNumber"].values[0] == Fraction(28, 5)
    assert str(tags["EXIF DateTimeOriginal"]) == "2025:11:01 21:05:07"
    assert str(tags["EXIF OffsetTimeOriginal"]) == "+01:00"
    assert str(tags["EXIF BodySerialNumber"]) == "SN-42"
    assert str(tags["Image Make"]) == "Sidkit"
    assert str(tags["Image Model"]) == "SIM-TEST"


def test_fnumber_may_be_absent_or_float(tmp_path):
    path, _ = _write(tmp_path / "none.dng", fnumber=None)
    with open(path, "rb") as handle:
        assert "EXIF FNumber" not in exifread.process_file(handle, details=False)
    path, _ = _write(tmp_path / "float.dng", fnumber=2.8)
    with rawpy.imread(str(path)) as raw:
        assert raw.other.aperture == pytest.approx(2.8, rel=1e-6)


def test_postprocess_renders_white_as_grey_and_red_as_red(tmp_path):
    """ColorMatrix1 and AsShotNeutral of a sensor with weak red and blue give true colours back."""
    sensitivity = np.array([0.5, 1.0, 0.7])
    black, white = 256, 4095
    level = black + (white - black) * 0.4 * sensitivity     # camera response to a 0.4 grey
    mosaic = np.empty((64, 96), np.uint16)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2], mosaic[1::2, 0::2], mosaic[1::2, 1::2] = level[[0, 1, 1, 2]]
    mosaic[:, :32] = black                                   # left third: a pure red 0.4 patch
    mosaic[0::2, 0:32:2] = level[0]
    path, _ = _write(tmp_path / "c.dng", mosaic=mosaic, black_level=[black] * 4, white_level=white,
                     color_matrix=np.diag(sensitivity) @ np.asarray(XYZ_TO_SRGB))
    with rawpy.imread(str(path)) as raw:
        assert raw.camera_whitebalance[:3] == pytest.approx(list(1 / sensitivity), rel=1e-4)
        rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16, gamma=(1, 1)) / 65535
    assert rgb.shape == (64, 96, 3)
    assert rgb[20:40, 60:80].reshape(-1, 3).mean(0) == pytest.approx([0.4, 0.4, 0.4], abs=0.005)
    assert rgb[20:40, 8:24].reshape(-1, 3).mean(0) == pytest.approx([0.4, 0.0, 0.0], abs=0.005)


def _ifd(data: bytes, offset: int) -> dict:
    """tag -> (type, count, value-or-offset field) of the IFD at ``offset``."""
    count = struct.unpack_from("<H", data, offset)[0]
    entries = [struct.unpack_from("<HHII", data, offset + 2 + 12 * k) for k in range(count)]
    tags = [e[0] for e in entries]
    assert tags == sorted(tags) and len(set(tags)) == len(tags)
    return {tag: (kind, n, field) for tag, kind, n, field in entries}


def test_tiff_structure_sorted_aligned_and_exif_in_its_own_ifd(tmp_path):
    path, mosaic = _write(tmp_path / "a.dng", exposure_s=Fraction(10))
    data = path.read_bytes()
    assert data[:4] == b"II*\0"
    ifd0 = _ifd(data, struct.unpack_from("<I", data, 4)[0])
    exif = _ifd(data, ifd0[34665][2])
    size = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1, 10: 8}
    for ifd in (ifd0, exif):
        for kind, n, field in ifd.values():
            if size[kind] * n > 4:
                assert field % 4 == 0
    assert 34855 not in ifd0 and 33434 not in ifd0                  # ISO and exposure only in EXIF
    assert struct.unpack_from("<II", data, exif[33434][2]) == (10, 1)
    assert struct.unpack_from("<4I", data, ifd0[50714][2]) == tuple(BLACK)
    assert ifd0[262][2] == 32803 and ifd0[259][2] == 1
    strip, length = ifd0[273][2], ifd0[279][2]
    assert length == mosaic.nbytes and strip % 2 == 0 and len(data) == strip + length
    assert ifd0[50706][2].to_bytes(4, "little") == bytes([1, 4, 0, 0])


def test_bad_input_raises_and_leaves_no_file(tmp_path):
    good = np.zeros((8, 8), np.uint16)
    bad_calls = [dict(mosaic=good.astype(np.float32)), dict(mosaic=np.zeros((7, 8), np.uint16)),
                 dict(mosaic=good, cfa="RGBG"), dict(mosaic=good, black_level=[100, 100, 100]),
                 dict(mosaic=good, black_level=[WHITE] * 4), dict(mosaic=good, as_shot_neutral=[1, 0, 1])]
    for kwargs in bad_calls:
        with pytest.raises(SidkitError, match="x.dng"):
            _write(tmp_path / "x.dng", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_rewrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    path, _ = _write(tmp_path / "a.dng", iso=100)
    path, _ = _write(tmp_path / "a.dng", iso=200)
    assert [p.name for p in tmp_path.iterdir()] == ["a.dng"]
    with rawpy.imread(str(path)) as raw:
        assert raw.other.iso_speed == 200
