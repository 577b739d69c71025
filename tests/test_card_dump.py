"""curate scan on card dumps: camera-named DNGs (real DNG content from capture/dng.py) with chosen EXIF
capture times, exposures, ISO and bodies, grouped into scenes and pairs by EXIF alone."""
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from curate.carddump import capture_time
from curate.cli import main
from curate.files import is_camera_name, is_raw_name, walk
from curate.manifest import read_manifest
from curate.scan import scan_dataset, scan_scenes

from helpers import codes_of, shoot

def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def pairs_of(df) -> list[tuple[str, str, str]]:
    return sorted((row.scene_id, Path(row.short_path).name, Path(row.long_path).name) for row in df.itertuples())


@pytest.mark.parametrize("names", [
    ("IMG_0001.DNG", "IMG_0002.DNG", "IMG_0003.DNG"),       # Canon
    ("_MG_1234.dng", "_MG_1235.dng", "_MG_1236.dng"),       # Canon, Adobe RGB
    ("DSC00001.DNG", "DSC00002.DNG", "DSC00003.DNG"),       # Sony
    ("DSCF0001.dng", "DSCF0002.dng", "DSCF0003.dng"),       # Fujifilm
    ("P1000001.DNG", "P1000002.DNG", "P1000003.DNG"),       # Panasonic
    ("DSC_0001.dng", "DSC_0002.dng", "DSC_0003.dng"),       # Nikon
])
def test_every_camera_naming_pairs_shots_first_and_long_first(tmp_path, names):
    card = tmp_path / "card"
    card.mkdir()
    # scene 1, shorts first: 1/25, 1/25, then 10 s; scene 2 starts 200 s later, long first
    shoot(card, names[0], 0, "1/25")
    shoot(card, names[1], 2, "1/25")
    shoot(card, names[2], 4, "10")
    second = [n.replace("0", "9", 1) if n[0] != "_" else n.replace("1", "9", 1) for n in names]
    shoot(card, second[0], 200, "10")
    shoot(card, second[1], 214, "1/25")
    df, findings = scan_dataset(card)
    stem = lambda n: Path(n).stem
    assert findings == []
    assert pairs_of(df) == sorted([
        (f"card-{stem(names[0])}", names[0], names[2]), (f"card-{stem(names[0])}", names[1], names[2]),
        (f"card-{stem(second[0])}", second[1], second[0])])
    assert set(df.ratio) == {250.0} and (df.environment == "unknown").all()


def test_file_finding_recognises_camera_names_of_every_raw_format(tmp_path):
    names = ["IMG_0001.CR3", "img_0002.cr3", "_MG_1234.CR2", "DSC00001.ARW", "DSCF0001.RAF", "P1000001.RW2",
             "DSC_0001.NEF", "_DSC0001.nef", "IMG_1361.dng", "PXL_20240101_123456789.DNG", "CRW_0001.CRW",
             "IMGP0001.PEF", "_IGP0001.PEF", "P7010001.ORF"]
    assert all(is_raw_name(n) and is_camera_name(n) for n in names)
    for other in ("00001_00_0.1s.ARW", "kitchen_long_10s.dng", "sim01_short_1-25s_00.dng", "IMG_0001.JPG"):
        assert not (is_raw_name(other) and is_camera_name(other)), other
    for name in names + ["IMG_0001.JPG", "notes.txt"]:
        (tmp_path / "DCIM" / "100CANON").mkdir(parents=True, exist_ok=True)
        (tmp_path / "DCIM" / "100CANON" / name).write_bytes(b"x")
    (tmp_path / ".Trashes").mkdir()
    (tmp_path / ".Trashes" / "IMG_0009.CR3").write_bytes(b"x")
    files, findings = walk(tmp_path)
    assert sorted(f.name for f in files if is_raw_name(f)) == sorted(names) and findings == []


def test_gap_iso_and_aperture_split_scenes(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_0001.DNG", 0, "10")
    shoot(card, "IMG_0002.DNG", 69, "1/25")          # 59 s after the end of the 10 s long: same scene
    shoot(card, "IMG_0003.DNG", 140, "1/25")         # 71 s after the previous end: a new scene
    shoot(card, "IMG_0004.DNG", 142, "10")
    shoot(card, "IMG_0005.DNG", 153, "1/25", iso=1600)   # ISO changed: new scene (unpaired alone)
    shoot(card, "IMG_0006.DNG", 155, "1/25", fnumber=5.6)  # aperture changed: another one
    df, findings = scan_dataset(card)
    assert pairs_of(df) == [("card-IMG_0001", "IMG_0002.DNG", "IMG_0001.DNG"),
                            ("card-IMG_0003", "IMG_0003.DNG", "IMG_0004.DNG")]
    assert codes_of(findings) == [("unpaired", "IMG_0005.DNG"), ("unpaired", "IMG_0006.DNG")]
    assert "has one exposure (1/25 s)" in findings[0].message
    df, findings = scan_dataset(card, scene_gap=100)      # a wider gap joins the first two scenes
    assert set(df.scene_id) == {"card-IMG_0001"} and len(df) == 2
    assert ("bracket", "IMG_0004.DNG") in codes_of(findings)      # a second 10 s is not a second long


def test_two_bodies_interleaved(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    for k, (seconds, exposure, body) in enumerate([(0, "10", "A"), (1, "10", "B"), (12, "1/25", "A"),
                                                   (13, "1/40", "B"), (14, "1/25", "A"), (15, "1/40", "B")]):
        shoot(card, f"IMG_{k + 1:04d}.DNG", seconds, exposure, body=body)
    df, findings = scan_dataset(card)
    assert findings == []
    assert pairs_of(df) == [("card-IMG_0001", "IMG_0003.DNG", "IMG_0001.DNG"),
                            ("card-IMG_0001", "IMG_0005.DNG", "IMG_0001.DNG"),
                            ("card-IMG_0002", "IMG_0004.DNG", "IMG_0002.DNG"),
                            ("card-IMG_0002", "IMG_0006.DNG", "IMG_0002.DNG")]
    assert df.groupby("scene_id")["camera"].first().to_dict() == {"card-IMG_0001": "Canon EOS R6",
                                                                  "card-IMG_0002": "SONY ILCE-7M3"}
    assert set(df.short_camera) == {"Canon EOS R6 #0123", "SONY ILCE-7M3 #4567"}
    assert (df.short_camera == df.long_camera).all()


def test_body_without_serial_is_make_and_model(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "DSC_0001.dng", 0, "1/50", body="N")
    shoot(card, "DSC_0002.dng", 1, "1/50", body="A")       # another body between the Nikon's shots
    shoot(card, "DSC_0003.dng", 2, "5", body="N")
    df, findings = scan_dataset(card)
    assert pairs_of(df) == [("card-DSC_0001", "DSC_0001.dng", "DSC_0003.dng")]
    assert df.long_camera.tolist() == ["NIKON Z 6"]
    assert codes_of(findings) == [("unpaired", "DSC_0002.dng")]


def test_bracket_and_second_long_are_warnings(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_0001.DNG", 0, "10")
    shoot(card, "IMG_0002.DNG", 11, "8")        # less than 2x shorter: a bracket
    shoot(card, "IMG_0003.DNG", 20, "5")        # exactly 2x shorter: a short
    shoot(card, "IMG_0004.DNG", 26, "10")       # the same exposure again: not a second long
    shoot(card, "IMG_0005.DNG", 37, "1/25")
    df, findings = scan_dataset(card)
    assert pairs_of(df) == [("card-IMG_0001", "IMG_0003.DNG", "IMG_0001.DNG"),
                            ("card-IMG_0001", "IMG_0005.DNG", "IMG_0001.DNG")]
    assert codes_of(findings) == [("bracket", "IMG_0002.DNG"), ("bracket", "IMG_0004.DNG")]
    assert all(f.severity == "warning" for f in findings)
    assert "8 s is less than 2x shorter than scene card-IMG_0001's longest 10 s" in findings[0].message


def test_subfolders_name_scenes_and_give_environments(tmp_path):
    dump = tmp_path / "dump"
    for folder, base in (("indoor/DCIM/100CANON", 0), ("outdoor/DCIM/100CANON", 1000)):
        (dump / folder).mkdir(parents=True)
        shoot(dump / folder, "IMG_0001.DNG", base, "1/25")
        shoot(dump / folder, "IMG_0002.DNG", base + 1, "10")
    df, findings = scan_dataset(dump)
    assert findings == []
    assert df.set_index("scene_id")["environment"].to_dict() == {
        "100CANON-IMG_0001": "indoor", "dump-outdoor-DCIM-100CANON-IMG_0001": "outdoor"}


def test_camera_names_never_take_the_underscore_scene_id(tmp_path):
    """The old bug: IMG_0001 as scene 'IMG', IMG_0003 paired with IMG_0002's long."""
    card = tmp_path / "card"
    card.mkdir()
    for k, (seconds, exposure) in enumerate([(0, "10"), (12, "1/25"), (300, "10"), (312, "1/25")]):
        shoot(card, f"IMG_{k + 1:04d}.DNG", seconds, exposure)
    df, findings = scan_dataset(card)
    assert findings == [] and "IMG" not in set(df.scene_id)
    assert pairs_of(df) == [("card-IMG_0001", "IMG_0002.DNG", "IMG_0001.DNG"),
                            ("card-IMG_0003", "IMG_0004.DNG", "IMG_0003.DNG")]
    # sorted by hand into short/ and long/, camera names are reported, never paired by 'IMG'
    folders = tmp_path / "folders"
    for name, role in (("IMG_0001.DNG", "long"), ("IMG_0002.DNG", "short"), ("IMG_0003.DNG", "long"),
                       ("IMG_0004.DNG", "short")):
        (folders / role).mkdir(parents=True, exist_ok=True)
        shutil.copy(card / name, folders / role / name)
    df, findings = scan_dataset(folders)
    assert len(df) == 0
    assert [f.code for f in findings] == ["unpaired"] * 4 + ["no-pairs"]
    assert "names no scene" in findings[0].message and "short/ and long/ folders" in findings[-1].message


def test_time_order_not_name_order(tmp_path):
    """The counter wrapped (IMG_9999 -> IMG_0001): capture time decides, the name only breaks ties."""
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_9999.DNG", 0, "10")
    shoot(card, "IMG_0001.DNG", 11, "1/25")
    shoot(card, "IMG_0002.DNG", 11, "1/25")
    shots, findings = scan_scenes(card)
    assert [(s.path.name, s.scene, s.role) for s in shots] == [
        ("IMG_9999.DNG", "card-IMG_9999", "long"), ("IMG_0001.DNG", "card-IMG_9999", "short"),
        ("IMG_0002.DNG", "card-IMG_9999", "short")]


def test_capture_time_with_sub_seconds_and_offsets():
    from curate.exif import captured_at

    def tags(**values):
        return {f"EXIF {k}": type("Tag", (), {"values": v, "printable": v})() for k, v in values.items()}

    assert captured_at(tags(DateTimeOriginal="2026:03:01 20:00:00", SubSecTimeOriginal="27")) == "2026-03-01T20:00:00.27"
    assert captured_at(tags(DateTimeOriginal="2026:03:01 20:00:00", SubSecTimeOriginal="00")) == "2026-03-01T20:00:00"
    assert capture_time("2026-03-01T20:00:00.27") == (capture_time("2026-03-01T20:00:00")[0] + 0.27,
                                                       "2026-03-01T20:00:00.270")
    assert capture_time("2026-03-01T21:00:00+01:00")[0] == capture_time("2026-03-01T20:00:00")[0]
    assert capture_time(None) == (None, "") and capture_time("garbage")[0] is None


def test_sub_second_time_of_a_real_raw(raw_samples):
    from curate.rawmeta import read_metadata

    # SubSecTimeOriginal comes with the one EXIF read: the iPhone's ProRAW, the CR3's embedded EXIF
    assert read_metadata(raw_samples / "IMG_1361.dng").captured_at == "2020-12-29T14:24:45.700-05:00"
    assert read_metadata(raw_samples / "CanonRaw.cr3").captured_at == "2018-02-21T12:08:56.21+00:00"
    assert read_metadata(raw_samples / "Panasonic.rw2").captured_at == "2008-08-06T15:21:56"


def test_show_scenes_prints_the_grouping_and_writes_nothing(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_0001.DNG", 0, "1/25")
    shoot(card, "IMG_0002.DNG", 1, "10")
    shoot(card, "IMG_0003.DNG", 12, "6")
    result = run("scan", card, "--show-scenes", "--format", "json")
    assert result.exit_code == 0 and list(tmp_path.iterdir()) == [card]
    shown = json.loads(result.stdout)
    assert [(s["time"], s["exposure"], s["iso"], s["file"], s["scene"], s["role"]) for s in shown["shots"]] == [
        ("2026-03-01T20:00:00", "1/25", 800, "IMG_0001.DNG", "card-IMG_0001", "short"),
        ("2026-03-01T20:00:01", "10", 800, "IMG_0002.DNG", "card-IMG_0001", "long"),
        ("2026-03-01T20:00:12", "6", 800, "IMG_0003.DNG", "card-IMG_0001", "bracket")]
    assert [f["code"] for f in shown["findings"]] == ["bracket"]
    table = run("scan", card, "--show-scenes")
    assert table.exit_code == 0 and "card-IMG_0001" in table.stdout and "bracket" in table.stdout
    assert "nothing written" in table.stderr


def test_cli_card_scan_writes_pairs_and_labels(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "DSC00001.DNG", 0, "1/25")
    shoot(card, "DSC00002.DNG", 1, "10")
    labels = tmp_path / "labels.csv"
    labels.write_text("scene_id,environment\ncard-DSC00001,outdoor\n")
    out = tmp_path / "m.csv"
    result = run("scan", card, "-o", out, "--labels", labels, "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    df = read_manifest(out).rows
    assert df[["pair_id", "scene_id", "environment"]].values.tolist() == [["DSC00001", "card-DSC00001", "outdoor"]]
    assert run("scan", card).exit_code == 1       # neither -o nor --show-scenes


def test_no_pairs_exits_1_and_writes_nothing(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_0001.DNG", 0, "10")
    out = tmp_path / "m.csv"
    result = run("scan", card, "-o", out, "--format", "json")
    assert result.exit_code == 1 and not out.exists()
    assert [(f["code"], Path(f["path"]).name) for f in json.loads(result.stdout)] == [
        ("unpaired", "IMG_0001.DNG"), ("no-pairs", "card")]
    # train says what to do about the manifest that was not written
    from train.cli import main as train_main

    trained = CliRunner().invoke(train_main, ["run", str(out), "--epochs", "1"])
    assert trained.exit_code != 0 and "curate scan" in trained.output and "curate split" not in trained.output


def test_special_files_and_bad_names_are_findings_never_opened(tmp_path):
    card = tmp_path / "card"
    card.mkdir()
    shoot(card, "IMG_0001.DNG", 0, "1/25")
    shoot(card, "IMG_0002.DNG", 1, "10")
    os.mkfifo(card / "IMG_0003.DNG")                           # opening it would hang
    (card / "IMG_0004.CR3").mkdir()                            # a folder named like a raw
    bad_name = os.fsdecode(bytes(card) + b"/IMG_\xe90005.DNG")  # latin-1 byte: not UTF-8
    shutil.copy(card / "IMG_0001.DNG", bad_name)
    (card / "IMG_0006.DNG").write_bytes(b"II*\x00" + b"\xff" * 60)   # a broken TIFF
    os.symlink(card / "gone.DNG", card / "IMG_0007.DNG")
    df, findings = scan_dataset(card)
    assert pairs_of(df) == [("card-IMG_0001", "IMG_0001.DNG", "IMG_0002.DNG")]
    found = {Path(f.path).name: (f.code, f.message) for f in findings}
    assert sorted(found) == ["IMG_0003.DNG", "IMG_0004.CR3", "IMG_0006.DNG", "IMG_0007.DNG", "IMG_\\xe90005.DNG"]
    assert found["IMG_0003.DNG"][0] == "unreadable" and "FIFO" in found["IMG_0003.DNG"][1]
    assert "a folder" in found["IMG_0004.CR3"][1] and "UTF-8" in found["IMG_\\xe90005.DNG"][1]
    assert found["IMG_0006.DNG"][0] == "unreadable" and found["IMG_0007.DNG"][0] == "missing-file"
    assert all("\n" not in message for _, message in found.values())
    result = run("scan", card, "-o", tmp_path / "m.csv")     # the table prints the escaped name
    assert result.exit_code == 1 and (tmp_path / "m.csv").exists() and "Traceback" not in result.output


def test_sample_raws_as_a_card_never_crash(raw_samples, tmp_path):
    """The real sample raws (every one a different camera or time): each a finding, no pair."""
    df, findings = scan_dataset(raw_samples, tmp_path)
    names = {Path(f.path).name for f in findings}
    raws = {p.name for p in raw_samples.iterdir() if is_raw_name(p)}
    assert len(df) == 0 and findings[-1].code == "no-pairs" and raws <= names


def test_a_folder_that_cannot_be_listed_is_a_finding(tmp_path):
    (tmp_path / "IMG_0001.CR3").write_bytes(b"x")
    files, findings = walk(tmp_path / "IMG_0001.CR3")        # not a folder: os.walk cannot list it
    assert files == [] and [(f.code, "cannot list this folder" in f.message) for f in findings] == [("unreadable", True)]
