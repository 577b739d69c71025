"""The pixel checks of `curate validate`: measured ratio, alignment, clipping, darkness, missing data.

Each raw is decoded once and boiled down to a `Frame` (curate.pixelframe): its black-subtracted green
channel binned to at most `plane_max_side` pixels, plus a few full-resolution statistics (noise,
clipping). The pair checks here then work on the two small planes, so a 24 MP pair costs about as
much as decoding it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import scipy.fft
from skimage.filters import gaussian
from skimage.registration import phase_cross_correlation

from .findings import Finding
from .pixelframe import Frame, PixelThresholds, lost_black_finding, read_frame

DEFAULTS = PixelThresholds()


def expected_ratio(exif_ratio: float, iso_short=None, iso_long=None, fnumber_short=None,
                   fnumber_long=None) -> float:
    """The raw brightness ratio long/short the EXIF promises: t_l/t_s * iso_l/iso_s * (N_s/N_l)^2.

    A missing ISO or f-number (None, NaN, 0) counts as equal in both shots.
    """
    ratio = float(exif_ratio)
    if _known(iso_short) and _known(iso_long):
        ratio *= float(iso_long) / float(iso_short)
    if _known(fnumber_short) and _known(fnumber_long):
        ratio *= (float(fnumber_short) / float(fnumber_long)) ** 2
    return ratio


def _known(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def measure_pair(short: Frame, long: Frame, expected: float,
                 thresholds: PixelThresholds = DEFAULTS) -> dict:
    """Shift, brightness ratio, clipping and darkness of a pair, as plain numbers.

    shift_px is where the short's content lies relative to the long's, (dy, dx) in full-resolution
    pixels (positive: down, right); measured_ratio, its standard error ratio_uncertainty_stops and
    short_offset_dn (the short's black level error) come from `_fit_ratio` on the aligned planes.
    """
    if short.green.shape != long.green.shape:
        raise ValueError(f"planes differ in shape: {short.green.shape} vs {long.green.shape}")
    clipped = float(long.saturated.mean())
    shift, significance = _shift_planes(long.green, short.green, clipped)
    measurable = significance >= thresholds.min_shift_significance and clipped <= thresholds.max_clipped_for_shift
    whole = np.round(shift).astype(int) if measurable else np.zeros(2, int)
    overlap = _overlap(short, long, whole)
    if whole.any():
        # The window pulls a large shift towards zero: measure the rest on the overlapping parts.
        shift = whole + _shift_planes(overlap[1], overlap[0], clipped)[0]
    elif not measurable:
        shift = np.zeros(2)
    fit = _fit_ratio(*overlap, thresholds.ratio_block)
    measured = fit["measured_ratio"]
    return {
        "expected_ratio": expected,
        **fit,
        "ratio_error_stops": math.log2(measured / expected) if 0 < measured < math.inf else math.inf,
        "shift_px": (round(float(shift[0]) * short.scale, 2), round(float(shift[1]) * short.scale, 2)),
        "shift_significance": significance,
        "shift_measured": bool(measurable),
        "plane_clipped_fraction": clipped,
        "clipped_fraction": long.clipped_fraction,
        "short_signal_dn": short.signal_dn,
        "short_noise_dn": short.noise_dn,
        "short_snr": short.snr,
    }


def _fit_ratio(s: np.ndarray, long: np.ndarray, s_sat: np.ndarray, l_sat: np.ndarray, block: int) -> dict:
    """Fit short = offset + long / ratio over blocks of the aligned planes without clipped pixels.

    The long is nearly noise-free, so least squares of the short on it is unbiased by the short's
    noise; the offset absorbs a wrong black level, which dominates a short of a few DN. The ratio's
    uncertainty comes from the fit's own residuals (noise, residual misalignment, uneven light).
    """
    block = max(2, min(block, min(s.shape) // 12))
    h, w = s.shape[0] // block, s.shape[1] // block
    def blocks(a, reduce):
        return reduce(a[:h * block, :w * block].reshape(h, block, w, block), axis=(1, 3)).ravel()
    keep = ~blocks(s_sat | l_sat, np.any)
    x, y = blocks(long, np.mean)[keep].astype(np.float64), blocks(s, np.mean)[keep].astype(np.float64)
    spread = float(((x - x.mean()) ** 2).sum()) if x.size else 0.0
    if x.size < 3 or spread <= 0:
        return {"measured_ratio": math.nan, "ratio_uncertainty_stops": math.inf,
                "short_offset_dn": math.nan, "ratio_blocks": int(x.size)}
    slope = float(((x - x.mean()) * (y - y.mean())).sum()) / spread
    offset = float(y.mean() - slope * x.mean())
    residual = y - offset - slope * x
    slope_error = math.sqrt(float((residual ** 2).sum()) / (x.size - 2) / spread)
    measured = 1 / slope if slope > 0 else math.inf
    uncertainty = math.log2(1 + slope_error / slope) if slope > slope_error else math.inf
    return {"measured_ratio": measured, "ratio_uncertainty_stops": uncertainty, "short_offset_dn": offset,
            "ratio_blocks": int(x.size)}


def _shift_planes(reference: np.ndarray, moving: np.ndarray,
                  clipped: float = 0.0) -> tuple[np.ndarray, float]:
    """Where `moving`'s content lies relative to `reference`'s, in plane pixels (dy, dx), and how
    significant the correlation peak is: its correlation coefficient times the square root of the
    number of independent samples (3 to 4.5 at most for noise, 10 to 100 for a real match).

    When a share `clipped` of the reference is saturated, both planes are flattened above their
    own (1 - clipped) quantile, so that the clipped areas look alike in both.
    """
    sigma = 1.0
    def prepare(plane):
        smooth = gaussian(plane, sigma=sigma)
        if clipped > 0:
            smooth = np.minimum(smooth, np.quantile(smooth, 1 - clipped))
        smooth -= smooth.mean()
        smooth /= smooth.std() or 1.0
        return scipy.fft.fft2(smooth * window)

    window = _hann(reference.shape)
    with warnings.catch_warnings():        # flat (fully clipped or black) planes: significance 0 says so
        warnings.simplefilter("ignore")
        ref, mov = prepare(reference), prepare(moving)
    correlation = scipy.fft.ifft2(ref * mov.conj()).real
    norm = math.sqrt(float((np.abs(ref) ** 2).sum() * (np.abs(mov) ** 2).sum())) / correlation.size
    weight = window.astype(np.float64) ** 2
    independent = float(weight.sum() ** 2 / (weight ** 2).sum()) / (4 * math.pi * sigma ** 2)
    significance = float(correlation.max() / norm) * math.sqrt(independent) if norm > 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=20, space="fourier", normalization=None)
    return -np.asarray(shift, dtype=float), significance


def _hann(shape) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def _overlap(short: Frame, long: Frame, shift: np.ndarray):
    """The short and long planes cropped to where they overlap once the short is moved back."""
    dy, dx = (int(v) for v in shift)
    h, w = short.green.shape
    ys, yl = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xl = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    return (short.green[ys, xs], long.green[yl, xl], short.saturated[ys, xs], long.saturated[yl, xl])


def pair_findings(m: dict, short_path: str, long_path: str, pair_id: str = "",
                  thresholds: PixelThresholds = DEFAULTS) -> list[Finding]:
    """Findings from the measurements of `measure_pair`."""
    out = []
    t = thresholds
    if m["clipped_fraction"] > t.max_clipped_fraction:
        out.append(clipped_finding(m["clipped_fraction"], long_path, pair_id, t))
    if m["short_snr"] < t.min_short_snr:
        out.append(Finding(pair_id, short_path, "too-dark",
                           f"short exposure signal {m['short_signal_dn']:.2f} DN is {m['short_snr']:.2f}x "
                           f"its noise {m['short_noise_dn']:.2f} DN (minimum {t.min_short_snr:g}x); "
                           "shoot the short longer or at higher ISO"))
    dy, dx = m["shift_px"]
    if m["shift_measured"] and math.hypot(dy, dx) > t.max_shift_px:
        out.append(Finding(pair_id, short_path, "misaligned",
                           f"short is shifted by (dy={dy:+.1f}, dx={dx:+.1f}) px from the long (limit "
                           f"{t.max_shift_px:g} px); camera or scene moved: re-shoot or drop the pair"))
    error = m["ratio_error_stops"]
    reliable = m["ratio_uncertainty_stops"] < t.max_ratio_error_stops / 3 and m["shift_measured"]
    if not m["shift_measured"]:
        why = (f"{m.get('plane_clipped_fraction', 0):.0%} of the long is clipped"
               if m.get("plane_clipped_fraction", 0) > t.max_clipped_for_shift
               else f"no match stands out of the noise (significance {m['shift_significance']:.1f}, "
                    f"needs {t.min_shift_significance:g})")
        note = f"alignment and measured ratio not checked: {why}"
        explained = [i for i, f in enumerate(out) if f.code in ("clipped", "too-dark")]
        if explained:                     # the clipped or too-dark warning already says why
            first = out[explained[0]]
            out[explained[0]] = replace(first, message=f"{first.message} ({note})")
        else:
            out.append(Finding(pair_id, short_path, "not-measured", f"{note}; check the pair by eye"))
    if reliable and abs(error) > t.max_ratio_error_stops:
        out.append(Finding(pair_id, short_path, "measured-ratio-mismatch",
                           f"pixels give a ratio of {m['measured_ratio']:.1f}, EXIF (with ISO and "
                           f"aperture) {m['expected_ratio']:.1f}: {error:+.2f} stops (limit "
                           f"{t.max_ratio_error_stops:.2f}); the light changed or the EXIF is wrong: "
                           "re-shoot or drop the pair"))
    return out


def clipped_finding(fraction: float, long_path: str, pair_id: str = "",
                    thresholds: PixelThresholds = DEFAULTS) -> Finding:
    return Finding(pair_id, long_path, "clipped",
                   f"{fraction:.1%} of the long exposure is clipped (limit "
                   f"{thresholds.max_clipped_fraction:.1%}); shoot the long shorter or at lower ISO")


def check_long_pixels(long_path, *, black_level, white_level, cfa: str, pair_id: str = "",
                      thresholds: PixelThresholds = DEFAULTS) -> list[Finding]:
    """The pixel findings of one long exposure alone (a row of a longs-only manifest): those of
    `read_frame` and `clipped`; nothing that compares a short with its long."""
    frame, findings = read_frame(long_path, cfa, black_level, white_level, pair_id, thresholds)
    if frame is not None and frame.clipped_fraction > thresholds.max_clipped_fraction:
        findings.append(clipped_finding(frame.clipped_fraction, str(long_path), pair_id, thresholds))
    return findings


def check_pair_pixels(short_path, long_path, *, exif_ratio: float, iso_short=None, iso_long=None,
                      fnumber_short=None, fnumber_long=None, black_level, white_level, cfa: str,
                      pair_id: str = "", thresholds: PixelThresholds = DEFAULTS
                      ) -> tuple[list[Finding], dict]:
    """The pixel findings of one pair and the measurements behind them (see `measure_pair`)."""
    (short, short_findings), (long, long_findings) = (
        read_frame(p, cfa, black_level, white_level, pair_id, thresholds) for p in (short_path, long_path))
    findings = short_findings + long_findings
    if short is not None:
        findings += lost_black_finding(short, str(short_path), black_level, pair_id, thresholds)
    if short is None or long is None:
        return findings, {}
    if short.green.shape != long.green.shape:
        return findings + [Finding(pair_id, str(short_path), "size-mismatch",
                                   "short and long raws differ in size; re-shoot or drop the pair")], {}
    expected = expected_ratio(exif_ratio, iso_short, iso_long, fnumber_short, fnumber_long)
    measurements = measure_pair(short, long, expected, thresholds)
    findings += pair_findings(measurements, str(short_path), str(long_path), pair_id, thresholds)
    return findings, measurements
