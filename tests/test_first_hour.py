"""Issue 19: a newcomer's first hour without a surprise (the items not tested beside their code)."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from curate.cli import main as curate_main

REPO = Path(__file__).resolve().parents[1]


def test_the_install_prints_no_license_banner():
    """setuptools warned three times per install that a TOML-table license is deprecated: the
    license is an SPDX string, which needs setuptools 77."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["build-system"]["requires"] == ["setuptools>=77"]


def test_inspect_prints_values_as_a_person_writes_them(raw_samples):
    result = CliRunner().invoke(curate_main, ["inspect", str(raw_samples / "RAW_CANON_D30_SRGB.CRW"),
                                              str(raw_samples / "Blackmagic.dng")], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {tuple(c.strip() for c in line.split("│")[1:3]) for line in result.stdout.splitlines() if "│" in line}
    assert ("iso", "100") in rows and ("black_level", "126 126 126 126") in rows and ("exposure_s", "1/200") in rows
    assert ("exposure_s", "-") in rows and ("camera", "Blackmagic Pocket Cinema Camera 4K") in rows
    assert "None" not in result.stdout and "100.0" not in result.stdout and "[126" not in result.stdout
    assert "no-exposure" in result.stdout and "0 error(s)" in result.stderr
    data = json.loads(CliRunner().invoke(curate_main, ["inspect", str(raw_samples / "Blackmagic.dng"),
                                                       "--format", "json"]).stdout)
    assert data[0]["exposure_s"] is None and [f["code"] for f in data[0]["findings"]] == ["no-exposure"]


def test_a_rescan_into_an_existing_manifest_keeps_every_scene_s_split(sim_dataset, tmp_path):
    """Shooting more scenes and scanning again must not undo the user's `curate split`: the scenes
    the manifest holds keep their split, new ones get the default, and one line says so."""
    import shutil

    from curate.manifest import read_manifest, write_manifest

    data = tmp_path / "data"
    shutil.copytree(sim_dataset, data)
    manifest = tmp_path / "m.csv"
    runner = CliRunner()
    assert runner.invoke(curate_main, ["scan", str(data), "-o", str(manifest)]).exit_code == 0
    df = read_manifest(manifest).rows
    mine = {scene: split for scene, split in zip(sorted(df["scene_id"].unique()), ["test", "val", "train", "test"])}
    df["split"] = df["scene_id"].map(mine)
    write_manifest(df, manifest)
    log = (data / "captures.jsonl").read_text().splitlines()        # a scene shot later: sim01 again as sim05
    extra = [line.replace("sim01", "sim05") for line in log if '"sim01"' in line]
    shutil.copytree(data / "sim01", data / "sim05")
    for path in (data / "sim05").iterdir():
        path.rename(path.with_name(path.name.replace("sim01", "sim05")))
    (data / "captures.jsonl").write_text("\n".join(log + extra) + "\n")
    again = runner.invoke(curate_main, ["scan", str(data), "-o", str(manifest)])
    assert again.exit_code == 0, again.output
    assert f"kept the splits of 4 scene(s) already in {manifest}; 1 new scene(s) got the default split" in \
        " ".join(again.stderr.split())
    rescanned = read_manifest(manifest).rows
    assert {s: rescanned.loc[rescanned["scene_id"] == s, "split"].iloc[0] for s in mine} == mine
    assert "sim05" in set(rescanned["scene_id"])
    runner.invoke(curate_main, ["scan", str(data), "-o", str(manifest), "--resplit"])
    resplit = read_manifest(manifest).rows
    assert {s: resplit.loc[resplit["scene_id"] == s, "split"].iloc[0] for s in mine} != mine


def test_no_camera_found_points_to_the_simulated_and_the_virtual_camera(tmp_path):
    """Without a camera (and without VCAMERADIR) `capture pair` says how to try sidkit anyway, and
    the docs section it names exists with the virtual camera's commands."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "VCAMERADIR"}
    out = subprocess.run([sys.executable, "-m", "capture", "pair", "--scene", "x", "--environment", "indoor",
                          "--dataset", str(tmp_path / "ds"), "--long", "1"], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**env, "HOME": str(tmp_path), "COLUMNS": "300"})
    assert out.returncode == 1 and "no camera found" in out.stderr and "Traceback" not in out.stderr
    assert "`--camera sim`" in out.stderr and "docs/capture.md, 'Without a camera'" in out.stderr
    docs = (REPO / "docs" / "capture.md").read_text()
    assert "### Without a camera" in docs and "VCAMERADIR=$PWD/vcam capture pair" in docs


def test_libraw_s_own_messages_stay_out_of_the_findings_output(raw_samples):
    """LibRaw printed 'Nikon.nef: data corrupted at 1378' (twice) beside sidkit's finding for the same
    file; now only sidkit speaks, and other stderr output during LibRaw's work still gets through."""
    import os
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "curate", "inspect", str(raw_samples / "Nikon.nef"), "--format", "json"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and json.loads(out.stdout)[0]["findings"]
    assert out.stderr == ""                         # was: 'Nikon.nef: data corrupted at 1378', twice
    code = ("import os\nfrom curate.librawinfo import quiet_stderr\n"
            "with quiet_stderr('x.nef'):\n    os.write(2, b'x.nef: from LibRaw\\n'); os.write(2, b'a progress line\\n')\n")
    shown = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    assert shown.stderr == "a progress line\n"


def test_readme_says_what_the_demo_s_picture_looks_like():
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "What to expect of its pictures" in readme and "soft and mottled" in readme


def test_capture_detect_says_when_no_camera_is_found(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "VCAMERADIR"}
    out = subprocess.run([sys.executable, "-m", "capture", "detect"], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**env, "HOME": str(tmp_path), "COLUMNS": "300"})
    assert out.returncode == 0 and "simulated sim-dslr14" in out.stdout
    assert "no camera found by libgphoto2" in out.stderr and "'Without a camera'" in out.stderr
