"""train.synthetic: synthesised shorts carry the profile's noise, mean and variance per signal level."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from curate.common.errors import SidkitError
from curate.noiseprofile import IsoNoise, NoiseProfile, cross_iso_fit
from train.synthetic import NoiseModel, parse_ratio_range, synthesise, synthetic_counts, tukey_sample, tukey_std

BLACK, WHITE = 512.0, 16383.0
SPAN = WHITE - BLACK


def model(read=3.0, row=0.8, lam=0.14, k=(1.0, 1.0)):
    return NoiseModel(k[0], k[1], 0.0, math.log(read), 0.0, math.log(row), lam)


def counts_of(x: torch.Tensor) -> np.ndarray:
    """DN above black of an output made with amplification 1."""
    return (x.double() * SPAN).numpy()


@pytest.mark.parametrize("k", [0.5, 4.0])
def test_mean_and_variance_per_signal_level(k):
    levels = torch.tensor([0.0, 0.02, 0.1, 0.4, 1.0])      # long, normalised
    ratio = 10.0
    long = levels.reshape(-1, 1, 1, 1).expand(-1, 4, 256, 256).contiguous()
    g = torch.Generator().manual_seed(0)
    read, row = 3.0, 0.8
    x = synthesise(long, torch.full((4,), BLACK), WHITE, torch.full((5,), ratio), model(read, row), g,
                   k=torch.full((5,), k), amplification=torch.ones(5))
    dn = counts_of(x)
    for i, level in enumerate(levels.tolist()):
        signal = level * SPAN / ratio
        expected_var = k * signal + read ** 2 + row ** 2 + 1 / 12
        got = dn[i]
        if level > 0:                       # at zero signal the clip at black halves the distribution
            assert got.mean() == pytest.approx(signal, abs=0.05 * math.sqrt(expected_var))
            assert got.var() == pytest.approx(expected_var, rel=0.05), (k, level)


def test_row_noise_is_shared_along_a_row_and_by_the_channels_of_that_row():
    long = torch.zeros(1, 4, 128, 512)
    g = torch.Generator().manual_seed(1)
    x = synthesise(long + 0.5, torch.full((4,), BLACK), WHITE, torch.ones(1), model(read=1.0, row=5.0), g,
                   k=torch.full((1,), 1e-3), amplification=torch.ones(1))
    rows = counts_of(x)[0].mean(axis=2)                      # (4, 128) row means
    assert np.corrcoef(rows[0], rows[1])[0, 1] > 0.95        # R and Gr: one mosaic row
    assert np.corrcoef(rows[2], rows[3])[0, 1] > 0.95        # B and Gb
    assert abs(np.corrcoef(rows[0], rows[2])[0, 1]) < 0.3
    assert rows[0].std() == pytest.approx(5.0, rel=0.2)


@pytest.mark.parametrize("cfa", ["RGGB", "XTRANS"])
def test_row_noise_is_one_offset_per_mosaic_row_after_unpacking(cfa):
    from train.rawpack import unpack_raw_counts

    c, s = (9, 3) if cfa == "XTRANS" else (4, 2)
    h, w = 40, 24                                          # packed; the mosaic is h*s x w*s
    g = torch.Generator().manual_seed(7)
    # no light (no shot noise), no read noise (sigma exp(-inf)): only the row offsets (sigma 40 DN) above black
    rows_only = NoiseModel(1.0, 1.0, 0.0, -math.inf, 0.0, math.log(40.0), 0.14)
    x = synthesise(torch.zeros(1, c, h, w), torch.full((c,), BLACK), WHITE, torch.ones(1), rows_only, g,
                   amplification=torch.ones(1))
    counts = synthetic_counts(torch.zeros(1, c, h, w), torch.full((c,), BLACK), WHITE, torch.ones(1), rows_only,
                              torch.Generator().manual_seed(7))
    assert torch.equal((counts - BLACK).clamp(min=0) / SPAN, x)        # the counts the short is made of
    mosaic = unpack_raw_counts(counts[0].double().numpy(), cfa, np.zeros((h * s, w * s)))
    assert np.ptp(mosaic, axis=1).max() == 0                # every pixel of a mosaic row: one offset
    offsets = mosaic[:, 0] - BLACK
    assert np.count_nonzero(np.diff(offsets)) >= 0.9 * (h * s - 1)   # each row its own (ties of whole DN aside)
    assert offsets.std() == pytest.approx(40.0, rel=0.25)
    assert abs(np.corrcoef(offsets[:-1], offsets[1:])[0, 1]) < 0.3     # neighbouring rows independent


def test_synthesis_refuses_a_packing_of_neither_bayer_nor_x_trans():
    with pytest.raises(SidkitError, match="4 \\(Bayer\\) or 9 \\(X-Trans\\)"):
        synthesise(torch.zeros(1, 3, 8, 8), torch.zeros(3), WHITE, torch.ones(1), model(), torch.Generator())


@pytest.mark.parametrize("lam", [-0.2, 0.0, 0.14, 0.5])
def test_tukey_lambda_draws_have_the_distribution(lam):
    g = torch.Generator().manual_seed(2)
    sample = tukey_sample((200_000,), lam, g, "cpu").double().numpy()
    assert sample.std() == pytest.approx(tukey_std(lam), rel=0.03)
    assert tukey_std(lam) == pytest.approx(math.sqrt(stats.tukeylambda.var(lam)), rel=1e-6)
    assert stats.kstest(sample[:20000], stats.tukeylambda(lam).cdf).pvalue > 0.001


def test_heavy_tailed_profile_gives_heavy_tailed_shorts():
    long = torch.zeros(2, 4, 128, 128)
    out = [synthesise(long, torch.full((4,), BLACK), WHITE, torch.ones(2), model(read=20.0, row=0.01, lam=lam),
                      torch.Generator().manual_seed(3), k=torch.ones(2), amplification=torch.ones(2))
           for lam in (0.14, -0.2)]
    # only the positive half survives the clip at black: compare the tails above 3 sigma
    tails = [float((counts_of(x) > 60).mean()) for x in out]
    assert tails[1] > 2 * tails[0]


def test_same_seed_same_shorts_and_output_is_a_real_input():
    long = torch.rand(3, 4, 32, 32)
    args = (torch.full((4,), BLACK), WHITE, torch.tensor([100.0, 200.0, 300.0]), model(k=(0.2, 20.0)))
    a = synthesise(long, *args, torch.Generator().manual_seed(5))
    b = synthesise(long, *args, torch.Generator().manual_seed(5))
    c = synthesise(long, *args, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == long.shape
    # amplified by the ratio, the short's mean returns to the long's (noise aside)
    assert float(a.mean()) == pytest.approx(float(long.clamp(max=1).mean()), rel=0.1)


def test_model_from_a_fitted_profile_follows_its_fits():
    isos = [IsoNoise(iso=i, k_dn_per_e=k, read_noise_dn=r, row_noise_dn=w, tukey_lambda=-0.1, black_level=[0] * 4)
            for i, k, r, w in ((100, 0.25, 1.6, 0.5), (1600, 4.0, 9.0, 2.2), (6400, 16.0, 30.0, 6.0))]
    profile = NoiseProfile("Cam", "RGGB", WHITE, isos, cross_iso_fit(isos))
    m = NoiseModel.from_profile(profile)
    assert (m.k_min, m.k_max) == (0.25, 16.0) and m.tukey_lambda == pytest.approx(-0.1)
    assert float(m.read_sigma(torch.tensor(4.0))) == pytest.approx(9.0, rel=0.2)
    assert float(m.row_sigma(torch.tensor(16.0))) == pytest.approx(6.0, rel=0.2)


def test_ratio_range_parsing():
    assert parse_ratio_range("100:300") == (100.0, 300.0)
    assert parse_ratio_range("250") == (250.0, 250.0)
    for bad in ("300:100", "a:b", "0:5", "1:2:3"):
        with pytest.raises(SidkitError, match="LOW:HIGH"):
            parse_ratio_range(bad)


# --- in a training run ------------------------------------------------------------------------------
def write_test_profile(path, camera="Sim Tiny 1"):
    from curate.noiseprofile import write_profile

    isos = [IsoNoise(iso=i, k_dn_per_e=k, read_noise_dn=r, row_noise_dn=w, tukey_lambda=0.1, black_level=[512.0] * 4)
            for i, k, r, w in ((100, 0.25, 1.6, 0.5), (800, 2.0, 5.0, 1.2), (6400, 16.0, 30.0, 6.0))]
    return write_profile(NoiseProfile(camera, "RGGB", WHITE, isos, cross_iso_fit(isos)), path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from helpers import make_dataset

    folder = tmp_path_factory.mktemp("syn")
    return make_dataset(folder), write_test_profile(folder / "p.toml")


def test_synthetic_run_trains_and_resumes_exactly(tiny, tmp_path):
    from curate.manifest import read_manifest
    from helpers import metrics, tiny_config
    from train.checkpoint import load_checkpoint
    from train.loop import TrainingStopped, train_run

    manifest, profile = tiny
    settings = dict(synthetic=str(profile), synthetic_fraction=0.5, synthetic_ratio="50:200")
    whole = train_run(tiny_config(manifest, tmp_path / "whole", **settings), progress=False)
    config = tiny_config(manifest, tmp_path / "split", **settings)
    with pytest.raises(TrainingStopped):
        train_run(config, progress=False, stop_after_steps=3)
    resumed = train_run(config, progress=False, resume=True)
    assert metrics(resumed) == [{**r, "seconds": m["seconds"]} for r, m in zip(metrics(whole), metrics(resumed))]
    a = load_checkpoint(whole / "checkpoints" / "last.pt")
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["config"]["synthetic"] == str(profile) and a["config"]["synthetic_ratio"] == "50:200"
    isos = read_manifest(manifest).rows["short_iso"]
    assert a["config"]["synthetic_iso"] == f"{isos.min():g}:{isos.max():g}"       # the manifest's shorts' ISOs
    assert 'synthetic_fraction = 0.5' in (whole / "config.toml").read_text()
    assert f'synthetic_iso = "{isos.min():g}:{isos.max():g}"' in (whole / "config.toml").read_text()
    plain = train_run(tiny_config(manifest, tmp_path / "plain"), progress=False)
    plain_weights = load_checkpoint(plain / "checkpoints" / "last.pt")["model"]
    assert not all(torch.equal(a["model"][k], plain_weights[k]) for k in plain_weights)   # synthesis was used


def test_a_manifest_of_longs_only_trains_on_synthetic_shorts(tiny, tmp_path):
    from curate.manifest import read_manifest, write_manifest
    from helpers import metrics, tiny_config
    from train.loop import train_run

    manifest, profile = tiny
    df = read_manifest(manifest).rows
    df["short_path"], df["short_sha256"] = df["long_path"], df["long_sha256"]
    longs = write_manifest(df, manifest.with_name("longs.csv"))
    config = tiny_config(longs, tmp_path / "run", synthetic=str(profile)).resolved()
    assert config.synthetic_fraction == 1.0
    run = train_run(config, progress=False)
    assert all(math.isfinite(float(r["train_loss"])) for r in metrics(run))


def test_synthetic_batches_are_noisy_shorts_of_the_longs_with_their_truth(tiny):
    from curate.manifest import read_manifest
    from train.cache import RawCache
    from train.synthetic import SyntheticShorts

    manifest, profile = tiny
    loaded = read_manifest(manifest)
    cache = RawCache(manifest.parent / ".cache")
    shorts = SyntheticShorts(loaded, cache, str(profile), 1.0, "100:100", "cap:300", 32, None, "cpu")
    g = torch.Generator().manual_seed(0)
    batch = shorts.batch([0, 1], g, "cpu")
    clean = shorts.crops.batch([0, 1], None, torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(batch.target, clean.target) and batch.gain.tolist() == [100.0, 100.0]
    noise = (batch.input - clean.input).std()
    assert 0.005 < float(noise) < 0.5 and float((batch.input - clean.input).mean()).__abs__() < 0.02
    with pytest.raises(SidkitError, match="no such noise profile"):
        SyntheticShorts(loaded, cache, str(manifest.parent / "none.toml"), 1.0, "100:300", "cap:300", 32, None, "cpu")


# --- manifests of long exposures only -------------------------------------------------------------
@pytest.fixture(scope="module")
def longs(tiny):
    """The tiny manifest as `curate scan --longs-only` writes it: every row's short is its long, ratio 1."""
    from curate.manifest import read_manifest, write_manifest

    manifest, _ = tiny
    df = read_manifest(manifest).rows
    df["short_path"], df["short_sha256"] = df["long_path"], df["long_sha256"]
    df["short_exposure_s"], df["ratio"] = df["long_exposure_s"], 1.0
    return write_manifest(df, manifest.with_name("longs-only.csv"))


def test_longs_only_without_a_profile_is_one_line_error_before_any_decoding(longs, tmp_path):
    from click.testing import CliRunner
    from train.cli import main

    result = CliRunner().invoke(main, ["run", str(longs), "--out", str(tmp_path / "run"),
                                       "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(longs) in lines[0] and "long exposures only" in lines[0]
    assert "--synthetic PROFILE" in lines[0] and "curate noise-profile" in lines[0]
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())   # nothing decoded
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.fixture(scope="module")
def longs_run(longs, tmp_path_factory):
    """A run on the longs-only manifest, started from the data folder with a RELATIVE --synthetic (a
    profile of another camera), stopped after 3 of 6 steps and resumed from another folder: (run
    folder, profile, what both processes printed)."""
    import contextlib
    import io
    import os

    from helpers import tiny_config
    from train.config import resume_config
    from train.loop import TrainingStopped, train_run

    profile = write_test_profile(longs.parent / "other.toml", camera="Other Cam 7")
    out = tmp_path_factory.mktemp("longs-run") / "run"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    before, printed = os.getcwd(), io.StringIO()
    try:
        os.chdir(longs.parent)
        with contextlib.redirect_stderr(printed):
            with pytest.raises(TrainingStopped):
                train_run(tiny_config(longs, out, synthetic="other.toml"), progress=True, stop_after_steps=3)
            os.chdir(elsewhere)
            config, _ = resume_config(None, manifest=str(longs), out=str(out))
            train_run(config, progress=True, resume=True)
    finally:
        os.chdir(before)
    return out, profile, printed.getvalue()


def test_a_profile_of_another_camera_warns_in_one_line(longs_run):
    _, profile, printed = longs_run
    warnings = [line for line in printed.splitlines() if line.startswith("warning: noise profile")]
    assert len(warnings) == 2                       # the run and its resume, one line each
    assert "'Other Cam 7'" in warnings[0] and "raws of 'Sim Tiny'" in warnings[0] and "other.toml" in warnings[0]
    assert "have errors" not in printed             # a ratio of 1 is no error in a manifest of longs only


def test_real_steps_on_longs_only_warn_and_real_pairs_do_not(longs, tiny):
    from curate.manifest import read_manifest
    from train.synthetic import check_synthetic_data

    profile = write_test_profile(longs.parent / "same.toml", camera="Sim Tiny")
    lines = check_synthetic_data(read_manifest(longs).rows, longs, str(profile), 0.25)
    assert len(lines) == 1 and "75% of steps without synthetic shorts" in lines[0] and str(longs) in lines[0]
    assert check_synthetic_data(read_manifest(longs).rows, longs, str(profile), 1.0) == []
    assert check_synthetic_data(read_manifest(tiny[0]).rows, tiny[0], str(profile), 0.25) == []


def test_longs_only_run_is_scored_on_the_same_synthetic_shorts_every_time(longs_run, longs):
    from curate.manifest import read_manifest
    from helpers import metrics
    from train.cache import RawCache
    from train.checkpoint import model_from_checkpoint
    from train.config import load_config
    from train.evalinputs import SyntheticLoader, cache_loader
    from train.evaluate import score_model

    out, _, printed = longs_run
    # K at the profile's ISO nearest the longs' (ISO 100: K 0.25), ratios SID's 100:300 (geometric middle 173.2)
    assert "evaluation on val: synthetic shorts of its long exposures, one per image (ratio 173.2, K 0.25 DN/e-)" in printed
    psnrs = [float(r["val_psnr"]) for r in metrics(out)]
    assert len(psnrs) == 3 and all(math.isfinite(p) for p in psnrs)
    config = load_config(out / "config.toml")
    model, _ = model_from_checkpoint(out / "checkpoints" / "last.pt")   # the weights of the last evaluation
    loaded = read_manifest(longs)
    val, cache = loaded.rows[loaded.rows["split"] == "val"], RawCache(config.cache_dir)
    shorts = SyntheticLoader(config.synthetic, config.synthetic_ratio, cache, iso=config.synthetic_iso)
    options = dict(device="cpu", amp=config.amp, channels_last=config.channels_last)
    twice = [score_model(model, loaded, val, config.ratio_policy, load=shorts, **options)["psnr"] for _ in range(2)]
    assert twice[0] == twice[1] == pytest.approx(psnrs[-1], abs=1e-3)
    clean = score_model(model, loaded, val, config.ratio_policy, load=cache_loader(cache), **options)["psnr"]
    assert abs(clean - psnrs[-1]) > 0.01                  # the loop did not score the clean long
    x, truth, gain = shorts(loaded, next(val.itertuples()), config.ratio_policy)
    assert gain == pytest.approx(173.2, abs=0.05) and x.shape == (4, 32, 32) and truth.shape == (64, 64, 3)


def test_relative_profile_is_stored_absolute_so_resume_and_eval_work_from_another_folder(longs_run, longs,
                                                                                         tmp_path, monkeypatch):
    from helpers import metrics
    from train.config import load_config, resume_config
    from train.evaluate import evaluate

    out, profile, _ = longs_run
    assert load_config(out / "config.toml").synthetic == str(profile.resolve())   # written from longs.parent
    assert [int(r["step"]) for r in metrics(out)] == [2, 4, 6]                     # resumed elsewhere, finished
    monkeypatch.chdir(longs.parent)      # the same profile given again, relative: no "changed settings" line
    assert resume_config(None, manifest=str(longs), out=str(out), synthetic="other.toml")[1] == []
    assert resume_config(None, manifest=str(longs), out=str(out), synthetic="p.toml")[1] != []
    monkeypatch.chdir(tmp_path)
    report = evaluate(out / "checkpoints" / "last.pt", longs, split="val", out=tmp_path / "e", device="cpu",
                      images=False)                                                 # the recorded profile
    assert report["inputs"]["profile"] == str(profile.resolve())


def test_eval_of_longs_only_scores_synthetic_shorts_beside_their_baseline(longs_run, longs, tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner
    from curate.manifest import black_levels, read_manifest
    from train.cli import main
    from train.evalinputs import baseline_image, read_truth
    from train.evaluate import score

    out, profile, _ = longs_run
    monkeypatch.chdir(longs.parent)
    result = CliRunner().invoke(main, ["eval", str(out / "checkpoints" / "last.pt"), str(longs), "--split", "all",
                                       "--synthetic", "other.toml", "--format", "json", "--out", str(tmp_path / "e"),
                                       "--device", "cpu", "--no-images"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["inputs"] == {"kind": "synthetic", "profile": "other.toml", "ratio": pytest.approx(173.205, abs=1e-3),
                                "k": pytest.approx(0.25)}   # the run's ISO (100)
    assert [r["ratio"] for r in report["images"]] == [pytest.approx(173.205, abs=1e-3)] * 4
    text = (tmp_path / "e" / "report.md").read_text()
    assert "Inputs: synthetic shorts" in text and "`other.toml`" in text and "ratio 173.2" in text
    loaded = read_manifest(longs)
    for image, row in zip(report["images"], loaded.rows.itertuples()):
        clean = baseline_image(longs.parent / row.long_path, black_levels(row.black_level), row.white_level,
                               image["amplification"])          # the long itself amplified: all white
        clean_psnr = score(clean, read_truth(loaded, row))["psnr"]
        assert math.isfinite(image["baseline_psnr"]) and image["baseline_psnr"] > clean_psnr + 3
        assert image["psnr"] != pytest.approx(image["baseline_psnr"], abs=0.01)
    recorded = CliRunner().invoke(main, ["eval", str(out / "checkpoints" / "last.pt"), str(longs), "--split", "all",
                                         "--format", "json", "--out", str(tmp_path / "r"), "--device", "cpu",
                                         "--no-images"])
    same = json.loads(recorded.stdout)                         # the checkpoint's profile: the same shorts
    assert [r["psnr"] for r in same["images"]] == [r["psnr"] for r in report["images"]]


def test_eval_of_longs_only_without_any_profile_is_one_line_error(tiny_run, longs, tmp_path):
    from click.testing import CliRunner
    from train.cli import main

    result = CliRunner().invoke(main, ["eval", str(tiny_run / "checkpoints" / "last.pt"), str(longs),
                                       "--out", str(tmp_path / "e"), "--device", "cpu"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "long exposures only" in lines[0] and "records no noise profile" in lines[0]
    assert "--synthetic PROFILE" in lines[0] and not (tmp_path / "e").exists()


def test_real_pairs_ignore_the_synthetic_profile(longs_run, tiny, tmp_path):
    from train.evaluate import evaluate

    out, profile, _ = longs_run
    manifest, _ = tiny
    plain = evaluate(out / "checkpoints" / "last.pt", manifest, out=tmp_path / "a", device="cpu", images=False)
    given = evaluate(out / "checkpoints" / "last.pt", manifest, out=tmp_path / "b", device="cpu", images=False,
                     synthetic=profile)
    assert plain["inputs"] == given["inputs"] == {"kind": "real"}
    keys = ("psnr", "ssim", "baseline_psnr", "baseline_ssim")
    assert [plain[k] for k in keys] == [given[k] for k in keys] and plain["images"][0]["ratio"] == 100.0


@pytest.mark.parametrize("cfa", ["RGGB", "GBRG", "XTRANS"])
def test_unpacking_packed_counts_restores_the_mosaic(cfa):
    from train.rawpack import unpack_raw_counts
    from train.rawpack import RawFrame, pack_raw_counts

    mosaic = np.random.default_rng(0).integers(0, 16383, (26, 38), dtype=np.uint16)   # edges past whole tiles
    packed = pack_raw_counts(RawFrame(mosaic, cfa, [0.0] * 4, 16383.0))
    back = unpack_raw_counts(packed, cfa, np.zeros_like(mosaic))
    t = 6 if cfa == "XTRANS" else 2
    h, w = 26 // t * t, 38 // t * t
    assert np.array_equal(back[:h, :w], mosaic[:h, :w]) and not back[h:].any() and not back[:, w:].any()


# --- synthesis for the data at hand ------------------------------------------------------------------
def test_synthesis_draws_the_manifest_s_isos_and_ratios_by_default(tiny, longs):
    from curate.manifest import read_manifest
    from curate.noiseprofile import read_profile
    from train.synthetic import data_ranges

    manifest, path = tiny
    profile, df = read_profile(path), read_manifest(manifest).rows
    iso, ratio = data_ranges(df, profile)
    assert iso == f"{df['short_iso'].min():g}:{df['short_iso'].max():g}"
    assert ratio == f"{df['ratio'].min():.4g}:{df['ratio'].max():.4g}"
    # longs at ISO 100: the nearest measured
    assert data_ranges(read_manifest(longs).rows, profile) == ("100:100", "100:300")
    at_400 = read_manifest(longs).rows
    at_400["long_iso"] = 400.0
    assert data_ranges(at_400, profile)[0] == "800:800"           # 400 is nearer 800 than 100 (in stops)
    model = NoiseModel.from_profile(profile, "100:1600")
    assert model.k_min == pytest.approx(0.25) and model.k_max == pytest.approx(profile.k_at_iso(1600))
    assert NoiseModel.from_profile(profile).k_max == pytest.approx(16.0)          # no range: every measured ISO


def test_synthetic_iso_flag_is_checked_and_recorded(tiny, tmp_path):
    from click.testing import CliRunner
    from train.cli import main
    from train.config import load_config

    manifest, profile = tiny
    bad = CliRunner().invoke(main, ["run", str(manifest), "--synthetic", str(profile), "--synthetic-iso", "1600:100",
                                    "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1 and "--synthetic-iso '1600:100': write LOW:HIGH" in bad.stderr
    config = load_config(None, manifest=str(manifest), synthetic=str(profile), synthetic_iso="100:1600").resolved()
    assert config.synthetic_iso == "100:1600" and config.synthetic_ratio is not None


def test_a_manifest_of_pairs_and_clean_longs_trains_the_longs_only_on_synthetic_shorts(tiny, tmp_path):
    """N real pairs + the longs of other scenes (as `curate scan --longs-only` writes them) in one
    manifest: without a profile a one-line error; with one, a step on a longs-only scene is always
    synthetic, a step on a pair scene synthetic in `fraction` of the draws."""
    from curate.manifest import read_manifest, write_manifest
    from helpers import tiny_config
    from train.cache import RawCache
    from train.synthetic import SyntheticShorts, check_synthetic_data

    manifest, profile = tiny
    df = read_manifest(manifest).rows
    scenes = sorted(df.loc[df["split"] == "train", "scene_id"].unique())
    own = (df["split"] == "train") & (df["scene_id"] != scenes[0])
    df.loc[own, "short_path"], df.loc[own, "short_sha256"] = df.loc[own, "long_path"], df.loc[own, "long_sha256"]
    df.loc[own, "short_exposure_s"], df.loc[own, "ratio"] = df.loc[own, "long_exposure_s"], 1.0
    mixed = write_manifest(df.drop_duplicates(["scene_id", "short_path"]), manifest.with_name("mixed.csv"))
    loaded = read_manifest(mixed)
    with pytest.raises(SidkitError, match="long exposures standing in as their own shorts .* pass --synthetic PROFILE"):
        check_synthetic_data(loaded.rows, mixed, None)

    config = tiny_config(mixed, tmp_path / "run", synthetic=str(profile), synthetic_fraction=0.0).resolved()
    cache = RawCache(config.cache_dir)
    shorts = SyntheticShorts(loaded, cache, str(profile), 0.0, "100:300", "cap:300", 16, None, "cpu")
    assert shorts.no_real_short == [False] + [True] * (len(scenes) - 1)
    g = torch.Generator().manual_seed(0)
    assert shorts.batch([0], g, "cpu") is None                    # the pair scene: fraction 0, real
    assert all(shorts.batch([i], g, "cpu") is not None for i in range(1, len(scenes)))
