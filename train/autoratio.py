"""`predict --ratio auto`: an amplification chosen from the dark image itself.

At training start the loop stores the level its inputs had: for each training pair the 99th
percentile of the packed, normalised short exposure times its amplification, and the median of
those over the pairs. At predict time, with no long exposure to take a ratio from, the ratio is the
one that brings the same percentile of the new image to that level (then the ratio policy's cap).
"""
from __future__ import annotations

import math

import numpy as np

from curate.common.errors import SidkitError
from curate.manifest import Manifest, black_levels

from . import rawpack

PERCENTILE = 99.0
STRIDE = 4          # every 4th packed pixel each way: 1/16 of the values, the same percentile to ~1e-3


def image_level(counts: np.ndarray, black, white: float, percentile: float = PERCENTILE) -> float:
    """The ``percentile`` of a packed raw (C, h, w counts) normalised to [0, 1], before any gain."""
    sample = np.asarray(counts[:, ::STRIDE, ::STRIDE])
    return float(np.percentile(rawpack.network_input(sample, black, white, 1.0), percentile))


def training_level(manifest: Manifest, cache, policy: str, split: str = "train") -> dict | None:
    """{'percentile', 'level', 'pairs'}: the median over ``split``'s pairs of image_level x gain,
    read from a filled train.cache.RawCache; None without such pairs. Stored in the checkpoint."""
    levels = []
    for row in manifest.rows[manifest.rows["split"] == split].itertuples():
        black, white = black_levels(row.black_level), float(row.white_level)
        counts = cache.packed(manifest.resolve(row.short_path), row.short_sha256, row.cfa, black, white)
        level = image_level(counts, rawpack.black_packed(row.cfa, black), white)
        levels.append(level * rawpack.amplification(row.ratio, policy))
    if not levels:
        return None
    return {"percentile": PERCENTILE, "level": float(np.median(levels)), "pairs": len(levels)}


def auto_ratio(level: float, stored: dict) -> float:
    """The ratio that brings an image whose percentile is ``level`` to the stored training level."""
    if not level > 0:
        raise SidkitError(f"the image's {stored['percentile']:g}th percentile is at the black level (too dark "
                          "to measure); pass --ratio with a number, e.g. --ratio 300")
    return float(stored["level"]) / level


def check_stored(stored) -> None:
    """ValueError unless ``stored`` is what training_level returns (for checkpoint checks)."""
    if not isinstance(stored, dict) or set(stored) != {"percentile", "level", "pairs"}:
        raise ValueError("is not {percentile, level, pairs}")
    numbers = [stored["percentile"], stored["level"]]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers) \
            or not 0 < stored["percentile"] <= 100 or not stored["level"] > 0:
        raise ValueError(f"has percentile {stored['percentile']!r} and level {stored['level']!r}")
    if not isinstance(stored["pairs"], int) or isinstance(stored["pairs"], bool) or stored["pairs"] < 1:
        raise ValueError(f"has pairs {stored['pairs']!r}")
