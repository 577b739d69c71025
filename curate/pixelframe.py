"""One raw boiled down for the pixel checks: a `Frame` (its black-subtracted green channel binned to at
most `plane_max_side` pixels, plus full-resolution noise, clipping and darkness), the findings its
levels earn, and the thresholds that turn measurements into findings.
"""
from __future__ import annotations

import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cfa import black_tile, corrupt_tile, pattern_name
from .common.errors import SidkitError
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
