"""X-Trans end to end: the simulated Fuji-like body (sim-xtrans14) writes real 6x6-CFA DNGs that
rawpy, exifread and curate read back; a simulated X-Trans dataset goes through scan, validate,
train, eval and predict."""
from __future__ import annotations

import json
from datetime import datetime
from fractions import Fraction

import exifread
import numpy as np
import pytest
import rawpy
import torch
from click.testing import CliRunner
from PIL import Image

from capture.cli import main as capture_main
from capture.dng import write_dng
from capture.sensor import PROFILES, expose, true_noise
from capture.simcamera import SimCamera
from curate.cfa import XTRANS_LAYOUT, colour_tile
from curate.common.errors import SidkitError
from curate.manifest import read_manifest, write_manifest
from curate.rawmeta import read_metadata
from curate.scan import scan_dataset
from curate.validate import validate_manifest, without_error_pairs
from train import rawpack
from train.checkpoint import model_from_checkpoint
from train.evalinputs import baseline_image
from train.evaluate import evaluate
from train.loop import train_run
from train.predict import predict

XT = PROFILES["sim-xtrans14"]
SMALL = (192, 132)                  # width, height: multiples of 6, under LibRaw's 512-px X-Trans demosaic tile


def _write(path, mosaic, **overrides):
    settings = dict(make=XT.make, model=XT.model, serial=XT.serial, cfa=XT.cfa, black_level=XT.black_level,
                    white_level=XT.white_level, exposure_s=Fraction(1, 25), iso=800, fnumber=Fraction(28, 10),
                    captured_at=datetime(2026, 1, 2, 3, 4, 5), color_matrix=XT.color_matrix())
    return write_dng(path, mosaic, **{**settings, **overrides})


def _grey(width, height, level=0.4, seed=1):
    return expose(XT, np.full((height, width, 3), level), exposure_s=10, iso=100, fnumber=8, seed=seed)


def test_profile_is_a_fuji_x_trans_body_in_the_phase_rawpack_packs():
    assert (XT.name, XT.make, XT.model, XT.serial, XT.bits, XT.white_level) == (
        "sim-xtrans14", "Sidkit", "SIM-XT14", "XT14-0001", 14, 16383)
    assert XT.cfa == XTRANS_LAYOUT == "RBGBRGGGRGGBGGBGGRBRGRBGGGBGGRGGRGGB"
    assert (XT.tile, XT.cfa_name) == (6, "XTRANS") and set(XT.black_level) == {1024}
    assert XT.width % 6 == 0 and XT.height % 6 == 0 and min(XT.width, XT.height) >= rawpack.XTRANS_DEMOSAIC_MIN
    assert [XT.cfa.count(c) for c in "RGB"] == [8, 20, 8]
    # every 3x3 block of the tile has 5 greens, 2 of one colour and 2 of the other (X-Trans)
    tile = colour_tile(XT.cfa)
    for y in (0, 3):
        for x in (0, 3):
            assert sorted(np.bincount(tile[y:y + 3, x:x + 3].ravel(), minlength=3)) == [2, 2, 5]
    # rawpack (SID's Fuji packing): channel 0 red, 1 green, 2 blue, 3 red, 4 blue, 5-8 green
    colours = rawpack.pack_raw_counts(rawpack.RawFrame(np.tile(tile, (2, 2)).astype(np.uint16), "XTRANS", [0], 1))
    assert [int(np.unique(c)[0]) for c in colours] == [0, 1, 2, 0, 2, 1, 1, 1, 1]
    assert all(len(np.unique(c)) == 1 for c in colours)
    assert true_noise(XT, 800)["black_level"] == [1024] * 4


def test_expose_follows_the_6x6_tile():
    """A flat grey: each photosite's mean is its colour's sensitivity, whatever its place in the tile."""
    mosaic = _grey(*SMALL).astype(float) - 1024
    tile = colour_tile(XT.cfa)
    means = mosaic.reshape(SMALL[1] // 6, 6, SMALL[0] // 6, 6).mean(axis=(0, 2))
    expected = 0.4 * np.asarray(XT.sensitivity)[tile] * 0.95 * XT.full_well_e / XT.gain(100)
    assert means == pytest.approx(expected, rel=0.02)


def test_dng_reads_back_in_rawpy_exifread_and_curate(tmp_path):
    mosaic = _grey(*SMALL)
    path = _write(tmp_path / "xt.dng", mosaic)
    with rawpy.imread(str(path)) as raw:
        assert np.array_equal(raw.raw_image_visible, mosaic)
        assert raw.raw_pattern.shape == (6, 6)
        desc = raw.color_desc.decode()
        assert "".join(desc[i] for i in raw.raw_pattern.ravel()) == XTRANS_LAYOUT
        assert list(raw.black_level_per_channel) == [1024] * 4 and raw.white_level == 16383
        assert raw.other.iso_speed == 800 and raw.other.shutter_speed == pytest.approx(1 / 25)
    with open(path, "rb") as handle:
        tags = exifread.process_file(handle, details=False)
    assert tags["EXIF ExposureTime"].values[0] == Fraction(1, 25)
    assert tags["Image CFARepeatPatternDim"].values == [6, 6]
    assert tags["Image CFAPattern"].values == [int(c) for c in colour_tile(XTRANS_LAYOUT).ravel()]
    assert tags["Image Tag 0xC619"].values == [1, 1] and tags["Image BlackLevel"].values == [1024]  # RepeatDim 1x1
    meta = read_metadata(path)
    assert (meta.cfa, meta.black_level, meta.white_level) == ("XTRANS", [1024] * 4, 16383)
    assert (meta.exposure_s, meta.iso, meta.width, meta.height) == (Fraction(1, 25), 800, *SMALL)
    frame = rawpack.read_raw(path)
    assert frame.cfa == "XTRANS" and rawpack.pack(frame).shape == (9, SMALL[1] // 3, SMALL[0] // 3)


def test_per_position_black_levels_reach_libraw(tmp_path):
    """Four levels (per 2x2 position, curate's convention) are written as a 2x2 BlackLevel repeat."""
    path = _write(tmp_path / "xt.dng", _grey(*SMALL), black_level=[1020, 1022, 1024, 1026])
    assert read_metadata(path).black_level == [1020, 1022, 1024, 1026]
    with rawpy.imread(str(path)) as raw:          # rawpy shows the lowest; LibRaw keeps the rest as a pattern
        assert list(raw.black_level_per_channel) == [1020] * 4


def test_libraw_renders_a_grey_patch_grey(tmp_path):
    """516x516: large enough for LibRaw's own X-Trans demosaic (Markesteijn); white balance from the DNG."""
    path = _write(tmp_path / "grey.dng", _grey(516, 516), iso=100, exposure_s=Fraction(10))
    with rawpy.imread(str(path)) as raw:
        rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=16, gamma=(1, 1), user_flip=0)
    mean = rgb[100:400, 100:400].reshape(-1, 3).mean(0) / 65535
    assert rgb.shape == (516, 516, 3) and mean == pytest.approx([0.38] * 3, abs=0.01)   # 0.4 x 95% fill
    truth = rawpack.ground_truth(path)
    assert truth.shape == (516, 516, 3) and np.array_equal(truth, rawpack.ground_truth(path))


def test_small_x_trans_ground_truth_falls_back_to_linear_demosaic(tmp_path):
    """LibRaw's X-Trans demosaic refuses images under 512 px a side ('Input/output error')."""
    path = _write(tmp_path / "small.dng", _grey(*SMALL), iso=100, exposure_s=Fraction(10))
    with rawpy.imread(str(path)) as raw, pytest.raises(rawpy.LibRawIOError):
        raw.postprocess(**rawpack.POSTPROCESS)
    truth = rawpack.ground_truth(path)
    assert truth.shape == (SMALL[1], SMALL[0], 3)
    large = rawpack.ground_truth(_write(tmp_path / "large.dng", _grey(516, 516), iso=100, exposure_s=Fraction(10)))
    mean = truth[20:-20, 20:-20].reshape(-1, 3).mean(0) / 65535           # grey, and as bright as the
    assert mean == pytest.approx(large[100:400, 100:400].reshape(-1, 3).mean(0) / 65535, abs=0.003)  # large one
    assert mean == pytest.approx([0.61] * 3, abs=0.01)                    # 0.38 through BT.709 gamma


@pytest.mark.parametrize("kwargs, words", [
    (dict(mosaic=np.zeros((132, 190), np.uint16)), "multiples of 6"),
    (dict(mosaic=np.zeros((132, 192), np.uint16), cfa="RGB" * 12), "X-Trans tile"),
    (dict(mosaic=np.zeros((132, 192), np.uint16), black_level=[1024] * 3), "1 or 4 or 36 black levels"),
])
def test_bad_x_trans_input_is_one_line_and_writes_nothing(tmp_path, kwargs, words):
    with pytest.raises(SidkitError, match=words) as info:
        _write(tmp_path / "bad.dng", **kwargs)
    assert "bad.dng" in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_sim_camera_and_capture_pair_shoot_x_trans(tmp_path):
    camera = SimCamera("sim-xtrans14")
    assert (camera.width, camera.height) == (384, 258)
    with pytest.raises(SidkitError, match="multiples of 6, e.g. 510x384"):
        SimCamera("sim-xtrans14", width=512, height=384)
    result = CliRunner().invoke(capture_main, [
        "pair", "--camera", "sim", "--profile", "sim-xtrans14", "--sim-size", "192x132", "--scene", "fuji",
        "--environment", "indoor", "--dataset", str(tmp_path / "ds"), "--shorts", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "ds").rglob("*.dng"))
    assert len(files) == 2
    for f in files:
        meta = read_metadata(f)
        assert (meta.cfa, meta.camera, meta.width, meta.height) == ("XTRANS", "Sidkit SIM-XT14", *SMALL)
    bad = CliRunner().invoke(capture_main, [
        "simulate", str(tmp_path / "sim"), "--profiles", "sim-xtrans14", "--size", "128x96", "--scenes", "3"])
    assert bad.exit_code == 1 and "multiples of 6, e.g. 126x96" in bad.output
    assert not (tmp_path / "sim").exists()


@pytest.mark.slow
def test_x_trans_dataset_scans_validates_trains_evaluates_and_predicts(tmp_path):
    """384x258 (the smallest size at which validate can align X-Trans pairs of these scenes)."""
    result = CliRunner().invoke(capture_main, [
        "simulate", str(tmp_path / "ds"), "--profiles", "sim-xtrans14", "--size", "384x258", "--scenes", "6",
        "--shorts", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    dataset = tmp_path / "ds"
    planted = {(d["scene_id"], d["defect"]) for d in json.loads((dataset / "planted_defects.json").read_text())}
    assert planted == {("sim04", "measured-ratio-mismatch"), ("sim05", "misaligned"), ("sim06", "ratio-out-of-range")}

    df, findings = scan_dataset(dataset, manifest_dir=tmp_path)
    assert findings == [] and len(df) == 6
    assert set(df["cfa"]) == {"XTRANS"} and set(df["black_level"]) == {"1024 1024 1024 1024"}
    assert set(df["width"]) == {384} and set(df["height"]) == {258} and set(df["camera"]) == {"Sidkit SIM-XT14"}
    df["split"] = ["train", "val", "test", "train", "train", "train"]
    manifest = write_manifest(df, tmp_path / "fuji.csv")

    loaded = read_manifest(manifest)
    found = validate_manifest(loaded)
    errors = {(f.pair_id.split("_")[0], f.code) for f in found if f.severity == "error"}
    assert errors == planted
    clean = without_error_pairs(loaded.rows, found)
    assert sorted(clean["split"]) == ["test", "train", "val"]
    manifest = write_manifest(clean, tmp_path / "clean.csv")

    from helpers import TINY, tiny_config
    run = train_run(tiny_config(manifest, tmp_path / "run", epochs=3, patch=24), progress=False)
    model, payload = model_from_checkpoint(run / "checkpoints" / "last.pt", "cpu")
    assert (model.spec.in_channels, model.spec.upscale) == (9, 3)
    assert model.head.out_channels == 3 * 3 ** 2          # RGB at 3x3 sub-pixels, pixel-shuffled
    assert (payload["data"]["cfa_kind"], payload["data"]["channels"], payload["data"]["upscale"]) == ("xtrans", 9, 3)
    assert payload["spec"]["widths"] == TINY["widths"]
    out = model(torch.zeros(1, 9, 24, 24))
    assert out.shape == (1, 3, 72, 72)

    scored = evaluate(run / "checkpoints" / "best.pt", manifest, split="all", out=tmp_path / "eval")
    assert len(scored["images"]) == 3
    for r in scored["images"]:
        assert np.isfinite(r["psnr"]) and 5 < r["psnr"] < 60 and np.isfinite(r["baseline_psnr"])
        assert Image.open(r["output"]).size == (384, 258)

    short = tmp_path / clean[clean["split"] == "test"]["short_path"].iloc[0]
    png = predict(run / "checkpoints" / "last.pt", short, ratio=250, out=tmp_path / "fuji.png")
    assert Image.open(png).size == (384, 258) and Image.open(png).mode == "RGB"


def _shifted_layout(dy: int, dx: int) -> str:
    """XTRANS_LAYOUT in another phase: the tile a crop starting (dy, dx) pixels earlier sees."""
    return "".join(np.roll(np.array(list(XTRANS_LAYOUT)).reshape(6, 6), (dy, dx), axis=(0, 1)).ravel())


@pytest.mark.parametrize("phase", [(1, 2), (0, 1), (5, 3)])
def test_x_trans_in_another_phase_packs_pure_colours_aligned_with_its_ground_truth(tmp_path, phase):
    """Fuji bodies differ in where the visible area starts in the tile: packing starts where SID's layout does."""
    layout = _shifted_layout(*phase)
    tile = colour_tile(layout)
    mosaic = (2000 + 3000 * np.tile(tile.astype(np.uint16), (SMALL[1] // 6, SMALL[0] // 6))).astype(np.uint16)
    path = _write(tmp_path / "phase.dng", mosaic, cfa=layout)
    frame = rawpack.read_raw(path)
    oy, ox = frame.origin
    assert (oy % 3, ox % 3) == (phase[0] % 3, phase[1] % 3)        # the tile repeats itself shifted by (3, 3)
    packed = rawpack.pack_raw_counts(frame)
    assert [np.unique(c).tolist() for c in packed] == [[2000 + 3000 * "RGB".index(c)] for c in "RGBRBGGGG"]
    rows, cols = (SMALL[1] - oy) // 6 * 6, (SMALL[0] - ox) // 6 * 6
    assert packed.shape == (9, rows // 3, cols // 3)
    truth = rawpack.ground_truth(path)
    assert truth.shape == (rows, cols, 3)
    back = rawpack.unpack_raw_counts(packed, "XTRANS", np.zeros_like(mosaic), frame.origin)
    assert np.array_equal(back[oy:oy + rows, ox:ox + cols], mosaic[oy:oy + rows, ox:ox + cols])
    for counts in (None, packed):                 # eval's baseline: from the file, or from packed counts
        baseline = baseline_image(path, frame.black, frame.white, 1.0, packed=counts, cfa="XTRANS")
        assert baseline.shape == truth.shape
        assert baseline.dtype == truth.dtype == np.uint16                 # rawpy's rendering, as the truth
        assert np.abs(baseline.astype(int) - truth)[6:-6, 6:-6].max() <= 6  # the border: black beyond the crop
    from curate.calframes import read_mosaic
    from curate.cfa import pack

    calibration = read_mosaic(path)               # curate's noise profiles start where packing does
    assert np.array_equal(calibration, mosaic[oy:, ox:])
    assert [np.unique(p).tolist() for p in pack(calibration, "XTRANS")] == [[int(v)] for v in packed[:, 0, 0]]


def test_a_6x6_filter_that_is_no_x_trans_layout_is_refused_in_one_line(tmp_path):
    path = _write(tmp_path / "odd.dng", _grey(*SMALL), cfa="R" * 8 + "G" * 20 + "B" * 8)
    with pytest.raises(SidkitError, match="odd.dng: its 6x6 colour filter is no X-Trans layout"):
        rawpack.read_raw(path)
    from curate.calframes import read_mosaic

    with pytest.raises(SidkitError, match="odd.dng: its 6x6 colour filter is no X-Trans layout"):
        read_mosaic(path)
