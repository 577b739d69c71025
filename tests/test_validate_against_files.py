"""Issue 16, item 3: `curate validate` holds the manifest against its files (a value the manifest
states and the file contradicts is an error naming row, column and both values), and a file in two
splits is a leak whatever its scene ids."""
import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.manifest import Manifest, read_manifest, write_manifest
from curate.scan import scan_dataset
from curate.validate import split_findings, validate_manifest, without_error_pairs


@pytest.fixture
def scanned(sim_dataset, tmp_path) -> pd.DataFrame:
    """The simulated dataset, copied into tmp_path, and its manifest as scan writes it (clean but for
    sim04's ratio of 20)."""
    df, _ = scan_dataset(shutil.copytree(sim_dataset, tmp_path / "ds"), tmp_path)
    return df


def validated(df, tmp_path, fast=True):
    manifest = read_manifest(write_manifest(df, tmp_path / "m.csv"))
    return manifest, validate_manifest(manifest, fast=fast, workers=1)


def of_code(findings, code):
    return [f for f in findings if f.code == code]


def test_the_scanned_manifest_agrees_with_its_files(scanned, tmp_path):
    _, found = validated(scanned, tmp_path)
    assert sorted({f.code for f in found}) == ["ratio-out-of-range"]


@pytest.mark.parametrize("column, planted", [
    ("black_level", "2146 2148 2149 2147"),
    ("width", 132),
    ("camera", "Sidkit SIM-ML12"),
    ("white_level", 65535),
    ("cfa", "GRBG"),
])
def test_a_planted_row_value_is_an_error_naming_row_column_and_both_values(scanned, tmp_path, column, planted):
    stated = str(scanned.loc[0, column])
    scanned.loc[0, column] = planted                 # row 1: sim01's first short and the long
    _, found = validated(scanned, tmp_path)
    wrong = of_code(found, "manifest-file-mismatch")
    # both files of the pair contradict the row (the CFA is the long's: the short is held to its long's file)
    files = ["sim01_long_10s.dng"] if column == "cfa" else ["sim01_short_1-25s_00.dng", "sim01_long_10s.dng"]
    assert [f.path.rsplit("/", 1)[1] for f in wrong] == files and not of_code(found, "cfa-mismatch")
    assert {f.pair_id for f in wrong} == {"sim01_short_1-25s_00"} and {f.severity for f in wrong} == {"error"}
    quoted = (lambda v: repr(str(v))) if isinstance(planted, str) else (lambda v: f"{float(v):g}")
    assert wrong[-1].message == (f"row 1 (line 3), column {column!r}: the manifest says {quoted(planted)}, the file "
                                f"says {quoted(stated)}; re-scan the dataset (`curate scan`) or fix the cell")


def test_each_files_own_exposure_iso_aperture_and_body(scanned, tmp_path):
    scanned.loc[1, ["short_exposure_s", "ratio"]] = [0.05, 200.0]
    scanned.loc[2, "long_iso"] = 800.0
    scanned.loc[3, "short_fnumber"] = 2.0
    scanned.loc[4, "long_camera"] = "Sidkit SIM-DSLR14 #OTHER"
    _, found = validated(scanned, tmp_path)
    wrong = {(f.pair_id, f.message.split(":")[0]) for f in of_code(found, "manifest-file-mismatch")}
    assert wrong == {("sim01_short_1-25s_01", "row 2 (line 4), column 'short_exposure_s'"),
                     ("sim02_short_1-25s_00", "row 3 (line 5), column 'long_iso'"),
                     ("sim02_short_1-25s_01", "row 4 (line 6), column 'short_fnumber'"),
                     ("sim03_short_1-25s_00", "row 5 (line 7), column 'long_camera'")}
    exposure = next(f for f in found if "short_exposure_s" in f.message)
    assert "the manifest says 0.05, the file says 0.04" in exposure.message


def test_a_black_level_a_few_dn_off_is_still_caught_on_the_long(scanned, tmp_path):
    scanned.loc[0, "black_level"] = "2047 2048 2049 2047"     # one DN off, at one CFA position
    _, found = validated(scanned, tmp_path)
    wrong = of_code(found, "manifest-file-mismatch")
    # the short may differ from its long by BLACK_TOLERANCE_DN; the long is where the row's levels come from
    assert [f.path.rsplit("/", 1)[1] for f in wrong] == ["sim01_long_10s.dng"]
    assert "'2047 2048 2049 2047', the file says '2046 2048 2049 2047'" in wrong[0].message


def test_clean_leaves_out_the_contradicted_pairs(scanned, tmp_path):
    scanned.loc[0, "black_level"] = "0 0 0 0"
    scanned.loc[2, "width"] = 64
    manifest, found = validated(scanned, tmp_path)
    kept = without_error_pairs(manifest.rows, found)
    assert set(manifest.rows.pair_id) - set(kept.pair_id) == {
        "sim01_short_1-25s_00", "sim02_short_1-25s_00", "sim04_short_1-2s_00", "sim04_short_1-2s_01"}


def test_a_copy_under_another_scene_id_in_another_split_is_a_leak(scanned, tmp_path):
    copies = tmp_path / "copies"
    copies.mkdir()
    row = scanned.iloc[0].copy()
    for role in ("short", "long"):
        shutil.copy(tmp_path / row[f"{role}_path"], copies / f"renamed_{role}.dng")
        row[f"{role}_path"] = f"copies/renamed_{role}.dng"
    row["pair_id"], row["scene_id"], row["split"] = "copy", "sim99", "test"
    df = pd.concat([scanned, row.to_frame().T], ignore_index=True)
    _, found = validated(df, tmp_path)
    leaks = of_code(found, "split-leak")
    # the copied short, and the copied long (shared by both of sim01's shorts)
    assert len(leaks) == 2 and all(f.severity == "error" for f in leaks)
    assert "train: " in leaks[0].message and "test: copies/renamed_short.dng (scene sim99, pair copy)" in leaks[0].message
    assert "test: copies/renamed_long.dng (scene sim99, pair copy)" in leaks[1].message
    assert len(of_code(found, "duplicate-file")) == 2          # a copy is also a duplicate, as before


def test_the_same_path_under_another_scene_id_leaks_without_checksums(scanned, tmp_path):
    row = scanned.iloc[0].copy()
    row["pair_id"], row["scene_id"], row["split"] = "again", "other", "val"
    df = pd.concat([scanned, row.to_frame().T], ignore_index=True)
    df["short_sha256"] = df["long_sha256"] = ""
    leaks = of_code(split_findings(Manifest(df, tmp_path)), "split-leak")
    assert len(leaks) == 2 and "val: " in leaks[0].message and "(scene other, pair again)" in leaks[0].message


def test_scene_ids_differing_by_case_or_spaces_are_one_scene(scanned, tmp_path):
    scanned.loc[1, "scene_id"] = " SIM01 "              # sim01's second short, same split: a warning only
    _, found = validated(scanned, tmp_path)
    variants = of_code(found, "scene-id-variant")
    assert len(variants) == 1 and variants[0].severity == "warning" and "' SIM01 ', 'sim01'" in variants[0].message
    assert of_code(found, "split-leak") == []
    scanned.loc[1, "split"] = "test"                    # now in another split: a leak
    _, found = validated(scanned, tmp_path)
    assert [f.code for f in found if f.code in ("split-leak", "scene-id-variant")] == ["scene-id-variant", "split-leak"]


def test_unreadable_metadata_is_one_finding_with_or_without_pixels(scanned, tmp_path):
    (tmp_path / "junk.dng").write_bytes(b"not a raw file at all" * 100)
    scanned.loc[0, "short_path"], scanned.loc[0, "short_sha256"] = "junk.dng", ""
    for fast in (True, False):
        _, found = validated(scanned, tmp_path, fast=fast)
        junk = [f for f in found if f.path == "junk.dng"]
        assert [f.code for f in junk] == ["unreadable"], (fast, junk)


def test_cli_json_names_the_planted_defects(scanned, tmp_path):
    scanned.loc[0, "black_level"] = "2146 2148 2149 2147"
    scanned.loc[2, "width"] = 132
    scanned.loc[4, "camera"] = "Other Camera"
    path = write_manifest(scanned, tmp_path / "m.csv")
    result = CliRunner().invoke(main, ["validate", str(path), "--fast", "--format", "json",
                                       "--clean", str(tmp_path / "clean.csv")])
    assert result.exit_code == 1
    wrong = [(f["pair_id"], f["message"].split(":")[0]) for f in json.loads(result.stdout)
             if f["code"] == "manifest-file-mismatch"]
    assert sorted(set(wrong)) == [("sim01_short_1-25s_00", "row 1 (line 3), column 'black_level'"),
                                  ("sim02_short_1-25s_00", "row 3 (line 5), column 'width'"),
                                  ("sim03_short_1-25s_00", "row 5 (line 7), column 'camera'")]
    assert len(wrong) == 6
    kept = read_manifest(tmp_path / "clean.csv").rows
    assert not {"sim01_short_1-25s_00", "sim02_short_1-25s_00", "sim03_short_1-25s_00"} & set(kept.pair_id)


def test_a_short_whose_cfa_differs_from_its_long_s_is_a_cfa_mismatch(scanned, tmp_path):
    """A short of another colour pattern than its long: re-scanning fixes nothing, so the finding is
    cfa-mismatch (not manifest-file-mismatch or size-mismatch) and says what does."""
    import shutil

    from capture.simulate import simulate_dataset

    other = simulate_dataset(tmp_path / "bggr", scenes=1, profiles=("sim-mirrorless12",), size=(128, 96),
                             defects=False)
    short = tmp_path / scanned.loc[0, "short_path"]
    shutil.copyfile(next((other / "sim01").glob("*short*.dng")), short)
    scanned.loc[0, "short_sha256"] = ""
    _, found = validated(scanned, tmp_path)
    mismatch = of_code(found, "cfa-mismatch")
    assert len(mismatch) == 1 and mismatch[0].pair_id == scanned.loc[0, "pair_id"]
    assert mismatch[0].message.startswith("the short's colour filter is BGGR, its long's RGGB: the two do not line up")
    assert "re-scan" not in mismatch[0].message
