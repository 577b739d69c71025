"""Raw decoding and packing: a CFA mosaic into channels in one canonical order, plus the ground truth.

Bayer (any of RGGB, BGGR, GRBG, GBRG) packs into 4 channels (R, G_r, B, G_b) at half size, G_r
being the green in red's row; X-Trans packs into 9 channels at a third of the size exactly as the
original SID Fuji code does. The ground truth is the long exposure through rawpy's postprocess with
camera white balance, no auto brightness, 16 bits (the original's settings), orientation left as
stored (``user_flip=0``) so that it stays aligned with the mosaic.
"""
from __future__ import annotations

import os
from pathlib import Path
import re
from dataclasses import dataclass

import numpy as np

from curate.cfa import XTRANS, XTRANS_LAYOUT, XTRANS_OFFSETS, packing_origin
from curate.errors import SidkitError

BAYER_ORDER = ("R", "Gr", "B", "Gb")   # canonical packed channel order

_POLICY = re.compile(r"^(exif|cap:(?P<cap>\d+(\.\d+)?)|fixed:(?P<fixed>\d+(\.\d+)?))$")


@dataclass
class RawFrame:
    """A visible-area mosaic with the levels that normalise it."""
    mosaic: np.ndarray          # uint16 H x W
    cfa: str                    # 'RGGB', 'BGGR', 'GRBG', 'GBRG' or 'XTRANS'
    black: list[float]          # per position of the 2x2 tile, row-major (X-Trans: one value used)
    white: float
    origin: tuple[int, int] = (0, 0)  # X-Trans: the (row, column) where packing starts (XTRANS_LAYOUT's phase)


def tile_size(cfa: str) -> int:
    """2 for Bayer, 6 for X-Trans; SidkitError for anything else."""
    if cfa == XTRANS:
        return 6
    if len(cfa) == 4 and sorted(cfa) == ["B", "G", "G", "R"]:
        return 2
    raise SidkitError(f"unsupported CFA pattern {cfa!r}: expected RGGB, BGGR, GRBG, GBRG or XTRANS; "
                      "fix the manifest's cfa column or re-scan")


def scale(cfa: str) -> int:
    """Output pixels per packed pixel along each axis: 2 for Bayer, 3 for X-Trans."""
    return 3 if tile_size(cfa) == 6 else 2


def bayer_positions(cfa: str) -> list[int]:
    """For each canonical channel (R, G_r, B, G_b), its position (0..3, row-major) in the 2x2 tile."""
    tile_size(cfa)
    r, b = cfa.index("R"), cfa.index("B")
    green_in_row = lambda pos: (pos // 2) * 2 + (1 - pos % 2)  # the other pixel of the same row
    return [r, green_in_row(r), b, green_in_row(b)]


# Ground truth as the original SID code renders it (user_flip=0 keeps it aligned with the mosaic).
POSTPROCESS = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16, user_flip=0)
# LibRaw's X-Trans demosaic (Markesteijn) refuses images under one 512-pixel tile a side
# (LIBRAW_AHD_TILE; rawpy says 'Input/output error'): smaller X-Trans raws get its linear demosaic.
XTRANS_DEMOSAIC_MIN = 512


def postprocess_settings(raw) -> dict:
    """POSTPROCESS for this open raw: X-Trans under XTRANS_DEMOSAIC_MIN pixels a side demosaics linearly."""
    if raw.raw_pattern is not None and raw.raw_pattern.shape == (6, 6) and \
            min(raw.sizes.width, raw.sizes.height) < XTRANS_DEMOSAIC_MIN:
        import rawpy

        return {**POSTPROCESS, "demosaic_algorithm": rawpy.DemosaicAlgorithm.LINEAR}
    return POSTPROCESS


def open_cfa_raw(path: str | os.PathLike):
    """rawpy.imread for a colour-filter-array raw; anything else is a one-line SidkitError."""
    import rawpy

    if not Path(path).is_file():
        raise SidkitError(f"{path}: no such file; restore it, or re-scan the dataset if it was removed")
    try:
        raw = rawpy.imread(str(path))
    except (rawpy.LibRawError, OSError) as exc:
        raise SidkitError(f"{path}: rawpy cannot read it as a raw ({exc}); check that it is a camera raw file") from None
    if raw.raw_image_visible.ndim != 2 or raw.raw_pattern is None:
        raw.close()
        raise SidkitError(f"{path}: not a colour-filter-array raw (already demosaiced); "
                          "use the camera's mosaic raw files")
    return raw


def read_raw(path: str | os.PathLike, cfa: str | None = None, black=None, white: float | None = None) -> RawFrame:
    """Decode ``path`` with rawpy. Levels given (the manifest's) win over the file's own."""
    with open_cfa_raw(path) as raw:
        mosaic = raw.raw_image_visible.astype(np.uint16, copy=True)
        colours = raw.raw_colors_visible
        desc = raw.color_desc.decode()
        file_cfa = _cfa_of(raw.raw_pattern, colours, desc, path)
        if cfa is not None and cfa != file_cfa:
            raise SidkitError(f"{path}: the manifest says CFA {cfa} but the file is {file_cfa}; "
                              "re-scan the dataset with `curate scan`")
        origin = raw_origin(raw, path)
        if black is None:
            per_colour = raw.black_level_per_channel
            black = [float(per_colour[c]) for c in colours[:2, :2].ravel()]
        white = float(raw.white_level if white is None else white)
    black = [float(v) for v in black]
    if len(black) not in (1, 4):
        raise SidkitError(f"{path}: black level {black} must have 1 or 4 values (per 2x2 position); "
                          "fix the manifest's black_level column")
    if min(white - v for v in black) <= 0:
        raise SidkitError(f"{path}: white level {white:g} is not above black level {black}; "
                          "fix the manifest's white_level/black_level columns")
    return RawFrame(mosaic, file_cfa, black * 4 if len(black) == 1 else black, white, origin)


def raw_origin(raw, path) -> tuple[int, int]:
    """Where packing starts in an open raw's visible mosaic: (0, 0) for Bayer; for X-Trans the first
    (row, column) from which the colours follow XTRANS_LAYOUT; SidkitError if they never do."""
    origin = packing_origin(raw)
    if origin is None:
        raise SidkitError(f"{path}: its 6x6 colour filter is no X-Trans layout that train packs "
                          f"({XTRANS_LAYOUT} in any phase); this camera is not supported")
    return origin


def _cfa_of(pattern: np.ndarray, colours: np.ndarray, desc: str, path) -> str:
    if pattern.shape == (6, 6):
        return XTRANS
    letters = "".join(desc[c] for c in colours[:2, :2].ravel())
    try:
        tile_size(letters)
    except SidkitError:
        raise SidkitError(f"{path}: unsupported colour filter {letters!r} (only RGB Bayer and X-Trans)") from None
    return letters


def pack_raw_counts(frame: RawFrame) -> np.ndarray:
    """The mosaic gathered into canonical channels, still in raw counts: uint16 (C, h, w)."""
    m = frame.mosaic[frame.origin[0]:, frame.origin[1]:]
    t = tile_size(frame.cfa)
    m = m[: m.shape[0] // t * t, : m.shape[1] // t * t]
    if t == 2:
        return np.stack([m[p // 2::2, p % 2::2] for p in bayer_positions(frame.cfa)])
    h, w = m.shape
    out = np.empty((9, h // 3, w // 3), dtype=m.dtype)
    for channel, offsets in enumerate(XTRANS_OFFSETS):
        for block, (dy, dx) in enumerate(offsets):
            out[channel, block // 2::2, block % 2::2] = m[dy::6, dx::6]
    return out


def unpack_raw_counts(packed: np.ndarray, cfa: str, mosaic: np.ndarray,
                      origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The inverse of pack_raw_counts: ``packed`` (C, h, w) written into ``mosaic`` (H x W,
    in place, from ``origin`` on (RawFrame.origin); the rows and columns outside whole CFA tiles
    are left as they are)."""
    t = tile_size(cfa)
    whole, mosaic = mosaic, mosaic[origin[0]:, origin[1]:]
    if t == 2:
        for channel, p in enumerate(bayer_positions(cfa)):
            mosaic[p // 2: packed.shape[1] * 2: 2, p % 2: packed.shape[2] * 2: 2] = packed[channel]
        return whole
    for channel, offsets in enumerate(XTRANS_OFFSETS):
        for block, (dy, dx) in enumerate(offsets):
            mosaic[dy: packed.shape[1] * 3: 6, dx: packed.shape[2] * 3: 6] = packed[channel, block // 2::2, block % 2::2]
    return whole


def black_packed(cfa: str, black) -> np.ndarray:
    """The black level of each packed channel, float32 (C,), from levels per 2x2 tile position.

    X-Trans uses their mean (Fuji bodies report one level)."""
    black = [float(v) for v in black]
    black = black * 4 if len(black) == 1 else black
    if tile_size(cfa) == 6:
        return np.full(9, np.mean(black), dtype=np.float32)
    return np.array([black[p] for p in bayer_positions(cfa)], dtype=np.float32)


def network_input(counts, black, white: float, gain: float = 1.0):
    """The network's input from packed raw counts (C, h, w), uint16 or float: per channel
    (counts - black) / (white - black) clipped to [0, 1], times ``gain``, clipped at 1.

    The one place this formula lives: training (numpy crops or torch tensors on any device),
    evaluation and predict all call it. Returns float32 of the same kind (a new array)."""
    hi = min(float(gain), 1.0)
    if isinstance(counts, np.ndarray):
        black = np.asarray(black, dtype=np.float32).reshape(-1, 1, 1)
        x = counts.astype(np.float32, order="C")
        x -= black
        x /= np.float32(white) - black
        if gain != 1:
            x *= np.float32(gain)
        return np.clip(x, 0.0, hi, out=x)
    import torch

    black = torch.as_tensor(black, dtype=torch.float32, device=counts.device).view(-1, 1, 1)
    x = counts.float() if counts.dtype != torch.float32 else counts.clone()
    x = x.sub_(black).div_(float(white) - black)
    return (x.mul_(float(gain)) if gain != 1 else x).clamp_(0.0, hi)


def pack(frame: RawFrame, gain: float = 1.0) -> np.ndarray:
    """A decoded raw as the network's input: packed, normalised, times ``gain``, clipped at 1."""
    return network_input(pack_raw_counts(frame), black_packed(frame.cfa, frame.black), frame.white, gain)


def amplification(exif_ratio: float, policy: str = "cap:300") -> float:
    """The input gain: 'exif' (the EXIF ratio), 'cap:N' (min(ratio, N), SID's), or 'fixed:N'."""
    m = _POLICY.match(str(policy).strip())
    if not m:
        raise SidkitError(f"unknown amplification policy {policy!r}: use 'exif', 'cap:300' or 'fixed:100'")
    if m["fixed"] is not None:
        return float(m["fixed"])
    ratio = float(exif_ratio)
    if not ratio > 0:
        raise SidkitError(f"exposure ratio {exif_ratio!r} is not positive; fix the manifest's ratio column")
    return min(ratio, float(m["cap"])) if m["cap"] is not None else ratio


def ground_truth(path: str | os.PathLike) -> np.ndarray:
    """The long exposure rendered as SID does: uint16 (H, W, 3), exactly ``scale`` x the packed size."""
    with open_cfa_raw(path) as raw:
        h, w = raw.raw_image_visible.shape
        t = tile_size(_cfa_of(raw.raw_pattern, raw.raw_colors_visible, raw.color_desc.decode(), path))
        (oy, ox), rgb = raw_origin(raw, path), raw.postprocess(**postprocess_settings(raw))
    rows, cols = (h - oy) // t * t, (w - ox) // t * t
    if rgb.shape[0] < oy + rows or rgb.shape[1] < ox + cols:
        raise SidkitError(f"{path}: rawpy renders {rgb.shape[1]}x{rgb.shape[0]}, smaller than the raw's "
                          f"visible {w}x{h}; this camera's files are not supported for ground truth")
    return np.ascontiguousarray(rgb[oy: oy + rows, ox: ox + cols])
