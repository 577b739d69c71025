"""train.rawpack: decoding, canonical packing, levels, amplification and the ground truth."""
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from capture.dng import write_dng
from curate import cfa
from curate.common.errors import SidkitError
from train import rawpack
from train.rawpack import RawFrame

SAMPLES = Path("/work/shared/raw-samples")
BAYER = ("RGGB", "BGGR", "GRBG", "GBRG")


def mosaic_of(scene: np.ndarray, cfa: str) -> np.ndarray:
    """Mosaic an (h, w, [R, Gr, B, Gb]) scene, constant over each 2x2 tile, with pattern ``cfa``."""
    h, w, _ = scene.shape
    out = np.empty((2 * h, 2 * w), dtype=np.uint16)
    channel = {"R": 0, "B": 2}
    for pos, colour in enumerate(cfa):
        row = pos // 2
        if colour == "G":   # a green in red's row is Gr, in blue's row Gb
            other = cfa[row * 2 + (1 - pos % 2)]
            index = 1 if other == "R" else 3
        else:
            index = channel[colour]
        out[row::2, pos % 2::2] = scene[..., index]
    return out


def dng(path, mosaic, cfa="RGGB", black=(512, 512, 512, 512), white=16383) -> Path:
    return write_dng(path, mosaic, make="Sim", model="S1", serial="7", cfa=cfa, black_level=black,
                     white_level=white, exposure_s=Fraction(1, 10), iso=100, fnumber=2.8,
                     captured_at=datetime(2026, 1, 2, 3, 4, 5))


@pytest.fixture
def scene():
    return np.random.default_rng(1).integers(512, 16383, (12, 20, 4)).astype(np.uint16)


def test_four_bayer_orders_pack_to_one_array(scene):
    packed = [rawpack.pack(RawFrame(mosaic_of(scene, cfa), cfa, [512.0] * 4, 16383.0)) for cfa in BAYER]
    assert packed[0].shape == (4, 12, 20) and packed[0].dtype == np.float32
    for other in packed[1:]:
        np.testing.assert_array_equal(other, packed[0])
    expected = (scene.transpose(2, 0, 1).astype(np.float32) - 512) / (16383 - 512)
    np.testing.assert_allclose(packed[0], expected, rtol=0, atol=1e-7)


def test_four_bayer_dngs_read_and_pack_to_one_array(tmp_path, scene):
    counts = [rawpack.pack_raw_counts(rawpack.read_raw(dng(tmp_path / f"{cfa}.dng", mosaic_of(scene, cfa), cfa)))
              for cfa in BAYER]
    for other in counts:
        np.testing.assert_array_equal(other, scene.transpose(2, 0, 1))


def test_black_levels_from_the_file_are_per_tile_position(tmp_path, scene):
    path = dng(tmp_path / "b.dng", mosaic_of(scene, "GBRG"), "GBRG", black=(500, 510, 520, 530))
    frame = rawpack.read_raw(path)
    assert (frame.cfa, frame.black, frame.white) == ("GBRG", [500.0, 510.0, 520.0, 530.0], 16383.0)
    # GBRG: R at position 2, its row's green at 3, B at 1, its row's green at 0
    np.testing.assert_array_equal(rawpack.black_packed(frame.cfa, frame.black), [520, 530, 510, 500])
    assert frame.mosaic.dtype == np.uint16 and frame.mosaic.shape == (24, 40)


def test_manifest_levels_win_and_normalise_exactly(tmp_path):
    mosaic = np.full((32, 32), 1100, dtype=np.uint16)
    frame = rawpack.read_raw(dng(tmp_path / "a.dng", mosaic), "RGGB", [100, 100, 100, 100], 2100)
    assert (frame.black, frame.white) == ([100.0] * 4, 2100.0)
    np.testing.assert_array_equal(rawpack.pack(frame), np.full((4, 16, 16), 0.5, dtype=np.float32))
    frame.mosaic[0, 0], frame.mosaic[0, 1] = 50, 9000          # below black, above white
    packed = rawpack.pack(frame)
    assert packed[0, 0, 0] == 0.0 and packed[1, 0, 0] == 1.0


def test_network_input_per_channel_black_gain_and_clip_in_numpy_and_torch():
    import torch

    counts = np.array([[[600, 450]], [[700, 1500]], [[800, 760]], [[900, 1400]]], dtype=np.uint16)
    black = np.array([500, 600, 700, 800], np.float32)
    out = rawpack.network_input(counts, black, 1500)
    np.testing.assert_allclose(out[:, 0, 0], [0.1, 100 / 900, 100 / 800, 100 / 700], rtol=1e-6)
    assert out[0, 0, 1] == 0.0 and out[1, 0, 1] == 1.0 and out.dtype == np.float32     # below black, at white
    amplified = rawpack.network_input(counts, black, 1500, gain=8.0)
    np.testing.assert_allclose(amplified[:, 0, 0], [0.8, 800 / 900, 1.0, 1.0], rtol=1e-6)
    dimmed = rawpack.network_input(counts, black, 1500, gain=0.5)
    assert dimmed.max() == 0.5                                  # a saturated pixel stays at gain x 1
    on_torch = rawpack.network_input(torch.from_numpy(counts.astype(np.int32)), torch.from_numpy(black), 1500, 8.0)
    np.testing.assert_array_equal(on_torch.numpy(), amplified)  # one formula on either kind of array
    assert counts[0, 0, 0] == 600                               # the counts are never changed in place


def test_cfa_disagreeing_with_the_file_is_an_error(tmp_path, scene):
    path = dng(tmp_path / "x.dng", mosaic_of(scene, "BGGR"), "BGGR")
    with pytest.raises(SidkitError, match="manifest says CFA RGGB but the file is BGGR"):
        rawpack.read_raw(path, cfa="RGGB")


def test_odd_bayer_sizes_crop_to_whole_tiles():
    frame = RawFrame(np.arange(33 * 47, dtype=np.uint16).reshape(33, 47), "RGGB", [0.0] * 4, 65535.0)
    counts = rawpack.pack_raw_counts(frame)
    assert counts.shape == (4, 16, 23)
    assert counts[2, 15, 22] == frame.mosaic[31, 45]   # B of the last whole tile


def test_xtrans_packs_like_the_original_fuji_code():
    im = np.random.default_rng(3).integers(0, 16383, (40, 52)).astype(np.uint16)
    H, W = 36, 48                                          # whole 6x6 tiles
    ref = np.zeros((H // 3, W // 3, 9), dtype=np.uint16)   # SID train_Fuji.py pack_raw, transcribed
    for c, spec in enumerate([((0, 0), (0, 4), (3, 1), (3, 3)), ((0, 2), (0, 5), (3, 2), (3, 5)),
                              ((0, 1), (0, 3), (3, 0), (3, 4)), ((1, 2), (2, 5), (5, 2), (4, 5)),
                              ((2, 2), (1, 5), (4, 2), (5, 5))]):
        (a, b), (e, f), (g, h), (i, j) = spec
        ref[0::2, 0::2, c] = im[a:H:6, b:W:6]
        ref[0::2, 1::2, c] = im[e:H:6, f:W:6]
        ref[1::2, 0::2, c] = im[g:H:6, h:W:6]
        ref[1::2, 1::2, c] = im[i:H:6, j:W:6]
    ref[:, :, 5], ref[:, :, 6] = im[1:H:3, 0:W:3], im[1:H:3, 1:W:3]
    ref[:, :, 7], ref[:, :, 8] = im[2:H:3, 0:W:3], im[2:H:3, 1:W:3]
    frame = RawFrame(im, "XTRANS", [1024.0] * 4, 16383.0)
    np.testing.assert_array_equal(rawpack.pack_raw_counts(frame), ref.transpose(2, 0, 1))
    expected = np.maximum(ref.transpose(2, 0, 1).astype(np.float32) - 1024, 0) / (16383 - 1024)
    np.testing.assert_allclose(rawpack.pack(frame), expected, atol=1e-7)
    assert cfa.scale("XTRANS") == 3


@pytest.mark.parametrize("policy, ratio, expected", [
    ("exif", 250.0, 250.0), ("exif", 400.0, 400.0), ("cap:300", 400.0, 300.0), ("cap:300", 250.0, 250.0),
    ("fixed:100", 250.0, 100.0), ("fixed:100", 400.0, 100.0)])
def test_amplification_policies(policy, ratio, expected):
    assert rawpack.amplification(ratio, policy) == expected


@pytest.mark.parametrize("policy", ["cap", "fixed:", "300", "exif:2", "cap:-1"])
def test_bad_amplification_policy_is_an_error(policy):
    with pytest.raises(SidkitError, match="amplification policy"):
        rawpack.amplification(250.0, policy)


def test_ground_truth_is_twice_the_packed_size(tmp_path, scene):
    path = dng(tmp_path / "g.dng", mosaic_of(scene, "GRBG"), "GRBG")
    truth = rawpack.ground_truth(path)
    packed = rawpack.pack_raw_counts(rawpack.read_raw(path))
    assert truth.dtype == np.uint16 and truth.shape == (2 * packed.shape[1], 2 * packed.shape[2], 3)


def test_ground_truth_of_a_flat_scene_is_flat_and_not_auto_brightened(tmp_path):
    """A flat mosaic renders flat, and without auto brightness a doubled signal is brighter."""
    mosaic = np.full((32, 32), 1100, dtype=np.uint16)
    dim = rawpack.ground_truth(dng(tmp_path / "dim.dng", mosaic, black=(100,) * 4, white=4100))
    bright = rawpack.ground_truth(dng(tmp_path / "bright.dng", mosaic * 2 - 100, black=(100,) * 4, white=4100))
    assert dim.shape == (32, 32, 3)
    assert np.ptp(dim[4:-4, 4:-4].astype(int).reshape(-1, 3), axis=0).max() <= 257
    assert bright[16, 16].mean() > dim[16, 16].mean() * 1.2


def test_real_bayer_sample_reads_and_packs():
    path = SAMPLES / "Panasonic.rw2"
    if not path.is_file():
        pytest.skip("shared raw samples not present")
    frame = rawpack.read_raw(path)
    assert frame.cfa in BAYER and frame.black == [15.0] * 4 and frame.white == 4095.0
    packed = rawpack.pack(frame)
    assert packed.shape == (4, 1377, 1832) and 0 <= packed.min() and packed.max() <= 1


def test_demosaiced_raw_is_refused():
    path = SAMPLES / "IMG_1361.dng"
    if not path.is_file():
        pytest.skip("shared raw samples not present")
    with pytest.raises(SidkitError, match="not a colour-filter-array raw"):
        rawpack.read_raw(path)


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "junk.dng"
    bad.write_bytes(b"not a raw")
    with pytest.raises(SidkitError, match="junk.dng: rawpy cannot read it"):
        rawpack.read_raw(bad)


def test_ground_truth_is_aligned_with_the_mosaic(tmp_path):
    mosaic = np.full((32, 48), 600, dtype=np.uint16)
    mosaic[10:14, 30:34] = 12000                           # a bright square
    truth = rawpack.ground_truth(dng(tmp_path / "sq.dng", mosaic, "BGGR"))
    bright = np.argwhere(truth.mean(axis=2) > truth.mean() * 4)
    assert bright.min(axis=0).tolist() == [10, 30] and bright.max(axis=0).tolist() == [13, 33]
