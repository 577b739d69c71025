"""capture.sensor: profiles, procedural scenes and the noise model, measured on the mosaics."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from skimage.registration import phase_cross_correlation

from capture.sensor import PROFILES, expose, get_profile, render_scene
from curate.common.errors import SidkitError
from curate.exposure import choose_pair, parse_ladder, true_exposure

W, H = 256, 192


def _signal(profile, mosaic) -> np.ndarray:
    """DN above the black level of each tile position, as floats."""
    black = np.tile(np.reshape(profile.black_level, (2, 2)), (mosaic.shape[0] // 2, mosaic.shape[1] // 2))
    return mosaic.astype(float) - black


def test_shutter_ladder_is_a_third_stop_ladder_from_30s_to_1_8000():
    for profile in PROFILES.values():
        ladder = list(parse_ladder(profile.shutter_labels).values())
        assert len(ladder) == len(profile.shutter_labels) == 55
        assert ladder[0] == 30 and ladder[-1] == Fraction(1, 8000)
        steps = [math.log2(true_exposure(a) / true_exposure(b)) for a, b in zip(ladder, ladder[1:])]
        assert steps == pytest.approx([1 / 3] * 54, abs=0.01)
        assert choose_pair(profile.shutter_labels, 250, long=Fraction(10)).short_s == Fraction(1, 25)


def test_profiles_describe_three_raw_formats():
    dslr, ml, phone = (PROFILES[n] for n in ("sim-dslr14", "sim-mirrorless12", "sim-phone10"))
    assert (dslr.bits, dslr.cfa, ml.bits, ml.cfa, phone.bits, phone.cfa) == (14, "RGGB", 12, "BGGR", 10, "GRBG")
    assert phone.black_level == (64,) * 4 and phone.white_level == 1023
    for p in PROFILES.values():
        assert p.white_level == 2 ** p.bits - 1 and max(p.black_level) < p.white_level // 4
        assert p.full_well_e / p.gain(p.base_iso) == pytest.approx(p.white_level - np.mean(p.black_level), rel=0.05)
        assert p.gain(4 * p.base_iso) == p.gain(p.base_iso) / 4
    with pytest.raises(SidkitError, match="sim-dslr14"):
        get_profile("sim-nope")


def test_scenes_are_deterministic_varied_and_detailed():
    a = render_scene("sim01", W, H, seed=0)
    assert a.shape == (H, W, 3) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert np.array_equal(a, render_scene("sim01", W, H, seed=0))
    assert not np.allclose(a, render_scene("sim01", W, H, seed=1))
    assert not np.allclose(a, render_scene("sim02", W, H, seed=0))
    luminance = a @ np.float32([0.2126, 0.7152, 0.0722])
    assert 0.15 < np.median(luminance) < 0.35
    assert luminance.std() > 0.05                                   # not flat
    fine = np.abs(np.diff(luminance, axis=1)).mean()
    assert fine > 0.005                                             # edges and texture at pixel scale
    assert a.max() > 0.85                                           # a few bright lights


def test_outdoor_scenes_are_bluer_than_indoor_scenes():
    def blue_over_red(env):
        scenes = [render_scene(f"s{k}", 96, 64, environment=env) for k in range(12)]
        return np.mean([s[..., 2].mean() / s[..., 0].mean() for s in scenes])
    assert blue_over_red("outdoor") > 1.25 * blue_over_red("indoor")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_calibration_long_is_mid_grey_and_short_is_dark_but_not_noise(name):
    """10 s at ISO 100 f/8 puts the median at 15-25% of the range; 1/25 s keeps the structure."""
    p = PROFILES[name]
    span = p.white_level - np.mean(p.black_level)
    fractions, clipped, peaks, correlations = [], [], [], []
    for k, env in enumerate(["indoor", "outdoor"] * 2):
        radiance = render_scene(f"cal{k}", W, H, environment=env)
        long = expose(p, radiance, exposure_s=true_exposure(10), iso=100, fnumber=8, seed=k)
        short = expose(p, radiance, exposure_s=true_exposure(Fraction(1, 25)), iso=100, fnumber=8, seed=k + 10)
        fractions.append(np.median(_signal(p, long)) / span)
        clipped.append(np.mean(long == p.white_level))
        peaks.append(_signal(p, long).max() / span)
        blocks = [_signal(p, m).reshape(H // 8, 8, W // 8, 8).mean((1, 3)).ravel() for m in (long, short)]
        correlations.append(np.corrcoef(*blocks)[0, 1])
        assert np.median(_signal(p, short)) / span < 0.002
    assert all(0.15 <= f <= 0.25 for f in fractions), fractions
    assert max(clipped) < 0.001 and min(peaks) > 0.6, (clipped, peaks)
    assert min(correlations) > 0.8, correlations


def test_noise_model_matches_shot_read_and_row_noise_on_a_flat_field():
    p = get_profile("sim-dslr14")
    flat = np.full((256, 256, 3), 0.25, np.float32)
    iso, t = 800, 0.02
    mosaic = expose(p, flat, exposure_s=t, iso=iso, fnumber=8, seed=3)
    green = _signal(p, mosaic)[0::2, 1::2]                          # RGGB: (0, 1) is green
    electrons = 0.25 * 1.0 * (t / 10) * 0.95 * p.full_well_e
    gain = p.gain(iso)
    variance = electrons / gain ** 2 + (p.read_noise_e / gain) ** 2 + p.read_noise_dn ** 2 + p.row_noise_dn ** 2
    assert green.mean() == pytest.approx(electrons / gain, rel=0.01)
    assert green.var() == pytest.approx(variance, rel=0.06)
    doubled = _signal(p, expose(p, flat, exposure_s=t, iso=2 * iso, fnumber=8, seed=4))[0::2, 1::2]
    assert doubled.mean() == pytest.approx(2 * green.mean(), rel=0.02)
    red = _signal(p, mosaic)[0::2, 0::2]
    assert red.mean() / green.mean() == pytest.approx(p.sensitivity[0], rel=0.02)


def test_exposure_clips_at_white_and_is_deterministic_by_seed():
    p = get_profile("sim-mirrorless12")
    radiance = render_scene("sim01", 64, 48)
    bright = expose(p, radiance, exposure_s=10, iso=100, fnumber=8, light=20, seed=1)
    assert bright.dtype == np.uint16 and bright.max() == p.white_level and np.mean(bright == p.white_level) > 0.5
    first = expose(p, radiance, exposure_s=1, iso=100, fnumber=8, seed=1)
    assert np.array_equal(first, expose(p, radiance, exposure_s=1, iso=100, fnumber=8, seed=1))
    assert not np.array_equal(first, expose(p, radiance, exposure_s=1, iso=100, fnumber=8, seed=2))


def test_shift_moves_the_scene_down_and_right():
    p = get_profile("sim-dslr14")
    radiance = render_scene("sim03", 128, 96)
    still = expose(p, radiance, exposure_s=10, iso=100, fnumber=8, seed=1)
    moved = expose(p, radiance, exposure_s=10, iso=100, fnumber=8, shift=(5, 11), seed=1)
    shift = phase_cross_correlation(still.astype(float), moved.astype(float))[0]
    assert tuple(shift) == (-5, -11)                                # moving `moved` back by (-5, -11)


def test_expose_rejects_bad_radiance():
    p = get_profile("sim-phone10")
    with pytest.raises(SidkitError, match="sim-phone10"):
        expose(p, np.zeros((9, 8, 3)), exposure_s=1, iso=100, fnumber=1.8)
    with pytest.raises(SidkitError, match="larger"):
        expose(p, np.zeros((8, 8, 3)), exposure_s=1, iso=100, fnumber=1.8, shift=(8, 0))
