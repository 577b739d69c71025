"""Raw decoding for training: a raw file's mosaic packed into channels (curate.cfa's canonical order,
from its packing origin), the network's input, and the ground truth.

The ground truth is the long exposure through rawpy's postprocess with camera white balance, no auto
brightness, 16 bits (the original's settings), orientation left as stored (``user_flip=0``) so that it
stays aligned with the mosaic.
"""
from __future__ import annotations

import os
from pathlib import Path
import re
from dataclasses import dataclass

import numpy as np

from curate import cfa as sensor
from curate.cfa import XTRANS, black_packed, raw_origin, tile_size
from curate.common.errors import SidkitError

_POLICY = re.compile(r"^(exif|cap:(?P<cap>\d+(\.\d+)?)|fixed:(?P<fixed>\d+(\.\d+)?))$")


@dataclass
class RawFrame:
    """A visible-area mosaic with the levels that normalise it."""
    mosaic: np.ndarray          # uint16 H x W
    cfa: str                    # 'RGGB', 'BGGR', 'GRBG', 'GBRG' or 'XTRANS'
    black: list[float]          # per position of the 2x2 tile, row-major (X-Trans: one value used)
    white: float
    origin: tuple[int, int] = (0, 0)  # X-Trans: the (row, column) where packing starts (XTRANS_LAYOUT's phase)


# Ground truth as the original SID code renders it (user_flip=0 keeps it aligned with the mosaic).
POSTPROCESS = dict(use_camera_wb=True, half_size=False, no_auto_bright=True, output_bps=16, user_flip=0)
# LibRaw's X-Trans demosaic (Markesteijn) refuses images under one 512-pixel tile a side
# (LIBRAW_AHD_TILE; rawpy says 'Input/output error'): smaller X-Trans raws get its linear demosaic.
XTRANS_DEMOSAIC_MIN = 512


def postprocess_settings(raw) -> dict:
    """POSTPROCESS for this open raw: X-Trans under XTRANS_DEMOSAIC_MIN pixels a side demosaics linearly."""
    if raw.raw_pattern is not None and sensor.pattern_name(raw.raw_pattern, raw.color_desc.decode()) == XTRANS and \
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
        file_cfa = _cfa_of(raw, path)
        if cfa is not None and cfa != file_cfa:
            raise SidkitError(f"{path}: the manifest says CFA {cfa} but the file is {file_cfa}; "
                              "re-scan the dataset with `curate scan`")
        origin = raw_origin(raw, path)
        if black is None:
            black = sensor.position_black(raw.black_level_per_channel, raw.raw_pattern)
        white = float(raw.white_level if white is None else white)
    black = [float(v) for v in black]
    if len(black) not in (1, 4):
        raise SidkitError(f"{path}: black level {black} must have 1 or 4 values (per 2x2 position); "
                          "fix the manifest's black_level column")
    if min(white - v for v in black) <= 0:
        raise SidkitError(f"{path}: white level {white:g} is not above black level {black}; "
                          "fix the manifest's white_level/black_level columns")
    return RawFrame(mosaic, file_cfa, black * 4 if len(black) == 1 else black, white, origin)


def _cfa_of(raw, path) -> str:
    """The pattern's name (curate.cfa.pattern_name); SidkitError for a colour filter train cannot pack."""
    name = sensor.pattern_name(raw.raw_pattern, raw.color_desc.decode())
    if sensor.kind_of(name) is None:
        raise SidkitError(f"{path}: unsupported colour filter {name!r} (only RGB Bayer and X-Trans)")
    return name


def pack_raw_counts(frame: RawFrame) -> np.ndarray:
    """The mosaic gathered into canonical channels from its origin, still in raw counts: uint16 (C, h, w)."""
    return sensor.pack(frame.mosaic[frame.origin[0]:, frame.origin[1]:], frame.cfa)


def unpack_raw_counts(packed: np.ndarray, cfa: str, mosaic: np.ndarray,
                      origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The inverse of pack_raw_counts: ``packed`` (C, h, w) written into ``mosaic`` (H x W, in place,
    from ``origin`` on (RawFrame.origin); the rows and columns outside whole CFA tiles are left as they are)."""
    sensor.unpack(packed, cfa, mosaic[origin[0]:, origin[1]:])
    return mosaic


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
        return render(raw, path)


def render(raw, path) -> np.ndarray:
    """An open raw's mosaic (as it now holds it) rendered as SID does and cropped to the whole CFA
    tiles that packing reads from its origin: uint16 (H, W, 3), ``scale`` x the packed size."""
    h, w = raw.raw_image_visible.shape
    t = tile_size(_cfa_of(raw, path))
    (oy, ox), rgb = raw_origin(raw, path), raw.postprocess(**postprocess_settings(raw))
    rows, cols = (h - oy) // t * t, (w - ox) // t * t
    if rgb.shape[0] < oy + rows or rgb.shape[1] < ox + cols:
        raise SidkitError(f"{path}: rawpy renders {rgb.shape[1]}x{rgb.shape[0]}, smaller than the raw's "
                          f"visible {w}x{h}; this camera's files are not supported for ground truth")
    return np.ascontiguousarray(rgb[oy: oy + rows, ox: ox + cols])
