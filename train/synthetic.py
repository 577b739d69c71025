"""Synthetic shorts from long exposures on the training device (ELD's physics noise model).

For a batch of black-subtracted, white-normalised long crops (packed channels, as training sees
them): scale down by a ratio drawn from a range, convert to electrons through a system gain K drawn
log-uniformly from the profile's range, draw Poisson shot noise, add read noise of the profile's
Tukey-lambda shape (inverse CDF of uniform draws), one offset per sensor row, round to whole DN,
add the black level and clip at 0 and white, then normalise and amplify exactly as a real short
(train.rawpack.normalise, amplification, clip at 1). Every draw comes from one torch.Generator on
the batch's device, seeded from the run's generator, so a resumed run draws the same noise.
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch

from curate import cfa as sensor
from curate.common.errors import SidkitError
from curate.manifest import Manifest, is_longs_only
from curate.noiseprofile import NoiseProfile, log_linear, read_noise_at, read_profile

from . import rawpack


DEFAULT_RATIO = "100:300"      # synthetic ratios for a manifest of long exposures only (SID's range)


def parse_range(text: str, option: str = "--synthetic-ratio", low: float = 1, example: str = "100:300"
                ) -> tuple[float, float]:
    """'100:300' -> (100.0, 300.0); '250' -> (250.0, 250.0); a SidkitError naming ``option`` otherwise."""
    try:
        parts = [float(v) for v in str(text).split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or not (low <= parts[0] <= parts[1] < math.inf):
        raise SidkitError(f"{option} {text!r}: write LOW:HIGH with {low:g} <= LOW <= HIGH, e.g. {example}")
    return parts[0], parts[1]


def parse_ratio_range(text: str) -> tuple[float, float]:
    """'100:300' -> (100.0, 300.0); '250' -> (250.0, 250.0)."""
    return parse_range(text)


def parse_iso_range(text: str) -> tuple[float, float]:
    """'100:1600' -> (100.0, 1600.0); '800' -> (800.0, 800.0)."""
    return parse_range(text, "--synthetic-iso", low=1e-9, example="100:1600")


def data_ranges(df, profile: NoiseProfile) -> tuple[str, str]:
    """The ISO and ratio ranges ('LOW:HIGH') synthetic shorts are drawn from by default: those of the
    manifest's real shorts, where the network will be tested; for a manifest of long exposures only,
    the profile's measured ISOs nearest the longs' ISOs and SID's ratios (DEFAULT_RATIO)."""
    import pandas as pd

    measured = sorted(i.iso for i in profile.isos)
    pairs = df[df["short_path"] != df["long_path"]]
    if pairs.empty:
        longs = pd.to_numeric(df["long_iso"], errors="coerce").dropna()
        isos = {min(measured, key=lambda m: abs(math.log(m / v))) for v in longs if v > 0} or set(measured)
        return f"{min(isos):g}:{max(isos):g}", DEFAULT_RATIO
    isos = pd.to_numeric(pairs["short_iso"], errors="coerce").dropna()
    isos = isos[isos > 0]
    ratios = pd.to_numeric(pairs["ratio"], errors="coerce").dropna()
    ratios = ratios[ratios >= 1]
    iso = f"{isos.min():g}:{isos.max():g}" if len(isos) else f"{measured[0]:g}:{measured[-1]:g}"
    ratio = f"{ratios.min():.4g}:{ratios.max():.4g}" if len(ratios) else DEFAULT_RATIO
    return iso, ratio


def tukey_std(lam: float) -> float:
    """Standard deviation of the standard Tukey-lambda distribution (lambda > -0.5)."""
    if abs(lam) < 1e-6:
        return math.pi / math.sqrt(3)
    if lam <= -0.5:
        raise SidkitError(f"Tukey lambda {lam:g} has no finite variance; fit the profile again")
    var = 2 / lam ** 2 * (1 / (1 + 2 * lam) - math.exp(2 * math.lgamma(lam + 1) - math.lgamma(2 * lam + 2)))
    return math.sqrt(var)


def tukey_sample(shape, lam: float, generator: torch.Generator, device) -> torch.Tensor:
    """Standard Tukey-lambda draws by the inverse CDF: (u^l - (1-u)^l) / l, log(u / (1-u)) at l = 0."""
    u = torch.rand(shape, generator=generator, device=device).clamp_(1e-7, 1 - 1e-7)
    if abs(lam) < 1e-6:
        return torch.log(u / (1 - u))
    return (u.pow(lam) - (1 - u).pow(lam)) / lam


@dataclass
class NoiseModel:
    """A profile's noise as the synthesiser uses it: K range and the log-linear sigma fits."""
    k_min: float
    k_max: float
    read_slope: float
    read_intercept: float
    row_slope: float
    row_intercept: float
    tukey_lambda: float
    camera: str = ""
    table: tuple = ()          # (log K, log read, log row) of the measured ISOs: interpolated between them

    @classmethod
    def from_profile(cls, profile: NoiseProfile | str, iso: str | None = None) -> NoiseModel:
        """The profile's noise; K drawn over the gains of the ISO range ``iso`` ('LOW:HIGH'), else over
        every measured ISO."""
        if not isinstance(profile, NoiseProfile):
            profile = read_profile(profile)
        f = profile.fit
        if iso:
            low, high = parse_iso_range(iso)
            k_min, k_max = profile.k_at_iso(low), profile.k_at_iso(high)
        else:
            k_min, k_max = profile.k_range()
        return cls(k_min, k_max, f["read_slope"], f["read_intercept"], f["row_slope"], f["row_intercept"],
                   float(f["tukey_lambda"]), profile.camera, profile.log_table())

    def read_sigma(self, k: torch.Tensor) -> torch.Tensor:
        return self._sigma(k, self.read_slope, self.read_intercept, 1)

    def row_sigma(self, k: torch.Tensor) -> torch.Tensor:
        return self._sigma(k, self.row_slope, self.row_intercept, 2)

    def _sigma(self, k: torch.Tensor, slope: float, intercept: float, column: int) -> torch.Tensor:
        """The profile's noise at gain ``k`` by the check's own rules (curate.noiseprofile: read_noise_at,
        log_linear): the measured ISOs, interpolated between them, the fitted slope beyond; the plain
        fit without a table."""
        k = torch.as_tensor(k)
        log_k = np.log(k.detach().cpu().double().numpy())
        if len(self.table) == 3 and len(self.table[0]) >= 1:
            rule = read_noise_at if column == 1 else log_linear
            sigma = rule(log_k, self.table[0], self.table[column], slope)
        else:
            sigma = np.exp(slope * log_k + intercept)
        return torch.as_tensor(sigma, dtype=k.dtype if k.is_floating_point() else torch.float32, device=k.device)


@functools.lru_cache(maxsize=32)
def row_index(channels: int, h: int, w: int, device) -> tuple[torch.Tensor, int]:
    """For each value of a packed crop (C, h, w) (Bayer canonical R, Gr, B, Gb; X-Trans SID's 9
    channels), which of the row offsets (one per mosaic row) it takes, and how many to draw: the
    packing code (rawpack.pack_raw_counts) applied to a mosaic of row numbers, as if the crop started
    at a tile's corner. (C, h, 1) where it is the same along each packed row (Bayer), else (C, h, w)."""
    kind = sensor.kind_of_channels(channels)
    if kind is None:
        raise SidkitError(f"synthetic shorts need 4 (Bayer) or 9 (X-Trans) packed channels, not {channels}; "
                          "train on a manifest of Bayer or X-Trans raws")
    t, s = kind.tile, kind.scale
    height, width = -(-h * s // t) * t, -(-w * s // t) * t          # whole tiles covering the crop
    rows = sensor.row_planes((height, width), kind.pattern)[0][:, :h, :w]
    draw = rows % t * (height // t) + rows // t    # draw [phase, tile row]: Bayer's (n, 2, h) order as before
    if (draw == draw[:, :, :1]).all():
        draw = draw[:, :, :1]                      # the same along packed rows: broadcast, no gather
    return torch.from_numpy(np.ascontiguousarray(draw)).to(device), height


def synthetic_counts(long: torch.Tensor, black: torch.Tensor, white: torch.Tensor | float, ratio: torch.Tensor,
                     model: NoiseModel, generator: torch.Generator, *, k: torch.Tensor | None = None) -> torch.Tensor:
    """The raw counts (DN, black included, whole numbers in [0, white]) of the shorts that
    ``synthesise`` makes of ``long``; the same arguments, the same draws."""
    n, c, h, w = long.shape
    device, dtype = long.device, long.dtype
    black = torch.as_tensor(black, dtype=dtype, device=device).reshape(-1, c, 1, 1).expand(n, c, 1, 1)
    white = torch.as_tensor(white, dtype=dtype, device=device).reshape(-1, 1, 1, 1)
    span = white - black
    ratio = torch.as_tensor(ratio, dtype=dtype, device=device).reshape(n, 1, 1, 1)
    if k is None:
        u = torch.rand(n, generator=generator, device=device, dtype=dtype)
        k = torch.exp(math.log(model.k_min) + u * (math.log(model.k_max) - math.log(model.k_min)))
    k = torch.as_tensor(k, dtype=dtype, device=device).reshape(n, 1, 1, 1)
    signal_dn = long.clamp(0, 1) * span / ratio
    electrons = torch.poisson(signal_dn / k, generator=generator)
    read = tukey_sample((n, c, h, w), model.tukey_lambda, generator, device).to(dtype)
    read = read * (model.read_sigma(k) / tukey_std(model.tukey_lambda))
    index, mosaic_rows = row_index(c, h, w, device)
    rows = torch.randn((n, mosaic_rows), generator=generator, device=device, dtype=dtype)[:, index]
    counts = torch.round(electrons * k + read + rows * model.row_sigma(k) + black)
    return torch.minimum(counts.clamp_(min=0), white)


def synthesise(long: torch.Tensor, black: torch.Tensor, white: torch.Tensor | float, ratio: torch.Tensor,
               model: NoiseModel, generator: torch.Generator, *, k: torch.Tensor | None = None,
               amplification: torch.Tensor | None = None) -> torch.Tensor:
    """Short inputs (N, C, h, w) for long crops ``long`` (N, C, h, w, normalised in [0, 1]).

    ``black`` (C,) or (N, C) and ``white`` in DN are the long's levels; ``ratio`` (N,) the exposure
    ratio per sample; ``k`` (N,) the gain (default: log-uniform over the profile's range);
    ``amplification`` (N,) the input gain (default: the ratio). C is 4 (Bayer) or 9 (X-Trans): row
    noise is one offset per row of the mosaic the crop packs (``row_index``), so R and Gr share one,
    as do the X-Trans channels' pixels of one mosaic row.
    """
    n, c = long.shape[:2]
    dtype, device = long.dtype, long.device
    counts = synthetic_counts(long, black, white, ratio, model, generator, k=k)
    black = torch.as_tensor(black, dtype=dtype, device=device).reshape(-1, c, 1, 1).expand(n, c, 1, 1)
    white = torch.as_tensor(white, dtype=dtype, device=device).reshape(-1, 1, 1, 1)
    ratio = torch.as_tensor(ratio, dtype=dtype, device=device).reshape(n, 1, 1, 1)
    x = ((counts - black) / (white - black)).clamp_(0, 1)
    gain = ratio if amplification is None else torch.as_tensor(amplification, dtype=dtype, device=device).reshape(n, 1, 1, 1)
    return torch.clamp_max(x * gain, 1.0)


def draw_ratios(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    """Ratios uniform in [low, high]."""
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def amplifications(ratios: torch.Tensor, policy: str) -> torch.Tensor:
    """The input gain of each ratio under the run's amplification policy (rawpack.amplification)."""
    return torch.tensor([rawpack.amplification(float(r), policy) for r in ratios.cpu()], dtype=ratios.dtype,
                        device=ratios.device)


# --- in a training run ----------------------------------------------------------------------------
def longs_manifest(manifest: Manifest) -> Manifest:
    """One row per distinct long exposure of ``manifest``, standing in as its own short (ratio 1)."""
    longs = manifest.rows.drop_duplicates("long_sha256").copy()
    longs["short_path"], longs["short_sha256"], longs["ratio"] = longs["long_path"], longs["long_sha256"], 1.0
    return manifest.with_rows(longs)


def check_synthetic_data(df, manifest, profile: str | None, fraction: float | None = None, *,
                         noise: NoiseProfile | None = None, longs_only: bool | None = None) -> list[str]:
    """Before any decoding: a manifest of longs only without a noise profile is a SidkitError (it
    would train the network to copy its input); warning lines (returned: a user may mean it) for a
    profile of another camera than the manifest's and for real steps on longs only. ``noise`` and
    ``longs_only``: the profile and the manifest's kind when the caller has them."""
    only_longs = is_longs_only(df) if longs_only is None else longs_only
    if not profile:
        if only_longs:
            raise SidkitError(f"{manifest}: every row's short is its long (long exposures only), so there is "
                              "nothing to learn without synthetic shorts; pass --synthetic PROFILE (a noise profile "
                              "of the camera, made by `curate noise-profile`)")
        own = df[(df["split"] == "train") & (df["short_path"] == df["long_path"])]
        if len(own):
            raise SidkitError(f"{manifest}: {len(own)} training row(s) are long exposures standing in as their own "
                              f"shorts (first: {own['pair_id'].iloc[0]}), which teach the network to copy its input "
                              "without synthetic shorts; pass --synthetic PROFILE, or leave those rows out")
        return []
    warnings = []
    noise = noise or read_profile(profile)
    others = sorted({str(c) for c in df["camera"] if not noise.of_camera(c)})
    if others:
        warnings.append(f"noise profile {profile} is of {noise.camera!r}, but {manifest} has raws of "
                        f"{', '.join(map(repr, others))}; its synthetic shorts carry that camera's noise "
                        "(`curate noise-profile` on this camera's dark and flat frames makes its own)")
    if only_longs and fraction is not None and fraction < 1:
        warnings.append(f"{manifest} has long exposures only, so the {1 - fraction:.0%} of steps without synthetic "
                        "shorts teach the network to copy its input; leave out --synthetic-fraction (1.0 here)")
    return warnings


def evaluation_point(model: NoiseModel, ratio: str) -> tuple[float, float]:
    """(ratio, K) of the synthetic shorts a run is scored on: the geometric middles of the ratio range
    and of the profile's K range (100:300 -> 173.2)."""
    low, high = parse_ratio_range(ratio)
    return math.sqrt(low * high), math.sqrt(model.k_min * model.k_max)


def row_generator(key: str) -> torch.Generator:
    """A CPU generator seeded from a file's checksum (or any text naming it): the same draws for that
    file in every run."""
    return torch.Generator().manual_seed(int(hashlib.sha256(str(key).encode()).hexdigest()[:15], 16))


class SyntheticShorts:
    """Synthetic batches of a run: crops of the training split's longs, shorts synthesised on the
    device from a noise profile. ``batch`` returns None for the steps that keep the real pair
    (1 - fraction of them; never for a scene of long exposures only); every draw comes from the run's
    generator, so resume stays exact."""

    def __init__(self, manifest: Manifest, cache, profile: str | NoiseProfile, fraction: float, ratio: str | None,
                 policy: str, patch: int, patch_choices, device, iso: str | None = None):
        from .dataset import PairDataset, sampler

        self.model = NoiseModel.from_profile(profile, iso)      # iso, ratio: the run's resolved ranges
        self.low, self.high = parse_ratio_range(ratio or DEFAULT_RATIO)
        if not 0 <= fraction <= 1:
            raise SidkitError(f"--synthetic-fraction {fraction:g}: give a fraction from 0 to 1")
        self.fraction, self.policy, self.device = float(fraction), policy, torch.device(device)
        self.longs = PairDataset(longs_manifest(manifest), cache, "train", "fixed:1", patch, patch_choices)
        train = manifest.rows[manifest.rows["split"] == "train"]
        own = train["short_path"] == train["long_path"]
        # a scene whose rows are all long exposures standing in as their own shorts has no real short:
        # every step on it is synthetic (a manifest of N pairs plus clean longs of other scenes)
        self.no_real_short = [bool(own[train["scene_id"] == scene].all()) for scene in self.longs.scene_ids]
        self.crops = sampler(self.longs, device)
        self.black = [torch.from_numpy(pairs[0].black) for pairs in self.longs.scenes]
        self.white = [float(pairs[0].white) for pairs in self.longs.scenes]
        self.noise = torch.Generator(device=self.device)

    def batch(self, scenes: list[int], generator: torch.Generator, device):
        """A synthetic Batch for ``scenes`` (indices of the training split's sorted scene ids), or None."""
        from .dataset import Batch

        forced = any(self.no_real_short[s] for s in scenes)
        if not forced and self.fraction < 1 and float(torch.rand(1, generator=generator)) >= self.fraction:
            return None
        long = self.crops.batch(scenes, None, generator, device)
        n = len(scenes)
        ratio = self.low + (self.high - self.low) * torch.rand(n, generator=generator, dtype=torch.float64)
        gain = torch.tensor([rawpack.amplification(float(r), self.policy) for r in ratio], dtype=torch.float32)
        self.noise.manual_seed(int(torch.randint(2 ** 62, (1,), generator=generator)))
        black = torch.stack([self.black[s] for s in scenes]).to(device, non_blocking=True)
        white = torch.tensor([self.white[s] for s in scenes], dtype=torch.float32).to(device, non_blocking=True)
        gain = gain.to(device, non_blocking=True)
        x = synthesise(long.input, black, white, ratio.float().to(device, non_blocking=True), self.model, self.noise,
                       amplification=gain)
        return Batch(x, long.target, gain)
