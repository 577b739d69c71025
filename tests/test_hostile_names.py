"""Hostile names and paths (issue 16, item 5): every one is a finding for its own pair or file, or a
one-line error naming the file and the fix; never a manifest that cannot be read back, an aborted
validate or report, two pairs writing one output, or a half-made scene folder."""
from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import time_limit
from curate.common.errors import SidkitError
from curate.files import file_problem
from curate.manifest import read_manifest, verify_checksum, write_manifest
from curate.scan import scan_dataset
from helpers import make_rows
from helpers import make_dataset

LONG_NAME = "x" * 5000 + ".dng"      # no OS takes a 5,000-character name (255 bytes on every common disk)


def curate(*args):
    from curate.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def tiny(tmp_path) -> Path:
    """A fresh copy of test_train_loop's dataset: 4 DNG pairs (s0-0 .. s3-0) and tiny.csv."""
    return make_dataset(tmp_path / "tiny")


def folders_dataset(tiny: Path, root: Path, shorts: dict[str, str]) -> Path:
    """short/ and long/ folders: short name -> the tiny pair whose short it copies; longs s0, s1."""
    (root / "short").mkdir(parents=True)
    (root / "long").mkdir()
    for name, scene in shorts.items():
        shutil.copy(tiny.parent / f"{scene}_short.dng", os.path.join(root, "short", name))
    for scene in ("s0", "s1"):
        shutil.copy(tiny.parent / f"{scene}_long.dng", root / "long" / f"{scene}_long.dng")
    return root


# ------------------------------------------------------------------ control characters in names

def test_a_name_with_cr_lf_or_a_control_character_is_a_finding_and_left_out(tiny, tmp_path):
    """A CR in a file name was written into the manifest as itself: no command could read it back."""
    dataset = folders_dataset(tiny, tmp_path / "d", {"s0_a\r.dng": "s0", "s0_b.dng": "s0", "s1_c\x01.dng": "s1",
                                                     "s1_d.dng\n": "s1", "s1_e.dng": "s1"})
    df, findings = scan_dataset(dataset, tmp_path)
    bad = sorted(f.path.rsplit("/", 1)[1] for f in findings)
    assert bad == ["s0_a\\r.dng", "s1_c\\x01.dng", "s1_d.dng\\n"]        # shown escaped, one line each
    assert {f.code for f in findings} == {"unreadable"}
    assert all("control character" in f.message and "rename" in f.message for f in findings)
    assert sorted(df["pair_id"]) == ["s0_b", "s1_e"]                       # the others left out
    # through the command: exit 1, the findings, and a manifest every command reads back
    result = curate("scan", dataset, "-o", tmp_path / "m.csv", "--format", "json")
    assert result.exit_code == 1 and len(json.loads(result.stdout)) == 3
    assert sorted(read_manifest(tmp_path / "m.csv").rows["pair_id"]) == ["s0_b", "s1_e"]
    assert curate("validate", tmp_path / "m.csv", "--fast").exit_code == 0


def test_control_characters_are_never_written_into_a_manifest_as_themselves(tmp_path):
    rows = make_rows(n_scenes=2, shorts=1)
    rows.loc[0, "camera"] = "Sim\r\nDSLR"                 # an EXIF string as a body wrote it
    rows.loc[1, "scene_id"] = "s\u202801"                 # a Unicode line separator (splitlines splits on it)
    rows["short_sources"] = ["exif:\tmake", "exif: make\x00"]
    path = write_manifest(rows, tmp_path / "m.csv")
    data = path.read_bytes()
    assert data.count(b"\n") == 2 + 2 and b"\r" not in data and b"\t" not in data and b"\x00" not in data
    df = read_manifest(path).rows
    assert df["camera"].tolist() == ["Sim\\r\\nDSLR", "Sim DSLR"]
    assert df["scene_id"].tolist() == ["s00", "s\\u202801"]
    assert df["short_sources"].tolist() == ["exif:\\tmake", "exif: make\\x00"]


def test_a_manifest_holding_a_lone_cr_is_a_one_line_error_naming_the_line(tmp_path):
    """What an older sidkit wrote for a name with a CR: the row was cut in two at the CR."""
    path = write_manifest(make_rows(n_scenes=2, shorts=1), tmp_path / "m.csv")
    path.write_bytes(path.read_bytes().replace(b"s01_0,", b"s01_0\r,", 1))
    with pytest.raises(SidkitError) as err:
        read_manifest(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line 4 holds a carriage return") and "\n" not in message
    assert "curate scan" in message


# ------------------------------------------------------------------ paths too long for the OS

def test_a_path_too_long_for_the_os_is_a_finding_not_an_exception(tmp_path):
    found = file_problem(tmp_path / LONG_NAME, "p1")
    assert (found.code, found.pair_id, found.severity) == ("unreadable", "p1", "error")
    assert "too long for this system (its longest name is 5004 bytes" in found.message
    assert "shorten" in found.message
    deep = tmp_path.joinpath(*["y" * 200] * 30, "a.dng")          # every name fits; the whole path does not
    assert "too long" in file_problem(deep).message


def test_report_goes_on_past_a_path_too_long(tiny, tmp_path):
    """One 5,000-character path aborted the whole `curate report`."""
    from curate.report import build_report

    df = read_manifest(tiny).rows
    df.loc[df["pair_id"] == "s1-0", "short_path"] = LONG_NAME
    manifest = write_manifest(df, tiny.parent / "long.csv")
    with time_limit(300):
        done = build_report(manifest, tmp_path / "r.html", cache=False, workers=1)
    assert done["pairs"] == 4 and done["thumbnails"] == 7 and done["missing_thumbnails"] == 1
    assert done["findings"] == {"unreadable": 1}
    text = (tmp_path / "r.html").read_text()
    [card] = [c for c in text.split("<article ")[1:] if ">s1-0 <small>" in c]
    assert "unreadable" in card and "too long for this system" in card
    assert text.count('<img data-src="data:image/jpeg') == 7           # the other pairs all rendered


def test_validate_goes_on_past_a_path_too_long(tiny):
    from curate.validate import validate_manifest

    df = read_manifest(tiny).rows
    df.loc[df["pair_id"] == "s1-0", "short_path"] = LONG_NAME
    manifest = read_manifest(write_manifest(df, tiny.parent / "long.csv"))
    for fast in (True, False):
        found = validate_manifest(manifest, fast=fast, workers=1)
        assert [(f.pair_id, f.code) for f in found if f.severity == "error"] == [("s1-0", "unreadable")]


# ------------------------------------------------------------------ a manifest that is no file

@pytest.mark.parametrize("kind, what", [("fifo", "a FIFO (named pipe)"), ("device", "a character device"),
                                        ("folder", "a folder"), ("long", "too long for this system"),
                                        ("missing", "no such manifest")])
def test_a_manifest_that_is_no_regular_file_is_a_one_line_error_saying_what_it_is(tmp_path, kind, what):
    """A FIFO given as the manifest was 'no such manifest' (and opening one waits for a writer)."""
    path = {"fifo": tmp_path / "m.csv", "device": Path(os.devnull), "folder": tmp_path,
            "long": tmp_path / LONG_NAME, "missing": tmp_path / "none.csv"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    with time_limit(60), pytest.raises(SidkitError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and what in str(err.value) and "\n" not in str(err.value)
    if kind != "folder":         # click itself refuses a folder (dir_okay=False)
        with time_limit(60):
            result = curate("validate", path, "--fast")
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and what in result.stderr


# ------------------------------------------------------------------ checksums

def test_checksums_compare_without_case(tiny, tmp_path):
    """sha256 printed in upper case (certutil, some spreadsheets) is the same checksum."""
    from curate.capturelog import LOG_NAME
    from curate.validate import validate_manifest

    df = read_manifest(tiny).rows
    upper = df.assign(short_sha256=df["short_sha256"].str.upper(), long_sha256=" " + df["long_sha256"].str.upper())
    again = read_manifest(write_manifest(upper, tiny.parent / "upper.csv"))
    assert again.rows["short_sha256"].tolist() == df["short_sha256"].tolist()
    assert again.rows["long_sha256"].tolist() == df["long_sha256"].tolist()
    assert [f.code for f in validate_manifest(again, fast=True)] == []
    row = again.rows.iloc[0]
    assert verify_checksum(tiny.parent / row.short_path, row.short_sha256.upper()) == tiny.parent / row.short_path
    # a changed file is still a mismatch, whatever the case
    with open(tiny.parent / row.short_path, "ab") as handle:
        handle.write(b"\0")
    assert [f.code for f in validate_manifest(again, fast=True)] == ["checksum-mismatch"]
    # the capture log's checksums too
    dataset = tmp_path / "logged"
    (dataset / "s2").mkdir(parents=True)
    records = []
    for role in ("long", "short"):
        path = shutil.copy(tiny.parent / f"s2_{role}.dng", dataset / "s2" / f"s2_{role}.dng")
        sha = df.loc[df["scene_id"] == "s2", f"{role}_sha256"].iloc[0]
        records.append({"scene_id": "s2", "role": role, "path": f"s2/{Path(path).name}", "requested_exposure_s": 1,
                        "camera_exposure": "1", "iso": 100, "fnumber": 4, "environment": "indoor",
                        "camera": "Sim Tiny", "captured_at": "2026-01-01T00:00:00", "backend": "sim",
                        "notes": "", "sha256": sha.upper()})
    (dataset / LOG_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))
    rows, findings = scan_dataset(dataset)
    assert len(rows) == 1 and [f.code for f in findings] == []


# ------------------------------------------------------------------ a duplicate column header

def test_a_duplicate_column_header_is_a_one_line_error_naming_the_column(tmp_path):
    """pandas read the first 'ratio' and renamed the second 'ratio.1': the manifest was accepted."""
    path = write_manifest(make_rows(n_scenes=1, shorts=1), tmp_path / "m.csv")
    lines = path.read_text().split("\n")
    lines[1] = lines[1].replace("camera", "ratio")
    path.write_text("\n".join(lines))
    with pytest.raises(SidkitError) as err:
        read_manifest(path)
    assert str(err.value) == (f"{path}: column 'ratio' appears twice in the header (columns 9 and 14); delete the "
                              "wrong one or re-create the manifest with `curate scan`")


# ------------------------------------------------------------------ output names in `train eval`

def test_output_names_are_one_per_pair_id():
    from train.evaluate import NAME_CHARS, output_names

    ids = ["a/b", "a_b", "a:b", "A_B", "x-sheet", "x", ".hidden", "y" * 300, "y" * 301]
    names = output_names(ids)
    assert names["a_b"] == "a_b" and names["x-sheet"] == "x-sheet"      # an id that is its own name keeps it
    assert [names[i] for i in ("a/b", "a:b", "A_B")] == ["a_b-3", "a_b-4", "A_B-2"]
    assert names["x"] == "x-2"                 # x.png would do, but x-sheet.png is the pair x-sheet's output
    assert names[".hidden"] == "_hidden" and len(names["y" * 301]) <= NAME_CHARS + 2
    files = [f"{n}{end}".casefold() for n in names.values() for end in (".png", "-sheet.png")]
    assert len(set(files)) == 2 * len(ids)      # unique even on a disk that ignores case


def test_eval_writes_one_image_per_pair_and_the_report_links_the_right_one(tiny_run, tiny_manifest, tmp_path):
    """Pair ids a/b, a_b and a:b all wrote outputs/a_b.png; the last one won and the page showed it thrice."""
    from curate.common.html import data_uri
    from train.evaluate import evaluate
    from train.report import build_report
    from train.runfolders import read_run

    loaded = read_manifest(tiny_manifest)
    df = loaded.rows
    for role in ("short", "long"):
        df[f"{role}_path"] = [str(loaded.resolve(p)) for p in df[f"{role}_path"]]
    df["pair_id"] = ["a/b", "a_b", "a:b", "a|b"]
    manifest = write_manifest(df, tmp_path / "ids.csv")
    out = tmp_path / "eval"
    result = evaluate(tiny_run / "checkpoints" / "best.pt", manifest, split="all", out=out)
    images = {r["pair_id"]: r for r in result["images"]}
    assert sorted(Path(r["output"]).name for r in images.values()) == ["a_b-2.png", "a_b-3.png", "a_b-4.png",
                                                                       "a_b.png"]
    assert Path(images["a_b"]["output"]).name == "a_b.png"
    assert len({Path(r["sheet"]).read_bytes() for r in images.values()}) == 4    # four different images
    run = read_run(out)                        # report.md: pipes escaped, each row names its sheet
    assert sorted(r["pair_id"] for r in run.images) == ["a/b", "a:b", "a_b", "a|b"]
    assert {r["pair_id"]: r["sheet"] for r in run.images} == {p: Path(r["sheet"]).name for p, r in images.items()}
    build_report([out], tmp_path / "runs.html", sheets=0)
    page = (tmp_path / "runs.html").read_text()
    for pair_id, r in images.items():
        figure = re.search(r'<figure class="sheet"><img src="([^"]*)" alt="comparison sheet of '
                           + re.escape(html.escape(pair_id)) + r'"><figcaption>([^<]*)</figcaption>', page)
        assert figure.group(1) == data_uri(Path(r["sheet"]).read_bytes(), "image/png")
        assert figure.group(2).startswith(f"{html.escape(pair_id)}: network {r['psnr']:.2f} dB")


# ------------------------------------------------------------------ scene names too long for a file name

def test_a_scene_name_too_long_for_a_file_name_is_refused_before_anything_is_created(tmp_path):
    """A 250-character scene name passed the check, then the first shot failed and left an empty folder."""
    from capture.cli import main
    from capture.pair import SCENE_NAME_MAX, PairRequest, check_scene_name
    from capture.session import run_session
    from capture.simcamera import SimCamera

    assert check_scene_name("a" * SCENE_NAME_MAX) == "a" * SCENE_NAME_MAX
    with pytest.raises(SidkitError, match=f"is 250 characters: at most {SCENE_NAME_MAX}"):
        check_scene_name("a" * 250)
    dataset = tmp_path / "d"
    runner = CliRunner()
    done = runner.invoke(main, ["pair", "--camera", "sim", "--sim-size", "64x64", "--scene", "a" * 250,
                                "--environment", "indoor", "--dataset", str(dataset)])
    assert done.exit_code == 1 and "is 250 characters" in done.stderr and done.stderr.count("\n") == 1
    assert not dataset.exists()
    done = runner.invoke(main, ["session", "--camera", "sim", "--sim-size", "64x64", "--prefix", "p" * 250,
                                "--dataset", str(dataset)], input="q\n")
    assert done.exit_code == 1 and "--prefix 'pppppppppppppppppppp'...: scene name" in done.stderr
    assert not dataset.exists()
    # a name typed into a session: refused, asked again, nothing created
    answers, shown = iter(["b" * 250, "q"]), []
    results = run_session(SimCamera("sim-mirrorless12", width=64, height=64),
                          PairRequest(scene="", environment="indoor", shorts=1), dataset,
                          ask=lambda q, d: next(answers), show=shown.append)
    assert results == [] and any("is 250 characters" in line for line in shown) and not dataset.exists()


def test_ordinary_text_is_written_as_it_is(tmp_path):
    """Ordinary text (spaces, accents, quotes, commas) is written as it is."""
    rows = make_rows(n_scenes=1, shorts=1)
    rows.loc[0, "camera"] = 'Caf\u00e9 "Cam", Mk II'
    df = read_manifest(write_manifest(rows, tmp_path / "m.csv")).rows
    assert df["camera"].tolist() == ['Caf\u00e9 "Cam", Mk II']
