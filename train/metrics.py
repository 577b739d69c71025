"""PSNR and SSIM on H x W x 3 images in [0, 1], pinned to one definition each.

PSNR uses data range 1 and is averaged per image (pooling squared errors across images gives a
different number). SSIM is scikit-image's with Wang et al.'s settings: Gaussian window sigma 1.5,
population covariance, data range 1, per channel then averaged.

Images are float in [0, 1] or uint16 (value / 65535, as rawpy renders a ground truth), and are
scored a strip of rows at a time (``row_strips``): a 32.5 MP frame never needs SSIM's dozen
full-size float copies, and the result is the whole-image one (each strip reads the rows its
filters reach; only the order of the final sum differs).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from skimage.metrics import structural_similarity

STRIP_PIXELS = 1 << 21          # pixels per strip: SSIM's temporaries stay ~100 MB whatever the frame
SSIM_SIGMA = 1.5
SSIM_RADIUS = int(3.5 * SSIM_SIGMA + 0.5)   # scikit-image's Gaussian: truncate 3.5, 11 taps; its border crop


def row_strips(height: int, width: int, margin: int) -> Iterator[tuple[int, int, int, int]]:
    """(lo, hi, top, bottom) per strip: rows [lo, hi) to read, of which [lo + top, lo + bottom) are
    the strip's own, the rest context that a filter of radius ``margin`` reaches (at least 2 margin + 1
    rows are read, a whole window, when the image has them)."""
    step = max(1, STRIP_PIXELS // max(width, 1))
    for start in range(0, height, step):
        stop = min(height, start + step)
        lo, hi = max(0, start - margin), min(height, stop + margin)
        if hi - lo < 2 * margin + 1:
            hi = min(height, lo + 2 * margin + 1)
            lo = max(0, hi - 2 * margin - 1)
        yield lo, hi, start - lo, stop - lo


def unit(image: np.ndarray, dtype=np.float32) -> np.ndarray:
    """An image (or strip) as ``dtype`` in [0, 1]: uint16 divided by 65535, floats as they are."""
    if image.dtype == np.uint16:
        return image.astype(dtype) / dtype(65535.0)
    return np.asarray(image, dtype=dtype)


def _check(pred, target) -> tuple[np.ndarray, np.ndarray, type]:
    """Both as arrays and the dtype to score in: float32 when both are float32 or uint16
    (evaluation's images: SSIM ~2x faster, within 1e-7), else float64."""
    pred, target = np.asanyarray(pred), np.asanyarray(target)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected two H x W x 3 images of one shape, got {pred.shape} and {target.shape}")
    narrow = {pred.dtype, target.dtype} <= {np.dtype(np.float32), np.dtype(np.uint16)}
    return pred, target, np.float32 if narrow else np.float64


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """10 log10(1 / MSE) in dB; inf for identical images."""
    pred, target, dtype = _check(pred, target)
    h, w = pred.shape[:2]
    total = 0.0
    for lo, hi, _, _ in row_strips(h, w, 0):
        total += float(np.sum(np.square(unit(pred[lo:hi], dtype) - unit(target[lo:hi], dtype)), dtype=np.float64))
    mse = total / pred.size
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM over the image and its three channels (scikit-image's, border of SSIM_RADIUS cropped)."""
    pred, target, dtype = _check(pred, target)
    h, w = pred.shape[:2]
    if min(h, w) <= 2 * SSIM_RADIUS:          # too small to crop: scikit-image's own answer (or its error)
        return float(_ssim_map(unit(pred, dtype), unit(target, dtype))[0])
    total, r = 0.0, SSIM_RADIUS
    for lo, hi, top, bottom in row_strips(h, w, r):
        _, full = _ssim_map(unit(pred[lo:hi], dtype), unit(target[lo:hi], dtype))
        rows = full[max(top, r - lo): min(bottom, h - r - lo), r: w - r]
        total += float(np.sum(rows, dtype=np.float64))
    return total / ((h - 2 * r) * (w - 2 * r) * 3)


def _ssim_map(a: np.ndarray, b: np.ndarray):
    return structural_similarity(a, b, gaussian_weights=True, sigma=SSIM_SIGMA, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=-1, full=True)


def mean_metrics(values: list) -> dict[str, float] | float:
    """The mean of per-image values: a list of floats -> float, of dicts ({'psnr': ..}) -> dict."""
    if values and isinstance(values[0], dict):
        return {key: float(np.mean([v[key] for v in values])) for key in values[0]}
    return float(np.mean(values)) if len(values) else math.nan
