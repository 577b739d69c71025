"""A run's data, read once: the manifest and its noise profile, what kind of data it is (the
checkpoint's 'data'), the decode cache filled, and the training batches, real or synthetic, behind
one call. `train run` builds it; `train eval` and `train predict` check a checkpoint's data
description against their raws with the functions here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch

from curate import cfa
from curate.common.errors import SidkitError
from curate.manifest import Manifest, is_longs_only, read_manifest
from curate.noiseprofile import NoiseProfile, read_profile
from curate.validate import row_findings

from .autoratio import training_level
from .cache import RawCache
from .config import RunConfig
from .dataset import Batch, PairDataset, sampler
from .evalinputs import Loader, SyntheticLoader, cache_loader
from .synthetic import SyntheticShorts, check_synthetic_data
from .world import World

GROUND_TRUTH = "rawpy postprocess: camera WB, no auto bright, 16 bit, user_flip 0"


def data_description(df: pd.DataFrame, ratio_policy: str, source: str) -> dict:
    """What a network is trained on, as its checkpoint stores it ('data'); one CFA kind per manifest."""
    kinds = sorted({cfa.kind(c).name for c in df["cfa"]})
    if len(kinds) != 1:
        raise SidkitError(f"{source}: mixes Bayer and X-Trans raws; train one network per CFA kind "
                          "(split the manifest by camera)")
    kind = cfa.KINDS[kinds[0]]
    return {"cfa_kind": kind.name, "channels": kind.channels, "upscale": kind.scale,
            "ratio_policy": ratio_policy, "input_clip": 1.0, "ground_truth": GROUND_TRUTH}


def check_fits(data: dict, df: pd.DataFrame, checkpoint, manifest) -> None:
    """SidkitError when the manifest's raws are not what the checkpoint's network takes."""
    if df.empty:
        return
    theirs = data_description(df, data["ratio_policy"], str(manifest))
    if (theirs["cfa_kind"], theirs["channels"]) != (data["cfa_kind"], data["channels"]):
        name = {k.name: k.label for k in cfa.KINDS.values()}
        raise SidkitError(f"{manifest}: {name[theirs['cfa_kind']]} raws ({theirs['channels']} channels) do not "
                          f"fit {checkpoint}, trained on {name[data['cfa_kind']]} ({data['channels']} "
                          "channels); use a checkpoint trained on this camera's data")


@dataclass
class RunData:
    """Everything a run reads from disk, read once. ``read`` takes the manifest and profile and
    resolves the config with them; ``prepare`` fills the cache and builds the batches."""
    config: RunConfig                   # resolved
    manifest: Manifest
    profile: NoiseProfile | None        # the noise profile of --synthetic, read
    longs_only: bool                    # every row's short is its long: shorts are synthesised
    description: dict                   # the checkpoint's 'data'
    cache: RawCache | None = None
    pairs: PairDataset | None = None
    crops: object = None                # pairs, or their copy on the device (dataset.sampler)
    synthetic: SyntheticShorts | None = None

    @classmethod
    def read(cls, config: RunConfig) -> RunData:
        if not config.manifest:
            config.resolved()           # its one-line error for a missing manifest
        manifest = read_manifest(config.manifest)
        df = manifest.rows
        profile = read_profile(config.synthetic) if config.synthetic else None
        config = config.resolved(df, profile)
        return cls(config, manifest, profile, is_longs_only(df),
                   data_description(df, config.ratio_policy, config.manifest))

    def warnings(self) -> list[str]:
        """Lines to show before training (the run goes on): synthetic settings a user may not mean,
        and rows with errors that `curate validate --fast` reports. A SidkitError for data that cannot
        train at all (long exposures only without a noise profile)."""
        c, rows = self.config, self.manifest.rows
        lines = check_synthetic_data(rows, c.manifest, c.synthetic, c.synthetic_fraction, noise=self.profile,
                                     longs_only=self.longs_only)
        errors = [f for row in rows.itertuples() for f in row_findings(row, longs_only=self.longs_only)
                  if f.severity == "error"]
        if errors:
            lines.append(f"{len(errors)} pair(s) of {c.manifest} have errors (first: {errors[0].code} in "
                         f"{errors[0].pair_id}); `curate validate {c.manifest} --clean CLEAN.csv` leaves them out")
        return lines

    def prepare(self, place: World, progress: bool = True) -> RunData:
        """A copy with the cache filled (each node's local rank 0 fills that node's cache while every
        other rank waits), the training crops (on ``place.device`` when they fit), the synthetic
        shorts, and the training inputs' level in the description (for `predict --ratio auto`)."""
        c, device = self.config, place.device
        cache = RawCache(c.cache_dir)
        if place.node_main:
            cache.fill(self.manifest, c.num_workers or None, progress=progress and place.main)
        place.barrier()
        pairs = PairDataset(self.manifest, cache, "train", c.ratio_policy, c.patch, c.patch_choices)
        synthetic = (SyntheticShorts(self.manifest, cache, self.profile, c.synthetic_fraction, c.synthetic_ratio,
                                     c.ratio_policy, c.patch, c.patch_choices, device, iso=c.synthetic_iso)
                     if c.synthetic else None)
        level = training_level(self.manifest, cache, c.ratio_policy)
        description = {**self.description, **({"input_level": level} if level else {})}
        return replace(self, cache=cache, pairs=pairs, crops=sampler(pairs, device), synthetic=synthetic,
                       description=description)

    def batch(self, scenes: list[int], generator: torch.Generator, device) -> Batch:
        """A training batch for ``scenes``: synthetic shorts on the steps that take them, else real crops."""
        batch = self.synthetic.batch(scenes, generator, device) if self.synthetic else None
        return batch or self.crops.batch(scenes, None, generator, device)

    def patch_note(self) -> str | None:
        """A note when the largest patch is larger than the smallest training image, else None."""
        largest, side = max(self.config.patch_choices or [self.config.patch]), self.pairs.smallest_side
        if largest <= side:
            return None
        return (f"note: patch {largest} is larger than the smallest training image ({side} packed pixels a side); "
                f"crops of it are {side} (--patch {side} or less crops every image alike)")

    def evaluation_loader(self) -> Loader:
        """How the periodic evaluation reads an image: from the cache; for long exposures only, on
        fixed synthetic shorts of its longs."""
        c = self.config
        if c.synthetic and self.longs_only:
            return SyntheticLoader(c.synthetic, c.synthetic_ratio, self.cache, iso=c.synthetic_iso, noise=self.profile)
        return cache_loader(self.cache)
