"""The simulated sensor end to end: `capture pair --camera sim` writes DNGs + log that curate reads back."""
import re

import pytest
from click.testing import CliRunner

from capture.cli import main
from capture.pair import PairRequest
from capture.session import next_scene_name, run_session
from capture.simcamera import SimCamera
from curate.capturelog import read_log
from curate.rawmeta import read_metadata
from curate.scan import scan_dataset

SMALL = ["--camera", "sim", "--sim-size", "128x96"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_sim_pair_writes_dngs_whose_exif_matches(tmp_path):
    result = invoke("pair", "--scene", "lamp-1", "--environment", "indoor", "--dataset", str(tmp_path),
                    "--long", "10", "--shorts", "2", "--iso", "400", "--fnumber", "8", *SMALL)
    assert result.exit_code == 0, result.output
    assert "250x nominal, 256x true" in result.output
    files = sorted(p.name for p in (tmp_path / "lamp-1").iterdir())
    assert files == ["lamp-1_long_10s.dng", "lamp-1_short_1-25s_00.dng", "lamp-1_short_1-25s_01.dng"]
    short = read_metadata(tmp_path / "lamp-1" / files[1])
    long = read_metadata(tmp_path / "lamp-1" / files[0])
    assert (float(short.exposure_s), short.iso, short.fnumber) == (0.04, 400, 8)
    assert (float(long.exposure_s), long.camera, long.cfa, long.width) == (10, "Sidkit SIM-DSLR14", "RGGB", 128)
    # the quick check measured the brightness ratio from the pixels
    measured = [float(m) for m in re.findall(r"measured brightness ratio ([\d.]+)", result.output)]
    assert len(measured) == 2 and all(225 < m < 275 for m in measured)
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
    result = invoke("settings", "--camera", "sim", "--profile", "sim-phone10", "--long", "5")
    assert result.exit_code == 0, result.output
    assert "Sidkit SIM-PHONE10 PH10-0001" in result.output and "1/8000" in result.output
    assert re.search(r"1/50\s*│\s*250\s*│\s*256", result.output)


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
    records = read_log(tmp_path)
    assert [(r.scene_id, r.role, r.environment, r.notes, r.iso) for r in records] == [
        ("scene-001", "long", "outdoor", "by the lake", 800), ("scene-001", "short", "outdoor", "by the lake", 800)]


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
