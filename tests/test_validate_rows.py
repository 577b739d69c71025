"""validate's checks that need no pixels: rows, splits, files."""
import hashlib

import pytest

from curate.manifest import read_manifest, write_manifest
from curate.validate import file_findings, row_findings, split_findings, validate_manifest, without_error_pairs
from test_manifest import make_rows


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
    ({"ratio": 20.0}, "ratio-out-of-range"),
    ({"ratio": 400.0}, "ratio-out-of-range"),
    ({"short_iso": 200.0}, "iso-mismatch"),
    ({"long_fnumber": 4.0}, "fnumber-mismatch"),
    ({"short_path": "Sony/short/00001_00_0.1s.ARW", "short_exposure_s": 1 / 30}, "name-exif-mismatch"),
])
def test_each_row_defect(changes, code):
    assert codes(row_findings(one_row(**changes))) == [code]


def test_ratio_bounds_are_options():
    assert row_findings(one_row(ratio=50.0), min_ratio=30) == []


def test_name_rounding_agrees():
    assert row_findings(one_row(short_path="Sony/short/00001_00_0.033s.ARW", short_exposure_s=1 / 30)) == []


def test_split_leak_and_unbalanced_split():
    df = make_rows(n_scenes=8)
    df["split"] = "train"
    df.loc[df.pair_id == "s00_1", "split"] = "test"
    assert codes(split_findings(df)) == ["split-leak"]
    df = make_rows(n_scenes=8, envs=("indoor",) * 7 + ("outdoor",))
    found = split_findings(df)
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
    kept = without_error_pairs(manifest, validate_manifest(manifest, fast=True))
    assert kept.empty
