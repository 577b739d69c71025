"""`curate stats`: scenes, pairs, ratio and ISO ranges per split, environment and camera."""
from __future__ import annotations

import pandas as pd

KEYS = ["split", "environment", "camera"]


def manifest_stats(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (split, environment, camera) plus a total row."""
    def summarise(group: pd.DataFrame) -> dict:
        iso = pd.concat([group["short_iso"], group["long_iso"]]).dropna()
        return {
            "scenes": group["scene_id"].nunique(),
            "pairs": len(group),
            "ratio_min": group["ratio"].min(),
            "ratio_max": group["ratio"].max(),
            "iso_min": iso.min() if len(iso) else float("nan"),
            "iso_max": iso.max() if len(iso) else float("nan"),
        }

    keyed = df.assign(split=df["split"].replace("", "(none)"))
    rows = [{**dict(zip(KEYS, key)), **summarise(g)} for key, g in keyed.groupby(KEYS, sort=True)]
    if len(df):
        rows.append({"split": "all", "environment": "all", "camera": "all", **summarise(df)})
    return pd.DataFrame(rows, columns=KEYS + ["scenes", "pairs", "ratio_min", "ratio_max", "iso_min", "iso_max"])


def stats_table(stats: pd.DataFrame, title: str):
    from rich.table import Table

    table = Table(title=title)
    for column in stats.columns:
        table.add_column(column, justify="left" if column in KEYS else "right")
    for row in stats.itertuples(index=False):
        cells = [f"{v:g}" if isinstance(v, float) else str(v) for v in row]
        table.add_row(*cells, style="bold" if row.split == "all" else None)
    return table
