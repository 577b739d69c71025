"""Full frames of real sensor sizes: scores, sheets and PNGs work a strip at a time on uint16 truths."""
import numpy as np
import pytest

from train import sheets
from train.sidprotocol import to_8bit


def test_wide_panels_are_averaged_down_by_a_whole_factor(monkeypatch):
    monkeypatch.setattr(sheets, "PANEL_MAX_WIDTH", 16)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 65536, (30, 40, 3), dtype=np.uint16)           # rawpy's rendering
    pred = truth.astype(np.float32) / 65535
    sheet = sheets.labelled_sheet([(pred, "network", {"psnr": 30.0, "ssim": 0.9}), (truth, "ground truth", None)])
    band = sheet.shape[0] - 10                                               # 30 rows / 3 = 10
    assert sheet.shape[1] == 2 * 14 + 4                                      # ceil(40 / 3) = 14 a panel
    blocks = to_8bit(truth)[:, :39].reshape(10, 3, 13, 3, 3).astype(np.float64).mean(axis=(1, 3))
    for left in (0, 18):                                                     # both panels: the same pixels
        panel = np.round(sheet[band:, left: left + 13] * 255)
        assert np.abs(panel - blocks).max() <= 1.0                           # box average, rounded


def test_a_sheet_under_the_width_limit_keeps_every_pixel():
    truth = np.random.default_rng(1).integers(0, 65536, (12, 20, 3), dtype=np.uint16)
    sheet = sheets.labelled_sheet([(truth, "ground truth", None)])
    assert np.array_equal(np.round(sheet[-12:] * 255).astype(np.uint8), to_8bit(truth))


@pytest.mark.parametrize("strip_pixels", [7, 1 << 21])
def test_8_bit_conversion_is_the_same_in_strips(monkeypatch, strip_pixels):
    monkeypatch.setattr("train.sidprotocol.STRIP_PIXELS", strip_pixels)
    image = np.random.default_rng(2).random((9, 5, 3))
    assert np.array_equal(to_8bit(image), (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
