"""validate from the rows: small splits checked for balance; a pair from two bodies found again."""
import pytest

from curate.manifest import Manifest
from curate.validate import split_findings
from helpers import make_rows


@pytest.mark.parametrize("envs, flagged", [
    (("indoor", "indoor"), True),
    (("indoor", "outdoor"), False),
    (("outdoor",) * 3, True),
    (("indoor", "indoor", "outdoor"), False),
    (("indoor",), False),              # one scene cannot be balanced
])
def test_small_splits_of_one_environment_are_flagged(envs, flagged, tmp_path):
    df = make_rows(n_scenes=len(envs), envs=envs)
    df["split"] = "test"
    found = [f for f in split_findings(Manifest(df, tmp_path)) if f.code == "unbalanced-split"]
    assert bool(found) == flagged
    if flagged:
        assert found[0].path == "test" and f"of {len(envs)} scenes" in found[0].message


def test_a_pair_from_two_bodies_is_found_again_from_the_manifest():
    from curate.validate import row_findings
    df = make_rows(n_scenes=1, shorts=1)
    df["short_camera"], df["long_camera"] = "Canon EOS 90D #123", "Canon EOS 90D #456"
    found = row_findings(next(df.itertuples()))
    assert [f.code for f in found] == ["camera-mismatch"] and "#456" in found[0].message
    df["long_camera"] = df["short_camera"]
    assert row_findings(next(df.itertuples())) == []
