"""The curate commands through click's CliRunner: exit codes, output formats, errors."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def manifest(sim_dataset, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "sim.csv"
    result = run("scan", sim_dataset, "-o", path, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    return path


def test_scan_writes_a_manifest(manifest):
    assert manifest.read_text().startswith("# sidkit-manifest v1\n")


def test_split_and_stats(manifest, tmp_path):
    out = tmp_path / "split.csv"
    assert run("split", manifest, "--test", "0.5", "-o", out).exit_code == 0
    rows = json.loads(run("stats", out, "--format", "json").stdout)
    by_split = {(r["split"], r["environment"]): r["scenes"] for r in rows if r["split"] != "all"}
    assert by_split == {("test", "indoor"): 1, ("test", "outdoor"): 1, ("train", "indoor"): 1, ("train", "outdoor"): 1}


def test_validate_fast_json_and_exit_status(manifest, tmp_path):
    result = run("validate", manifest, "--fast", "--format", "json", "--clean", tmp_path / "clean.csv")
    found = json.loads(result.stdout)
    assert result.exit_code == 1
    assert {f["code"] for f in found if f["severity"] == "error"} == {"ratio-out-of-range"}
    assert set(found[0]) == {"pair_id", "path", "code", "severity", "message"}
    assert "sim04" not in (tmp_path / "clean.csv").read_text()
    assert run("validate", tmp_path / "clean.csv", "--fast").exit_code == 0


def test_validate_ratio_bounds(manifest):
    assert run("validate", manifest, "--fast", "--min-ratio", "10").exit_code == 0


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("pair_id,scene_id\n")
    result = run("stats", bad)
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0 and "not a sidkit manifest" in result.stderr
    result = run("scan", tmp_path / "nowhere", "-o", tmp_path / "m.csv")
    assert result.exit_code == 1 and "no such dataset folder" in result.stderr
    assert not (tmp_path / "m.csv").exists()


def test_scan_unreadable_file_reports_and_exits_1(sim_dataset, tmp_path):
    import shutil

    dataset = tmp_path / "d"
    shutil.copytree(sim_dataset, dataset)
    (dataset / "sim01" / "sim01_short_1-25s_00.dng").write_bytes(b"not a raw")
    result = run("scan", dataset, "-o", tmp_path / "m.csv", "--format", "json")
    assert result.exit_code == 1
    assert [f["code"] for f in json.loads(result.stdout)] == ["unreadable"]
    assert (tmp_path / "m.csv").read_text().count("\n") == 1 + 1 + 7


@pytest.mark.parametrize("args, message", [
    (["--min-ratio", "300", "--max-ratio", "100"], "--min-ratio 300 is above --max-ratio 100"),
    (["--workers", "-3"], "--workers -3"),
])
def test_validate_option_errors(manifest, args, message):
    result = run("validate", manifest, "--fast", *args)
    assert result.exit_code == 1 and message in result.stderr


def test_validate_clean_never_overwrites_its_input(manifest):
    before = manifest.read_text()
    result = run("validate", manifest, "--fast", "--clean", manifest)
    assert result.exit_code == 1 and "not over it" in result.stderr and manifest.read_text() == before


def test_errors_keep_brackets_and_unwritable_paths_are_one_line(manifest, tmp_path):
    result = run("scan", tmp_path / "nowhere[grid]", "-o", tmp_path / "m.csv")
    assert "nowhere[grid]" in result.stderr
    result = run("split", manifest, "--test", "0.5", "-o", "/proc/no/such/m.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error: /proc/no" in result.stderr and result.stderr.strip().count("\n") == 0


def test_inspect_shows_values_and_their_sources(sim_dataset):
    path = sim_dataset / "sim01" / "sim01_long_10s.dng"
    result = run("inspect", path, "--format", "json")
    (meta,) = json.loads(result.stdout)
    assert result.exit_code == 0 and meta["exposure_s"] == "10" and meta["sources"]["exposure_s"] == "exif"
    assert meta["sources"]["black_level"] == "dng-tags" and len(meta["black_level"]) == 4
    table = run("inspect", path)
    assert "exposure_s" in table.stdout and "dng-tags" in table.stdout
    assert run("inspect", sim_dataset / "captures.jsonl").exit_code == 1


def test_manifest_records_the_source_of_each_value(manifest):
    from curate.manifest import read_manifest

    df = read_manifest(manifest).rows
    assert df["long_sources"].str.contains("exif: make model exposure_s iso fnumber").all()
    assert df["long_sources"].str.contains("dng-tags: cfa black_level white_level").all()


def test_import_sid_without_a_readable_pair_writes_nothing(tmp_path):
    listing = tmp_path / "Sony_test_list.txt"
    listing.write_text("./Sony/short/10001_00_0.1s.ARW ./Sony/long/10001_00_10s.ARW ISO200 F8\n")
    out = tmp_path / "m.csv"
    result = run("import-sid", listing, "--root", tmp_path, "-o", out, "--format", "json")
    found = [(f["code"], Path(f["path"]).name) for f in json.loads(result.stdout)]
    assert result.exit_code == 1 and not out.exists()
    assert found == [("missing-file", "10001_00_0.1s.ARW"), ("missing-file", "10001_00_10s.ARW"),
                     ("no-pairs", "Sony_test_list.txt")]
    assert "no pairs" in result.stderr


def test_scan_keeps_both_cameras_of_a_mixed_pair(sim_dataset, tmp_path):
    import shutil

    from curate.manifest import read_manifest

    root = tmp_path / "folders"
    for role, source in (("short", "sim01/sim01_short_1-25s_00.dng"), ("long", "sim02/sim02_long_10s.dng")):
        (root / role).mkdir(parents=True)
        shutil.copy(sim_dataset / source, root / role / "a_00.dng")
    out = tmp_path / "m.csv"
    result = run("scan", root, "-o", out, "--format", "json")
    codes = [f["code"] for f in json.loads(result.stdout)]
    assert result.exit_code == 1 and "camera-mismatch" in codes
    row = read_manifest(out).rows.iloc[0]
    assert row.short_camera != row.long_camera and row.camera in row.long_camera
