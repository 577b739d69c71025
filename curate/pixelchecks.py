"""The pixel checks of `curate validate`: measured ratio, alignment, clipping, darkness, missing data.

Each raw is decoded once and boiled down to a `Frame`: its black-subtracted green channel binned to
at most `plane_max_side` pixels, plus a few full-resolution statistics (noise, clipping). The pair
checks then work on the two small planes, so a 24 MP pair costs about as much as decoding it.
"""
from __future__ import annotations

import math
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.fft
from skimage.filters import gaussian
from skimage.registration import phase_cross_correlation

from .cfa import black_tile, corrupt_tile, pattern_name
from .errors import SidkitError
from .findings import Finding
from .pixelbytes import corrupt_cfa, missing_pixel_bytes
from .rawfile import UnreadableRaw, check_sizes, shown


@dataclass(frozen=True)
class PixelThresholds:
    """When a measurement becomes a finding; the first four are the ones worth exposing as options.

    max_ratio_error_stops: |log2(measured / expected ratio)| allowed. A third of a stop (+26% / -21%)
        is one shutter or ISO step, so beyond it the light changed or the EXIF is wrong; below it sit
        the rounding of marked speeds (1/60 is truly 1/64: up to 0.1 stop per label) and noise.
    max_shift_px: shift between short and long, in full-resolution pixels. The SID U-Net sees the
        pair through 2x2 packing; a shift above 2 px (one packed pixel) blurs its ground truth.
    max_clipped_fraction: share of the long's pixels at or above `clip_level` of the raw range.
    min_short_snr: mean black-subtracted signal of the short over its per-pixel noise. Below 1 the
        average pixel holds more noise than signal; the simulated 12- and 14-bit bodies at ratio 250
        and ISO 100-400 give 2 to 5.
    clip_level: fraction of (white - black) from which a raw value counts as clipped.
    plane_max_side: longest side of the binned green plane the shift and ratio are measured on;
        the shift comes to about a tenth of a plane pixel (0.6 px of a 6000 px wide raw).
    min_shift_significance: correlation peak significance (pure noise stays below about 4.5 even on
        a 1024 px plane) below which the shift is not measured and the ratio is taken unaligned;
        neither is then a finding.
    ratio_block: plane pixels per side of the blocks the ratio is fitted on (fewer when the
        plane is small); blocks make a residual sub-pixel misalignment negligible.
    max_clipped_for_shift: share of the long's plane saturated above which no shift is measured:
        the few unclipped patches left correlate with anything (a 96% clipped long gave a false
        25 px shift at significance 10); the alignment is then reported as not measured.
    white_margin: share of (white - black) a raw value may exceed the white level by (LibRaw's
        white level of some bodies sits a little below their largest values); beyond it, the white
        level is wrong (`bad-levels`).
    dark_percentile, dark_noise: the darkest `dark_percentile` % of a raw's values, black-subtracted,
        sit about 3 noise sigmas below 0 where the scene has black parts and higher where it has
        none; more than `dark_noise` sigmas (+2 DN) below 0, the black level is too high. Sigma is
        the noise of the darkest 2% of the CFA tiles (flat, near black: the read noise). A short
        exposure whose black level is 0 and whose darkest values sit as far above 0 has lost its
        black level.
    """

    max_ratio_error_stops: float = 1 / 3
    max_shift_px: float = 2.0
    max_clipped_fraction: float = 0.01
    min_short_snr: float = 1.0
    clip_level: float = 0.98
    plane_max_side: int = 1024
    min_shift_significance: float = 6.0
    ratio_block: int = 8
    max_clipped_for_shift: float = 0.9
    white_margin: float = 0.02
    dark_percentile: float = 0.1
    dark_noise: float = 6.0


@dataclass
class Frame:
    """What the pair checks need from one raw."""

    green: np.ndarray          # black-subtracted green, binned, float32
    saturated: np.ndarray      # bool, a binned pixel holds a clipped green raw pixel
    scale: int                 # full-resolution pixels per plane pixel (per axis)
    pixels_per_bin: int        # green raw pixels averaged into one plane pixel
    noise_dn: float            # per-raw-pixel noise, DN (robust, from neighbouring greens)
    signal_dn: float           # mean black-subtracted green, DN
    clipped_fraction: float    # share of all raw pixels at or above the clip level
    max_dn: int = 0            # largest raw value
    dark_dn: float = 0.0       # the darkest `dark_percentile` % of raw values, black-subtracted (sampled)
    dark_noise_dn: float = 0.0  # per-pixel noise in the darkest 2% of tiles (read noise where they are black)

    @property
    def snr(self) -> float:
        return self.signal_dn / self.noise_dn if self.noise_dn > 0 else math.inf


def bayer_green_mask(cfa: str) -> np.ndarray:
    """'RGGB' -> the 2x2 boolean tile that is True on green photosites."""
    if len(cfa) != 4 or set(cfa.upper()) - set("RGBE"):
        raise ValueError(f"not a 2x2 Bayer pattern: {cfa!r}")
    return np.array([c == "G" for c in cfa.upper()]).reshape(2, 2)


def summarise_mosaic(mosaic: np.ndarray, green_mask: np.ndarray, black_level, white_level: float,
                     thresholds: PixelThresholds = PixelThresholds()) -> Frame:
    """A `Frame` from a raw mosaic; `green_mask` is one CFA tile (2x2 Bayer, 6x6 X-Trans).

    black_level: one value, or one per position of the 2x2 tile (row-major), tiled over the CFA tile.
    """
    tile = green_mask.shape[0]
    black = black_tile(black_level, tile)
    rows, cols = mosaic.shape[0] // tile, mosaic.shape[1] // tile
    if rows < 4 or cols < 4:
        raise ValueError(f"raw of {mosaic.shape} is too small to check")
    tiles = mosaic[:rows * tile, :cols * tile].reshape(rows, tile, cols, tile)
    clip = black + thresholds.clip_level * (float(white_level) - black)
    clipped_tiles = tiles >= clip[None, :, None, :]
    clipped_fraction = float(clipped_tiles.mean())

    greens = list(zip(*np.nonzero(green_mask)))
    green = np.zeros((rows, cols), np.float32)
    green_clipped = np.zeros((rows, cols), bool)
    for y, x in greens:
        green += tiles[:, y, :, x].astype(np.float32) - np.float32(black[y, x])
        green_clipped |= clipped_tiles[:, y, :, x]
    green /= len(greens)

    factor = max(1, math.ceil(max(rows, cols) / thresholds.plane_max_side))
    h, w = rows // factor, cols // factor
    plane = green[:h * factor, :w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))
    saturated = green_clipped[:h * factor, :w * factor].reshape(h, factor, w, factor).any(axis=(1, 3))
    step = max(1, math.ceil(math.sqrt(rows * cols / 100_000)))      # ~100k tiles
    dark = tiles[::step, :, ::step, :].astype(np.float32) - black[None, :, None, :].astype(np.float32)
    return Frame(green=plane.astype(np.float32), saturated=saturated, scale=tile * factor,
                 pixels_per_bin=len(greens) * factor * factor,
                 noise_dn=_noise_dn(tiles, black, greens), signal_dn=float(green.mean()),
                 clipped_fraction=clipped_fraction, max_dn=int(mosaic.max()),
                 dark_dn=float(np.percentile(dark, thresholds.dark_percentile)),
                 dark_noise_dn=_noise_dn(tiles, black, greens, where=green <= np.percentile(green, 2)))


def level_findings(frame: Frame, path: str, black_level, white_level: float, pair_id: str = "",
                   thresholds: PixelThresholds = PixelThresholds()) -> list[Finding]:
    """`bad-levels` where the pixels contradict the levels: a raw value above the white level
    (beyond `white_margin`), or the darkest values far below the black level (see PixelThresholds)."""
    out, t = [], thresholds
    black = max(np.atleast_1d(np.asarray(black_level, dtype=np.float64)))
    white = float(white_level)
    if frame.max_dn > white + t.white_margin * (white - black):
        out.append(Finding(pair_id, path, "bad-levels",
                           f"white level {white:g} is below the file's largest raw value {frame.max_dn}: a wrong "
                           "white level (or BitsPerSample) clips and mis-scales the data; re-scan, or copy the "
                           "original file or drop the pair"))
    limit = t.dark_noise * frame.dark_noise_dn + 2
    if frame.dark_dn < -limit:
        out.append(Finding(pair_id, path, "bad-levels",
                           f"black level {_levels(black_level)} is above the file's darkest pixels: its darkest "
                           f"{t.dark_percentile:g}% sit {-frame.dark_dn:.0f} DN below it (noise {frame.dark_noise_dn:.1f} "
                           "DN); a wrong black level (or BitsPerSample); re-scan, or copy the original file or "
                           "drop the pair"))
    return out


def lost_black_finding(short: Frame, path: str, black_level, pair_id: str = "",
                       thresholds: PixelThresholds = PixelThresholds()) -> list[Finding]:
    """`bad-levels` for a short exposure whose black level is 0 while its darkest values sit far
    above 0: a black level the file does not state (read as 0) or one set to 0 by mistake."""
    limit = thresholds.dark_noise * short.dark_noise_dn + 2
    if any(np.atleast_1d(np.asarray(black_level, dtype=np.float64))) or short.dark_dn <= limit:
        return []
    return [Finding(pair_id, path, "bad-levels",
                    f"black level 0, but the darkest {thresholds.dark_percentile:g}% of this short exposure sit "
                    f"{short.dark_dn:.0f} DN above it (noise {short.dark_noise_dn:.1f} DN): the file's black level is "
                    "missing; set the camera's black level or drop the pair")]


def _levels(black_level) -> str:
    return " ".join(f"{v:g}" for v in np.atleast_1d(np.asarray(black_level, dtype=np.float64)))


def _noise_dn(tiles: np.ndarray, black: np.ndarray, greens, where: np.ndarray | None = None) -> float:
    """Per-pixel noise from the difference of the two nearest green photosites of each tile (of the
    tiles ``where`` is True, when given)."""
    (y0, x0), (y1, x1) = min(((a, b) for a in greens for b in greens if a < b),
                             key=lambda ab: (ab[0][0] - ab[1][0]) ** 2 + (ab[0][1] - ab[1][1]) ** 2)
    step = max(1, math.ceil(math.sqrt(tiles.shape[0] * tiles.shape[2] / 100_000)))  # ~100k samples
    pick = (slice(None), slice(None)) if where is not None else (slice(None, None, step),) * 2
    diff = (tiles[pick[0], y0, pick[1], x0].astype(np.float32) - tiles[pick[0], y1, pick[1], x1]
            - np.float32(black[y0, x0] - black[y1, x1]))
    diff = diff[where] if where is not None else diff.ravel()
    deviation = np.abs(diff - np.median(diff))
    mad = max(float(np.median(deviation)), 1.0)
    # Mean absolute deviation without outliers (edges): unlike the MAD, not stepped by integer DN.
    sigma = math.sqrt(math.pi / 2) * float(deviation[deviation <= 5 * mad].mean())
    return sigma / math.sqrt(2)


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
                 thresholds: PixelThresholds = PixelThresholds()) -> dict:
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
                  thresholds: PixelThresholds = PixelThresholds()) -> list[Finding]:
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
                    thresholds: PixelThresholds = PixelThresholds()) -> Finding:
    return Finding(pair_id, long_path, "clipped",
                   f"{fraction:.1%} of the long exposure is clipped (limit "
                   f"{thresholds.max_clipped_fraction:.1%}); shoot the long shorter or at lower ISO")


def check_long_pixels(long_path, *, black_level, white_level, cfa: str, pair_id: str = "",
                      thresholds: PixelThresholds = PixelThresholds()) -> list[Finding]:
    """The pixel findings of one long exposure alone (a row of a longs-only manifest): those of
    `read_frame` and `clipped`; nothing that compares a short with its long."""
    frame, findings = read_frame(long_path, cfa, black_level, white_level, pair_id, thresholds)
    if frame is not None and frame.clipped_fraction > thresholds.max_clipped_fraction:
        findings.append(clipped_finding(frame.clipped_fraction, str(long_path), pair_id, thresholds))
    return findings


def read_frame(path: str | Path, cfa: str, black_level, white_level: float, pair_id: str = "",
               thresholds: PixelThresholds = PixelThresholds()) -> tuple[Frame | None, list[Finding]]:
    """Decode one raw into a `Frame` (None when it cannot be checked) and the findings it earns:
    `unreadable`, `no-pixel-data`, `not-raw`, or `metadata-disagreement` when its CFA is not `cfa`.

    A file whose header declares more strip/tile bytes than it holds is `no-pixel-data` before any
    decoding: LibRaw turns a stripped file's leftover bytes into plausible-looking values. Any
    failure while reading one file (a FIFO, a damaged header, LibRaw, numpy) is a finding for it.
    """
    path = str(path)
    try:
        return _read_frame(path, cfa, black_level, white_level, pair_id, thresholds)
    except UnreadableRaw as exc:
        return None, [Finding(pair_id, path, "unreadable", _without_path(str(exc), path))]
    except SidkitError:
        raise
    except Exception as exc:               # a damaged file: a finding for it, the other pairs go on
        return None, [Finding(pair_id, path, "unreadable", f"its pixels cannot be checked ({_why(exc)}); "
                              "copy the file again or drop the pair")]


def _without_path(message: str, path: str) -> str:
    return message.removeprefix(f"{path}: ").removeprefix(f"{shown(path)}: ")


def _read_frame(path: str, cfa: str, black_level, white_level: float, pair_id: str,
                thresholds: PixelThresholds) -> tuple[Frame | None, list[Finding]]:
    import rawpy

    from .librawinfo import libraw_open

    missing = missing_pixel_bytes(path)
    if missing:
        return None, [Finding(pair_id, path, "no-pixel-data",
                              f"{missing}: truncated or stripped copy; copy the original file")]
    cfa_problem = corrupt_cfa(path)
    if cfa_problem:
        return None, [Finding(pair_id, path, "unreadable", f"{cfa_problem}; copy the original file or drop the pair")]
    with ExitStack() as stack:
        try:
            raw = stack.enter_context(libraw_open(path))
        except (rawpy.LibRawError, OSError) as exc:
            return None, [Finding(pair_id, path, "unreadable", f"rawpy cannot open it ({_why(exc)}); "
                                  "copy the file again or drop the pair")]
        check_sizes(path, raw.sizes.raw_width, raw.sizes.raw_height)     # before unpack allocates
        try:
            raw.unpack()
            mosaic = raw.raw_image_visible
        except (rawpy.LibRawError, OSError) as exc:
            return None, [Finding(pair_id, path, "no-pixel-data",
                                  f"the metadata reads but the pixel data does not ({_why(exc)}): "
                                  "truncated or stripped copy; copy the original file")]
        if mosaic.ndim != 2 or mosaic.size == 0:
            return None, [Finding(pair_id, path, "not-raw", f"decodes to an array of shape {mosaic.shape}, "
                                  "not a mosaic; SID pairs need the camera's raw files")]
        empty = _no_pixel_data(mosaic, white_level)
        if empty:
            return None, [Finding(pair_id, path, "no-pixel-data", empty)]
        pattern = raw.raw_pattern  # colour indices of one CFA tile, in visible-area coordinates
        if pattern is None:
            return None, [Finding(pair_id, path, "not-raw", "no colour filter mosaic (a demosaiced or "
                                  "linear file); SID pairs need the camera's raw files")]
        desc = raw.color_desc.decode("ascii", "replace")
        if corrupt := corrupt_tile(pattern, desc):
            return None, [Finding(pair_id, path, "unreadable", f"{corrupt}; copy "
                                  "the original file or drop the pair")]
        file_cfa = pattern_name(pattern, desc)
        findings = []     # a CFA the manifest states wrongly: validate's file checks (manifest-file-mismatch)
        green_mask = np.array([[desc[c] == "G" for c in row] for row in pattern])
        if not green_mask.any():
            return None, findings + [Finding(pair_id, path, "not-raw", f"its CFA {file_cfa} has no green "
                                             "photosite to measure; SID pairs need Bayer or X-Trans raws")]
        try:
            frame = summarise_mosaic(mosaic, green_mask, black_level, white_level, thresholds)
        except (ValueError, SidkitError) as exc:
            raise SidkitError(f"{path}: {exc}; fix the manifest row or re-scan") from exc
        return frame, findings + level_findings(frame, path, black_level, white_level, pair_id, thresholds)


def _why(exc: Exception) -> str:
    detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
    return f"{type(exc).__name__}: {detail}"


def _no_pixel_data(mosaic: np.ndarray, white_level: float) -> str:
    """Why the decoded values cannot be a photograph, with the fix ('' when they can)."""
    lo, hi = int(mosaic.min()), int(mosaic.max())
    if lo == hi:
        return f"every raw value is {lo}: the pixel data is missing (stripped copy?); copy the original file"
    over = float((mosaic > white_level).mean())
    if over > 0.01:
        return (f"{over:.0%} of raw values exceed the white level {white_level:g}: garbage pixel data "
                "(stripped copy?) or a wrong white level; copy the original file or re-scan")
    return ""


def check_pair_pixels(short_path, long_path, *, exif_ratio: float, iso_short=None, iso_long=None,
                      fnumber_short=None, fnumber_long=None, black_level, white_level, cfa: str,
                      pair_id: str = "", thresholds: PixelThresholds = PixelThresholds()
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
