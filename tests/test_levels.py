"""Issue 16, item 4: levels that contradict the header or the pixels are findings, and `--clean`
leaves such pairs out. Real DNGs (tests/fuzzcorpus.sim_dng) with single header edits."""
import json
import os
import struct
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import fuzzcorpus
from curate.cli import main
from curate.manifest import COLUMNS, read_manifest, write_manifest
from curate.pixelframe import bayer_green_mask, level_findings, summarise_mosaic
from curate.rawmeta import read_metadata, sha256_file
from curate.validate import validate_manifest

BLACK_LEVEL, WHITE_LEVEL, BITS_PER_SAMPLE = 50714, 50717, 258


def retag(data: bytes, tag: int, new_tag: int) -> bytes:
    """``data`` with the entry of ``tag`` renamed to a tag no reader knows: the entry is gone."""
    out = bytearray(data)
    at = next(at for at, t, _, _ in fuzzcorpus.ifd_entries(data) if t == tag)
    struct.pack_into("<H", out, at, new_tag)
    return bytes(out)


EDITS = {
    "intact": lambda d: d,
    "white-level-ascii": lambda d: fuzzcorpus.set_entry(d, WHITE_LEVEL, kind=2),
    "no-white-level": lambda d: retag(d, WHITE_LEVEL, 50998),
    "no-black-level": lambda d: retag(d, BLACK_LEVEL, 50999),
    "bits-12": lambda d: fuzzcorpus.set_entry(d, BITS_PER_SAMPLE, value=struct.pack("<HH", 12, 0)),
    "bits-14": lambda d: fuzzcorpus.set_entry(d, BITS_PER_SAMPLE, value=struct.pack("<HH", 14, 0)),
}


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """A manifest of one pair per edit (the edit on the short; one shared intact long), each row as a
    scan of the edited file would write it (its header's levels; the original's where it has none)."""
    folder = tmp_path_factory.mktemp("levels")
    (folder / "data").mkdir()
    long = fuzzcorpus.sim_dng(folder / "data" / "long.dng", 128, 96, exposure_s=Fraction(10), seed=7)
    intact = fuzzcorpus.sim_dng(folder / "data" / "intact.dng", 128, 96)
    original = read_metadata(intact)
    rows = []
    for name, edit in EDITS.items():
        short = folder / "data" / f"{name}.dng"
        short.write_bytes(edit(intact.read_bytes()))
        meta = read_metadata(short)
        black = meta.black_level or original.black_level
        rows.append({
            "pair_id": name, "scene_id": name, "split": "train", "environment": "indoor",
            "short_path": os.path.relpath(short, folder), "long_path": "data/long.dng",
            "short_exposure_s": 0.1, "long_exposure_s": 10.0, "ratio": 100.0, "short_iso": 100, "long_iso": 100,
            "short_fnumber": 8, "long_fnumber": 8, "camera": meta.camera, "cfa": meta.cfa,
            "black_level": " ".join(f"{b:g}" for b in black),
            "white_level": meta.white_level or original.white_level, "width": meta.width, "height": meta.height,
            "short_sha256": sha256_file(short), "long_sha256": sha256_file(long)})
    return write_manifest(pd.DataFrame(rows, columns=list(COLUMNS)), folder / "levels.csv")


def by_pair(findings, code):
    out = {}
    for f in findings:
        if f.code == code:
            out.setdefault(f.pair_id, []).append(f)
    return out


def test_header_edits_are_found_without_decoding_pixels(edited):
    found = validate_manifest(read_manifest(edited), fast=True)
    bad, unstated = by_pair(found, "bad-levels"), by_pair(found, "level-unstated")
    assert sorted(bad) == ["bits-12", "bits-14", "no-white-level", "white-level-ascii"]
    # BitsPerSample 16 -> 14 or 12 on uncompressed data: the strips hold 16 bits a sample
    assert bad["bits-14"][0].message.startswith("BitsPerSample 14, but its strips hold 16 bits per sample")
    assert "white level 16383 is above what its BitsPerSample 12 allows (4095)" in bad["bits-12"][1].message
    assert "WhiteLevel entry is not a usable level" in bad["white-level-ascii"][0].message
    assert "no WhiteLevel: the DNG default 65535 (16 bits)" in bad["no-white-level"][0].message
    # a missing BlackLevel reads as 0: a warning from the header alone ...
    assert sorted(unstated) == ["no-black-level"] and unstated["no-black-level"][0].severity == "warning"
    assert "states no BlackLevel: the DNG default 0 0 0 0 is used" in unstated["no-black-level"][0].message
    assert "intact" not in {f.pair_id for f in found if f.severity == "error"}


def test_pixels_turn_a_missing_black_level_and_a_wrong_bit_depth_into_errors(edited):
    found = validate_manifest(read_manifest(edited), workers=1)
    bad = by_pair(found, "bad-levels")
    # ... and an error once the pixels show the short's darkest values far above 0
    assert "black level 0, but the darkest 0.1% of this short exposure sit" in bad["no-black-level"][0].message
    # BitsPerSample 16 -> 14 decodes every pixel differently: its pixels contradict the black level too
    assert any("is above the file's darkest pixels" in f.message for f in bad["bits-14"])
    assert sorted(bad) == ["bits-12", "bits-14", "no-black-level", "no-white-level", "white-level-ascii"]
    assert "intact" not in {f.pair_id for f in found if f.severity == "error"}


def test_clean_leaves_the_untrusted_pairs_out(edited, tmp_path):
    clean = tmp_path / "clean.csv"
    result = CliRunner().invoke(main, ["validate", str(edited), "--format", "json", "--workers", "1",
                                       "--clean", str(clean)])
    assert result.exit_code == 1
    assert {f["pair_id"] for f in json.loads(result.stdout) if f["code"] == "bad-levels"} == set(EDITS) - {"intact"}
    assert list(read_manifest(clean).rows["pair_id"]) == ["intact"]


def frame_of(mosaic, black=512, white=16383):
    return summarise_mosaic(mosaic, bayer_green_mask("RGGB"), [black] * 4, white)


@pytest.fixture(scope="module")
def dark_scene():
    """A 256x256 mosaic at black level 512 with read noise 3 DN: half black, half a ramp up to 9000.
    A black level 6 sigmas (+2 DN) above the true one is an error; the ramp's gradient does not
    widen that margin (the noise is measured on the darkest tiles)."""
    rng = np.random.default_rng(0)
    signal = np.zeros((256, 256))
    signal[:, 128:] = np.linspace(0, 8488, 128)
    return np.clip(512 + signal + rng.normal(0, 3, signal.shape), 0, 16383).astype(np.uint16)


def test_right_levels_give_no_level_finding(dark_scene):
    assert level_findings(frame_of(dark_scene), "x.dng", [512] * 4, 16383) == []


def test_a_white_level_below_the_largest_value_is_an_error(dark_scene):
    found = level_findings(frame_of(dark_scene, white=4095), "x.dng", [512] * 4, 4095)
    assert [f.code for f in found] == ["bad-levels"] and found[0].severity == "error"
    assert found[0].message.startswith("white level 4095 is below the file's largest raw value 90")
    # LibRaw's white level of some bodies sits a little below their largest values: 2% of the range
    assert level_findings(frame_of(dark_scene, white=8950), "x.dng", [512] * 4, 8950) == []


@pytest.mark.parametrize("black, flagged", [(500, False), (512, False), (515, False), (530, True), (600, True), (2048, True)])
def test_a_black_level_above_the_darkest_pixels_is_an_error(dark_scene, black, flagged):
    found = level_findings(frame_of(dark_scene, black=black), "x.dng", [black] * 4, 16383)
    assert bool(found) == flagged, found
    if flagged:
        assert f"black level {black} {black} {black} {black} is above the file's darkest pixels" in found[0].message
