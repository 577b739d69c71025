"""capture calibrate + curate noise-profile: the simulated camera's own noise comes back from its frames."""
from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import pytest
from click.testing import CliRunner

from capture import sensor
from capture.calibrate import CalibrationRequest, flat_times, run_calibration
from capture.cli import main as capture_main
from capture.simcamera import SimCamera
from curate.capturelog import read_log
from curate.cli import main as curate_main
from curate.exposure import parse_ladder
from curate.calframes import load_frames
from curate.noisefit import fit_profile
from curate.noiseprofile import read_profile
from curate.rawmeta import read_metadata

ISOS = (100, 400, 1600, 6400)


@pytest.fixture(scope="module")
def sim_calibration(tmp_path_factory):
    """The simulated sim-dslr14 calibrated through both commands, as a user would."""
    root = tmp_path_factory.mktemp("cal")
    cal, profile = root / "cal", root / "profiles" / "sim.toml"
    runner = CliRunner()
    shot = runner.invoke(capture_main, ["calibrate", "--dataset", str(cal), "--camera", "sim", "--profile",
                                        "sim-dslr14", "--isos", ",".join(map(str, ISOS)), "--darks", "8",
                                        "--flat-levels", "4", "--yes"])
    assert shot.exit_code == 0, shot.output
    fitted = runner.invoke(curate_main, ["noise-profile", str(cal), "-o", str(profile), "--format", "json"])
    assert fitted.exit_code == 0, fitted.output
    return cal, profile, fitted


@pytest.mark.slow
def test_calibrating_the_simulated_camera_recovers_its_noise(sim_calibration):
    cal, path, fitted = sim_calibration
    body = sensor.PROFILES["sim-dslr14"]
    printed = json.loads(fitted.stdout[fitted.stdout.index("{"):])
    profile = read_profile(path)
    assert printed == profile.to_dict()
    assert profile.camera == body.camera and profile.cfa == "RGGB" and profile.white_level == body.white_level
    assert [i.iso for i in profile.isos] == list(ISOS)
    for measured in profile.isos:
        truth = sensor.true_noise(body, measured.iso)
        assert measured.k_dn_per_e == pytest.approx(truth["k_dn_per_e"], rel=0.05)
        assert measured.read_noise_dn == pytest.approx(truth["read_noise_dn"], rel=0.10)
        assert measured.row_noise_dn == pytest.approx(truth["row_noise_dn"], rel=0.25)
        # canonical order R, Gr, B, Gb = tile positions 0, 1, 3, 2 of RGGB
        assert measured.black_level == pytest.approx([2046, 2048, 2047, 2049], abs=0.5)
        assert measured.darks == 8 and measured.flat_pairs == 4
    assert path.with_name("sim-ptc.png").stat().st_size > 10_000


@pytest.mark.slow
def test_calibration_frames_are_logged_with_roles(sim_calibration):
    cal, _, _ = sim_calibration
    records = read_log(cal)
    roles = [r.role for r in records]
    assert roles.count("dark") == 8 * len(ISOS) and roles.count("flat") == 4 * 2 * len(ISOS)
    assert {r.iso for r in records} == {float(i) for i in ISOS}
    assert all((cal / r.path).is_file() and r.sha256 for r in records)
    flats = [r for r in records if r.role == "flat" and r.iso == 100]
    assert len({r.camera_exposure for r in flats}) == 4            # four levels, a pair each
    assert all(r.camera_exposure in sensor.THIRD_STOP_LABELS for r in flats)


def test_flat_times_span_two_to_seventy_percent_on_the_shutter_list():
    ladder = parse_ladder(sensor.THIRD_STOP_LABELS)
    times = flat_times(ladder, level_per_s=0.05, levels=6)       # 5% of white per second
    levels = [level for _, level in times]
    assert len(times) == 6 and all(label in ladder for label, _ in times)
    assert levels[0] == pytest.approx(0.02, rel=0.3) and levels[-1] == pytest.approx(0.70, rel=0.3)
    assert levels == sorted(levels)


def test_folders_of_raws_and_light_leak(tmp_path):
    """dark/ and flat/ folders are read without a log; a dark shot in light is an error, no file written."""
    cam = SimCamera("sim-dslr14", width=256, height=192)
    for name in ("100", "400"):
        cam.set_and_verify("iso", name)
        cam.aim(sensor.LENS_CAP)
        for i in range(3):
            cam.set_and_verify("shutter", "1/30")
            cam.shoot(tmp_path / "cal" / "dark", f"d{name}_{i}")
        cam.aim(sensor.GREY_CARD)
        for label in ("1/4", "1", "4"):
            for i in range(2):
                cam.set_and_verify("shutter", label)
                cam.shoot(tmp_path / "cal" / "flat", f"f{name}_{label.replace('/', '-')}_{i}")
    frames, findings = load_frames(tmp_path / "cal")
    assert findings == [] and len(frames) == 18
    profile, findings = fit_profile(frames)
    assert findings == [] and [i.iso for i in profile.isos] == [100, 400]
    truth = sensor.true_noise(cam.profile, 400)["k_dn_per_e"]
    assert profile.isos[1].k_dn_per_e == pytest.approx(truth, rel=0.05)
    # the lens cap off for one dark: a light leak
    cam.aim(sensor.GREY_CARD)
    cam.set_and_verify("shutter", "1/30")
    cam.shoot(tmp_path / "cal" / "dark", "d400_leak")
    out = CliRunner().invoke(curate_main, ["noise-profile", str(tmp_path / "cal"), "-o", str(tmp_path / "p.toml")])
    assert out.exit_code == 1 and "dark-light-leak" in out.output and "no profile written" in out.output
    assert not (tmp_path / "p.toml").exists() and not (tmp_path / "p-ptc.png").exists()


def test_no_calibration_frames_is_one_line_error(tmp_path):
    out = CliRunner().invoke(curate_main, ["noise-profile", str(tmp_path), "-o", str(tmp_path / "p.toml")])
    assert out.exit_code == 1 and "no calibration frames" in out.output and "capture calibrate" in out.output


def test_run_calibration_prompts_then_checks_darks_are_dark(tmp_path):
    cam = SimCamera("sim-dslr14", width=64, height=48)
    prompts = []

    def confirm(text):
        prompts.append(text)
        if len(prompts) == 1:
            cam.aim = lambda *a: None        # the user forgot the lens cap: the camera sees the grey card
            SimCamera.aim(cam, sensor.GREY_CARD)

    with pytest.raises(Exception, match="not dark.*lens cap"):
        run_calibration(cam, CalibrationRequest(isos=["400"], darks=2, flat_levels=3,
                                                dark_exposures=[Fraction(1, 10)]),
                        tmp_path, confirm=confirm, show=lambda m: None)
    assert len(prompts) == 1 and "lens cap" in prompts[0]


# --- the libgphoto2 virtual camera: the plan and the prompts ----------------------------------------


def run(env, *args):
    return subprocess.run([sys.executable, "-m", "capture", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_virtual_camera_dry_run_plans_darks_on_its_ladder(vcam, tmp_path):
    out = run(vcam, "calibrate", "--dataset", str(tmp_path / "cal"), "--darks", "4", "--dark-exposures",
              "1/10,1/50", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "GP VC 0.1: 4 dark frames, then 6 flat levels x 2" in out.stdout
    assert "4 darks at 0.0200s, 0.1000s" in out.stdout                  # the camera's own labels
    assert not (tmp_path / "cal").exists()


def test_virtual_camera_refuses_isos_it_lacks(vcam, tmp_path):
    out = run(vcam, "calibrate", "--dataset", str(tmp_path / "cal"), "--isos", "400", "--dry-run")
    assert out.returncode == 1 and "has no ISO setting; leave out --isos" in out.stderr


def test_virtual_camera_prompts_for_the_lens_cap_and_finds_light(vcam, tmp_path):
    """The virtual camera sends an orange JPEG: after the lens-cap prompt the first dark is refused."""
    proc = subprocess.run([sys.executable, "-m", "capture", "calibrate", "--dataset", str(tmp_path / "cal"),
                           "--darks", "2"], env=vcam, input="\n\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Put the lens cap on" in proc.stderr and "not dark" in proc.stderr
    logged = read_log(tmp_path / "cal")
    assert [r.role for r in logged] == ["dark"] and logged[0].camera == "GP VC 0.1"


@pytest.mark.slow
def test_check_compares_synthetic_and_real_shorts(sim_calibration, tmp_path):
    """The realism check on the simulated camera's own pairs: noise variance per signal level agrees."""
    from capture.simulate import simulate_dataset
    from curate.manifest import read_manifest, write_manifest
    from curate.scan import scan_dataset

    dataset = simulate_dataset(tmp_path / "ds", scenes=2, profiles=("sim-dslr14",), size=(256, 192), defects=False)
    df, _ = scan_dataset(dataset, tmp_path)
    write_manifest(df, tmp_path / "m.csv")
    out = CliRunner().invoke(curate_main, ["noise-profile", str(sim_calibration[0]), "-o", str(tmp_path / "p.json"),
                                           "--check", str(tmp_path / "m.csv"), "--format", "json"])
    assert out.exit_code == 0, out.output
    check = json.loads(out.stdout[out.stdout.index("{"):])["check"]
    assert check["pairs"] == len(read_manifest(tmp_path / "m.csv").rows.query("camera.str.contains('DSLR14')"))
    assert check["verdict"] == "pass" and len(check["variance"]) >= 4
    for row in check["variance"]:
        assert 0.9 <= row["ratio"] <= 1.1 and row["iso"] in (100, 200, 400), row
    assert max(d["distance"] for d in check["histogram_distance"]) < 0.1
    assert (tmp_path / "p-check.png").stat().st_size > 10_000 and read_profile(tmp_path / "p.json").isos


@pytest.mark.parametrize("isos", ["abc", ",", "100,-400", "100;400"])
def test_a_bad_iso_list_is_a_one_line_error(tmp_path, isos):
    out = CliRunner().invoke(capture_main, ["calibrate", "--dataset", str(tmp_path / "cal"), "--camera", "sim",
                                            "--isos", isos, "--yes"])
    assert out.exit_code == 1 and out.exception.__class__ is SystemExit
    assert f"--isos {isos}: give ISO numbers separated by commas" in out.stderr
    assert not (tmp_path / "cal" / "captures.jsonl").exists()


@pytest.mark.parametrize("profile, size", [("sim-dslr14", "1024x768"), ("sim-xtrans14", "1536x1032")])
def test_simulated_calibration_frames_default_to_twice_the_profile_s_size(profile, size, tmp_path):
    out = CliRunner().invoke(capture_main, ["calibrate", "--dataset", str(tmp_path / "cal"), "--camera", "sim",
                                            "--profile", profile, "--isos", "400", "--darks", "1", "--flat-levels",
                                            "2", "--yes"])
    assert out.exit_code == 0, out.output
    frames = [json.loads(line) for line in (tmp_path / "cal" / "captures.jsonl").read_text().splitlines()]
    width, height = (int(v) for v in size.split("x"))
    assert {read_metadata(tmp_path / "cal" / f["path"]).width for f in frames} == {width}
    assert {read_metadata(tmp_path / "cal" / f["path"]).height for f in frames} == {height}


@pytest.mark.slow
def test_x_trans_body_calibrated_fitted_checked_and_trained_on_synthetic_shorts(tmp_path):
    """sim-xtrans14 end to end: capture calibrate -> curate noise-profile (with the realism check on
    the body's own pairs) -> a few training steps on shorts synthesised from its longs."""
    import math

    from capture.simulate import simulate_dataset
    from curate.manifest import write_manifest
    from curate.cfa import XTRANS_KIND
    from curate.scan import scan_dataset
    from helpers import metrics, tiny_config
    from train.loop import train_run

    body = sensor.PROFILES["sim-xtrans14"]
    shot = CliRunner().invoke(capture_main, ["calibrate", "--dataset", str(tmp_path / "cal"), "--camera", "sim",
                                             "--profile", "sim-xtrans14", "--isos", "200,800", "--darks", "4",
                                             "--flat-levels", "4", "--sim-size", "384x252", "--yes"])
    assert shot.exit_code == 0, shot.output
    dataset = simulate_dataset(tmp_path / "ds", scenes=3, profiles=("sim-xtrans14",), size=(384, 252), defects=False)
    df, _ = scan_dataset(dataset, tmp_path)
    assert set(df["cfa"]) == {"XTRANS"}
    write_manifest(df, tmp_path / "m.csv")
    out = CliRunner().invoke(curate_main, ["noise-profile", str(tmp_path / "cal"), "-o", str(tmp_path / "p.toml"),
                                           "--check", str(tmp_path / "m.csv"), "--format", "json"])
    assert out.exit_code == 0, out.output
    profile = read_profile(tmp_path / "p.toml")
    assert profile.cfa == "XTRANS" and [i.iso for i in profile.isos] == [200, 800]
    for measured in profile.isos:
        truth = sensor.true_noise(body, measured.iso)
        assert measured.k_dn_per_e == pytest.approx(truth["k_dn_per_e"], rel=0.05)
        assert measured.read_noise_dn == pytest.approx(truth["read_noise_dn"], rel=0.10)
        assert measured.row_noise_dn == pytest.approx(truth["row_noise_dn"], rel=0.25)
        assert measured.black_level == pytest.approx([1024] * 9, abs=0.5)
    check = json.loads(out.stdout[out.stdout.index("{"):])["check"]
    assert {d["channel"] for d in check["histogram_distance"]} == set(XTRANS_KIND.channel_names)
    assert check["verdict"] == "pass" and all(0.9 <= row["ratio"] <= 1.1 for row in check["variance"])
    run = train_run(tiny_config(tmp_path / "m.csv", tmp_path / "run", epochs=2, synthetic=str(tmp_path / "p.toml"),
                                synthetic_fraction=1.0, cache_dir=str(tmp_path / "cache")), progress=False)
    rows = metrics(run)
    assert len(rows) == 2 and all(math.isfinite(float(r["train_loss"])) for r in rows)
