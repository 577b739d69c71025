"""Comparison sheets: images side by side, each under a label band with its name and PSNR/SSIM."""
from __future__ import annotations

import math

import numpy as np

Panel = tuple[np.ndarray, str, "dict[str, float] | None"]   # image (H x W x 3, [0, 1] or uint16), label, scores
PANEL_MAX_WIDTH = 2048      # wider panels (a 32.5 MP frame is 6960 wide) are shrunk by a whole factor


def panel_label(label: str, scores: dict[str, float] | None) -> str:
    """'network  PSNR 27.31 dB  SSIM 0.8123' (a perfect match reads 'PSNR inf dB')."""
    if not scores:
        return label
    value = scores.get("psnr", math.nan)
    psnr = "inf" if value == math.inf else f"{value:.2f}"
    return f"{label}  PSNR {psnr} dB  SSIM {scores.get('ssim', math.nan):.4f}"


def labelled_sheet(panels: list[Panel], gap: int = 4) -> np.ndarray:
    """Panels side by side (heights padded to the tallest), each with a dark band above holding its
    label; returns H x W x 3 float32 in [0, 1], ready for evaluate.save_png.

    Panels wider than PANEL_MAX_WIDTH are averaged down by the smallest whole factor that fits (the
    full-size output is saved beside the sheet). The font (Pillow's default, scalable) grows with
    the panel width so labels stay readable.
    """
    from PIL import Image, ImageDraw, ImageFont

    from .sidprotocol import to_8bit

    factor = max(-(-image.shape[1] // PANEL_MAX_WIDTH) for image, _, _ in panels)
    panels = [(np.asarray(Image.fromarray(to_8bit(image)).reduce(factor)), label, scores)
              for image, label, scores in panels]
    height = max(image.shape[0] for image, _, _ in panels)
    narrowest = min(image.shape[1] for image, _, _ in panels)
    size = max(10, min(32, narrowest // 28))
    font = ImageFont.load_default(size=size)
    band = int(size * 1.8)
    width = sum(image.shape[1] for image, _, _ in panels) + gap * (len(panels) - 1)
    sheet = Image.new("RGB", (width, height + band), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    left = 0
    for image, label, scores in panels:
        sheet.paste(Image.fromarray(image), (left, band))
        text = panel_label(label, scores)
        while draw.textlength(text, font=font) > image.shape[1] - 8 and "  " in text:
            text = text.rsplit("  ", 1)[0]          # drop SSIM, then PSNR, when a panel is too narrow
        while draw.textlength(text, font=font) > image.shape[1] - 8 and len(text) > 1:
            text = text[:-1]                        # and cut the name itself on a tiny panel
        draw.text((left + 4, (band - size) // 2), text, fill=(240, 240, 240), font=font)
        left += image.shape[1] + gap
    return np.asarray(sheet, dtype=np.float32) / 255.0
