"""curate scan --longs-only (every long exposure standing as its own short) and validate on its
manifest, on real DNGs from the simulated sensor and capture/dng.py."""
import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from capture.dng import write_dng
from capture.simulate import write_folder_layout
from curate.cli import main
from curate.common.errors import SidkitError
from curate.manifest import is_longs_only, read_manifest, write_manifest
from curate.scan import scan_dataset, scan_scenes
from curate.validate import validate_manifest
from helpers import T0, codes_of, shoot

LONG_COLUMNS = ("path", "exposure_s", "iso", "fnumber", "sha256", "camera", "sources")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def assert_longs_only(df):
    """Every row a long standing as its own short, as is_longs_only (train's rule too) wants."""
    for column in LONG_COLUMNS:
        short, long = df[f"short_{column}"], df[f"long_{column}"]
        assert ((short == long) | (short.isna() & long.isna())).all(), column
    assert (df["ratio"] == 1.0).all() and len(df["long_sha256"][0]) == 64
    assert (df["pair_id"] == [Path(p).stem for p in df["long_path"]]).all()
    assert df.groupby("scene_id")["split"].nunique().max() == 1 and set(df["split"]) <= {"train", "val", "test"}
    assert is_longs_only(df)


def test_capture_log_gives_each_scenes_long_with_the_values_of_a_normal_scan(sim_dataset, tmp_path):
    longs, findings = scan_dataset(sim_dataset, tmp_path, longs_only=True)
    pairs, _ = scan_dataset(sim_dataset, tmp_path)
    assert findings == [] and len(longs) == 4
    assert_longs_only(longs)
    assert longs["pair_id"].tolist() == [f"sim0{i}_long_10s" for i in range(1, 5)]
    same = ["scene_id", "environment", "long_path", "long_exposure_s", "long_iso", "long_sha256", "camera", "cfa",
            "black_level", "white_level", "width", "height"]
    assert (longs[same].values.tolist() == pairs.drop_duplicates("long_path")[same].values.tolist())
    assert (longs["long_exposure_s"] == 10.0).all() and not is_longs_only(pairs)


def test_a_broken_long_is_a_finding_and_a_broken_short_is_not_read(sim_dataset, tmp_path):
    dataset = tmp_path / "d"
    shutil.copytree(sim_dataset, dataset)
    (dataset / "sim01" / "sim01_long_10s.dng").write_bytes(b"\x00" * 100)
    (dataset / "sim02" / "sim02_short_1-25s_00.dng").write_bytes(b"\x00" * 100)
    df, findings = scan_dataset(dataset, longs_only=True)
    assert codes_of(findings) == [("unreadable", "sim01_long_10s.dng")] and findings[0].pair_id == "sim01_long_10s"
    assert sorted(df["scene_id"]) == ["sim02", "sim03", "sim04"]


def test_folder_convention_takes_every_file_under_long(sim_dataset, tmp_path):
    folders = write_folder_layout(sim_dataset, tmp_path / "folders")
    shutil.copy(next((folders / "indoor" / "short").iterdir()), folders / "indoor" / "short" / "IMG_0001.dng")
    df, findings = scan_dataset(folders, longs_only=True)
    assert findings == [] and len(df) == 4       # short/ is not looked at: no `unpaired` for IMG_0001
    assert_longs_only(df)
    assert df.set_index("scene_id")["environment"].to_dict() == {
        "sim01": "indoor", "sim02": "indoor", "sim03": "outdoor", "sim04": "outdoor"}
    assert all(Path(p).parent.name == "long" for p in df["long_path"])
    assert codes_of(scan_dataset(folders)[1]) == [("unpaired", "IMG_0001.dng")]


def test_card_dump_takes_each_scenes_longest_one_shot_scenes_included(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_0001.DNG", 0, "1/25")
    shoot(card, "IMG_0002.DNG", 1, "10")          # scene 1: a pair, its long
    shoot(card, "IMG_0003.DNG", 200, "1/50")      # scene 2: one shot
    shoot(card, "IMG_0004.DNG", 400, "5")         # scene 3: 5 s, then a bracket and the same 5 s again
    shoot(card, "IMG_0005.DNG", 410, "4")
    shoot(card, "IMG_0006.DNG", 420, "5")
    shoot(card, "IMG_0007.DNG", 600, "1/25", iso=3200)   # scene 4: one shot at another ISO
    (card / "IMG_0008.DNG").write_bytes(b"II*\x00" + b"\xff" * 60)
    df, findings = scan_dataset(card, longs_only=True, test=0.25, val=0.25)
    assert sorted(df["pair_id"]) == ["IMG_0002", "IMG_0003", "IMG_0004", "IMG_0007"]
    assert sorted(df["scene_id"]) == ["card-IMG_0001", "card-IMG_0003", "card-IMG_0004", "card-IMG_0007"]
    assert_longs_only(df)
    assert df.set_index("pair_id")["long_exposure_s"].to_dict() == {
        "IMG_0002": 10.0, "IMG_0003": 0.02, "IMG_0004": 5.0, "IMG_0007": 0.04}
    assert set(df["split"]) == {"train", "val", "test"}
    assert codes_of(findings) == [("bracket", "IMG_0005.DNG"), ("bracket", "IMG_0006.DNG"),
                                  ("unreadable", "IMG_0008.DNG")]
    assert "--longs-only takes one long per scene" in findings[1].message
    # a normal scan of the same card: one pair, the one-shot scenes `unpaired`
    pairs, normal = scan_dataset(card)
    assert pairs["pair_id"].tolist() == ["IMG_0001"]
    assert [name for code, name in codes_of(normal) if code == "unpaired"] == [
        "IMG_0003.DNG", "IMG_0004.DNG", "IMG_0006.DNG", "IMG_0007.DNG"]
    shots, _ = scan_scenes(card, longs_only=True)
    assert [(s.path.name, s.role) for s in shots if s.role == "long"] == [
        ("IMG_0002.DNG", "long"), ("IMG_0003.DNG", "long"), ("IMG_0004.DNG", "long"), ("IMG_0007.DNG", "long")]


def test_no_long_exposure_is_a_no_pairs_error_and_writes_nothing(sim_dataset, tmp_path):
    folders = write_folder_layout(sim_dataset, tmp_path / "folders")
    for long_dir in folders.glob("*/long"):
        shutil.rmtree(long_dir)
    df, findings = scan_dataset(folders, longs_only=True)
    assert len(df) == 0 and [f.code for f in findings] == ["no-pairs"]
    assert findings[0].message.startswith("no long exposure found (read short/ and long/ folders")
    out = tmp_path / "longs.csv"
    assert run("scan", folders, "-o", out, "--longs-only").exit_code == 1 and not out.exists()


@pytest.fixture(scope="module")
def longs_manifest(sim_dataset, tmp_path_factory) -> Path:
    """`curate scan --longs-only` of a copy of the simulated dataset (its planted pair defects
    included), the manifest inside it."""
    dataset = tmp_path_factory.mktemp("longs") / "dataset"
    shutil.copytree(sim_dataset, dataset)
    out = dataset / "longs.csv"
    result = run("scan", dataset, "-o", out, "--longs-only", "--test", "0.5", "--val", "0")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stderr and "4 long exposures, each its own short, 4 scenes" in result.stderr
    return out


def test_validate_gives_one_longs_only_warning_and_no_pair_check(longs_manifest):
    result = run("validate", longs_manifest, "--format", "json")
    found = json.loads(result.stdout)
    assert result.exit_code == 0            # warnings only
    assert [(f["code"], f["severity"]) for f in found] == [("longs-only", "warning")]
    assert "--synthetic PROFILE" in found[0]["message"] and "docs/train.md" in found[0]["message"]
    # the same scenes as pairs: ratio, light change, a moved camera and a dark short are all found
    dataset = longs_manifest.parent
    pairs = read_manifest(write_manifest(scan_dataset(dataset, dataset)[0], dataset / "pairs.csv"))
    codes = {f.code for f in validate_manifest(pairs)}
    assert {"ratio-out-of-range", "measured-ratio-mismatch", "misaligned"} <= codes and "longs-only" not in codes
    stats = run("stats", longs_manifest, "--format", "json")
    total = json.loads(stats.stdout)[-1]
    assert stats.exit_code == 0 and (total["pairs"], total["ratio_min"], total["ratio_max"]) == (4, 1.0, 1.0)


def test_per_file_checks_still_apply_once_per_file(longs_manifest, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(longs_manifest.parent, folder)
    df = read_manifest(folder / "longs.csv").rows
    changed, gone = (folder / p for p in df["long_path"][:2])
    mosaic = np.full((96, 128), 16300, np.uint16)     # the right half at white: clipped
    mosaic[:, :64] = np.linspace(3000, 9000, 64, dtype=np.uint16)
    write_dng(folder / "clipped.dng", mosaic, make="Sim", model="Sim", serial="", cfa="RGGB",
              black_level=[512] * 4, white_level=16383, exposure_s=Fraction(10), iso=100, fnumber=8,
              captured_at=T0)
    shutil.copy(folder / "clipped.dng", changed)       # a different file since the scan
    gone.unlink()
    found = validate_manifest(read_manifest(folder / "longs.csv"), workers=1)
    assert sorted((f.code, f.pair_id) for f in found) == sorted([
        ("longs-only", ""), ("checksum-mismatch", df["pair_id"][0]), ("clipped", df["pair_id"][0]),
        ("missing-file", df["pair_id"][1])])
    result = run("validate", folder / "longs.csv", "--fast", "--format", "json")
    assert result.exit_code == 1 and {f["code"] for f in json.loads(result.stdout)} == {
        "longs-only", "checksum-mismatch", "missing-file"}


def test_a_mixed_manifest_is_checked_as_pairs(longs_manifest):
    dataset = longs_manifest.parent
    pairs, _ = scan_dataset(dataset, dataset)
    longs = read_manifest(longs_manifest).rows
    mixed = pairs.iloc[:2].copy()
    mixed.loc[mixed.index[1], ["short_path", "short_sha256", "short_exposure_s", "ratio"]] = (
        mixed.iloc[1]["long_path"], mixed.iloc[1]["long_sha256"], mixed.iloc[1]["long_exposure_s"], 1.0)
    assert not is_longs_only(mixed) and is_longs_only(longs)
    found = validate_manifest(read_manifest(write_manifest(mixed, dataset / "mixed.csv")), fast=True)
    assert [f.code for f in found] == ["ratio-out-of-range"] and found[0].pair_id == mixed.iloc[1]["pair_id"]


def test_real_raws_that_record_no_exposure_time_are_longs_but_never_pairs(raw_samples, tmp_path):
    """A cinema camera's DNG (no exposure time, no ISO) beside a Canon D30 CRW: --longs-only keeps both
    (a no-exposure warning for the DNG, its exposure cells empty), the manifest reads back and
    validates without an error; as a pair the DNG stays unreadable, and a pair row with an empty
    exposure is refused on reading."""
    for name in ("Blackmagic.dng", "RAW_CANON_D30_SRGB.CRW"):
        (tmp_path / "data" / "long").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw_samples / name, tmp_path / "data" / "long" / name)
    result = run("scan", tmp_path / "data", "--longs-only", "-o", tmp_path / "m.csv", "--format", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [(f["code"], Path(f["path"]).name, f["severity"]) for f in found] == [
        ("no-exposure", "Blackmagic.dng", "warning")]
    manifest = read_manifest(tmp_path / "m.csv")
    df = manifest.rows
    assert_longs_only(df)
    cinema = df.set_index("pair_id").loc["Blackmagic"]
    assert np.isnan(cinema["long_exposure_s"]) and np.isnan(cinema["short_exposure_s"]) and np.isnan(cinema["long_iso"])
    assert (cinema["cfa"], cinema["black_level"], cinema["white_level"]) == ("RGGB", "512 512 512 512", 65535)
    assert cinema["camera"] == "Blackmagic Pocket Cinema Camera 4K"          # UniqueCameraModel: no Make/Model tags
    canon = df.set_index("pair_id").loc["RAW_CANON_D30_SRGB"]
    assert (canon["long_exposure_s"], canon["long_iso"], canon["camera"]) == (0.005, 100, "Canon EOS D30")
    findings = validate_manifest(manifest)
    assert not [f for f in findings if f.severity == "error"], findings
    # as pairs (no --longs-only) the same file is unreadable: a pair needs its exposure times
    (tmp_path / "data" / "short").mkdir()
    shutil.copyfile(raw_samples / "Blackmagic.dng", tmp_path / "data" / "short" / "Blackmagic.dng")
    pairs, found = scan_dataset(tmp_path / "data", tmp_path)
    assert "unreadable" in {f.code for f in found if "Blackmagic" in f.path} and "Blackmagic" not in set(pairs["pair_id"])
    text = (tmp_path / "m.csv").read_text()
    paired = text.replace("data/long/Blackmagic.dng,data/long/Blackmagic.dng", "data/short/Blackmagic.dng,data/long/Blackmagic.dng")
    assert paired != text
    (tmp_path / "pair.csv").write_text(paired)
    with pytest.raises(SidkitError, match="column 'short_exposure_s': empty must be a finite number of seconds above 0"):
        read_manifest(tmp_path / "pair.csv")
