"""Synthetic shorts statistically equal to real ones (issue 15): `curate noise-profile --check` passes
per ISO on every simulated body and on a camera whose files other code writes (tifffile, a noise
model of this test's own); the check's numpy sampler and training's torch sampler draw the same
distribution; a profile that misstates the noise fails with exit 1."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from scipy import stats

from capture.cli import main as capture_main
from capture.simulate import simulate_dataset
from curate.cli import main as curate_main
from curate.manifest import read_manifest, write_manifest
from curate.noisecheck import CHECK_RATIO, check_profile, synthesise_counts
from curate.calframes import load_frames
from curate.noisefit import fit_profile
from curate.noiseprofile import read_profile, write_profile
from curate.scan import scan_dataset
from train.synthetic import NoiseModel, synthetic_counts

ISOS = (100, 400, 1600, 6400)


def checked(tmp_path: Path, body: str, size: str) -> tuple[dict, int]:
    """Calibrate ``body`` at ISOS, shoot three pairs per ISO, run the check: (its JSON, the exit code)."""
    cal = tmp_path / "cal"
    shot = CliRunner().invoke(capture_main, ["calibrate", "--dataset", str(cal), "--camera", "sim", "--profile", body,
                                             "--isos", ",".join(map(str, ISOS)), "--darks", "4", "--flat-levels", "4",
                                             "--sim-size", size, "--yes"])
    assert shot.exit_code == 0, shot.output
    width, height = (int(v) for v in size.split("x"))
    data = simulate_dataset(tmp_path / "ds", scenes=3 * len(ISOS), profiles=(body,), shorts_per_scene=1,
                            size=(width, height), defects=False, isos=ISOS)
    df, _ = scan_dataset(data, tmp_path)
    write_manifest(df, tmp_path / "m.csv")
    out = CliRunner().invoke(curate_main, ["noise-profile", str(cal), "-o", str(tmp_path / "p.toml"),
                                           "--check", str(tmp_path / "m.csv"), "--format", "json"])
    return json.loads(out.stdout[out.stdout.index("{"):])["check"], out.exit_code


@pytest.mark.slow
@pytest.mark.parametrize("body, size", [("sim-dslr14", "512x384"), ("sim-mirrorless12", "512x384"),
                                        ("sim-xtrans14", "510x384")])
def test_check_passes_per_iso_on_every_simulated_body(tmp_path, body, size):
    check, code = checked(tmp_path, body, size)
    assert check["verdict"] == "pass" and code == 0, check["failing"]
    assert check["isos"] == list(map(float, ISOS)) and check["pairs"] == 3 * len(ISOS)
    assert not check["too_few_pixels"]
    channels = 9 if body == "sim-xtrans14" else 4
    for iso in ISOS:
        rows = [r for r in check["variance"] if r["iso"] == iso]
        assert len({r["channel"] for r in rows}) == channels and len(rows) >= 3 * channels
        assert all(CHECK_RATIO[0] <= r["ratio"] <= CHECK_RATIO[1] and r["pixels"] >= 20_000 for r in rows), rows
        distances = [d["distance"] for d in check["histogram_distance"] if d["iso"] == iso]
        assert len(distances) == channels and max(distances) < 0.1


# --- a camera written by other code: tifffile DNGs from this test's own noise model -----------------
OTHER = {"cfa": "GBRG", "pattern": (1, 2, 0, 1), "black": 600, "white": 16000, "make": "Othercam", "model": "OC-1"}


def other_noise(iso: float) -> dict:
    """This test's sensor: gain doubling with ISO, read noise before and after the amplifier, Tukey
    lambda 0 (logistic, heavier tails than Gaussian) read noise, row noise growing with ISO."""
    k = 0.3 * iso / 100
    return {"k": k, "read": math.hypot(2.4 * k, 1.5), "row": 0.4 + 0.1 * math.log2(iso / 100), "lam": 0.0}


def other_frame(path: Path, electrons_mean: np.ndarray, iso: float, exposure: tuple[int, int], rng) -> Path:
    import tifffile

    n = other_noise(iso)
    h, w = electrons_mean.shape
    read = stats.tukeylambda.rvs(n["lam"], size=(h, w), random_state=rng) * n["read"] / math.sqrt(
        stats.tukeylambda.var(n["lam"]))
    dn = rng.poisson(electrons_mean) * n["k"] + read + rng.normal(0, n["row"], (h, 1)) + OTHER["black"]
    mosaic = np.clip(np.rint(dn), 0, OTHER["white"]).astype(np.uint16)
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (271, "s", 0, OTHER["make"], True),
            (272, "s", 0, OTHER["model"], True), (50708, "s", 0, f"{OTHER['make']} {OTHER['model']}", True),
            (33421, "H", 2, (2, 2), True), (33422, "B", 4, OTHER["pattern"], True),
            (50713, "H", 2, (1, 1), True), (50714, "H", 1, (OTHER["black"],), True),
            (50717, "H", 1, (OTHER["white"],), True), (33434, "2I", 1, exposure, True),
            (34855, "H", 1, (int(iso),), True), (33437, "2I", 1, (4, 1), True),
            (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
            (36867, "s", 0, "2026:01:01 10:00:00", True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, mosaic, photometric=32803, extratags=tags)
    return path


def other_camera(root: Path, size=(320, 240), scenes: int = 3) -> tuple[Path, Path]:
    """dark/ and flat/ folders (the folder convention of `curate noise-profile`), and short/ + long/
    pairs of ``scenes`` textured scenes at ratio 200, at each of ISOS."""
    rng = np.random.default_rng(11)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    scene = 0.05 + 0.9 * (0.5 + 0.5 * np.sin(xx / 7.0) * np.cos(yy / 11.0)) * (xx / w)   # fraction of the well
    for iso in ISOS:
        for i in range(4):
            other_frame(root / "cal" / "dark" / f"dark_{iso}_{i}.dng", np.zeros((h, w)), iso, (1, 100), rng)
        for level in (0.04, 0.15, 0.35, 0.6):
            electrons = level * (OTHER["white"] - OTHER["black"]) / other_noise(iso)["k"]
            for j in range(2):
                other_frame(root / "cal" / "flat" / f"flat_{iso}_{level}_{j}.dng", np.full((h, w), electrons), iso,
                            (int(level * 1000), 1000), rng)
        for scene_no in range(scenes):
            full = 0.5 * (OTHER["white"] - OTHER["black"]) / other_noise(iso)["k"] * np.roll(scene, 40 * scene_no, 1)
            name = f"iso{iso}s{scene_no}"
            other_frame(root / "pairs" / "long" / f"{name}_long.dng", full, iso, (10, 1), rng)
            other_frame(root / "pairs" / "short" / f"{name}_short.dng", full / 200, iso, (1, 20), rng)
    return root / "cal", root / "pairs"


@pytest.mark.slow
def test_check_passes_per_iso_on_a_camera_sidkit_did_not_write(tmp_path):
    cal, pairs = other_camera(tmp_path)
    frames, findings = load_frames(cal)
    profile, more = fit_profile(frames)
    assert not findings + more and profile.cfa == "GBRG" and [i.iso for i in profile.isos] == list(ISOS)
    for measured in profile.isos:
        truth = other_noise(measured.iso)
        assert measured.k_dn_per_e == pytest.approx(truth["k"], rel=0.05)
        assert measured.read_noise_dn == pytest.approx(truth["read"], rel=0.05)
        assert abs(measured.tukey_lambda - truth["lam"]) < 0.06                 # logistic, not Gaussian (0.14)
    manifest = read_manifest(write_manifest(scan_dataset(pairs, tmp_path)[0], tmp_path / "m.csv"))
    assert len(manifest.rows) == 3 * len(ISOS) and set(manifest.rows["camera"]) == {"Othercam OC-1"}
    check = check_profile(profile, manifest)
    assert check["verdict"] == "pass", check["failing"]
    assert check["isos"] == list(map(float, ISOS))


def test_a_profile_that_misstates_the_noise_fails_the_check_with_exit_1(tmp_path):
    cal, pairs = other_camera(tmp_path)
    profile, _ = fit_profile(load_frames(cal)[0])
    for measured in profile.isos:
        if measured.iso == 100:
            measured.read_noise_dn *= 0.7                   # the low-ISO shortfall, planted
    write_profile(profile, tmp_path / "bad.toml")
    manifest = read_manifest(write_manifest(scan_dataset(pairs, tmp_path)[0], tmp_path / "m.csv"))
    check = check_profile(read_profile(tmp_path / "bad.toml"), manifest)
    assert check["verdict"] == "fail" and {r["iso"] for r in check["failing"]} == {100.0}
    assert all(r["ratio"] < 0.9 for r in check["failing"])
    out = CliRunner().invoke(curate_main, ["noise-profile", str(cal), "-o", str(tmp_path / "p.toml"),
                                           "--check", str(tmp_path / "m.csv")])
    assert out.exit_code == 0 and "check against" in out.stderr and ": pass:" in out.stderr
    from curate.noisecheck import check_summary

    line = check_summary(check)
    assert line.startswith("fail: ") and "ISO 100;" in line and "less noise" in line and "\n" not in line


def test_a_profile_s_noise_has_no_jump_at_the_ends_of_its_measured_range(tmp_path):
    """The low-ISO shortfall: K at the lowest ISO from the cross-ISO fit fell a hair below the lowest
    measured K, and read noise dropped from the measured 2.12 DN to the log-linear fit's 1.66 DN."""
    cal, _ = other_camera(tmp_path, size=(128, 96), scenes=0)
    profile, _ = fit_profile(load_frames(cal)[0])
    lowest = min(profile.isos, key=lambda i: i.iso)
    assert profile.k_at_iso(lowest.iso) == pytest.approx(lowest.k_dn_per_e, rel=1e-9)
    assert profile.noise_at_iso(lowest.iso)["read_noise_dn"] == pytest.approx(lowest.read_noise_dn, rel=1e-9)
    for measured in profile.isos:
        k = measured.k_dn_per_e
        below, above = (profile.sigmas(k * f)["read_noise_dn"] for f in (1 - 1e-6, 1 + 1e-6))
        assert below == pytest.approx(measured.read_noise_dn, rel=1e-4)
        assert above == pytest.approx(measured.read_noise_dn, rel=1e-4)
    model = NoiseModel.from_profile(profile)
    ks = torch.tensor([i.k_dn_per_e for i in profile.isos], dtype=torch.float64)
    assert model.read_sigma(ks).tolist() == pytest.approx([i.read_noise_dn for i in profile.isos], rel=1e-6)


# --- one distribution: the check's sampler (numpy) and training's (torch) ----------------------------
@pytest.mark.parametrize("channels", [4, 9], ids=["bayer", "x-trans"])
def test_check_and_training_samplers_draw_the_same_distribution(channels):
    """Same mean and variance per signal bin within 2% on 10^6 samples a bin, Bayer and X-Trans."""
    k, read, row, lam = 0.9, 3.4, 0.6, 0.14
    levels = np.array([0.5, 3.0, 20.0, 150.0, 1200.0])            # expected DN above black
    h, w = 192, -(-10 ** 6 // (384 * channels)) * 2              # 10^6 values a level (whole X-Trans tiles)
    long_dn = np.broadcast_to(levels[:, None, None, None], (len(levels), channels, h, w))
    rng = np.random.default_rng(0)
    numpy_draws = np.stack([synthesise_counts(long_dn[i], k, read, row, lam, rng) for i in range(len(levels))])
    black, white = 1000.0, 16383.0
    noise = NoiseModel(k, k, 0.0, math.log(read), 0.0, math.log(row), lam)
    counts = synthetic_counts(torch.from_numpy(long_dn / (white - black)).double(), torch.full((channels,), black),
                              white, torch.ones(len(levels), dtype=torch.float64), noise,
                              torch.Generator().manual_seed(0), k=torch.full((len(levels),), k, dtype=torch.float64))
    torch_draws = counts.numpy() - black
    for i, level in enumerate(levels):
        a, b = numpy_draws[i].ravel(), torch_draws[i].ravel()
        assert a.size >= 10 ** 6
        sd = math.sqrt(k * level + read ** 2 + row ** 2)
        assert a.mean() == pytest.approx(b.mean(), abs=0.02 * max(level, sd)), level
        assert a.var() == pytest.approx(b.var(), rel=0.02), level


def test_read_noise_between_measured_isos_follows_pre_and_post_amplifier_noise():
    """Calibrated at ISO 100, 400, 1600 and 6400, the simulated body's true read noise at ISO 200, 800
    and 3200 (hypot of pre- and post-amplifier noise) comes back within 0.5%; a log-log line between
    the measured ISOs overstated ISO 200's by 11% (the check failed there at 1.12x)."""
    from capture import sensor
    from curate.noiseprofile import IsoNoise, NoiseProfile, cross_iso_fit

    body = sensor.PROFILES["sim-dslr14"]
    isos = [IsoNoise(iso=i, k_dn_per_e=t["k_dn_per_e"], read_noise_dn=t["read_noise_dn"], row_noise_dn=0.6,
                     tukey_lambda=0.14, black_level=[2048.0] * 4)
            for i in ISOS for t in [sensor.true_noise(body, i)]]
    profile = NoiseProfile("Sim", "RGGB", 16383.0, isos, cross_iso_fit(isos))
    model = NoiseModel.from_profile(profile)
    for iso in (200, 800, 3200):
        truth = sensor.true_noise(body, iso)
        assert profile.noise_at_iso(iso)["read_noise_dn"] == pytest.approx(truth["read_noise_dn"], rel=0.005), iso
        k = torch.tensor([truth["k_dn_per_e"]], dtype=torch.float64)
        assert float(model.read_sigma(k)) == pytest.approx(truth["read_noise_dn"], rel=0.005), iso
