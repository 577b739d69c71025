"""What an evaluation scores, per pair: the network's input, the ground truth and the baseline,
read from the raws, from a filled decode cache, or (a manifest of long exposures only) synthesised
from the long with the run's noise model. A Loader gives (input, truth, gain) for a manifest row.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import pandas as pd
import torch

from curate import cfa as sensor
from curate.common.errors import SidkitError
from curate.manifest import Manifest, black_levels, is_longs_only, verify_checksum

from . import rawpack


def read_input(manifest: Manifest, row, policy: str) -> tuple[np.ndarray, float]:
    """The network input of a pair: the packed short exposure times its amplification, clipped to 1."""
    frame = rawpack.read_raw(verify_checksum(manifest.resolve(row.short_path), row.short_sha256), row.cfa,
                             black_levels(row.black_level), float(row.white_level))
    gain = rawpack.amplification(row.ratio, policy)
    return rawpack.pack(frame, gain), gain


def read_truth(manifest: Manifest, row) -> np.ndarray:
    """The long exposure's rendering, uint16 H x W x 3 as rawpy gives it (train.metrics scores it as
    value / 65535: no full-size float copy of a 32.5 MP frame)."""
    return rawpack.ground_truth(verify_checksum(manifest.resolve(row.long_path), row.long_sha256))


def baseline_image(path: str | os.PathLike, black: list[float], white: float, gain: float, *,
                   packed: np.ndarray | None = None, cfa: str | None = None) -> np.ndarray:
    """The short exposure with its counts above black scaled by ``gain``, rendered like the truth
    (uint16 H x W x 3).

    ``packed``: raw counts as rawpack.pack_raw_counts gathers them (of CFA ``cfa``), e.g. a synthetic
    short, put in place of the counts of ``path`` (the file whose mosaic and colours render them)."""
    with rawpack.open_cfa_raw(path) as raw:
        counts = raw.raw_image_visible
        level = sensor.mosaic_black(black, raw)
        source = counts.astype(np.float32)
        if packed is not None:
            source[...] = level          # the edge rows and columns that packing leaves out: black
            rawpack.unpack_raw_counts(packed, cfa, source, sensor.raw_origin(raw, path))
        scaled = level + np.maximum(source - level, 0) * np.float32(gain)
        counts[...] = np.clip(scaled, 0, white).astype(np.uint16)
        return rawpack.render(raw, path)


Loader = Callable[[Manifest, object, str], tuple[np.ndarray, np.ndarray, float]]


def load_from_raw(manifest: Manifest, row, policy: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(input, truth, gain) of a pair, decoded from its raw files."""
    x, gain = read_input(manifest, row, policy)
    return x, read_truth(manifest, row), gain


def cache_loader(cache) -> Loader:
    """A Loader reading a filled train.cache.RawCache instead of decoding the raws again."""
    def load(manifest: Manifest, row, policy: str) -> tuple[np.ndarray, np.ndarray, float]:
        black, white = black_levels(row.black_level), float(row.white_level)
        counts = cache.packed(manifest.resolve(row.short_path), row.short_sha256, row.cfa, black, white)
        gain = rawpack.amplification(row.ratio, policy)
        truth = cache.truth(manifest.resolve(row.long_path), row.long_sha256)
        x = rawpack.network_input(counts, rawpack.black_packed(row.cfa, black), white, gain)
        return x, truth, gain
    return load


class SyntheticLoader:
    """A Loader for a manifest of long exposures only: each long is scored on a synthetic short of it
    (train.synthetic.synthetic_counts, the training's noise model) at one fixed point, the geometric
    middles of the ratio range and of the profile's K range, amplified by the run's policy. The draws
    come from a generator seeded from the long's checksum, on the CPU: the same short for that image
    at every evaluation, in a resumed run and in `train eval`. Reads the long from ``cache`` (a
    filled train.cache.RawCache), else decodes its raw."""

    def __init__(self, profile: str | os.PathLike, ratio: str | None, cache=None, iso: str | None = None,
                 noise=None):
        """``noise``: the curate.noiseprofile.NoiseProfile at ``profile`` when the caller has read it."""
        from .synthetic import DEFAULT_RATIO, NoiseModel, evaluation_point

        self.profile, self.cache = str(profile), cache
        self.model = NoiseModel.from_profile(noise or self.profile, iso)
        ratio = ratio or DEFAULT_RATIO
        self.ratio, self.k = evaluation_point(self.model, ratio)

    def describe(self) -> dict:
        return {"kind": "synthetic", "profile": self.profile, "ratio": self.ratio, "k": self.k}

    def short_counts(self, manifest: Manifest, row) -> tuple[np.ndarray, np.ndarray]:
        """(the synthetic short's packed raw counts, float32 (C, h, w); the long's truth, uint16 H x W x 3)."""
        from .synthetic import row_generator, synthetic_counts

        black, white = black_levels(row.black_level), float(row.white_level)
        path = manifest.resolve(row.long_path)
        if self.cache is not None:
            counts = self.cache.packed(path, row.long_sha256, row.cfa, black, white)
            truth = self.cache.truth(path, row.long_sha256)
        else:
            counts = rawpack.pack_raw_counts(rawpack.read_raw(verify_checksum(path, row.long_sha256), row.cfa,
                                                              black, white))
            truth = read_truth(manifest, row)
        level = rawpack.black_packed(row.cfa, black)
        long = torch.from_numpy(rawpack.network_input(counts, level, white))[None]
        short = synthetic_counts(long, torch.from_numpy(level), white, torch.tensor([self.ratio]), self.model,
                                 row_generator(row.long_sha256 or row.long_path), k=torch.tensor([self.k]))
        return short[0].numpy(), truth

    def load(self, manifest: Manifest, row, policy: str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """(input, truth, gain) as a Loader gives them, and the short's packed raw counts."""
        counts, truth = self.short_counts(manifest, row)
        gain = rawpack.amplification(self.ratio, policy)
        level = rawpack.black_packed(row.cfa, black_levels(row.black_level))
        return rawpack.network_input(counts, level, float(row.white_level), gain), truth, gain, counts

    def __call__(self, manifest: Manifest, row, policy: str) -> tuple[np.ndarray, np.ndarray, float]:
        return self.load(manifest, row, policy)[:3]


def synthetic_inputs(df: pd.DataFrame, config: dict, profile, manifest, checkpoint) -> SyntheticLoader | None:
    """`train eval`'s loader for a manifest of long exposures only (None for real pairs): ``profile``,
    else the one recorded in the checkpoint's config, at the run's synthetic ratio range."""

    if not is_longs_only(df):
        return None
    fix = "pass --synthetic PROFILE (a noise profile of the camera, made by `curate noise-profile`)"
    recorded = config.get("synthetic")
    if not (profile or recorded):
        raise SidkitError(f"{manifest}: every row's short is its long (long exposures only) and {checkpoint} "
                          f"records no noise profile to synthesise shorts with; {fix}")
    try:
        return SyntheticLoader(profile or recorded, config.get("synthetic_ratio"), iso=config.get("synthetic_iso"))
    except SidkitError as exc:
        if profile:
            raise
        raise SidkitError(f"{manifest}: long exposures only, and the noise profile {checkpoint} records does not "
                          f"read ({exc}); {fix}") from None
