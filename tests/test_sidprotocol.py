"""The SID protocol's scores: 8-bit quantisation, PSNR on 0-255, MATLAB's 3-D-volume SSIM."""
import math

import numpy as np
import pytest

from train import metrics, sidprotocol


def brute_force_ssim(a, b, sigma=1.5, radius=5):
    """SSIM of two volumes, written out: replicate padding, a separable 11-tap Gaussian in 3-D."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma ** 2))
    kernel = taps[:, None, None] * taps[None, :, None] * taps[None, None, :]
    kernel /= kernel.sum()
    pads = [(radius, radius)] * 3
    out = np.empty(a.shape)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    pa, pb = np.pad(a, pads, mode="edge"), np.pad(b, pads, mode="edge")
    n = 2 * radius + 1
    for i, j, k in np.ndindex(a.shape):
        wa, wb = pa[i:i + n, j:j + n, k:k + n], pb[i:i + n, j:j + n, k:k + n]
        ma, mb = (kernel * wa).sum(), (kernel * wb).sum()
        va, vb = (kernel * wa * wa).sum() - ma ** 2, (kernel * wb * wb).sum() - mb ** 2
        cov = (kernel * wa * wb).sum() - ma * mb
        out[i, j, k] = (2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return out.mean()


@pytest.mark.parametrize("strip_pixels", [1, 30, 1 << 21])
def test_ssim_is_matlabs_volume_ssim(monkeypatch, strip_pixels):
    """Also when scored a strip of rows at a time (down to one row plus the window's reach)."""
    monkeypatch.setattr("train.metrics.STRIP_PIXELS", strip_pixels)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (14, 12, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    assert sidprotocol.ssim(a, b) == pytest.approx(brute_force_ssim(a, b), abs=1e-12)
    assert sidprotocol.ssim(a, a) == pytest.approx(1.0)
    assert sidprotocol.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / np.mean((a - b.astype(float)) ** 2)))


def test_volume_ssim_differs_from_per_channel_ssim():
    """On a coloured image the window mixes channels of different levels: a much higher score."""
    rng = np.random.default_rng(1)
    target = np.clip(rng.random((64, 64, 1)) * 0.2 + np.array([0.7, 0.3, 0.05]), 0, 1)
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    ours = metrics.ssim(pred, target)
    theirs = sidprotocol.scores(pred, target)["ssim"]
    assert ours < 0.8 and theirs > 0.95


def test_quantisation_rounds_half_up_and_clips():
    x = np.array([-0.2, 0.0, 0.5 / 255, 0.49 / 255, 1.0, 1.7])
    assert sidprotocol.to_8bit(x).tolist() == [0, 0, 1, 0, 255, 255]
    levels = np.array([0, 128, 129, 385, 65535], np.uint16)          # uint16: value / 65535 first
    assert sidprotocol.to_8bit(levels).tolist() == [0, 0, 1, 1, 255]


def test_psnr_on_0_255():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 48                     # MSE = 48^2 / 48 = 48
    assert sidprotocol.psnr(a, b) == pytest.approx(10 * math.log10(255 ** 2 / 48))
    assert sidprotocol.psnr(a, a) == math.inf
