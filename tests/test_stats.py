from curate.stats import manifest_stats
from helpers import make_rows


def test_stats_per_split_environment_camera():
    df = make_rows(n_scenes=4)
    df.loc[df.scene_id == "s00", "ratio"] = 20.0
    df.loc[df.scene_id == "s01", ["short_iso", "long_iso"]] = 800.0
    df["split"] = ["train"] * 4 + ["test"] * 4
    table = manifest_stats(df)
    row = table[(table.split == "train") & (table.environment == "indoor")].iloc[0]
    assert (row.scenes, row.pairs, row.ratio_min, row.ratio_max) == (1, 2, 20.0, 20.0)
    row = table[(table.split == "train") & (table.environment == "outdoor")].iloc[0]
    assert (row.iso_min, row.iso_max) == (800.0, 800.0)
    total = table[table.split == "all"].iloc[0]
    assert (total.scenes, total.pairs, total.ratio_min, total.ratio_max, total.iso_min, total.iso_max) == (
        4, 8, 20.0, 250.0, 100.0, 800.0)
