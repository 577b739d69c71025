"""validate's checks that need no pixels: rows, splits, files."""
import hashlib

import pytest

from curate.manifest import Manifest, read_manifest, write_manifest
from curate.validate import file_findings, row_findings, split_findings, validate_manifest, without_error_pairs
from helpers import make_rows


def codes(findings):
    return sorted(f.code for f in findings)


def one_row(**changes):
    df = make_rows(n_scenes=1, shorts=1)
    for key, value in changes.items():
        df[key] = value
    return next(df.itertuples())


def test_clean_row_has_no_findings():
    assert row_findings(one_row()) == []


@pytest.mark.parametrize("changes, code", [
    ({"ratio": 20.0, "short_exposure_s": 0.5}, "ratio-out-of-range"),
    ({"ratio": 400.0, "short_exposure_s": 0.025}, "ratio-out-of-range"),
    ({"short_iso": 200.0}, "iso-mismatch"),
    ({"long_fnumber": 4.0}, "fnumber-mismatch"),
    ({"short_path": "Sony/short/00001_00_0.1s.ARW", "short_exposure_s": 1 / 30, "ratio": 300.0}, "name-exif-mismatch"),
])
def test_each_row_defect(changes, code):
    assert codes(row_findings(one_row(**changes))) == [code]


def test_ratio_bounds_are_options():
    assert row_findings(one_row(ratio=50.0, short_exposure_s=0.2), min_ratio=30) == []


def test_name_rounding_agrees():
    assert row_findings(one_row(short_path="Sony/short/00001_00_0.033s.ARW", short_exposure_s=1 / 30, ratio=300.0)) == []


def test_split_leak_and_unbalanced_split(tmp_path):
    df = make_rows(n_scenes=8)
    df["split"] = "train"
    df.loc[df.pair_id == "s00_1", "split"] = "test"
    assert codes(split_findings(Manifest(df, tmp_path))) == ["split-leak"]
    df = make_rows(n_scenes=8, envs=("indoor",) * 7 + ("outdoor",))
    found = split_findings(Manifest(df, tmp_path))
    assert codes(found) == ["unbalanced-split"] and "88%" in found[0].message


def test_missing_changed_and_duplicate_files(tmp_path):
    df = make_rows(n_scenes=2, shorts=1)
    for row in df.itertuples():
        for rel in (row.short_path, row.long_path):
            (tmp_path / rel).parent.mkdir(exist_ok=True)
            (tmp_path / rel).write_bytes(rel.encode())
    df["short_sha256"] = [hashlib.sha256(p.encode()).hexdigest() for p in df.short_path]
    df["long_sha256"] = [hashlib.sha256(p.encode()).hexdigest() for p in df.long_path]
    path = write_manifest(df, tmp_path / "m.csv")
    assert file_findings(read_manifest(path)) == []

    (tmp_path / "s00/long.dng").write_bytes(b"changed")
    (tmp_path / "s01/short_0.dng").unlink()
    (tmp_path / "s01/long.dng").write_bytes((tmp_path / "s00/short_0.dng").read_bytes())
    found = file_findings(read_manifest(path))
    assert codes(found) == ["checksum-mismatch", "checksum-mismatch", "duplicate-file", "missing-file"]

    manifest = read_manifest(path)
    kept = without_error_pairs(manifest.rows, validate_manifest(manifest, fast=True))
    assert kept.empty


@pytest.mark.parametrize("changes, column", [
    ({"long_exposure_s": 0.0, "ratio": 0.0}, "long_exposure_s"),
    ({"long_exposure_s": float("inf"), "ratio": float("inf")}, "long_exposure_s"),
    ({"short_exposure_s": float("nan")}, "short_exposure_s"),
    ({"height": 0}, "height"),
    ({"width": -1}, "width"),
    ({"black_level": "-1e9"}, "black_level, white_level"),
    ({"pair_id": ""}, "pair_id"),
    ({"ratio": 20.0}, "ratio"),
])
def test_impossible_values_are_bad_value_errors_and_never_crash(changes, column):
    found = row_findings(one_row(**changes))
    assert {f.code for f in found} == {"bad-value"} and found[0].severity == "error"
    assert found[0].message.startswith(f"column {column}:")


def test_formula_cells_are_warnings_naming_the_column():
    row = one_row(camera="=HYPERLINK(\"http://x\")", scene_id="@SUM(A1)", short_path="-cmd.dng",
                  long_path="+long.dng", environment="indoor")
    found = row_findings(row)
    assert codes(found) == ["formula-cell"] * 4 and all(f.severity == "warning" for f in found)
    assert {f.message.split("'")[1] for f in found} == {"camera", "scene_id", "short_path", "long_path"}
    # numbers and plain names are not formulas
    assert row_findings(one_row(camera="-5", scene_id="a-b", short_path="x/-1.dng")) == []


def test_paths_leaving_the_manifest_s_project_folder_warn_once_per_place(tmp_path):
    """The project folder is the one above the manifest's: manifests/ beside datasets/ (the README's
    layout, the demo's) gives no warning; paths that climb further, or absolute ones elsewhere, do."""
    from curate.validate import path_findings

    (tmp_path / "manifests").mkdir()
    df = make_rows(n_scenes=4, shorts=1)
    df.loc[0, "short_path"] = "../../etc/passwd"
    df.loc[1, ["short_path", "long_path"]] = ["../../elsewhere/a/short.dng", "../../elsewhere/a/long.dng"]
    df.loc[2, "long_path"] = "/dev/zero"
    df.loc[2, "short_path"] = str(tmp_path / "inside" / "short.dng")     # absolute but inside: fine
    df.loc[3, ["short_path", "long_path"]] = ["../datasets/a/short.dng", "../datasets/a/long.dng"]   # README layout
    manifest = read_manifest(write_manifest(df, tmp_path / "manifests" / "m.csv"))
    found = sorted(path_findings(manifest), key=lambda f: f.message)
    places = sorted(f.message.split(" for ")[1].split(";")[0] for f in found)
    depth = "/".join([".."] * len(tmp_path.parts[1:]))
    assert places == sorted(["../../etc", "../../elsewhere", f"../{depth}/dev"]), places
    assert all(f.code == "path-outside-root" and f.severity == "warning" for f in found)
    elsewhere = next(f for f in found if "for ../../elsewhere;" in f.message)
    assert elsewhere.message.startswith("2 path(s) of 1 pair(s)") and elsewhere.pair_id == "s01_0"
    escaping = make_rows(n_scenes=1, shorts=1)
    escaping["short_path"] = "../../outside/short.dng"
    assert "path-outside-root" in codes(validate_manifest(read_manifest(write_manifest(escaping, tmp_path / "manifests"
                                                                                       / "e.csv")), fast=True))
    assert path_findings(read_manifest(write_manifest(make_rows(), tmp_path / "ok.csv"))) == []


def test_validate_cli_refuses_an_impossible_manifest_in_one_line(tmp_path):
    from click.testing import CliRunner

    from curate.cli import main

    df = make_rows(n_scenes=1, shorts=1)
    df["long_exposure_s"], df["ratio"] = 0.0, 0.0
    path = write_manifest(df, tmp_path / "m.csv")
    result = CliRunner().invoke(main, ["validate", str(path), "--fast"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("error:") and "column 'long_exposure_s'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


NASTY = ["", "0", "-1", "inf", "nan", "1e-320", "x", "=1+1", "2048 2048", "99999999999999999999"]


@pytest.mark.slow
def test_any_cell_value_is_refused_by_the_reader_or_validated_without_a_crash(tmp_path):
    """Every column x nasty value: read_manifest raises SidkitError, or validate (fast) runs."""
    from curate.common.errors import SidkitError
    from curate.manifest import COLUMNS
    from helpers import set_cell

    outcomes = {"refused": 0, "validated": 0}
    path = write_manifest(make_rows(n_scenes=2, shorts=1), tmp_path / "m.csv")
    clean = path.read_text()
    for column in COLUMNS:
        for value in NASTY:
            path.write_text(clean)
            set_cell(path, column, value, row=1)
            try:
                manifest = read_manifest(path)
            except SidkitError as exc:
                assert "\n" not in str(exc) and str(path) in str(exc)
                outcomes["refused"] += 1
                continue
            found = validate_manifest(manifest, fast=True)  # files are missing: findings, no crash
            assert "missing-file" in codes(found)
            outcomes["validated"] += 1
    assert outcomes["refused"] > 100 and outcomes["validated"] > 40, outcomes
