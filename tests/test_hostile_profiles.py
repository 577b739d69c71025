"""Noise profiles are checked like checkpoints (issue 16): a FIFO, a device, an oversized file or any
value that cannot be a camera's noise is a one-line error naming the key, never a hang, a traceback
or a run that trains on nonsense; also when the path comes from a checkpoint."""
from __future__ import annotations

import math
import os

import pytest
from click.testing import CliRunner

from helpers import time_limit
from curate.common.errors import SidkitError
from curate.noiseprofile import PROFILE_MAX_BYTES, IsoNoise, NoiseProfile, cross_iso_fit, read_profile, write_profile


def good_profile(cfa: str = "RGGB") -> NoiseProfile:
    channels = 9 if cfa == "XTRANS" else 4
    isos = [IsoNoise(iso=i, k_dn_per_e=k, read_noise_dn=r, row_noise_dn=w, tukey_lambda=0.1,
                     black_level=[512.0] * channels) for i, k, r, w in ((100, 0.25, 1.6, 0.5), (1600, 4.0, 9.0, 2.2))]
    return NoiseProfile("Cam 1", cfa, 16383.0, isos, cross_iso_fit(isos))


def edited(tmp_path, edit, fmt: str = "toml"):
    """A good profile with one edit, written as TOML or JSON (both carry nan and inf)."""
    import json

    import tomli_w

    data = good_profile().to_dict()
    edit(data)
    path = tmp_path / f"p.{fmt}"
    path.write_text(json.dumps(data) if fmt == "json" else tomli_w.dumps(data))
    return path


def iso0(key, value):
    return lambda d: d["isos"][0].__setitem__(key, value)


BAD_VALUES = {   # edit -> the start of what the error says after the path
    "gain zero": (iso0("k_dn_per_e", 0.0), "isos[0].k_dn_per_e = 0.0 must be a finite gain above 0"),
    "gain negative": (iso0("k_dn_per_e", -1.0), "isos[0].k_dn_per_e = -1.0 must be a finite gain above 0"),
    "gain nan": (iso0("k_dn_per_e", math.nan), "isos[0].k_dn_per_e = nan must be"),
    "gain inf": (iso0("k_dn_per_e", math.inf), "isos[0].k_dn_per_e = inf must be"),
    "read noise negative": (iso0("read_noise_dn", -0.1), "isos[0].read_noise_dn = -0.1 must be a finite number >= 0"),
    "row noise nan": (iso0("row_noise_dn", math.nan), "isos[0].row_noise_dn = nan must be"),
    "lambda without variance": (iso0("tukey_lambda", -0.7), "isos[0].tukey_lambda = -0.7 must be a finite shape"),
    "iso zero": (iso0("iso", 0.0), "isos[0].iso = 0.0 must be a finite number above 0"),
    "three black levels": (iso0("black_level", [512.0] * 3), "isos[0].black_level has 3 values; a RGGB profile has 4"),
    "black above white": (iso0("black_level", [20000.0] * 4), "isos[0].black_level [20000.0, 20000.0, 20000.0, 20000.0] must"),
    "white nan": (lambda d: d.__setitem__("white_level", math.nan), "white_level = nan must be a finite number above 0"),
    "cfa RRRR": (lambda d: d.__setitem__("cfa", "RRRR"), "cfa: CFA 'RRRR': noise profiles support Bayer"),
    "format 99": (lambda d: d.__setitem__("format_version", 99), "format_version 99 is not 1"),
    "fit nan": (lambda d: d["fit"].__setitem__("read_slope", math.nan), "fit.read_slope = nan must be a finite number"),
    "no isos": (lambda d: d.__setitem__("isos", []), "the noise profile lists no ISO"),
    "extra key": (iso0("gain", 1.0), "not a sidkit noise profile (TypeError"),
}


@pytest.mark.parametrize("name", list(BAD_VALUES))
@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_a_value_that_cannot_be_noise_is_one_line_error_naming_its_key(tmp_path, name, fmt):
    edit, message = BAD_VALUES[name]
    path = edited(tmp_path, edit, fmt)
    with pytest.raises(SidkitError) as err:
        read_profile(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {message}") and "\n" not in text, text


def test_a_good_profile_still_reads_bayer_and_x_trans(tmp_path):
    for cfa in ("RGGB", "XTRANS"):
        path = write_profile(good_profile(cfa), tmp_path / f"{cfa}.toml")
        assert read_profile(path).cfa == cfa


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "huge", "not a table", "binary"])
def test_a_profile_path_that_is_no_profile_file_is_refused_before_reading(tmp_path, kind):
    path = tmp_path / "p.toml"
    expected = {"fifo": "a FIFO (named pipe), not a regular file", "device": "a character device, not a regular file",
                "folder": "a folder, not a regular file", "huge": "bytes is no noise profile",
                "not a table": "not a sidkit noise profile (a list)", "binary": "cannot parse the noise profile"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        if not os.path.exists("/dev/zero"):
            pytest.skip("no /dev/zero")
        path = "/dev/zero"
    elif kind == "folder":
        path.mkdir()
    elif kind == "huge":
        with open(path, "wb") as handle:
            handle.truncate(PROFILE_MAX_BYTES + 1)          # sparse: no disk used
    elif kind == "not a table":
        path = tmp_path / "p.json"
        path.write_text("[1, 2]")
    else:
        path.write_bytes(b"\x00\xff" * 100)
    with time_limit(30), pytest.raises(SidkitError) as err:
        read_profile(path)
    assert expected in str(err.value) and str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_train_run_with_a_bad_profile_exits_1_in_one_line_before_training(tmp_path):
    from helpers import make_dataset
    from train.cli import main

    manifest = make_dataset(tmp_path / "data")
    path = edited(tmp_path, iso0("k_dn_per_e", 0.0))
    result = CliRunner().invoke(main, ["run", str(manifest), "--synthetic", str(path), "--out", str(tmp_path / "run"),
                                       "--epochs", "1", "--device", "cpu"])
    assert result.exit_code == 1 and "isos[0].k_dn_per_e = 0.0 must be a finite gain above 0" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "run" / "checkpoints").exists()


def test_a_checkpoint_that_records_a_fifo_as_its_profile_is_refused_in_eval(tmp_path):
    """`train eval` of a longs-only manifest takes the profile the checkpoint records: a FIFO there is
    a one-line error, not a hang."""
    import pandas as pd

    from train.evalinputs import synthetic_inputs

    fifo = tmp_path / "p.toml"
    os.mkfifo(fifo)
    longs = pd.DataFrame({"short_path": ["a.dng"], "long_path": ["a.dng"], "short_sha256": ["x"],
                          "long_sha256": ["x"], "split": ["test"]})
    with time_limit(30), pytest.raises(SidkitError) as err:
        synthetic_inputs(longs, {"synthetic": str(fifo)}, None, "m.csv", "best.pt")
    assert "a FIFO (named pipe)" in str(err.value) and "best.pt" in str(err.value) and "\n" not in str(err.value)

