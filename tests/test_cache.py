"""train.cache and train.dataset: decode once into memmaps, then crop, normalise and augment."""
import hashlib
from datetime import datetime
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch

from capture.dng import write_dng
from curate.common.errors import SidkitError
from curate.manifest import read_manifest, write_manifest
from train import rawpack
from train.cache import RawCache
from train.dataset import Crop, DevicePairs, PairDataset

H, W = 64, 96          # mosaic size: packed 32 x 48, truth 64 x 96


def make_dataset(folder, scenes=3, shorts=2, cfa="RGGB", seed=0):
    """A tiny SID-like dataset of DNGs and its manifest, read back. The shorts get 1/150 of the long's
    light while EXIF says 1/250, so amplified inputs clip where the scene is bright."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(scenes):
        light = rng.uniform(0.05, 0.9, (H // 8, W // 8)).repeat(8, 0).repeat(8, 1)
        files = {"long": (light * 15000 + 512, Fraction(10))}
        for k in range(shorts):
            files[f"short{k}"] = (light * 15000 / 150 + rng.normal(0, 2, light.shape) + 512, Fraction(1, 25))
        shas = {}
        for name, (signal, exposure) in files.items():
            path = folder / f"{s:05d}_{name}.dng"
            write_dng(path, np.clip(signal, 0, 16383).astype(np.uint16), make="Sim", model="S1", serial="7",
                      cfa=cfa, black_level=[512] * 4, white_level=16383, exposure_s=exposure, iso=100,
                      fnumber=2.8, captured_at=datetime(2026, 1, 2))
            shas[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        for k in range(shorts):
            rows.append(dict(pair_id=f"{s:05d}_{k}", scene_id=f"{s:05d}", split="train", environment="indoor",
                             short_path=f"{s:05d}_short{k}.dng", long_path=f"{s:05d}_long.dng",
                             short_exposure_s=0.04, long_exposure_s=10.0, ratio=250.0, short_iso=100,
                             long_iso=100, short_fnumber=2.8, long_fnumber=2.8, camera="Sim S1", cfa=cfa,
                             black_level="512 512 512 512", white_level=16383, width=W, height=H,
                             short_sha256=shas[f"short{k}"], long_sha256=shas["long"]))
    return read_manifest(write_manifest(pd.DataFrame(rows), folder / "m.csv"))


@pytest.fixture
def manifest(tmp_path):
    return make_dataset(tmp_path)


@pytest.fixture
def filled(tmp_path, manifest):
    cache = RawCache(tmp_path / "cache")
    cache.fill(manifest, progress=False)
    return cache


# --- cache -------------------------------------------------------------------------------------
def test_packed_is_a_memmap_of_the_packed_counts(tmp_path, manifest):
    cache, row = RawCache(tmp_path / "c"), manifest.rows.iloc[0]
    path = tmp_path / row.short_path
    got = cache.packed(path, row.short_sha256, "RGGB", [512.0] * 4, 16383)
    assert isinstance(got, np.memmap) and got.dtype == np.uint16 and got.shape == (4, 32, 48)
    np.testing.assert_array_equal(got, rawpack.pack_raw_counts(rawpack.read_raw(path)))
    (entry,) = (tmp_path / "c").iterdir()
    assert entry.name.startswith(f"{row.short_sha256[:16]}-packed-") and entry.suffix == ".npy"


def test_second_read_does_not_decode(tmp_path, manifest):
    cache, row = RawCache(tmp_path / "c"), manifest.rows.iloc[0]
    first = np.array(cache.truth(tmp_path / row.long_path, row.long_sha256))
    assert first.shape == (64, 96, 3) and first.dtype == np.uint16
    (tmp_path / row.long_path).unlink()                     # decoding again would now fail
    np.testing.assert_array_equal(cache.truth(tmp_path / row.long_path, row.long_sha256), first)


def test_settings_are_part_of_the_key(tmp_path):
    cache = RawCache(tmp_path)
    keys = {cache.packed_key("ab" * 32, "RGGB", [512.0] * 4, 16383), cache.packed_key("ab" * 32, "BGGR", [512.0] * 4, 16383),
            cache.packed_key("ab" * 32, "RGGB", [500.0] * 4, 16383), cache.packed_key("cd" * 32, "RGGB", [512.0] * 4, 16383),
            cache.truth_key("ab" * 32)}
    assert len(keys) == 5 and all(k.name.startswith(("abababab", "cdcdcdcd")) for k in keys)


def test_failed_decode_leaves_no_entry(tmp_path):
    bad = tmp_path / "bad.dng"
    bad.write_bytes(b"junk")
    cache = RawCache(tmp_path / "c")
    with pytest.raises(SidkitError, match="bad.dng"):
        cache.truth(bad, "00" * 32)
    assert list((tmp_path / "c").iterdir()) == []


def test_fill_decodes_each_file_once(tmp_path, manifest):
    cache = RawCache(tmp_path / "c")
    assert cache.fill(manifest, progress=False) == {"decoded": 9, "cached": 0}   # 6 shorts + 3 longs
    assert cache.fill(manifest, progress=False) == {"decoded": 0, "cached": 9}
    assert len(list((tmp_path / "c").glob("*.npy"))) == 9
    assert not list((tmp_path / "c").glob(".*.tmp"))


# --- dataset -----------------------------------------------------------------------------------
def test_sample_normalises_amplifies_and_clips(manifest, filled):
    data = PairDataset(manifest, filled, patch=16)
    crop = Crop(scene=1, short=0, y=3, x=5, size=16)
    x, y = data.cut(crop)
    pair = data.scenes[1][0]
    expected = np.minimum((pair.packed[:, 3:19, 5:21].astype(np.float32) - 512) / (16383 - 512) * 250, 1)
    np.testing.assert_allclose(x, np.maximum(expected, 0), atol=1e-6)
    np.testing.assert_array_equal(y, pair.truth[6:38, 10:42])     # counts as stored, made float on the device
    assert x.shape == (4, 16, 16) and y.shape == (32, 32, 3) and x.dtype == np.float32 and y.dtype == np.uint16
    assert 0 <= x.min() and x.max() <= 1 and 0.05 < x.mean() < 0.95
    whole = np.concatenate([data.cut(Crop(s, 0, 0, 0, 32))[0].ravel() for s in range(3)])
    assert (whole == 1).mean() > 0.05 and (whole < 1).mean() > 0.5      # bright parts clip at 1


def test_amplification_policy_reaches_the_input(manifest, filled):
    crop = Crop(scene=0, short=1, y=0, x=0, size=8)
    capped = PairDataset(manifest, filled, policy="cap:300").cut(crop)[0]
    fixed = PairDataset(manifest, filled, policy="fixed:100").cut(crop)[0]
    unclipped = capped < 1
    np.testing.assert_allclose(fixed[unclipped] * 2.5, capped[unclipped], rtol=1e-5)


def test_flips_and_transpose_move_input_and_target_together(manifest, filled):
    data = PairDataset(manifest, filled)
    plain = data.cut(Crop(0, 0, 2, 4, 8))
    moved = data.cut(Crop(0, 0, 2, 4, 8, flip_h=True, flip_v=True, transpose=True))
    np.testing.assert_array_equal(moved[0], plain[0][:, ::-1, ::-1].swapaxes(1, 2))     # C, h, w
    np.testing.assert_array_equal(moved[1], plain[1][::-1, ::-1].swapaxes(0, 1))         # h, w, colour
    only_h = data.cut(Crop(0, 0, 2, 4, 8, flip_h=True))
    np.testing.assert_array_equal(only_h[0], plain[0][:, :, ::-1])
    np.testing.assert_array_equal(only_h[1], plain[1][:, ::-1])


def test_random_samples_stay_inside_and_clamp_to_the_image(manifest, filled):
    data = PairDataset(manifest, filled, patch=512)
    x, y, gain = data.batch([2], None, torch.Generator().manual_seed(0))
    assert x.shape == (1, 4, 32, 32) and y.shape == (1, 64, 64, 3)    # 512 clamped to the 32 x 48 image
    assert gain.tolist() == [250.0]
    rng = np.random.default_rng(1)
    crops = data.plan([0, 1, 2] * 50, 16, lambda n: int(rng.integers(n)))
    assert all(0 <= c.y <= 16 and 0 <= c.x <= 32 and c.size == 16 for c in crops)
    assert {c.y for c in crops} >= {0, 16} and {c.x for c in crops} >= {0, 32}    # both ends reachable


def test_patch_choices_pick_one_size_per_batch(manifest, filled):
    data = PairDataset(manifest, filled, patch_choices=[8, 16])
    g = torch.Generator().manual_seed(0)
    sizes = {data.batch([0, 1], None, g).input.shape[-1] for _ in range(20)}
    assert sizes == {8, 16}


def test_a_batch_is_contiguous_and_a_single_crop_is_not_copied_twice(manifest, filled):
    data = PairDataset(manifest, filled, patch=8)
    batch = data.batch([2, 0, 1], None, torch.Generator().manual_seed(1))
    assert batch.input.shape == (3, 4, 8, 8) and batch.target.shape == (3, 16, 16, 3)
    assert batch.input.is_contiguous() and batch.target.is_contiguous() and batch.target.dtype == torch.uint16
    one = data.cut(Crop(0, 0, 0, 0, 8, transpose=True))[0]
    assert not np.shares_memory(one, data.scenes[0][0].packed)    # the float conversion is its copy


def test_same_generator_state_gives_the_same_batch(manifest, filled):
    data = PairDataset(manifest, filled, patch=8)
    a = data.batch([0, 1, 2, 0], None, torch.Generator().manual_seed(7))
    b = data.batch([0, 1, 2, 0], None, torch.Generator().manual_seed(7))
    c = data.batch([0, 1, 2, 0], None, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])


def test_device_variant_gives_identical_crops(manifest, filled):
    data = PairDataset(manifest, filled, patch=16)
    device = DevicePairs(data, "cpu", budget_bytes=data.nbytes)
    for crop in [Crop(0, 1, 3, 7, 16), Crop(2, 0, 16, 32, 16, True, False, True), Crop(1, 1, 0, 0, 32, False, True)]:
        for a, b in zip(data.cut(crop), device.cut(crop)):
            np.testing.assert_array_equal(a, b.numpy())
    for a, b in zip(data.batch([1, 0, 2], 8, torch.Generator().manual_seed(3)),
                    device.batch([1, 0, 2], 8, torch.Generator().manual_seed(3))):
        assert torch.equal(a, b)


def test_device_variant_checks_its_budget(manifest, filled):
    data = PairDataset(manifest, filled)
    assert data.nbytes == 6 * 4 * 32 * 48 * 2 + 3 * 64 * 96 * 3 * 2     # each long stored once
    with pytest.raises(SidkitError, match="more than the"):
        DevicePairs(data, "cpu", budget_bytes=data.nbytes - 1)


def test_empty_split_is_an_error(manifest, filled):
    with pytest.raises(SidkitError, match="no pairs in split 'val'"):
        PairDataset(manifest, filled, split="val")


def test_simulated_sensors_end_to_end(tmp_path):
    """capture.simulate -> curate scan -> cache -> batches: both simulated profiles (RGGB and BGGR,
    their own black and white levels) give amplified shorts as bright as their long exposures."""
    from capture.simulate import simulate_dataset
    from curate.scan import scan_dataset

    dataset = simulate_dataset(tmp_path / "sim", scenes=2, size=(128, 96), defects=False)
    rows, findings = scan_dataset(dataset)
    assert not findings and set(rows["cfa"]) == {"RGGB", "BGGR"}
    rows["split"] = "train"
    manifest = read_manifest(write_manifest(rows, dataset / "m.csv"))
    cache = RawCache(tmp_path / "cache")
    assert cache.fill(manifest, progress=False) == {"decoded": 6, "cached": 0}
    data = PairDataset(manifest, cache, policy="exif", patch=32)
    for row in manifest.rows.itertuples():
        black, white = [float(b) for b in row.black_level.split()], float(row.white_level)
        short = rawpack.network_input(cache.packed(dataset / row.short_path, row.short_sha256, row.cfa, black, white),
                                      rawpack.black_packed(row.cfa, black), white) * row.ratio
        long = rawpack.network_input(cache.packed(dataset / row.long_path, row.long_sha256, row.cfa, black, white),
                                     rawpack.black_packed(row.cfa, black), white)
        unclipped = long < 0.9
        assert short[unclipped].mean() == pytest.approx(long[unclipped].mean(), rel=0.05)
    x, y, _ = data.batch([0, 1, 0], None, torch.Generator().manual_seed(0))
    assert x.shape == (3, 4, 32, 32) and y.shape == (3, 64, 64, 3)
