"""Scene-level splits, stratified by environment, deterministic and stable when scenes are added.

Within each environment, scenes are ranked by sha256(seed:scene_id); the first ranks go to test, the
next to val, the rest to train. Adding a scene inserts it somewhere in that order, so at most one
existing scene crosses each boundary; the same seed always gives the same split.
"""
from __future__ import annotations

import hashlib
import math

import pandas as pd

from .common.errors import SidkitError


def scene_rank_key(scene_id: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}:{scene_id}".encode()).hexdigest()


def _counts(amount: float, sizes: dict[str, int], what: str) -> dict[str, int]:
    """Scenes per environment for a fraction (0 < x < 1) or a total count (x >= 1)."""
    total = sum(sizes.values())
    if amount < 0:
        raise SidkitError(f"--{what} must be >= 0, got {amount:g}")
    if 0 < amount < 1:
        want = {env: amount * n for env, n in sizes.items()}
    else:
        if amount != int(amount):
            raise SidkitError(f"--{what} {amount:g}: give a fraction below 1 or a whole number of scenes")
        if amount > total:
            raise SidkitError(f"--{what} {int(amount)} scenes requested but the manifest has {total}")
        want = {env: amount * n / total for env, n in sizes.items()} if total else {}
    # largest remainder: whole counts that add up to the rounded total
    target = round(sum(want.values()))
    counts = {env: math.floor(w) for env, w in want.items()}
    for env in sorted(want, key=lambda e: (counts[e] - want[e], e))[: target - sum(counts.values())]:
        counts[env] += 1
    return counts


def assign_splits(df: pd.DataFrame, test: float = 0.2, val: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A copy of ``df`` with ``split`` set per scene (train/val/test), stratified by environment."""
    scenes = df.groupby("scene_id", sort=True)["environment"].first()
    sizes = scenes.value_counts().to_dict()
    n_test, n_val = _counts(test, sizes, "test"), _counts(val, sizes, "val")
    split_of = {}
    for env, group in scenes.groupby(scenes):
        ranked = sorted(group.index, key=lambda s: scene_rank_key(s, seed))
        t, v = n_test.get(env, 0), n_val.get(env, 0)
        if t + v > len(ranked):
            raise SidkitError(f"{env}: {t} test + {v} val scenes requested but only {len(ranked)} exist")
        for i, scene in enumerate(ranked):
            split_of[scene] = "test" if i < t else "val" if i < t + v else "train"
    out = df.copy()
    out["split"] = out["scene_id"].map(split_of)
    return out


def keep_splits(df: pd.DataFrame, previous: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """``df`` (a new scan) with every scene that ``previous`` (the manifest it replaces) holds back in
    that manifest's split: a re-scan after shooting more scenes keeps the user's `curate split`.
    Returns (df, scenes kept, new scenes); new scenes keep the split ``df`` gave them."""
    old = previous[previous["split"].isin(("train", "val", "test"))].groupby("scene_id")["split"].first()
    df = df.copy()
    known = df["scene_id"].isin(old.index)
    df.loc[known, "split"] = df.loc[known, "scene_id"].map(old)
    return df, int(df.loc[known, "scene_id"].nunique()), int(df.loc[~known, "scene_id"].nunique())
