"""unbalanced-split on small splits: fewer than 4 scenes are still checked."""
import pytest

from curate.validate import split_findings
from test_manifest import make_rows


@pytest.mark.parametrize("envs, flagged", [
    (("indoor", "indoor"), True),
    (("indoor", "outdoor"), False),
    (("outdoor",) * 3, True),
    (("indoor", "indoor", "outdoor"), False),
    (("indoor",), False),              # one scene cannot be balanced
])
def test_small_splits_of_one_environment_are_flagged(envs, flagged):
    df = make_rows(n_scenes=len(envs), envs=envs)
    df["split"] = "test"
    found = [f for f in split_findings(df) if f.code == "unbalanced-split"]
    assert bool(found) == flagged
    if flagged:
        assert found[0].path == "test" and f"of {len(envs)} scenes" in found[0].message
