import pytest

from curate.common.errors import SidkitError
from curate.split import assign_splits
from helpers import make_rows


def scene_splits(df):
    return df.drop_duplicates("scene_id").set_index("scene_id")["split"].to_dict()


def test_study_setup_is_one_call():
    df = assign_splits(make_rows(n_scenes=20), test=0.5)
    scenes = df.drop_duplicates("scene_id")
    counts = scenes.groupby(["split", "environment"]).size().to_dict()
    assert counts == {("test", "indoor"): 5, ("test", "outdoor"): 5, ("train", "indoor"): 5, ("train", "outdoor"): 5}
    assert (df.groupby("scene_id")["split"].nunique() == 1).all()


def test_counts_and_val():
    df = assign_splits(make_rows(n_scenes=20), test=10, val=4, seed=3)
    counts = df.drop_duplicates("scene_id")["split"].value_counts().to_dict()
    assert counts == {"train": 6, "test": 10, "val": 4}


def test_deterministic_and_seeded():
    rows = make_rows(n_scenes=20)
    assert scene_splits(assign_splits(rows, 0.3, seed=1)) == scene_splits(assign_splits(rows, 0.3, seed=1))
    assert scene_splits(assign_splits(rows, 0.3, seed=1)) != scene_splits(assign_splits(rows, 0.3, seed=2))


def test_stable_when_scenes_are_added():
    before = scene_splits(assign_splits(make_rows(n_scenes=40), test=10))
    after = scene_splits(assign_splits(make_rows(n_scenes=42), test=10))
    moved = [s for s in before if before[s] != after[s]]
    assert len(moved) <= 2


def test_impossible_requests():
    with pytest.raises(SidkitError, match="requested but the manifest has 4"):
        assign_splits(make_rows(n_scenes=4), test=10)
    with pytest.raises(SidkitError, match="fraction below 1 or a whole number"):
        assign_splits(make_rows(n_scenes=4), test=1.5)
