"""The original SID protocol's scores: 8-bit images, PSNR on 0-255, SSIM as MATLAB's `ssim` defaults.

The SID paper's numbers (28.88 dB / 0.787 on Sony) came from MATLAB on 8-bit PNGs written by the
original test script (`scipy.misc.toimage(x * 255, cmin=0, cmax=255)`: clip to [0, 1], x 255, round
half up). MATLAB's `ssim(A, ref)` with default parameters treats an H x W x 3 image as a 3-D volume
(DataFormat "SSS": three spatial dimensions), not as three channels: one 3-D Gaussian window, sigma 1.5
in every direction, 11 taps (2 ceil(3 sigma) + 1), replicate padding, K = (0.01, 0.03), dynamic
range 255 for uint8, and the mean of the whole SSIM map (no border crop). sidkit's own protocol
(train.metrics) scores float images per channel; the two differ by tenths of a dB and a few
hundredths of SSIM, so compare a paper's table only with `--protocol sid`.

Like train.metrics, every function works a strip of rows at a time (train.metrics.row_strips) and
takes float images in [0, 1] or uint16 ones (value / 65535).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

from .metrics import STRIP_PIXELS, row_strips, unit

SIGMA = 1.5
RADIUS = math.ceil(3 * SIGMA)   # MATLAB ssim: filter size 2 * ceil(3 * sigma) + 1 = 11
PEAK = 255.0


def to_8bit(image: np.ndarray) -> np.ndarray:
    """An image in [0, 1] as the original test script saved it: clipped, x 255, rounded half up."""
    image = np.asanyarray(image)
    out = np.empty(image.shape, dtype=np.uint8)
    step = max(1, STRIP_PIXELS // max(1, image[:1].size))
    for lo in range(0, len(image), step):
        out[lo: lo + step] = np.clip(unit(image[lo: lo + step], np.float64), 0.0, 1.0) * PEAK + 0.5
    return out


def psnr(pred8: np.ndarray, target8: np.ndarray) -> float:
    """MATLAB `psnr` on uint8 images: peak 255, MSE over every pixel and channel; inf when identical."""
    total = 0.0
    for lo, hi, _, _ in row_strips(len(pred8), pred8[:1].size, 0):
        total += float(np.sum((pred8[lo:hi].astype(np.float64) - target8[lo:hi].astype(np.float64)) ** 2))
    mse = total / pred8.size
    return math.inf if mse == 0 else 10.0 * math.log10(PEAK ** 2 / mse)


def _blur(volume: np.ndarray) -> np.ndarray:
    return gaussian_filter(volume, SIGMA, mode="nearest", truncate=RADIUS / SIGMA)


def ssim(pred8: np.ndarray, target8: np.ndarray) -> float:
    """MATLAB `ssim(A, ref)` with defaults on uint8 H x W x 3 images (a 3-D volume, see above)."""
    if pred8.shape != target8.shape:
        raise ValueError(f"expected two images of one shape, got {pred8.shape} and {target8.shape}")
    c1, c2 = (0.01 * PEAK) ** 2, (0.03 * PEAK) ** 2
    total = 0.0
    for lo, hi, top, bottom in row_strips(len(pred8), pred8[:1].size, RADIUS):
        a, b = pred8[lo:hi].astype(np.float64), target8[lo:hi].astype(np.float64)
        mu_a, mu_b = _blur(a), _blur(b)
        var_a = _blur(a * a) - mu_a ** 2
        var_b = _blur(b * b) - mu_b ** 2
        cov = _blur(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        total += float(ssim_map[top:bottom].sum())
    return total / pred8.size


def scores(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR and SSIM of two float images in [0, 1] under the SID protocol."""
    p8, t8 = to_8bit(pred), to_8bit(target)
    return {"psnr": psnr(p8, t8), "ssim": ssim(p8, t8)}
