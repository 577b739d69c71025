"""train.metrics: golden values that pin PSNR (data range 1, per image) and SSIM (Wang et al.)."""
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from train.metrics import mean_metrics, psnr, ssim


def pair(seed=0, size=32, noise=0.05):
    rng = np.random.default_rng(seed)
    target = rng.random((size, size, 3))
    return np.clip(target + rng.normal(0, noise, target.shape), 0, 1), target


def ssim_by_hand(x, y):
    """Wang et al. 2004: Gaussian window sigma 1.5 (radius 5), population moments, K1 .01, K2 .03, L 1;
    the mean over pixels at least 5 from the border, then over channels."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for ch in range(3):
        a, b = x[..., ch], y[..., ch]
        g = lambda im: gaussian_filter(im, sigma=1.5, truncate=3.5)
        ua, ub = g(a), g(b)
        va, vb, vab = g(a * a) - ua ** 2, g(b * b) - ub ** 2, g(a * b) - ua * ub
        s = (2 * ua * ub + c1) * (2 * vab + c2) / ((ua ** 2 + ub ** 2 + c1) * (va + vb + c2))
        values.append(s[5:-5, 5:-5].mean())
    return float(np.mean(values))


def test_psnr_from_a_known_mse():
    target = np.full((8, 8, 3), 0.4)
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-9)       # MSE 0.01
    assert psnr(target + 0.01, target) == pytest.approx(40.0, abs=1e-9)      # MSE 0.0001
    assert psnr(target, target) == math.inf


def test_psnr_uses_data_range_one_not_the_image_maximum():
    target = np.full((8, 8, 3), 0.2)                   # max 0.2: inferring the range would differ
    assert psnr(target * 1.5, target) == pytest.approx(10 * math.log10(1 / 0.01), abs=1e-9)


def test_ssim_matches_a_hand_computation():
    pred, target = pair()
    assert ssim(pred, target) == pytest.approx(ssim_by_hand(pred, target), abs=1e-9)


def test_ssim_golden_value():
    pred, target = pair()
    assert ssim(pred, target) == pytest.approx(0.9854975, abs=1e-6)
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-12)


def test_ssim_uses_data_range_one():
    pred, target = pair(noise=0.02)
    assert ssim(pred * 0.25, target * 0.25) == pytest.approx(ssim_by_hand(pred * 0.25, target * 0.25), abs=1e-9)


def test_mean_of_per_image_psnr_differs_from_pooled_errors():
    target = np.full((16, 16, 3), 0.4)
    images = [(target + 0.1, target), (target + 0.01, target)]
    per_image = mean_metrics([{"psnr": psnr(p, t), "ssim": ssim(p, t)} for p, t in images])
    assert per_image["psnr"] == pytest.approx(30.0, abs=1e-9)
    pooled = 10 * math.log10(1 / np.mean([np.mean((p - t) ** 2) for p, t in images]))
    assert pooled == pytest.approx(22.967, abs=1e-3)
    assert mean_metrics([20.0, 40.0]) == 30.0


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="H x W x 3"):
        psnr(np.zeros((4, 4, 3)), np.zeros((4, 4)))


def test_float32_images_score_as_float64_ones():
    """Evaluation passes float32 images, scored in float32 (SSIM about twice as fast): same numbers."""
    pred, target = pair(size=48)
    p32, t32 = pred.astype(np.float32), target.astype(np.float32)
    assert ssim(p32, t32) == pytest.approx(ssim(p32.astype(np.float64), t32.astype(np.float64)), abs=1e-7)
    assert psnr(p32, t32) == pytest.approx(psnr(p32.astype(np.float64), t32.astype(np.float64)), abs=1e-5)


@pytest.mark.parametrize("strip_pixels", [40, 333, 1 << 21])
def test_scores_in_strips_are_the_whole_image_scores(monkeypatch, strip_pixels):
    """Strips of a few rows (each reading the rows SSIM's window reaches) give the whole-image
    numbers: the hand computation, and scikit-image on the image at once."""
    from skimage.metrics import structural_similarity

    pred, target = pair(seed=3, size=61)
    whole = structural_similarity(pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=1.0, channel_axis=-1)
    monkeypatch.setattr("train.metrics.STRIP_PIXELS", strip_pixels)
    assert ssim(pred, target) == pytest.approx(ssim_by_hand(pred, target), abs=1e-12)
    assert ssim(pred, target) == pytest.approx(whole, abs=1e-12)
    assert psnr(pred, target) == pytest.approx(10 * math.log10(1 / np.mean((pred - target) ** 2)), abs=1e-9)


def test_uint16_images_score_as_value_over_65535(monkeypatch):
    """A ground truth as rawpy renders it (uint16) scores as the float image it stands for."""
    monkeypatch.setattr("train.metrics.STRIP_PIXELS", 200)
    pred, target = pair(seed=4, size=40)
    target16 = np.round(target * 65535).astype(np.uint16)
    as_float = (target16.astype(np.float32) / np.float32(65535)).astype(np.float32)
    p32 = pred.astype(np.float32)
    assert ssim(p32, target16) == pytest.approx(ssim(p32, as_float), abs=1e-7)
    assert psnr(p32, target16) == pytest.approx(psnr(p32, as_float), abs=1e-6)
    assert psnr(target16, target16) == math.inf
