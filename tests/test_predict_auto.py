"""`train predict --ratio auto`: the ratio chosen from the image tracks the true exposure ratio."""
from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from curate.common.errors import SidkitError
from curate.manifest import read_manifest
from helpers import make_dataset
from train.autoratio import auto_ratio, check_stored
from train.cli import main
from train.predict import predict


@pytest.fixture(scope="module")
def darker(tmp_path_factory):
    """The tiny scenes again, shot at ratios 250 and 1000 (shorts 2.5x and 10x darker than at 100)."""
    return {ratio: make_dataset(tmp_path_factory.mktemp(f"r{ratio}"), ratio=ratio) for ratio in (250, 1000)}


def auto_of(checkpoint, raw, out):
    result = CliRunner().invoke(main, ["predict", str(checkpoint), str(raw), "--ratio", "auto", "-o", str(out),
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    return float(re.search(r"ratio auto: ([\d.]+)", result.output)[1]), result.output


def test_checkpoint_stores_the_training_inputs_level(tiny_run):
    data = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)["data"]
    stored = data["input_level"]
    check_stored(stored)
    assert stored["percentile"] == 99 and stored["pairs"] == 2        # the two training pairs
    assert 0.3 < stored["level"] < 1.0       # the scenes peak near 0.45 of white after x100


def test_auto_ratio_tracks_the_true_ratio(tiny_run, tiny_manifest, darker, tmp_path):
    checkpoint = tiny_run / "checkpoints" / "last.pt"
    for manifest, true_ratio in [(tiny_manifest, 100), (darker[250], 250), (darker[1000], 1000)]:
        loaded = read_manifest(manifest)
        test = loaded.rows[loaded.rows["split"] == "test"].iloc[0]
        ratio, output = auto_of(checkpoint, loaded.resolve(test.short_path), tmp_path / f"{true_ratio}.png")
        if true_ratio < 300:
            assert ratio == pytest.approx(true_ratio, rel=0.15), (true_ratio, ratio)
            assert "amplification" not in output
        else:   # 2-7 counts of signal under read noise of 3: noise lifts the percentile, the ratio comes out low
            assert 300 < ratio < true_ratio
            assert "amplification 300 under policy cap:300" in output     # the run's policy caps at 300


def test_auto_needs_a_checkpoint_that_stored_the_level(tiny_run, tiny_manifest, tmp_path):
    payload = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)
    del payload["data"]["input_level"]
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    loaded = read_manifest(tiny_manifest)
    raw = loaded.resolve(loaded.rows.iloc[0].short_path)
    result = CliRunner().invoke(main, ["predict", str(old), str(raw), "--ratio", "auto", "-o", str(tmp_path / "o.png"),
                                       "--device", "cpu"])
    assert result.exit_code == 1 and not (tmp_path / "o.png").exists()
    assert result.output.strip().count("\n") == 0
    assert "retrain it, or pass a number, e.g. --ratio 100" in result.output
    assert predict(old, raw, ratio="100", out=tmp_path / "n.png", device="cpu").is_file()   # a number still works
    with pytest.raises(SidkitError, match="--ratio lots: give a number"):
        predict(old, raw, ratio="lots", out=tmp_path / "x.png", device="cpu")

    payload["data"]["input_level"] = {"percentile": 99.0, "level": -1.0, "pairs": 2}
    torch.save(payload, old)
    with pytest.raises(SidkitError, match="input_level .* level -1.0"):
        predict(old, raw, ratio="auto", out=tmp_path / "x.png", device="cpu")


def test_a_black_image_has_no_auto_ratio():
    with pytest.raises(SidkitError, match="too dark to measure"):
        auto_ratio(0.0, {"percentile": 99.0, "level": 0.5, "pairs": 1})


def test_auto_ratio_script_compares_with_the_exif_ratio(tiny_run, tiny_manifest):
    """scripts/auto_ratio.py (the docs' table): EXIF and auto ratio per pair, the network's PSNR with each."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "auto_ratio.py"
    spec = importlib.util.spec_from_file_location("auto_ratio", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.compare(tiny_run / "checkpoints" / "last.pt", tiny_manifest, "test")
    assert len(rows) == 1 and rows[0]["true_ratio"] == 100 and rows[0]["true_gain"] == 100
    assert rows[0]["auto_ratio"] == pytest.approx(100, rel=0.15) and rows[0]["auto_gain"] == rows[0]["auto_ratio"]
    assert 5 < rows[0]["true_psnr"] < 60 and 5 < rows[0]["auto_psnr"] < 60
