"""capture.simulate: a simulated session's files, log and planted defects, checked on the pixels."""
from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import numpy as np
import pytest
import rawpy
from skimage.registration import phase_cross_correlation

from capture.simulate import simulate_dataset, write_folder_layout
from curate.capturelog import read_log
from curate.common.errors import SidkitError
from curate.exposure import exposure_from_name, parse_shutter


def _signal(path) -> np.ndarray:
    """Black-subtracted mosaic of a DNG, read back through rawpy."""
    with rawpy.imread(str(path)) as raw:
        black = np.array(raw.black_level_per_channel)[raw.raw_colors_visible]
        return raw.raw_image_visible.astype(float) - black


def _records(dataset):
    return {r.path: r for r in read_log(dataset)}


def test_log_and_files(sim_dataset):
    records = read_log(sim_dataset)
    assert len(records) == 4 * 3
    assert [r.role for r in records] == ["long", "short", "short"] * 4
    assert [r.scene_id for r in records[::3]] == ["sim01", "sim02", "sim03", "sim04"]
    assert [r.environment for r in records[::3]] == ["indoor", "indoor", "outdoor", "outdoor"]
    assert [r.camera.split()[1] for r in records[::3]] == ["SIM-DSLR14", "SIM-ML12"] * 2
    assert {r.backend for r in records} == {"sim"}
    for r in records:
        path = sim_dataset / r.path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == r.sha256
        with rawpy.imread(str(path)) as raw:
            assert raw.raw_image_visible.shape == (96, 128)
            assert raw.other.iso_speed == r.iso and raw.other.aperture == pytest.approx(r.fnumber)
            assert raw.other.shutter_speed == pytest.approx(r.requested_exposure_s, rel=1e-6)
        assert parse_shutter(r.camera_exposure) == Fraction(r.requested_exposure_s).limit_denominator(1000)
    assert records[1].path == "sim01/sim01_short_1-25s_00.dng" and records[0].path == "sim01/sim01_long_10s.dng"
    assert records[1].extra["nominal_ratio"] == 250 and records[1].extra["true_ratio"] == pytest.approx(256)


def test_planted_defects_are_listed_and_noted(sim_dataset):
    planted = json.loads((sim_dataset / "planted_defects.json").read_text())
    assert {(d["scene_id"], d["short_path"], d["defect"]) for d in planted} == {
        ("sim02", "sim02/sim02_short_1-25s_00.dng", "measured-ratio-mismatch"),
        ("sim03", "sim03/sim03_short_1-25s_00.dng", "misaligned"),
        ("sim04", "sim04/sim04_short_1-2s_00.dng", "ratio-out-of-range"),
        ("sim04", "sim04/sim04_short_1-2s_01.dng", "ratio-out-of-range"),
    }
    records = _records(sim_dataset)
    noted = {d["short_path"] for d in planted} | {"sim04/sim04_long_10s.dng"}   # the whole scene is at ratio 20
    assert {path for path, record in records.items() if record.notes.startswith("planted")} == noted
    assert records["sim04/sim04_short_1-2s_00.dng"].extra["allow_any_ratio"] is True


def test_defects_show_in_the_pixels(sim_dataset):
    """Measured brightness ratio ~256 (true ratio of 10 s / 1/25 s) except the dimmed short;
    the moved short registers at (5, 11) px; the clean ones at (0, 0)."""
    def measured_ratio(scene, short):
        return _signal(sim_dataset / f"{scene}/{scene}_long_10s.dng").mean() / _signal(sim_dataset / short).mean()

    assert measured_ratio("sim02", "sim02/sim02_short_1-25s_01.dng") == pytest.approx(256, rel=0.08)
    assert measured_ratio("sim02", "sim02/sim02_short_1-25s_00.dng") == pytest.approx(256 / 0.4, rel=0.08)
    assert measured_ratio("sim04", "sim04/sim04_short_1-2s_00.dng") == pytest.approx(20.16, rel=0.05)
    long = _signal(sim_dataset / "sim03/sim03_long_10s.dng")
    for name, expected in (("sim03_short_1-25s_00.dng", (-5, -11)), ("sim03_short_1-25s_01.dng", (0, 0))):
        shift = phase_cross_correlation(long, _signal(sim_dataset / "sim03" / name))[0]
        assert tuple(shift) == expected


def test_same_seed_same_files_and_progress(tmp_path):
    calls = []
    first = simulate_dataset(tmp_path / "a", scenes=3, size=(32, 32), progress=lambda d, t: calls.append((d, t)))
    second = simulate_dataset(tmp_path / "b", scenes=3, size=(32, 32))
    third = simulate_dataset(tmp_path / "c", scenes=3, size=(32, 32), seed=1, defects=False)
    assert [r.sha256 for r in read_log(first)] == [r.sha256 for r in read_log(second)]
    assert [r.sha256 for r in read_log(first)] != [r.sha256 for r in read_log(third)]
    assert calls == [(k, 9) for k in range(1, 10)]
    assert json.loads((third / "planted_defects.json").read_text()) == []


def test_never_overwrites(tmp_path, sim_dataset):
    with pytest.raises(SidkitError, match="captures.jsonl exists"):
        simulate_dataset(sim_dataset, scenes=4, size=(128, 96))
    (tmp_path / "sim01").mkdir()
    (tmp_path / "sim01" / "sim01_long_10s.dng").write_bytes(b"mine")
    with pytest.raises(SidkitError, match="sim01 exists; simulate into a new folder"):
        simulate_dataset(tmp_path, scenes=3, size=(32, 32))
    assert (tmp_path / "sim01" / "sim01_long_10s.dng").read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["sim01", "sim01_long_10s.dng"]   # nothing written


def test_bad_arguments(tmp_path):
    with pytest.raises(SidkitError, match="at least 3 scenes"):
        simulate_dataset(tmp_path, scenes=2)
    with pytest.raises(SidkitError, match="even"):
        simulate_dataset(tmp_path, size=(33, 32))
    with pytest.raises(SidkitError, match="sim-nope"):
        simulate_dataset(tmp_path, profiles=("sim-nope",))


def test_folder_layout_for_log_free_scans(tmp_path, sim_dataset):
    out = write_folder_layout(sim_dataset, tmp_path / "layout")
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.dng"))
    assert len(files) == 12 and not (out / "captures.jsonl").exists()
    assert "indoor/long/sim01_00_10s.dng" in files and "outdoor/short/sim04_01_0.5s.dng" in files
    records = read_log(sim_dataset)
    by_scene_role = {(r.scene_id, r.role): r for r in records}
    for rel in files:
        env, role, name = rel.split("/")
        record = by_scene_role[(name.split("_")[0], role)]
        assert env == record.environment
        assert float(parse_shutter(exposure_from_name(name))) == pytest.approx(record.requested_exposure_s)
    planted = json.loads((out / "planted_defects.json").read_text())
    assert {d["short_path"] for d in planted} == {"indoor/short/sim02_00_0.04s.dng", "outdoor/short/sim03_00_0.04s.dng",
                                                  "outdoor/short/sim04_00_0.5s.dng", "outdoor/short/sim04_01_0.5s.dng"}
    copied = (out / "indoor/short/sim02_00_0.04s.dng").read_bytes()
    assert copied == (sim_dataset / "sim02/sim02_short_1-25s_00.dng").read_bytes()
    with pytest.raises(SidkitError, match="exists"):
        write_folder_layout(sim_dataset, out)
