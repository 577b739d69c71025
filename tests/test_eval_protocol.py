"""`train eval --protocol sid|sidkit`: the same checkpoint scored both ways, tied to the PNGs written."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.manifest import read_manifest
from train import sidprotocol
from train.cli import main
from train.evalinputs import read_truth
from train.evaluate import evaluate, scorer


def test_sid_protocol_scores_the_8bit_pngs_as_matlab(tiny_run, tiny_manifest, tmp_path):
    checkpoint = tiny_run / "checkpoints" / "last.pt"
    ours = evaluate(checkpoint, tiny_manifest, out=tmp_path / "sidkit", device="cpu", images=False)
    sid = evaluate(checkpoint, tiny_manifest, out=tmp_path / "sid", device="cpu", protocol="sid")
    assert (ours["protocol"], sid["protocol"]) == ("sidkit", "sid")
    manifest = read_manifest(tiny_manifest)
    row = next(manifest.rows[manifest.rows["pair_id"] == sid["images"][0]["pair_id"]].itertuples())
    out8 = np.asarray(Image.open(sid["images"][0]["output"]))          # the PNG eval wrote
    truth8 = sidprotocol.to_8bit(read_truth(manifest, row))
    mse = np.mean((out8.astype(np.float64) - truth8) ** 2)
    assert sid["images"][0]["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
    assert sid["images"][0]["ssim"] == pytest.approx(sidprotocol.ssim(out8, truth8), abs=1e-12)
    # same images, other definitions: close in PSNR (8-bit rounding only), not equal; SSIM differs more
    assert sid["psnr"] != ours["psnr"] and abs(sid["psnr"] - ours["psnr"]) < 0.5
    assert sid["ssim"] != ours["ssim"] and sid["baseline_psnr"] != ours["baseline_psnr"]
    report = (tmp_path / "sid" / "report.md").read_text()
    assert "Protocol `sid`" in report and "3-D volume" in report
    assert "Protocol `sidkit`" in (tmp_path / "sidkit" / "report.md").read_text()


def test_eval_cli_protocol(tiny_run, tiny_manifest, tmp_path):
    args = ["eval", str(tiny_run / "checkpoints" / "last.pt"), str(tiny_manifest), "--device", "cpu",
            "--no-images", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args + ["--protocol", "sid", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["protocol"] == "sid"
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "protocol sidkit" in table.output
    bad = CliRunner().invoke(main, args + ["--protocol", "matlab"])
    assert bad.exit_code == 2 and "'matlab' is not one of 'sidkit', 'sid'" in bad.output


def test_scorer_refuses_an_unknown_protocol():
    from curate.common.errors import SidkitError
    with pytest.raises(SidkitError, match="--protocol x: not one of sidkit, sid"):
        scorer("x")
