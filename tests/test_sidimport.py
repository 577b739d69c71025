"""SID's own conventions in import-sid and validate: the misaligned Sony scenes, the paper's test set."""
import json
import shutil

import pandas as pd
from click.testing import CliRunner

from curate.cli import main
from curate.manifest import read_manifest
from curate.sidimport import import_sid
from curate.sidrules import burst, excluded_findings

# SID number -> simulated scene (real DNGs from capture/dng.py); list -> its scenes
SCENES = {"00001": "sim01", "10034": "sim02", "10003": "sim03"}
LISTS = {"train": ["00001"], "test": ["10034", "10003"]}


def write_sid_tree(sim_dataset, root):
    """SID's layout and list files: every scene a long and a burst of two shorts (00, 01)."""
    for folder in ("short", "long"):
        (root / "Sony" / folder).mkdir(parents=True)
    for split, numbers in LISTS.items():
        lines = []
        for number in numbers:
            scene = SCENES[number]
            long = f"{number}_00_10s.ARW"
            shutil.copy(sim_dataset / scene / f"{scene}_long_10s.dng", root / "Sony/long" / long)
            for k in range(2):
                short = f"{number}_{k:02d}_0.04s.ARW"
                shutil.copy(sim_dataset / scene / f"{scene}_short_1-25s_{k:02d}.dng", root / "Sony/short" / short)
                lines.append(f"./Sony/short/{short} ./Sony/long/{long} ISO200 F8")
        (root / f"Sony_{split}_list.txt").write_text("\n".join(lines) + "\n")
    return [root / f"Sony_{split}_list.txt" for split in LISTS]


def test_misaligned_scenes_are_kept_with_excluded_warnings(sim_dataset, tmp_path):
    df, findings = import_sid(write_sid_tree(sim_dataset, tmp_path), tmp_path, tmp_path)
    assert len(df) == 6
    assert [(f.code, f.severity, f.pair_id) for f in findings] == [
        ("excluded", "warning", "10034_00_0.04s"), ("excluded", "warning", "10034_01_0.04s")]
    assert "scene 10034 is misaligned" in findings[0].message and "--exclude-misaligned" in findings[0].message


def test_exclude_misaligned_leaves_them_out_unread(sim_dataset, tmp_path):
    lists = write_sid_tree(sim_dataset, tmp_path)
    (tmp_path / "Sony/long/10034_00_10s.ARW").unlink()     # would be a missing-file error if it were read
    df, findings = import_sid(lists, tmp_path, tmp_path, exclude_misaligned=True)
    assert sorted(df.pair_id) == ["00001_00_0.04s", "00001_01_0.04s", "10003_00_0.04s", "10003_01_0.04s"]
    assert [(f.code, f.pair_id) for f in findings] == [("excluded", "10034_00_0.04s"), ("excluded", "10034_01_0.04s")]
    assert all("left out" in f.message for f in findings)


def test_paper_test_set_is_burst_00_of_the_test_scenes(sim_dataset, tmp_path):
    lists = write_sid_tree(sim_dataset, tmp_path)
    df, _ = import_sid(lists, tmp_path, tmp_path, paper_test_set=True)
    assert sorted(df.pair_id) == ["00001_00_0.04s", "00001_01_0.04s", "10003_00_0.04s", "10034_00_0.04s"]
    df, found = import_sid(lists, tmp_path, tmp_path, paper_test_set=True, exclude_misaligned=True)
    assert df.groupby("split")["pair_id"].apply(sorted).to_dict() == {
        "test": ["10003_00_0.04s"], "train": ["00001_00_0.04s", "00001_01_0.04s"]}
    assert [f.pair_id for f in found] == ["10034_00_0.04s"]


def test_only_sids_sony_layout_is_excluded():
    df = pd.DataFrame({"pair_id": ["a", "b", "c", "d"], "scene_id": ["10034", "10034", "10045", "10035"],
                       "short_path": ["../SID/Sony/short/10034_00_0.1s.ARW", "short/10034_00_0.1s.ARW",
                                      "Fuji/short/10045_00_0.1s.RAF", "Sony/short/10035_00_0.1s.ARW"]})
    assert [f.pair_id for f in excluded_findings(df)] == ["a"]
    assert [burst(p) for p in ("10003_01_0.1s.ARW", "Sony/short/10003_00_10s.ARW", "IMG_0001.CR2")] == ["01", "00", ""]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_import_then_validate_clean_drops_excluded_pairs(sim_dataset, tmp_path):
    lists = write_sid_tree(sim_dataset, tmp_path / "SID")
    out = tmp_path / "m" / "sony.csv"
    result = run("import-sid", *lists, "--root", tmp_path / "SID", "-o", out, "--format", "json")
    assert result.exit_code == 0, result.output       # warnings only
    assert [f["code"] for f in json.loads(result.stdout)] == ["excluded", "excluded"]
    assert len(read_manifest(out).rows) == 6
    clean = tmp_path / "m" / "clean.csv"
    result = run("validate", out, "--fast", "--format", "json", "--clean", clean)
    assert result.exit_code == 0, result.output
    assert sorted(f["pair_id"] for f in json.loads(result.stdout) if f["code"] == "excluded") == [
        "10034_00_0.04s", "10034_01_0.04s"]
    kept = read_manifest(clean).rows
    assert "10034" not in set(kept.scene_id) and len(kept) == 4
    assert "wrote " in result.stderr and ": 4 of 6 pairs" in result.stderr

    paper = tmp_path / "m" / "paper.csv"
    result = run("import-sid", lists[1], "--root", tmp_path / "SID", "-o", paper, "--paper-test-set",
                 "--exclude-misaligned")
    assert result.exit_code == 0, result.output
    assert list(read_manifest(paper).rows.pair_id) == ["10003_00_0.04s"]
