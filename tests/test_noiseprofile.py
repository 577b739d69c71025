"""curate.noisefit: the fit recovers known noise parameters from generated dark and flat frames."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from curate.common.errors import SidkitError
from curate.calframes import CalFrame
from curate.noisefit import fit_profile
from curate.noiseprofile import read_profile, write_profile

BLACK = (512, 513, 511, 512)
WHITE = 16383
CAMERA = "Test Body 0001"
# ISO -> (K DN/e-, read noise DN, row noise DN): heavier noise at higher gain, as ELD measured
TRUTH = {100: (0.25, 1.6, 0.5), 400: (1.0, 3.0, 0.9), 1600: (4.0, 9.0, 2.2), 6400: (16.0, 30.0, 6.0)}
SIZE = (256, 384)


def frame(rng, iso, mean_e, *, k, read, row, prnu=None, role, exposure, camera=CAMERA, leak_dn=0.0,
          tukey=None) -> CalFrame:
    """A mosaic: Poisson electrons through K, read noise (Gaussian or Tukey-lambda), row offsets, rounding."""
    h, w = SIZE
    electrons = rng.poisson(mean_e * (prnu if prnu is not None else 1.0))
    if tukey is None:
        noise = rng.normal(0, read, (h, w))
    else:
        from scipy import stats
        noise = stats.tukeylambda.rvs(tukey, size=(h, w), random_state=rng) * read / math.sqrt(stats.tukeylambda.var(tukey))
    black = np.tile(np.array(BLACK, float).reshape(2, 2), (h // 2, w // 2))
    dn = electrons * k + noise + rng.normal(0, row, (h, 1)) + black + leak_dn
    mosaic = np.clip(np.rint(dn), 0, WHITE).astype(np.uint16)
    return CalFrame(f"{role}-{iso}-{exposure}-{rng.integers(1 << 30)}.dng", role, iso, exposure, camera, "RGGB",
                    list(BLACK), WHITE, mosaic)


def vignette_prnu(rng):
    h, w = SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / ((h / 2) ** 2 + (w / 2) ** 2)
    return (1 - 0.35 * r2) * (1 + 0.01 * rng.standard_normal((h, w)))


def calibration_set(rng, truth=TRUTH, darks=6, levels=(0.02, 0.05, 0.12, 0.3, 0.5, 0.7), tukey=None):
    frames = []
    prnu = vignette_prnu(rng)
    for iso, (k, read, row) in truth.items():
        for _ in range(darks):
            frames.append(frame(rng, iso, 0.0, k=k, read=read, row=row, role="dark", exposure=1 / 30, tukey=tukey))
        for level in levels:
            mean_e = level * (WHITE - 512) / k
            for _ in range(2):
                frames.append(frame(rng, iso, mean_e, k=k, read=read, row=row, prnu=prnu, role="flat",
                                    exposure=level, tukey=tukey))
    return frames


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(1)
    return fit_profile(calibration_set(rng))


def test_fit_recovers_gain_read_and_row_noise_at_four_isos(fitted):
    profile, findings = fitted
    assert findings == []
    assert profile.camera == CAMERA and profile.cfa == "RGGB" and profile.white_level == WHITE
    got = {i.iso: i for i in profile.isos}
    assert sorted(got) == sorted(TRUTH)
    for iso, (k, read, row) in TRUTH.items():
        m = got[iso]
        assert m.k_dn_per_e == pytest.approx(k, rel=0.05), iso
        assert m.read_noise_dn == pytest.approx(read, rel=0.10), iso
        assert m.row_noise_dn == pytest.approx(row, rel=0.25), iso
        assert m.black_level == pytest.approx([512, 513, 512, 511], abs=0.3)   # R, Gr, B, Gb
        assert 0.0 < m.tukey_lambda < 0.3          # Gaussian read noise: lambda near 0.14
        assert {c["k_dn_per_e"] for c in m.channels.values()} == pytest.approx([k] * 4, rel=0.05)


def test_cross_iso_fit_is_log_linear_in_k(fitted):
    profile, _ = fitted
    assert profile.k_at_iso(800) == pytest.approx(2.0, rel=0.05)      # K doubles with ISO
    s = profile.sigmas(4.0)
    assert s["read_noise_dn"] == pytest.approx(9.0, rel=0.25)
    assert profile.k_range() == pytest.approx((0.25, 16.0), rel=0.05)


def test_heavy_tailed_read_noise_gives_negative_lambda():
    rng = np.random.default_rng(2)
    truth = {1600: (4.0, 9.0, 1.0), 6400: (16.0, 30.0, 2.0)}
    profile, findings = fit_profile(calibration_set(rng, truth, darks=3, levels=(0.05, 0.3), tukey=-0.15))
    assert findings == []
    for m in profile.isos:
        assert m.tukey_lambda == pytest.approx(-0.15, abs=0.06)
        assert m.read_noise_dn == pytest.approx(truth[m.iso][1], rel=0.1)


def test_toml_and_json_round_trip(fitted, tmp_path):
    profile, _ = fitted
    write_profile(profile, tmp_path / "p.toml")
    back = read_profile(tmp_path / "p.toml")
    assert back.to_dict() == json.loads(profile.to_json())
    data = json.loads(profile.to_json())
    assert set(data["isos"][0]) >= {"iso", "k_dn_per_e", "read_noise_dn", "row_noise_dn", "tukey_lambda",
                                    "black_level"}
    assert "fit" in data and data["camera"] == CAMERA


def test_unreadable_profile_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("camera = 'x'\n")
    with pytest.raises(SidkitError, match="not a sidkit noise profile"):
        read_profile(bad)
    with pytest.raises(SidkitError, match="no such noise profile"):
        read_profile(tmp_path / "missing.toml")


# --- findings for bad calibration data ---------------------------------------------------------
def codes(findings):
    return sorted(f.code for f in findings)


def test_light_leak_in_darks():
    rng = np.random.default_rng(3)
    frames = calibration_set(rng, {400: TRUTH[400]}, darks=3, levels=(0.05, 0.3))
    frames += [frame(rng, 400, 0.0, k=1.0, read=3.0, row=0.9, role="dark", exposure=1, leak_dn=40)]
    profile, findings = fit_profile(frames)
    assert codes(findings) == ["dark-light-leak"] and profile is None
    assert "cover the lens" in findings[0].message


def test_saturated_and_too_dark_flats_are_left_out():
    rng = np.random.default_rng(4)
    frames = calibration_set(rng, {400: TRUTH[400]}, darks=3, levels=(0.001, 0.1, 0.4, 1.3))
    profile, findings = fit_profile(frames)
    assert codes(findings) == ["flat-saturated", "flat-too-dark"]
    assert all(f.severity == "warning" for f in findings)
    assert profile.isos[0].k_dn_per_e == pytest.approx(1.0, rel=0.05)
    assert profile.isos[0].flat_pairs == 2


def test_fewer_than_two_flat_levels():
    rng = np.random.default_rng(5)
    frames = calibration_set(rng, {400: TRUTH[400], 1600: TRUTH[1600]}, darks=3, levels=(0.1, 0.4))
    frames = [f for f in frames if not (f.iso == 1600 and f.role == "flat" and f.exposure_s == 0.4)]
    profile, findings = fit_profile(frames)
    assert codes(findings) == ["too-few-flat-levels"] and findings[0].severity == "error"
    assert "ISO 1600" in findings[0].message
    assert [i.iso for i in profile.isos] == [400]


def test_frames_from_another_camera():
    rng = np.random.default_rng(6)
    frames = calibration_set(rng, {400: TRUTH[400]}, darks=3, levels=(0.1, 0.4))
    frames.append(frame(rng, 400, 0.0, k=1.0, read=3.0, row=0.9, role="dark", exposure=1, camera="Other 2"))
    profile, findings = fit_profile(frames)
    assert codes(findings) == ["camera-mismatch"] and "Other 2" in findings[0].message
    assert profile.camera == CAMERA and profile.isos[0].darks == 3


def test_flats_without_darks():
    rng = np.random.default_rng(7)
    frames = [f for f in calibration_set(rng, {400: TRUTH[400]}, darks=2, levels=(0.1, 0.4)) if f.role == "flat"]
    profile, findings = fit_profile(frames)
    assert codes(findings) == ["missing-calibration"] and "no dark frames" in findings[0].message
    assert profile is None


# --- X-Trans ---------------------------------------------------------------------------------------
def test_a_cfa_of_neither_kind_is_one_line_error():
    frames = [CalFrame("a.dng", "dark", 100, 1, CAMERA, "RGBW", [0], 1023, np.zeros((8, 8)))]
    with pytest.raises(SidkitError, match="Bayer .* and X-Trans sensors only"):
        fit_profile(frames)


XT_SIZE = (252, 384)          # whole 6x6 tiles


def xtrans_set(isos=(200, 800), darks=5, levels=(0.03, 0.1, 0.25, 0.5)):
    """Darks and flat pairs of the simulated X-Trans body (capture.sensor.expose)."""
    from capture import sensor
    from curate.cfa import pack

    body = sensor.PROFILES["sim-xtrans14"]
    h, w = XT_SIZE
    cap, card = (sensor.calibration_scene(s, w, h) for s in (sensor.LENS_CAP, sensor.GREY_CARD))
    span = body.white_level - body.black_level[0]
    frames, seed = [], iter(range(10_000))

    def shot(role, scene, iso, exposure):
        mosaic = sensor.expose(body, scene, exposure_s=exposure, iso=iso, fnumber=8, seed=next(seed))
        return CalFrame(f"{role}-{iso}-{exposure:.4g}-{len(frames)}.dng", role, iso, exposure, body.camera, "XTRANS",
                        list(body.black_level), body.white_level, mosaic)

    for iso in isos:
        frames += [shot("dark", cap, iso, 1 / 30) for _ in range(darks)]
        probe = sensor.expose(body, card, exposure_s=0.01, iso=iso, fnumber=8, seed=99).astype(float)
        per_s = (max(p.mean() for p in pack(probe, "XTRANS")) - body.black_level[0]) / 0.01
        for level in levels:
            frames += [shot("flat", card, iso, level * span / per_s) for _ in range(2)]
    return body, frames


@pytest.fixture(scope="module")
def xtrans_fitted():
    body, frames = xtrans_set()
    return body, fit_profile(frames)


def test_fit_on_x_trans_frames_recovers_gain_read_and_row_noise(xtrans_fitted):
    from capture import sensor
    from curate.cfa import XTRANS_KIND

    body, (profile, findings) = xtrans_fitted
    assert findings == []
    assert profile.cfa == "XTRANS" and profile.camera == body.camera and [i.iso for i in profile.isos] == [200, 800]
    for m in profile.isos:
        truth = sensor.true_noise(body, m.iso)
        assert m.k_dn_per_e == pytest.approx(truth["k_dn_per_e"], rel=0.05), m.iso
        assert m.read_noise_dn == pytest.approx(truth["read_noise_dn"], rel=0.10), m.iso
        assert m.row_noise_dn == pytest.approx(truth["row_noise_dn"], rel=0.25), m.iso
        assert len(m.black_level) == 9 and m.black_level == pytest.approx([1024] * 9, abs=0.3)   # train's 9 channels
        assert list(m.channels) == list(XTRANS_KIND.channel_names)
        assert [c["k_dn_per_e"] for c in m.channels.values()] == pytest.approx([truth["k_dn_per_e"]] * 9, rel=0.08)
        assert 0.0 < m.tukey_lambda < 0.3 and m.darks == 5 and m.flat_pairs == 4
        assert {p[0] for p in m.flat_points} == set(XTRANS_KIND.channel_names)


def test_x_trans_row_noise_is_measured_on_mosaic_rows():
    """Offsets per mosaic row (a packed row mixes three of them) come back as row noise, none of
    them as read noise."""
    from curate.noisefit import dark_stats

    rng = np.random.default_rng(9)
    h, w = XT_SIZE
    for row in (3.0, 0.0):
        mosaic = np.rint(1024 + rng.normal(0, 2.0, (h, w)) + rng.normal(0, row, (h, 1)))
        stats = dark_stats(mosaic, "XTRANS", np.full(9, 1024.0))
        assert math.sqrt(max(stats["row_var"], 0)) == pytest.approx(row, abs=0.35)
        assert math.sqrt(np.mean(stats["var"]) - 1 / 12) == pytest.approx(2.0, rel=0.05)
        assert stats["mean"] == pytest.approx([1024] * 9, abs=0.3)


def test_realism_check_of_a_bayer_profile_on_x_trans_pairs_is_one_line_error(fitted):
    from pathlib import Path

    import pandas as pd

    from curate.manifest import Manifest
    from curate.noisecheck import check_profile

    manifest = Manifest(pd.DataFrame({"camera": [CAMERA], "cfa": ["XTRANS"], "pair_id": ["a"]}), path=Path("m.csv"))
    with pytest.raises(SidkitError, match="m.csv: pairs of .* are XTRANS raws, the profile was fitted on RGGB"):
        check_profile(fitted[0], manifest)
