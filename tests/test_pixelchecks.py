"""Pixel checks of `curate validate` on arrays and on DNGs from the simulated sensor."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from fractions import Fraction

import numpy as np
import pytest

from capture.dng import write_dng
from capture.sensor import expose, get_profile, render_scene
from capture.simulate import DEFECT_LIGHT, DEFECT_SHIFT, simulate_dataset
from curate.capturelog import read_log
from curate.exposure import true_exposure
from curate.findings import Finding
from curate.pixelchecks import check_pair_pixels, expected_ratio, measure_pair
from curate.pixelframe import PixelThresholds, bayer_green_mask, summarise_mosaic

WHEN = datetime(2025, 11, 1, 20, 0, tzinfo=timezone.utc)
SIZE = (256, 192)


def codes(findings):
    return sorted(f.code for f in findings)


# --- arrays ---------------------------------------------------------------------------------------

def test_expected_ratio_corrects_for_iso_and_aperture():
    assert expected_ratio(250, iso_short=400, iso_long=100) == pytest.approx(62.5)
    assert expected_ratio(250, fnumber_short=4, fnumber_long=8) == pytest.approx(62.5)
    assert expected_ratio(100, iso_short=200, iso_long=100,
                          fnumber_short=2.8, fnumber_long=2) == pytest.approx(98)
    assert expected_ratio(100, None, float("nan"), 0, 2.8) == 100


def test_green_mask_of_each_bayer_pattern():
    assert bayer_green_mask("RGGB").tolist() == [[False, True], [True, False]]
    assert bayer_green_mask("grbg").tolist() == [[True, False], [False, True]]
    with pytest.raises(ValueError):
        bayer_green_mask("XTRANS")


def test_frame_subtracts_black_per_position_and_measures_noise():
    rng = np.random.default_rng(1)
    black = [500, 510, 520, 530]
    mosaic = np.tile(np.reshape(black, (2, 2)), (64, 96)) + 40 + rng.normal(0, 3.0, (128, 192))
    frame = summarise_mosaic(np.rint(mosaic).astype(np.uint16), bayer_green_mask("RGGB"), black, 4095)
    assert frame.signal_dn == pytest.approx(40, abs=0.2)
    assert frame.noise_dn == pytest.approx(3.0, rel=0.05)
    assert frame.green.shape == (64, 96) and frame.scale == 2 and frame.clipped_fraction == 0


def test_frame_bins_large_raws_to_the_plane_size():
    mosaic = np.full((400, 600), 600, np.uint16)
    mosaic[:40] = 4095
    frame = summarise_mosaic(mosaic, bayer_green_mask("BGGR"), [512] * 4, 4095,
                             PixelThresholds(plane_max_side=100))
    assert frame.green.shape == (66, 100) and frame.scale == 6
    assert frame.clipped_fraction == pytest.approx(0.1)
    assert frame.saturated[:6].all() and not frame.saturated[7:].any()


def test_xtrans_tile_bins_6x6_and_shift_is_in_full_resolution_pixels():
    xtrans = np.array([[c == "G" for c in row] for row in
                       ("GGRGGB", "GGBGGR", "BRGRBG", "GGBGGR", "GGRGGB", "RBGBRG")])
    rng = np.random.default_rng(2)
    scene = rng.random((40, 60)).repeat(6, axis=0).repeat(6, axis=1) * 2000
    long = summarise_mosaic((1024 + scene[6:, :]).astype(np.uint16), xtrans, 1024, 16383)
    short = summarise_mosaic((1024 + scene[:-6, :] / 100 + rng.normal(0, 2, (234, 360))).astype(np.uint16),
                             xtrans, [1024] * 4, 16383)
    assert long.scale == 6 and long.pixels_per_bin == 20 and long.green.shape == (39, 60)
    measured = measure_pair(short, long, 100)
    assert np.allclose(measured["shift_px"], (6, 0), atol=1)
    assert measured["measured_ratio"] == pytest.approx(100, rel=0.03)


# --- DNGs from the simulated sensor ----------------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three scenes: sim01 has a dimmed short, sim02 a moved short, sim03 ratio 20 (clean pixels)."""
    out = simulate_dataset(tmp_path_factory.mktemp("sim") / "ds", scenes=3, size=SIZE, seed=3)
    records = read_log(out)
    longs = {r.scene_id: r for r in records if r.role == "long"}
    return out, {r.path: (r, longs[r.scene_id]) for r in records if r.role == "short"}


def check_logged(dataset, short_name, **overrides):
    out, shorts = dataset
    short, long = shorts[short_name]
    profile = get_profile(short.extra["profile"])
    kwargs = dict(exif_ratio=long.requested_exposure_s / short.requested_exposure_s,
                  iso_short=short.iso, iso_long=long.iso, fnumber_short=short.fnumber,
                  fnumber_long=long.fnumber, black_level=list(profile.black_level),
                  white_level=profile.white_level, cfa=profile.cfa, pair_id=short_name)
    kwargs.update(overrides)
    findings, measured = check_pair_pixels(out / short.path, out / long.path, **kwargs)
    return findings, measured, short.extra["true_ratio"]


@pytest.mark.parametrize("name", ["sim01/sim01_short_1-25s_01.dng", "sim02/sim02_short_1-25s_01.dng",
                                  "sim03/sim03_short_1-2s_00.dng"])
def test_clean_pair_has_no_findings_and_measures_the_true_ratio(dataset, name):
    findings, measured, true_ratio = check_logged(dataset, name)
    assert findings == []
    assert measured["measured_ratio"] == pytest.approx(true_ratio, rel=0.02)
    assert math.hypot(*measured["shift_px"]) < 0.5
    assert abs(measured["short_offset_dn"]) < 0.5
    json.dumps(measured)  # plain numbers, ready for `validate --format json`


def test_planted_shift_is_recovered_within_a_pixel(dataset):
    findings, measured, true_ratio = check_logged(dataset, "sim02/sim02_short_1-25s_00.dng")
    assert codes(findings) == ["misaligned"]
    assert findings[0].path.endswith("sim02_short_1-25s_00.dng") and findings[0].severity == "error"
    assert np.allclose(measured["shift_px"], DEFECT_SHIFT, atol=0.5)
    assert measured["measured_ratio"] == pytest.approx(true_ratio, rel=0.03)  # measured after aligning


def test_shift_limit_is_a_threshold(dataset):
    findings, _, _ = check_logged(dataset, "sim02/sim02_short_1-25s_00.dng",
                                  thresholds=PixelThresholds(max_shift_px=13))
    assert findings == []


def test_changed_light_is_a_measured_ratio_mismatch(dataset):
    findings, measured, true_ratio = check_logged(dataset, "sim01/sim01_short_1-25s_00.dng")
    assert codes(findings) == ["measured-ratio-mismatch"]
    assert measured["measured_ratio"] == pytest.approx(true_ratio / DEFECT_LIGHT, rel=0.03)
    assert measured["ratio_error_stops"] == pytest.approx(-math.log2(DEFECT_LIGHT), abs=0.06)


def test_wrong_exif_is_a_mismatch_and_iso_is_accounted_for(dataset):
    name = "sim01/sim01_short_1-25s_01.dng"
    findings, _, _ = check_logged(dataset, name, exif_ratio=125)
    assert codes(findings) == ["measured-ratio-mismatch"]
    findings, measured, _ = check_logged(dataset, name, exif_ratio=500, iso_short=200, iso_long=100)
    assert findings == [] and measured["expected_ratio"] == pytest.approx(250)


def shoot(path, profile, radiance, exposure_s, *, iso=100, light=1.0, seed=0):
    mosaic = expose(profile, radiance, exposure_s=true_exposure(exposure_s), iso=iso, fnumber=8,
                    light=light, seed=seed)
    return write_dng(path, mosaic, make=profile.make, model=profile.model, serial=profile.serial,
                     cfa=profile.cfa, black_level=list(profile.black_level),
                     white_level=profile.white_level, exposure_s=exposure_s, iso=iso, fnumber=8,
                     captured_at=WHEN)


def check_shot(profile, short, long, exif_ratio, **kwargs):
    return check_pair_pixels(short, long, exif_ratio=exif_ratio, iso_short=100, iso_long=100,
                             fnumber_short=8, fnumber_long=8, black_level=list(profile.black_level),
                             white_level=profile.white_level, cfa=profile.cfa, pair_id="p", **kwargs)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """DNGs of one scene on the 14-bit profile: a long, an overexposed long, a good and a hopeless short."""
    folder = tmp_path_factory.mktemp("shots")
    profile = get_profile("sim-dslr14")
    radiance = render_scene("dark-and-bright", *SIZE, environment="indoor")
    return profile, {
        "long": shoot(folder / "long.dng", profile, radiance, Fraction(10), seed=1),
        "bright_long": shoot(folder / "bright_long.dng", profile, radiance, Fraction(10), light=4, seed=2),
        "short": shoot(folder / "short.dng", profile, radiance, Fraction(1, 25), seed=3),
        "dark_short": shoot(folder / "dark_short.dng", profile, radiance, Fraction(1, 8000), seed=4),
    }


def test_overexposed_long_is_clipped(shots):
    profile, files = shots
    findings, measured = check_shot(profile, files["short"], files["bright_long"], 4 * 250)
    assert codes(findings) == ["clipped"]  # the flat clipped areas fake no shift
    assert findings[0].path == str(files["bright_long"]) and findings[0].severity == "warning"
    assert measured["clipped_fraction"] > 0.05
    # clipped blocks are left out of the fit: the ratio is still the light's 4 x 256
    assert measured["measured_ratio"] == pytest.approx(4 * 256, rel=0.05)
    assert math.hypot(*measured["shift_px"]) < 0.5
    findings, measured = check_shot(profile, files["short"], files["long"], 250)
    assert findings == [] and measured["clipped_fraction"] < 0.01


def test_very_short_exposure_at_low_iso_is_too_dark(shots):
    profile, files = shots
    findings, measured = check_shot(profile, files["dark_short"], files["long"], 80000)
    assert codes(findings) == ["too-dark"]  # no shift or ratio judged from noise
    assert findings[0].path == str(files["dark_short"])
    assert measured["short_snr"] < 0.1 and not measured["shift_measured"]


def test_stripped_truncated_and_foreign_files(shots, tmp_path):
    profile, files = shots
    data = files["short"].read_bytes()
    pixels = SIZE[0] * SIZE[1] * 2
    truncated = tmp_path / "truncated.dng"
    truncated.write_bytes(data[:-pixels // 2])
    zeroed = tmp_path / "zeroed.dng"
    zeroed.write_bytes(data[:-pixels] + bytes(pixels))
    foreign = tmp_path / "notes.dng"
    foreign.write_text("not a raw file\n" * 20)
    for path, code in ((truncated, "no-pixel-data"), (zeroed, "no-pixel-data"), (foreign, "unreadable")):
        findings, measured = check_shot(profile, path, files["long"], 250)
        assert findings == [Finding("p", str(path), code, findings[0].message)] and measured == {}
    findings, _ = check_shot(profile, files["short"], zeroed, 250)
    assert codes(findings) == ["no-pixel-data"] and findings[0].path == str(zeroed)


def test_garbage_pixel_data(shots, tmp_path):
    profile, files = shots
    noise = np.random.default_rng(0).integers(0, 65536, (SIZE[1], SIZE[0]), dtype=np.uint16)
    garbage = write_dng(tmp_path / "garbage.dng", noise, make="X", model="Y", serial="1", cfa=profile.cfa,
                        black_level=list(profile.black_level), white_level=profile.white_level,
                        exposure_s=Fraction(1, 25), iso=100, fnumber=8, captured_at=WHEN)
    findings, measured = check_shot(profile, garbage, files["long"], 250)
    assert codes(findings) == ["no-pixel-data"] and "75% of raw values exceed" in findings[0].message


def test_manifest_cfa_that_disagrees_with_the_file(shots):
    profile, files = shots
    findings, measured = check_pair_pixels(files["short"], files["long"], exif_ratio=250,
                                           black_level=list(profile.black_level),
                                           white_level=profile.white_level, cfa="BGGR")
    assert codes(findings) == []           # a wrong CFA cell is validate's file check (manifest-file-mismatch)
    assert measured["measured_ratio"] == pytest.approx(256, rel=0.03)  # the file's own pattern is used


def test_raws_of_different_sizes(shots, tmp_path):
    profile, files = shots
    small = shoot(tmp_path / "small.dng", profile, render_scene("x", 128, 96), Fraction(1, 25))
    findings, measured = check_shot(profile, small, files["long"], 250)
    assert codes(findings) == ["size-mismatch"] and measured == {}


def test_stripped_sample_is_caught_from_its_header(raw_samples):
    """Panasonic.rw2 keeps 22 of the 20 MB its header declares; LibRaw decodes the leftover bytes into
    plausible values (no finding from the decode), so only the header check catches it."""
    rw2 = raw_samples / "Panasonic.rw2"
    findings, measured = check_pair_pixels(rw2, rw2, exif_ratio=1, black_level=[15] * 4, white_level=4095,
                                           cfa="BGGR", pair_id="p")
    assert codes(findings) == ["no-pixel-data"] * 2 and measured == {}
    assert {f.path for f in findings} == {str(rw2)}
    assert findings[0].message.startswith("strip data missing: file holds 22 of 20511792 bytes")


def test_mostly_clipped_long_is_not_misaligned(shots, tmp_path):
    """A long 96% clipped gave a false `misaligned` (25 px) beside `clipped`: the shift is now not
    measured above 90% of the plane saturated, and the clipped warning says so."""
    profile, files = shots
    radiance = render_scene("dark-and-bright", *SIZE, environment="indoor")
    long = shoot(tmp_path / "very_bright_long.dng", profile, radiance, Fraction(10), light=20, seed=2)
    findings, measured = check_shot(profile, files["short"], long, 20 * 250)
    assert codes(findings) == ["clipped"] and measured["clipped_fraction"] > 0.9
    assert not measured["shift_measured"] and measured["shift_px"] == (0.0, 0.0)
    assert "alignment and measured ratio not checked: 100% of the long is clipped" in findings[0].message
    # below the limit the shift is still measured (29% of raw pixels, 52% of the plane clipped)
    findings, measured = check_shot(profile, files["short"], files["bright_long"], 4 * 250)
    assert measured["shift_measured"] and "not checked" not in findings[0].message


def test_unmeasurable_pair_without_other_warning_says_not_measured():
    from curate.pixelchecks import pair_findings

    m = {"clipped_fraction": 0.0, "short_snr": 5.0, "shift_px": (0.0, 0.0), "shift_measured": False,
         "shift_significance": 2.5, "plane_clipped_fraction": 0.0, "ratio_error_stops": 3.0,
         "ratio_uncertainty_stops": 0.01, "measured_ratio": 2000.0, "expected_ratio": 250.0,
         "short_signal_dn": 50.0, "short_noise_dn": 10.0}
    (finding,) = pair_findings(m, "s.dng", "l.dng", "p")
    assert finding.code == "not-measured" and finding.severity == "warning"
    assert "significance 2.5, needs 6" in finding.message
