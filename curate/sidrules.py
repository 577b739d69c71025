"""The SID dataset's own conventions, for `curate import-sid` and `curate validate`.

- Three Sony scenes are misaligned with their ground truth; the original README (Aug 2018): "Please
  remove those images for quantitative results, but they still can be used for qualitative
  evaluations." They become `excluded` findings.
- The paper's test set is burst 00 of each test scene: the original test_Sony.py scores only
  `%05d_00*.ARW`, the file name's second field being the shot's number in its burst.
"""
from __future__ import annotations

from pathlib import Path

from .findings import Finding

MISALIGNED_SONY = ("10034", "10045", "10172")


def is_sid_sony(path: str | Path) -> bool:
    """True for a file in SID's Sony layout: .../Sony/short/NAME or .../Sony/long/NAME."""
    parent = Path(path).parent
    return parent.name in ("short", "long") and parent.parent.name == "Sony"


def is_misaligned(scene_id: str, short_path: str | Path) -> bool:
    return str(scene_id) in MISALIGNED_SONY and is_sid_sony(short_path)


def burst(path: str | Path) -> str:
    """The shot's number in its burst, the name's second field: '10003_01_0.1s.ARW' -> '01' ('' if none)."""
    fields = Path(path).stem.split("_")
    return fields[1] if len(fields) > 2 else ""


def in_paper_test_set(split: str, short_path: str | Path) -> bool:
    """False for a test pair that the paper did not score (a burst other than 00); True otherwise."""
    return split != "test" or burst(short_path) == "00"


def excluded_finding(pair_id: str, path: str | Path, scene_id: str, left_out: bool = False) -> Finding:
    fix = ("left out (--exclude-misaligned)" if left_out else
           "leave it out with `curate validate --clean` or `curate import-sid --exclude-misaligned`")
    return Finding(pair_id, str(path), "excluded",
                   f"SID Sony scene {scene_id} is misaligned with its ground truth; SID's authors leave it out "
                   f"of scores (fine for looking at); {fix}")


def excluded_findings(df) -> list[Finding]:
    """An `excluded` warning for every manifest row of a misaligned SID Sony scene."""
    return [excluded_finding(row.pair_id, row.short_path, row.scene_id)
            for row in df.itertuples() if is_misaligned(row.scene_id, row.short_path)]
