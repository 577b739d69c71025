"""`train predict` on real and broken raws: a file it cannot decode, or whose pixel data is missing
(curate.rawmeta.check_pixels, validate's check), is one line naming the file, exit 1, no PNG."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pandas as pd
import pytest
import rawpy
import torch
from click.testing import CliRunner

from curate.common.errors import SidkitError
from helpers import TINY, make_dataset
from train.checkpoint import rng_state, save_checkpoint
from train.cli import main
from train.rundata import data_description
from train.networks import build_model
from train.networks.unet import UNetSpec
from train.predict import predict


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(checkpoint of an untrained tiny Bayer network, folder of tiny DNG pairs)."""
    folder = tmp_path_factory.mktemp("predict")
    make_dataset(folder, size=32)
    spec = UNetSpec.from_dict({**TINY, "in_channels": 4, "upscale": 2})
    model = build_model(spec)
    path = save_checkpoint(folder / "best.pt", model=model, optimizer=torch.optim.Adam(model.parameters()),
                           schedule={"lr": 1e-4, "lr_steps": []}, epoch=0, step=0, best=None,
                           spec=spec.to_dict(), data=data_description(pd.DataFrame({"cfa": ["RGGB"]}), "cap:300", "t"),
                           config={}, rng=rng_state(torch.Generator()))
    return path, folder


def invoke(checkpoint: Path, raw: Path, out: Path):
    return CliRunner().invoke(main, ["predict", str(checkpoint), str(raw), "--ratio", "100", "-o", str(out),
                                     "--device", "cpu"])


def assert_refused(result, raw: Path, out: Path, *words: str):
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {raw}: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert result.stdout == "" and not out.exists() and "Traceback" not in result.output


def test_a_good_raw_is_brightened(setup, tmp_path):
    checkpoint, folder = setup
    result = invoke(checkpoint, folder / "s0_short.dng", tmp_path / "b.png")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == tmp_path / "b.png" and (tmp_path / "b.png").stat().st_size > 100


COMPLETE = ("RAW_CANON_D30_SRGB.CRW", "Blackmagic.dng")      # SOURCES.md: pixel data present, Bayer RGGB


def test_every_incomplete_sample_raw_is_refused_in_one_line(setup, raw_samples, tmp_path):
    """The samples but the two complete ones (SOURCES.md): stripped CR2/CR3/CRW/RAF/NEF/RW2/DNG/ARW
    copies, a LinearRaw DNG (iPhone ProRAW, JPEG XL Nikon Z 9) and a film scanner's RGB NEF."""
    checkpoint, _ = setup
    samples = sorted(p for p in raw_samples.iterdir() if p.suffix.lower() != ".md" and p.name not in COMPLETE)
    assert len(samples) >= 10
    for index, raw in enumerate(samples):
        out = tmp_path / f"{index}.png"
        assert_refused(invoke(checkpoint, raw, out), raw, out)


@pytest.mark.parametrize("name, size", [("RAW_CANON_D30_SRGB.CRW", (2176, 1448)), ("Blackmagic.dng", (4128, 2176))])
def test_a_real_camera_s_complete_raw_is_brightened(setup, raw_samples, tmp_path, name, size):
    """A real Canon D30 CRW and a cinema camera's DNG (no exposure time: --ratio given) through the
    network into a PNG of the raw's visible size."""
    from PIL import Image

    checkpoint, _ = setup
    if not (raw_samples / name).exists():
        pytest.skip(f"{name} not among the samples")
    result = invoke(checkpoint, raw_samples / name, tmp_path / "x.png")
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == tmp_path / "x.png"
    with Image.open(tmp_path / "x.png") as image:        # the tiny test network draws no picture to judge
        assert image.size == size and image.mode == "RGB"


@pytest.mark.parametrize("name, words", [
    ("Panasonic.rw2", ["no usable pixel data", "strip data missing", "complete raw"]),
    ("DNG.dng", ["no usable pixel data", "tiles"]),
    ("CanonRaw.cr3", ["no usable pixel data"]),
    ("FujiFilm.raf", ["no usable pixel data", "LibRaw cannot decode"]),
    ("nikon_z_9_high_efficiency_compressed_dx_cropped_max_overexposed.dng", ["no usable pixel data", "LibRaw"]),
    ("Nikon_uncompressed.nef", ["not a colour-filter-array raw"]),
])
def test_stripped_and_undecodable_samples_say_why(setup, raw_samples, tmp_path, name, words):
    checkpoint, _ = setup
    if not (raw_samples / name).exists():
        pytest.skip(f"{name} not among the samples")
    out = tmp_path / "x.png"
    assert_refused(invoke(checkpoint, raw_samples / name, out), raw_samples / name, out, *words)


def test_a_truncated_dng_is_refused(setup, tmp_path):
    checkpoint, folder = setup
    data = (folder / "s0_short.dng").read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 1000):
        raw = tmp_path / f"cut{cut}.dng"
        raw.write_bytes(data[:cut])
        assert_refused(invoke(checkpoint, raw, tmp_path / "x.png"), raw, tmp_path / "x.png")


def test_special_files_are_refused_without_opening_them(setup, tmp_path):
    checkpoint, _ = setup
    fifo = tmp_path / "x.dng"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.dng"
    folder.mkdir()
    with pytest.raises(SidkitError, match="folder.dng: not a regular file"):   # click refuses it too (exit 2)
        predict(checkpoint, folder, ratio=100, out=tmp_path / "x.png", device="cpu")
    for raw, words in ((fifo, ["not a regular file"]), (tmp_path / "none.dng", ["no such file"])):
        outcome = {}
        worker = threading.Thread(target=lambda raw=raw, outcome=outcome: outcome.update(
            result=invoke(checkpoint, raw, tmp_path / "x.png")), daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), f"predict hangs on {raw}"
        assert_refused(outcome["result"], raw, tmp_path / "x.png", *words)


def test_a_decoder_error_after_the_check_is_one_line(setup, tmp_path, monkeypatch):
    """LibRaw errors raised while decoding (after check_pixels passed) are turned into SidkitError."""
    checkpoint, folder = setup
    import train.predict as module

    def broken(path, *args, **kwargs):
        raise rawpy.LibRawIOError(b"Input/output error")

    monkeypatch.setattr(module.rawpack, "read_raw", broken)
    raw = folder / "s0_short.dng"
    with pytest.raises(SidkitError, match=r"cannot be decoded \(LibRawIOError: Input/output error\); .*nothing "
                                          "written"):
        predict(checkpoint, raw, ratio=100, out=tmp_path / "x.png", device="cpu")
    assert not (tmp_path / "x.png").exists()
