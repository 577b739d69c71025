"""train eval / predict: the network rebuilt from the checkpoint alone, reports, PNGs, mismatches."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from curate.common.errors import SidkitError
from curate.manifest import read_manifest, write_manifest
from train.checkpoint import load_checkpoint
from train.cli import main
from train.evaluate import evaluate, run_network
from train.networks import build_model
from train.networks.unet import UNetSpec
from train.predict import predict


@pytest.fixture(scope="module")
def trained(tiny_manifest, tiny_run):
    """(manifest, run folder) of the shared 6-epoch tiny run; evaluation every 3 epochs."""
    return tiny_manifest, tiny_run


def test_eval_rebuilds_from_the_checkpoint_alone_and_writes_report_and_pngs(trained, tmp_path):
    manifest, run = trained
    alone = shutil.copy(run / "checkpoints" / "best.pt", tmp_path / "model.pt")
    result = evaluate(alone, manifest, split="all", out=tmp_path / "eval")
    assert [r["pair_id"] for r in result["images"]] == ["s0-0", "s1-0", "s2-0", "s3-0"]
    table = {(r["split"], r["environment"]): r for r in result["summary"]}
    assert set(table) == {("train", "outdoor"), ("train", "indoor"), ("train", "all"),
                          ("val", "outdoor"), ("val", "all"), ("test", "indoor"), ("test", "all")}
    assert table[("train", "all")]["images"] == 2
    train_rows = [r for r in result["images"] if r["split"] == "train"]
    assert table[("train", "all")]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in train_rows]))
    # the loop's evaluation (from the cache) and this one (from the raws) agree on the val image
    assert table[("val", "all")]["psnr"] == pytest.approx(load_checkpoint(alone)["best"], abs=1e-4)
    for r in result["images"]:
        assert r["amplification"] == 100 and 10 < r["baseline_psnr"] < 60 and 0 < r["ssim"] <= 1
        assert Image.open(r["output"]).size == (64, 64) and Image.open(r["output"]).mode == "RGB"
        assert Image.open(r["sheet"]).size == (3 * 64 + 2 * 4, 64 + 18)    # 3 panels, 4 px gaps, label band
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "| val | all | 1 |" in report and "| s3-0 | test | indoor |" in report
    assert result["psnr"] == pytest.approx(np.mean([r["psnr"] for r in result["images"]]))


def test_eval_defaults_to_the_run_folder_and_the_test_split(trained, tmp_path):
    manifest, shared = trained
    run = shutil.copytree(shared, tmp_path / "run")       # it writes into the run folder
    result = evaluate(run / "checkpoints" / "last.pt", manifest, images=False)
    assert [r["pair_id"] for r in result["images"]] == ["s3-0"]
    assert (run / "report.md").is_file() and not (run / "outputs").exists()


def test_eval_runs_the_network_in_the_precision_asked_and_says_so(trained, tmp_path):
    manifest, run = trained
    scores = {}
    for amp in ("off", "bf16"):
        result = evaluate(run / "checkpoints" / "last.pt", manifest, split="all", images=False,
                          out=tmp_path / amp, amp=amp)
        assert result["amp"] == amp
        assert f"network run in {'float32' if amp == 'off' else 'bf16'}." in (tmp_path / amp / "report.md").read_text()
        scores[amp] = [r["psnr"] for r in result["images"]]
    assert scores["bf16"] != scores["off"] and scores["bf16"] == pytest.approx(scores["off"], abs=0.1)
    out = CliRunner().invoke(main, ["eval", str(run / "checkpoints" / "last.pt"), str(manifest), "--split", "all",
                                    "--no-images", "--amp", "off", "--out", str(tmp_path / "cli"), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["amp"] == "off" and json.loads(out.stdout)["psnr"] == pytest.approx(
        np.mean(scores["off"]))


def test_xtrans_manifest_on_a_bayer_network_is_a_one_line_error(trained, tmp_path):
    manifest, run = trained
    df = read_manifest(manifest).rows
    df["cfa"] = "XTRANS"
    other = write_manifest(df, tmp_path / "xtrans.csv")
    with pytest.raises(SidkitError, match=r"X-Trans raws \(9 channels\) do not fit .* Bayer \(4 channels\)"):
        evaluate(run / "checkpoints" / "best.pt", other)


def test_missing_split_is_a_one_line_error(trained):
    manifest, run = trained
    with pytest.raises(SidkitError, match="no pairs in split 'holdout'"):
        evaluate(run / "checkpoints" / "best.pt", manifest, split="holdout")


def test_tiled_inference_matches_the_full_image():
    torch.manual_seed(0)
    model = build_model(UNetSpec(widths=(8, 16, 32), encoder_convs=(1, 1), decoder_convs=(1, 1))).eval()
    x = np.random.default_rng(0).random((4, 50, 70), dtype=np.float32)
    full = run_network(model, x)
    tiled = run_network(model, x, tile=40, overlap=16)  # overlap beyond the receptive field
    assert tiled.shape == full.shape == (100, 140, 3)
    assert np.abs(tiled - full).max() < 1e-5


def test_predict_needs_a_ratio_unless_the_policy_is_fixed(trained, tmp_path):
    manifest, run = trained
    short = manifest.parent / "s3_short.dng"
    with pytest.raises(SidkitError, match="pass --ratio"):
        predict(run / "checkpoints" / "best.pt", short, out=tmp_path / "x.png")
    png = predict(run / "checkpoints" / "best.pt", short, ratio=100, out=tmp_path / "x.png")
    assert Image.open(png).size == (64, 64)
    result = evaluate(run / "checkpoints" / "best.pt", manifest, out=tmp_path / "eval")
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(result["images"][0]["output"])))


def test_predict_refuses_bad_ratio_output_name_and_missing_file(trained, tmp_path):
    manifest, run = trained
    raw = manifest.parent / "s0_short.dng"
    with pytest.raises(SidkitError, match="must be positive"):
        predict(run / "checkpoints" / "best.pt", raw, ratio=0, out=tmp_path / "a.png")
    with pytest.raises(SidkitError, match=r"name the output \*.png"):
        predict(run / "checkpoints" / "best.pt", raw, ratio=100, out=tmp_path / "a.jpg")
    with pytest.raises(SidkitError, match="no such file"):
        predict(run / "checkpoints" / "best.pt", tmp_path / "gone.dng", ratio=100, out=tmp_path / "a.png")


def test_a_file_changed_after_scanning_is_refused(trained, tmp_path):
    import shutil

    manifest, run = trained
    copy = tmp_path / "data"
    shutil.copytree(manifest.parent, copy, ignore=shutil.ignore_patterns(".sidkit-cache"))
    with open(copy / "s3_long.dng", "ab") as handle:   # s3 is the test scene
        handle.write(b"\0")
    with pytest.raises(SidkitError, match="s3_long.dng: file changed since the manifest was written"):
        evaluate(run / "checkpoints" / "best.pt", copy / manifest.name, images=False)


def test_an_unreadable_pair_is_a_finding_and_the_others_are_scored(trained, tmp_path):
    from click.testing import CliRunner

    from train.cli import main

    manifest, run = trained
    copy = tmp_path / "data"
    shutil.copytree(manifest.parent, copy, ignore=shutil.ignore_patterns(".sidkit-cache"))
    (copy / "s3_long.dng").write_bytes(b"\0" * 100)                       # the test scene's long, broken
    result = evaluate(run / "checkpoints" / "best.pt", copy / manifest.name, split="all", images=False,
                      out=tmp_path / "eval")
    assert [(f["code"], f["pair_id"]) for f in result["findings"]] == [("unreadable", "s3-0")]
    assert len(result["images"]) == 3 and "s3-0" not in {r["pair_id"] for r in result["images"]}
    cli = CliRunner().invoke(main, ["eval", str(run / "checkpoints" / "best.pt"), str(copy / manifest.name),
                                    "--split", "all", "--no-images", "--out", str(tmp_path / "eval2")])
    assert cli.exit_code == 1 and "s3_long.dng" in cli.stderr and "Traceback" not in cli.output
    assert (tmp_path / "eval2" / "report.md").is_file()
