"""curate scan and import-sid on real DNGs from the simulated sensor."""
import json
import shutil
from pathlib import Path

import pytest

from capture.simulate import write_folder_layout
from curate.common.errors import SidkitError
from curate.manifest import COLUMNS, read_manifest, write_manifest
from curate.scan import read_labels, scan_dataset
from curate.sidimport import import_sid
from curate.validate import validate_manifest


def test_scan_from_capture_log(sim_dataset):
    df, findings = scan_dataset(sim_dataset)
    assert findings == []
    assert len(df) == 8 and df["scene_id"].nunique() == 4
    assert list(df.columns) == list(COLUMNS) + ["short_camera", "long_camera", "short_sources", "long_sources"]
    assert (df["short_camera"] == df["long_camera"]).all() and df["long_camera"].str.contains(" #").all()
    row = df[df.pair_id == "sim01_short_1-25s_00"].iloc[0]
    assert (row.short_exposure_s, row.long_exposure_s, row.ratio) == (0.04, 10.0, 250.0)
    assert row.short_path == "sim01/sim01_short_1-25s_00.dng" and row.long_path == "sim01/sim01_long_10s.dng"
    assert (row.width, row.height) == (128, 96) and row.cfa in ("RGGB", "GRBG", "GBRG", "BGGR")
    assert len(row.black_level.split()) == 4 and row.white_level > 0 and len(row.short_sha256) == 64
    assert set(df.environment) == {"indoor", "outdoor"} and set(df.split) <= {"train", "val", "test"}
    assert df.loc[df.scene_id == "sim04", "ratio"].iloc[0] == pytest.approx(20, rel=0.05)


def test_rescan_is_stable_and_round_trips(sim_dataset, tmp_path):
    first, _ = scan_dataset(sim_dataset, tmp_path)
    second, _ = scan_dataset(sim_dataset, tmp_path)
    assert first.equals(second)
    written = read_manifest(write_manifest(first, tmp_path / "m.csv"))
    rows = written.rows
    assert (rows["pair_id"].tolist(), rows["ratio"].tolist()) == (first["pair_id"].tolist(), first["ratio"].tolist())
    assert written.resolve(rows.short_path[0]).exists()


def test_scan_folder_convention_and_labels(sim_dataset, tmp_path):
    folders = write_folder_layout(sim_dataset, tmp_path / "folders")
    df, findings = scan_dataset(folders)
    assert findings == [] and len(df) == 8
    assert df.groupby("scene_id")["environment"].first().to_dict() == {
        "sim01": "indoor", "sim02": "indoor", "sim03": "outdoor", "sim04": "outdoor"}
    labels = tmp_path / "labels.csv"
    labels.write_text("scene_id,environment\nsim01,outdoor\n")
    df, _ = scan_dataset(folders, labels=read_labels(labels))
    assert df.loc[df.scene_id == "sim01", "environment"].unique().tolist() == ["outdoor"]


def test_scan_reports_bad_files_and_keeps_the_rest(sim_dataset, tmp_path):
    dataset = tmp_path / "d"
    shutil.copytree(sim_dataset, dataset)
    (dataset / "sim01" / "sim01_short_1-25s_01.dng").write_bytes(b"\x00" * 100)   # unreadable
    (dataset / "sim02" / "sim02_short_1-25s_01.dng").unlink()                      # missing
    df, findings = scan_dataset(dataset)
    assert sorted((f.code, Path(f.path).name) for f in findings) == [
        ("missing-file", "sim02_short_1-25s_01.dng"), ("unreadable", "sim01_short_1-25s_01.dng")]
    assert len(df) == 6


def test_scan_of_a_folder_without_pairs_is_a_no_pairs_error(tmp_path):
    df, findings = scan_dataset(tmp_path)
    assert len(df) == 0 and [(f.code, f.severity) for f in findings] == [("no-pairs", "error")]
    for convention in ("captures.jsonl", "short/ and long/ folders", "card dump"):
        assert convention in findings[0].message
    with pytest.raises(SidkitError, match="no such dataset folder"):
        scan_dataset(tmp_path / "absent")


def write_sid_tree(sim_dataset, root):
    """The original dataset's layout and list files, from simulated DNGs (one name deliberately wrong)."""
    (root / "Sony" / "short").mkdir(parents=True)
    (root / "Sony" / "long").mkdir(parents=True)
    lines = {"train": [], "test": []}
    for scene, number, split in (("sim01", "00001", "train"), ("sim02", "10003", "test")):
        shutil.copy(sim_dataset / scene / f"{scene}_long_10s.dng", root / "Sony/long" / f"{number}_00_10s.ARW")
        for k, written in enumerate(("0.04", "0.1" if scene == "sim02" else "0.04")):
            name = f"{number}_{k:02d}_{written}s.ARW"
            shutil.copy(sim_dataset / scene / f"{scene}_short_1-25s_{k:02d}.dng", root / "Sony/short" / name)
            lines[split].append(f"./Sony/short/{name} ./Sony/long/{number}_00_10s.ARW ISO200 F8")
    for split, rows in lines.items():
        (root / f"Sony_{split}_list.txt").write_text("\n".join(rows) + "\n")
    (root / "Sony_val_list.txt").write_text("./Sony/short/20001_00_0.1s.ARW ./Sony/long/20001_00_10s.ARW ISO200 F8\n")


def test_import_sid(sim_dataset, tmp_path):
    write_sid_tree(sim_dataset, tmp_path)
    lists = [tmp_path / f"Sony_{s}_list.txt" for s in ("train", "val", "test")]
    df, findings = import_sid(lists, tmp_path, tmp_path)
    assert sorted(df.pair_id) == ["00001_00_0.04s", "00001_01_0.04s", "10003_00_0.04s", "10003_01_0.1s"]
    assert df.set_index("scene_id")["split"].to_dict() == {"00001": "train", "10003": "test"}
    assert (df["short_exposure_s"] == 0.04).all()
    codes = sorted((f.code, Path(f.path).name) for f in findings)
    assert codes == [("missing-file", "20001_00_0.1s.ARW"), ("missing-file", "20001_00_10s.ARW"),
                     ("name-exif-mismatch", "10003_01_0.1s.ARW")]


def test_import_sid_split_from_scene_digit(sim_dataset, tmp_path):
    write_sid_tree(sim_dataset, tmp_path)
    merged = tmp_path / "all.txt"
    merged.write_text((tmp_path / "Sony_train_list.txt").read_text() + (tmp_path / "Sony_test_list.txt").read_text())
    df, _ = import_sid([merged], tmp_path, tmp_path)
    assert df.groupby("scene_id")["split"].first().to_dict() == {"00001": "train", "10003": "test"}


def test_validate_flags_every_planted_defect_and_nothing_else(sim_dataset, tmp_path):
    df, _ = scan_dataset(sim_dataset, tmp_path)
    manifest = read_manifest(write_manifest(df, tmp_path / "m.csv"))
    findings = validate_manifest(manifest, workers=1)
    planted = json.loads((sim_dataset / "planted_defects.json").read_text())
    errors = {(Path(f.path).name if f.code != "ratio-out-of-range" else f.pair_id.split("_")[0], f.code)
              for f in findings if f.severity == "error"}
    expected = {(Path(d["short_path"]).name if d["defect"] != "ratio-out-of-range" else d["scene_id"], d["defect"])
                for d in planted}
    assert errors == expected
    # the spawn pool (two worker processes) finds exactly the same
    assert sorted(validate_manifest(manifest, workers=2), key=repr) == sorted(findings, key=repr)


def test_scan_pair_defects_in_the_folder_convention(sim_dataset, tmp_path):
    """camera-mismatch (with a cfa-mismatch: RGGB short, BGGR long), size-mismatch, unpaired, not-raw,
    duplicate long: one scene each."""
    from capture.simulate import simulate_dataset

    other = simulate_dataset(tmp_path / "small", scenes=2, size=(64, 48), defects=False)
    root = tmp_path / "folders"
    for sub in ("short", "long"):
        (root / "indoor" / sub).mkdir(parents=True)
    copies = {
        "short/a_00.dng": sim_dataset / "sim01/sim01_short_1-25s_00.dng",   # dslr14 short ...
        "long/a_00.dng": sim_dataset / "sim02/sim02_long_10s.dng",          # ... mirrorless12 long
        "short/b_00.dng": sim_dataset / "sim01/sim01_short_1-25s_01.dng",   # 128x96 short ...
        "long/b_00.dng": other / "sim01/sim01_long_10s.dng",                # ... 64x48 long, same body
        "short/c_00.dng": sim_dataset / "sim03/sim03_short_1-25s_01.dng",   # no long for scene c
        "long/d_00.dng": sim_dataset / "sim03/sim03_long_10s.dng",
        "long/d_01.dng": sim_dataset / "sim03/sim03_long_10s.dng",          # a second long for d
    }
    for rel, source in copies.items():
        shutil.copy(source, root / "indoor" / rel)
    (root / "indoor" / "short" / "d_00.jpg").write_bytes(b"\xff\xd8\xff")
    df, findings = scan_dataset(root)
    found = sorted((f.code, Path(f.path).name) for f in findings)
    assert found == [("camera-mismatch", "a_00.dng"), ("cfa-mismatch", "a_00.dng"), ("duplicate-file", "d_01.dng"),
                     ("not-raw", "d_00.jpg"), ("size-mismatch", "b_00.dng"), ("unpaired", "c_00.dng")]
    cfa = next(f for f in findings if f.code == "cfa-mismatch")
    assert cfa.message.startswith("the short's colour filter is RGGB, its long's BGGR: the two do not line up")
    assert sorted(df.pair_id) == ["a_00", "b_00"]


def test_metadata_disagreement_becomes_a_finding(sim_dataset):
    from curate.rawmeta import read_metadata
    from curate.scan import PairSpec, pair_findings

    short = read_metadata(sim_dataset / "sim01/sim01_short_1-25s_00.dng")
    long = read_metadata(sim_dataset / "sim01/sim01_long_10s.dng")
    short.disagreements = ["exposure: EXIF 1/25 s, LibRaw 1/30 s"]
    spec = PairSpec("sim01", "indoor", Path(short.path), Path(long.path))
    assert [(f.code, f.message) for f in pair_findings("p", spec, short, long)] == [
        ("metadata-disagreement", "exposure: EXIF 1/25 s, LibRaw 1/30 s")]


def test_scan_pairs_the_raw_files_of_raw_plus_jpeg_shots(sim_dataset, tmp_path):
    from curate.capturelog import CaptureRecord, append_record

    dataset = tmp_path / "d"
    shutil.copytree(sim_dataset / "sim01", dataset / "sim01")
    (dataset / "sim01" / "sim01_long_10s.JPG").write_bytes(b"\xff\xd8\xff")
    (dataset / "sim01" / "only.JPG").write_bytes(b"\xff\xd8\xff")
    common = dict(scene_id="sim01", requested_exposure_s=10, camera_exposure="10", iso=100, fnumber=8,
                  environment="indoor", camera="c", captured_at="2026-01-01T00:00:00", backend="fake")
    for role, path, index in (("long", "sim01/sim01_long_10s.dng", 0), ("long", "sim01/sim01_long_10s.JPG", 0),
                              ("short", "sim01/sim01_short_1-25s_00.dng", 1), ("short", "sim01/only.JPG", 2)):
        append_record(dataset, CaptureRecord(role=role, path=path, extra={"shot_index": index}, **common))
    df, findings = scan_dataset(dataset)
    assert df.pair_id.tolist() == ["sim01_short_1-25s_00"]
    assert [(f.code, Path(f.path).name) for f in findings] == [("unreadable", "only.JPG")]


def test_import_sid_malformed_line_and_empty_lists(sim_dataset, tmp_path):
    write_sid_tree(sim_dataset, tmp_path)
    bad = tmp_path / "Sony_train_list.txt"
    bad.write_text(bad.read_text() + "garbage line\n")
    df, findings = import_sid([bad], tmp_path, tmp_path)
    assert len(df) == 2
    assert [(f.code, f.path) for f in findings] == [("unreadable", f"{bad}:3")]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    df, findings = import_sid([empty], tmp_path, tmp_path)
    assert len(df) == 0 and [f.code for f in findings] == ["no-pairs"] and "./Sony/short/" in findings[0].message


def test_torn_last_log_line_is_a_finding(sim_dataset, tmp_path):
    dataset = tmp_path / "d"
    shutil.copytree(sim_dataset, dataset)
    with open(dataset / "captures.jsonl", "a") as log:
        log.write('{"scene_id": "x", broken')
    df, findings = scan_dataset(dataset)
    assert len(df) == 8
    assert [(f.code, f.path.endswith("captures.jsonl:13")) for f in findings] == [("unreadable", True)]


def test_any_reader_exception_is_a_finding_for_that_file_alone(sim_dataset, tmp_path, monkeypatch):
    """A reader's bug (here an IndexError and a MemoryError planted in read_metadata) never stops the scan."""
    from curate import rawmeta

    real = rawmeta.read_metadata
    planted = {"sim01_short_1-25s_00.dng": IndexError("index 9 is out of bounds\nfor axis 0"),
               "sim02_long_10s.dng": MemoryError()}

    def flaky(path, **kwargs):
        if Path(path).name in planted:
            raise planted[Path(path).name]
        return real(path, **kwargs)

    monkeypatch.setattr(rawmeta, "read_metadata", flaky)
    df, findings = scan_dataset(sim_dataset, tmp_path)
    assert sorted((f.code, Path(f.path).name) for f in findings) == [
        ("unreadable", "sim01_short_1-25s_00.dng"), ("unreadable", "sim02_long_10s.dng")]
    assert "IndexError: index 9 is out of bounds for axis 0" in findings[0].message + findings[1].message
    assert all("\n" not in f.message for f in findings)
    assert len(df) == 5 and "sim02" not in set(df.scene_id)      # 8 pairs less sim01's one, sim02's two


def test_both_files_of_a_pair_are_reported(sim_dataset, tmp_path):
    root = tmp_path / "folders"
    (root / "short").mkdir(parents=True)
    (root / "long").mkdir()
    (root / "short" / "a_00.dng").write_bytes(b"MM\x00*" + bytes(40))       # a TIFF header and nothing
    (root / "long" / "a_00.dng").write_bytes(b"")                            # empty
    shutil.copy(sim_dataset / "sim01/sim01_short_1-25s_00.dng", root / "short" / "b_00.dng")
    shutil.copy(sim_dataset / "sim01/sim01_long_10s.dng", root / "long" / "b_00.dng")
    df, findings = scan_dataset(root)
    assert sorted((f.code, f.pair_id, Path(f.path).parent.name) for f in findings) == [
        ("unreadable", "a_00", "long"), ("unreadable", "a_00", "short")]
    assert df.pair_id.tolist() == ["b_00"]


def test_show_scenes_of_a_capture_log(sim_dataset):
    from curate.scan import scan_scenes

    shots, findings = scan_scenes(sim_dataset)
    assert findings == [] and len(shots) == 12
    assert {(s.scene, s.role) for s in shots} == {(f"sim0{k}", r) for k in range(1, 5) for r in ("long", "short")}
    assert all(s.time is not None and s.body for s in shots)


def test_a_fifo_as_log_or_labels_is_a_one_line_error(tmp_path):
    import os

    os.mkfifo(tmp_path / "captures.jsonl")
    with pytest.raises(SidkitError, match="FIFO"):
        scan_dataset(tmp_path)
    os.mkfifo(tmp_path / "labels.csv")
    with pytest.raises(SidkitError, match="FIFO.*--labels"):
        read_labels(tmp_path / "labels.csv")
    with pytest.raises(SidkitError, match="does not exist"):
        read_labels(tmp_path / "absent.csv")


def test_import_sid_special_files_and_latin1_names(sim_dataset, tmp_path):
    import os

    write_sid_tree(sim_dataset, tmp_path)
    os.mkfifo(tmp_path / "Sony/short/00002_00_0.1s.ARW")                    # never opened
    latin1 = b"00003_00_0.1s\xe9.ARW"
    shutil.copy(tmp_path / "Sony/short/00001_00_0.04s.ARW", os.fsdecode(bytes(tmp_path / "Sony/short") + b"/" + latin1))
    listing = tmp_path / "Sony_train_list.txt"
    listing.write_bytes(listing.read_bytes() + b"./Sony/short/00002_00_0.1s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8\n"
                        + b"./Sony/short/" + latin1 + b" ./Sony/long/00001_00_10s.ARW ISO200 F8\n")
    df, findings = import_sid([listing], tmp_path, tmp_path)
    assert len(df) == 2
    found = sorted((f.code, Path(f.path).name, f.message.split(",")[0]) for f in findings)
    assert [(code, name) for code, name, _ in found] == [("unreadable", "00002_00_0.1s.ARW"),
                                                         ("unreadable", "00003_00_0.1s\\xe9.ARW")]
    assert "FIFO" in found[0][2] and "UTF-8" in found[1][2]


def test_a_file_with_an_impossible_exposure_is_unreadable(sim_dataset, tmp_path, monkeypatch):
    from curate import rawmeta

    real = rawmeta.read_metadata

    def zero_exposure(path, **kwargs):
        meta = real(path, **kwargs)
        if Path(path).name == "sim01_long_10s.dng":
            meta.exposure_s = 0
        return meta

    monkeypatch.setattr(rawmeta, "read_metadata", zero_exposure)
    df, findings = scan_dataset(sim_dataset, tmp_path)
    assert [(f.code, Path(f.path).name) for f in findings] == [("unreadable", "sim01_long_10s.dng")]
    assert "not positive" in findings[0].message and len(df) == 6


def test_a_truncated_or_stripped_file_is_no_pixel_data_and_its_pair_is_left_out(sim_dataset, tmp_path):
    dataset = tmp_path / "d"
    shutil.copytree(sim_dataset, dataset)
    cut = dataset / "sim01" / "sim01_short_1-25s_01.dng"
    cut.write_bytes(cut.read_bytes()[:-1000])                                     # the last 1,000 bytes lost
    df, findings = scan_dataset(dataset)
    assert [(f.code, Path(f.path).name) for f in findings] == [("no-pixel-data", cut.name)]
    assert len(df) == 7 and "sim01_short_1-25s_01" not in df.pair_id.tolist()
