"""The simulated sensor end to end: `capture pair --camera sim` writes DNGs + log that curate reads back."""
import json
import re
from fractions import Fraction
from importlib.metadata import version

import numpy as np
import pytest
import rawpy
from click.testing import CliRunner

from capture.cli import main
from capture.pair import PairRequest, plan_pair, shoot_pair
from capture.session import next_scene_name, run_session
from capture.simcamera import SimCamera
from curate.capturelog import read_log
from curate.rawmeta import read_metadata
from curate.scan import scan_dataset

SMALL = ["--camera", "sim", "--sim-size", "128x96"]


def _signal(path) -> np.ndarray:
    """Black-subtracted mosaic of a DNG, read back through rawpy."""
    with rawpy.imread(str(path)) as raw:
        black = np.array(raw.black_level_per_channel)[raw.raw_colors_visible]
        return raw.raw_image_visible.astype(float) - black


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sim_pair_writes_dngs_whose_exif_matches(tmp_path):
    result = CliRunner().invoke(main, [
        "pair", "--scene", "lamp-1", "--environment", "indoor", "--dataset", str(tmp_path), "--long", "10",
        "--shorts", "2", "--iso", "400", "--fnumber", "8", "--format", "json", *SMALL], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["long_label"], out["short_label"], out["nominal_ratio"], out["true_ratio"]) == ("10", "1/25", 250, 256)
    assert [(s["role"], s["shutter"], s["files"]) for s in out["shots"]] == [
        ("long", "10", ["lamp-1/lamp-1_long_10s.dng"]), ("short", "1/25", ["lamp-1/lamp-1_short_1-25s_00.dng"]),
        ("short", "1/25", ["lamp-1/lamp-1_short_1-25s_01.dng"])]
    files = sorted(p.name for p in (tmp_path / "lamp-1").iterdir())
    assert files == ["lamp-1_long_10s.dng", "lamp-1_short_1-25s_00.dng", "lamp-1_short_1-25s_01.dng"]
    short = read_metadata(tmp_path / "lamp-1" / files[1])
    long = read_metadata(tmp_path / "lamp-1" / files[0])
    assert (float(short.exposure_s), short.iso, short.fnumber) == (0.04, 400, 8)
    assert (float(long.exposure_s), long.camera, long.cfa, long.width) == (10, "Sidkit SIM-DSLR14", "RGGB", 128)
    # the quick check measured the brightness ratio from the pixels
    measured = [c["measured_ratio"] for c in out["checks"] if c["code"] == "measured-ratio"]
    assert len(measured) == 2 and all(235 < m < 275 for m in measured), measured
    # ISO 400 in light that fills the well at ISO 100 clips the long: the check says so, once
    assert [(c["code"], c["file"]) for c in out["checks"] if c["severity"] != "info"] == [
        ("clipped", "lamp-1_long_10s.dng")]
    df, findings = scan_dataset(tmp_path)
    assert findings == []
    assert list(df["ratio"]) == [250.0, 250.0] and set(df["scene_id"]) == {"lamp-1"}
    assert list(df["short_sha256"]) == [r.sha256 for r in read_log(tmp_path) if r.role == "short"]


def test_sim_dry_run_writes_nothing(tmp_path):
    result = invoke("pair", "--scene", "lamp-1", "--environment", "indoor", "--dataset", str(tmp_path / "ds"),
                    "--short", "1/100", "--ratio", "120", "--dry-run", *SMALL)
    assert result.exit_code == 0, result.output
    assert "1.3 / 1/100 = 130x (true 128x)" in " ".join(result.output.split())   # 1.2 s is not on the list
    assert not (tmp_path / "ds").exists()


def test_sim_refuses_bad_ratio_and_names(tmp_path):
    result = CliRunner().invoke(main, ["pair", "--scene", "a_b", "--environment", "indoor", "--dataset",
                                       str(tmp_path), *SMALL])
    assert result.exit_code == 1 and "use letters, digits and '-' only" in result.output
    result = CliRunner().invoke(main, ["pair", "--scene", "ab", "--environment", "indoor", "--dataset",
                                       str(tmp_path), "--ratio", "50", "--long", "10", *SMALL])
    assert result.exit_code == 1 and "ratio 50 is outside 100-300" in result.output


def test_sim_settings_lists_profile(tmp_path):
    result = invoke("settings", "--camera", "sim", "--profile", "sim-phone10", "--long", "5", "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["camera"] == "Sidkit SIM-PHONE10 PH10-0001" and "1/8000" in out["settings"]["shutter"]["choices"]
    assert out["settings"]["iso"]["choices"][-1] == "3200" and out["long_s"] == 5
    assert {"long": "5", "short": "1/50", "nominal_ratio": 250, "true_ratio": 256} in out["pairs"]
    assert all(100 <= p["nominal_ratio"] <= 300 for p in out["pairs"])
    table = invoke("settings", "--camera", "sim", "--profile", "sim-phone10", "--long", "5")
    assert table.exit_code == 0 and "Sidkit SIM-PHONE10 PH10-0001" in table.output and "1/50" in table.output


def test_pair_output_lists_each_shot_once(tmp_path):
    result = invoke("pair", "--scene", "lamp-1", "--environment", "indoor", "--dataset", str(tmp_path),
                    "--long", "10", "--shorts", "2", "--repeat-long", *SMALL)
    assert result.exit_code == 0, result.output
    names = ["lamp-1_long_10s.dng", "lamp-1_short_1-25s_00.dng", "lamp-1_short_1-25s_01.dng", "lamp-1_long_10s_01.dng"]
    assert sorted(p.name for p in (tmp_path / "lamp-1").iterdir()) == sorted(names)
    # each file once in the shot table, the shorts once more in the quick check's measured ratios
    assert [result.output.count(n) for n in names] == [1, 2, 2, 1]
    assert result.output.count("lamp-1 (indoor) on Sidkit SIM-DSLR14 SD14-0001: 10 / 1/25 = 250x (true 256x)") == 1


def test_sim_exposes_the_true_time_and_logs_the_label(tmp_path):
    """One exposure semantics: the sensor sees the label's power-of-two time, EXIF and the log the label."""
    camera = SimCamera("sim-dslr14", width=128, height=96)
    plan = plan_pair(camera, PairRequest(scene="s", environment="indoor", long=Fraction(10), shorts=1), tmp_path)
    result = shoot_pair(camera, plan, tmp_path)
    long, short = (_signal(s.files[0]).mean() for s in result.shots)
    assert long / short == pytest.approx(256, rel=0.012)        # 250 would be the nominal labels' ratio
    assert [s.details["exposed_s"] for s in result.shots] == [pytest.approx(2 ** (10 / 3)),
                                                               pytest.approx(2 ** (-14 / 3))]
    records = read_log(tmp_path)
    assert [(r.requested_exposure_s, r.camera_exposure, r.extra["exposed_s"]) for r in records] == [
        (10, "10", pytest.approx(2 ** (10 / 3))), (0.04, "1/25", pytest.approx(2 ** (-14 / 3)))]
    assert [float(read_metadata(tmp_path / r.path).exposure_s) for r in records] == [10, 0.04]
    # the body's clock: the short starts after the long's 10.08 s and the readout
    assert records[0].captured_at < records[1].captured_at


def test_session_resumes_numbering_from_the_log(tmp_path):
    # two default scenes (a bad name and a bad environment asked again at once), then stop
    answers = iter(["", "indoor", "first", "my_scene", "", "outside", "outdoor", "", "q"])
    shown = []
    template = PairRequest(scene="", environment="indoor", long=None, shorts=1, iso=800)
    camera = SimCamera("sim-mirrorless12", width=64, height=64)
    results = run_session(camera, template, tmp_path, ask=lambda q, d: next(answers) or d, show=shown.append)
    assert [r.plan.request.scene for r in results] == ["scene-001", "scene-002"]
    assert [r.plan.request.environment for r in results] == ["indoor", "outdoor"]
    assert any("250x" in line for line in shown)
    assert any("scene name 'my_scene'" in line for line in shown)
    # after a crash, a new session starts at the next number, and a repeated scene numbers on
    assert next_scene_name(tmp_path) == "scene-003"
    answers = iter(["scene-001", "indoor", ""])
    run_session(camera, template, tmp_path, ask=lambda q, d: next(answers) or d, show=shown.append,
                max_scenes=1)
    assert "scene scene-001 already has shots: new files get the next numbers" in shown
    assert sorted(p.name for p in (tmp_path / "scene-001").iterdir()) == [
        "scene-001_long_10s.dng", "scene-001_long_10s_01.dng",
        "scene-001_short_1-25s_00.dng", "scene-001_short_1-25s_01.dng"]
    assert [r.notes for r in read_log(tmp_path)][:2] == ["first", "first"]


def test_session_command_prompts_and_shoots(tmp_path):
    result = CliRunner().invoke(main, ["session", "--dataset", str(tmp_path), "--shorts", "1", "--iso", "800",
                                       *SMALL], input="\noutdoor\nby the lake\nq\n")
    assert result.exit_code == 0, result.output
    assert "1 scenes shot into" in result.output
    assert re.search(r"scene-001\W+outdoor\W+10 / 1/25\W+250 \(256\)", result.output)   # the session table's row
    records = read_log(tmp_path)
    assert [(r.scene_id, r.role, r.environment, r.notes, r.iso) for r in records] == [
        ("scene-001", "long", "outdoor", "by the lake", 800), ("scene-001", "short", "outdoor", "by the lake", 800)]


@pytest.mark.skipif(tuple(int(p) for p in version("click").split(".")[:2]) < (8, 4),
                    reason="click's CliRunner before 8.4 echoes prompted input into stdout, ahead of the JSON")
def test_session_json_lists_each_scene_with_its_files_and_checks(tmp_path):
    result = CliRunner().invoke(main, ["session", "--dataset", str(tmp_path), "--shorts", "1", "--format", "json",
                                       *SMALL], input="\nindoor\n\nporch\noutdoor\nwindy\nq\n")
    assert result.exit_code == 0, result.output
    scenes = json.loads(result.stdout)
    assert [(s["scene"], s["environment"], [f for shot in s["shots"] for f in shot["files"]]) for s in scenes] == [
        ("scene-001", "indoor", ["scene-001/scene-001_long_10s.dng", "scene-001/scene-001_short_1-25s_00.dng"]),
        ("porch", "outdoor", ["porch/porch_long_10s.dng", "porch/porch_short_1-25s_00.dng"])]
    assert all(len([c for c in s["checks"] if c["code"] == "measured-ratio"]) == 1 for s in scenes)
    assert [r.path for r in read_log(tmp_path)] == [f for s in scenes for shot in s["shots"] for f in shot["files"]]


def test_detect_and_simulate_as_json(tmp_path):
    cameras = json.loads(invoke("detect", "--format", "json").stdout)
    assert [c for c in cameras if c["camera"] == "sim"] == [
        {"model": f"simulated {name}", "camera": "sim", "profile": name}
        for name in ("sim-dslr14", "sim-mirrorless12", "sim-phone10", "sim-xtrans14")]
    result = CliRunner().invoke(main, ["simulate", str(tmp_path / "ds"), "--scenes", "3", "--size", "32x32",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [(s["scene_id"], s["environment"], s["short_label"], len(s["files"])) for s in summary["scenes"]] == [
        ("sim01", "indoor", "1/25", 3), ("sim02", "indoor", "1/25", 3), ("sim03", "outdoor", "0.5", 3)]
    assert sorted(d["defect"] for d in summary["planted_defects"]) == [
        "measured-ratio-mismatch", "misaligned", "ratio-out-of-range", "ratio-out-of-range"]
    assert all((tmp_path / "ds" / f).is_file() for s in summary["scenes"] for f in s["files"])


@pytest.mark.parametrize("args, message", [
    (["pair", "--scene", "ab", "--environment", "indoor", "--camera", "sim", "--sim-size", "0x0"],
     "--sim-size 0x0: sides must be even and at least 16 pixels"),
    (["pair", "--scene", "ab", "--environment", "indoor", "--camera", "sim", "--ratio", "-5", "--allow-any-ratio"],
     "ratio -5: give a positive"),
    (["settings", "--camera", "sim", "--long", "abc"], "unknown shutter label 'abc'"),
])
def test_bad_options_are_one_line_errors_before_any_output(tmp_path, args, message):
    result = CliRunner().invoke(main, args + (["--dataset", str(tmp_path)] if args[0] == "pair" else []))
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert result.output.startswith("error:")
