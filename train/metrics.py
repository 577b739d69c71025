"""PSNR and SSIM on H x W x 3 float images in [0, 1], pinned to one definition each.

PSNR uses data range 1 and is averaged per image (pooling squared errors across images gives a
different number). SSIM is scikit-image's with Wang et al.'s settings: Gaussian window sigma 1.5,
population covariance, data range 1, per channel then averaged.
"""
from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity


def _check(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64, or as float32 when both are (evaluation's images: SSIM ~2x faster, within 1e-7)."""
    both32 = getattr(pred, "dtype", None) == getattr(target, "dtype", None) == np.float32
    dtype = np.float32 if both32 else np.float64
    pred, target = np.asarray(pred, dtype=dtype), np.asarray(target, dtype=dtype)
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"expected two H x W x 3 images of one shape, got {pred.shape} and {target.shape}")
    return pred, target


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """10 log10(1 / MSE) in dB; inf for identical images."""
    pred, target = _check(pred, target)
    mse = float(np.mean(np.square(pred - target), dtype=np.float64))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM over the image and its three channels."""
    pred, target = _check(pred, target)
    return float(structural_similarity(pred, target, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=1.0, channel_axis=-1))


def mean_metrics(values: list) -> dict[str, float] | float:
    """The mean of per-image values: a list of floats -> float, of dicts ({'psnr': ..}) -> dict."""
    if values and isinstance(values[0], dict):
        return {key: float(np.mean([v[key] for v in values])) for key in values[0]}
    return float(np.mean(values)) if len(values) else math.nan
