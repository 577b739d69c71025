"""train run: the loss falls, checkpoints load with weights_only, interrupted + resumed == uninterrupted."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from curate.common.errors import SidkitError
from curate.common.cachedir import cache_root
from curate.manifest import read_manifest
from train.checkpoint import load_checkpoint, model_from_checkpoint
from train import config as config_module
from train.config import RunConfig, default_amp, load_config
from train.dataset import Batch
from train.loop import TrainingStopped, epoch_scenes, to_network, train_run

from helpers import TINY, metrics, tiny_config



@pytest.fixture(scope="module")
def manifest(tiny_manifest) -> Path:
    return tiny_manifest    # make_dataset() once per session (conftest)


def test_training_lowers_the_loss_and_writes_the_run_folder(manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("SIDKIT_CACHE", str(tmp_path / "cache"))   # alone in its cache, to count its files
    run = train_run(tiny_config(manifest, tmp_path / "run", epochs=12, eval_every=4), progress=False)
    rows = metrics(run)
    assert [int(r["epoch"]) for r in rows] == [4, 8, 12]
    assert [int(r["step"]) for r in rows] == [8, 16, 24]    # 2 training scenes, batch 1
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.5 * losses[0]
    psnrs = [float(r["val_psnr"]) for r in rows]
    assert psnrs[-1] > psnrs[0] + 3
    assert (run / "config.toml").is_file() and (run / "checkpoints" / "best.pt").is_file()
    assert any(p.name.startswith("events.out.tfevents") for p in run.iterdir())
    saved = load_config(run / "config.toml")
    assert Path(saved.cache_dir) == cache_root() / "raw" and not (manifest.parent / ".sidkit-cache").exists()
    shas = {str(s)[:16] for c in ("short_sha256", "long_sha256") for s in read_manifest(manifest).rows[c]}
    assert len([p for p in Path(saved.cache_dir).glob("*.npy") if p.name[:16] in shas]) == 8  # 4 shorts, 4 truths
    assert saved.epochs == 12 and saved.device == "cpu" and saved.amp == default_amp("cpu") and saved.spec == TINY


def test_checkpoints_load_with_weights_only_and_rebuild_the_network(tiny_run):
    run = tiny_run                                  # 6 epochs of 2 training scenes
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert payload["format"] == 1 and payload["epoch"] == 6 and payload["step"] == 12
    assert payload["data"]["cfa_kind"] == "bayer" and payload["data"]["channels"] == 4
    assert payload["spec"]["widths"] == [8, 16] and payload["config"]["ratio_policy"] == "cap:300"
    assert set(payload["rng"]) >= {"python", "numpy", "torch", "sampler"}
    model, _ = model_from_checkpoint(run / "checkpoints" / "best.pt")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best"] == max(float(r["val_psnr"]) for r in metrics(run))
    x = torch.rand(1, 4, 16, 16)
    assert model(x).shape == (1, 3, 32, 32)


def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(manifest, tmp_path):
    whole = train_run(tiny_config(manifest, tmp_path / "whole"), progress=False)
    config = tiny_config(manifest, tmp_path / "split")
    with pytest.raises(TrainingStopped, match="--resume"):
        train_run(config, progress=False, stop_after_steps=3)      # mid-way through epoch 2
    stopped = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert (stopped["epoch"], stopped["step"], stopped["progress"]["position"]) == (1, 3, 1)
    resumed = train_run(config, progress=False, resume=True)
    assert len(metrics(resumed)) == len(metrics(whole)) == 3
    assert metrics(resumed) == [{**r, "seconds": m["seconds"]} for r, m in zip(metrics(whole), metrics(resumed))]
    a = load_checkpoint(whole / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(resumed / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_split_held_on_the_device_trains_exactly_as_the_memmaps(manifest, tmp_path, monkeypatch):
    """The GPU path (whole split on the device, crops cut with torch) run on the CPU: same crops,
    same input formula, so the same weights bit for bit."""
    import train.dataset

    host = train_run(tiny_config(manifest, tmp_path / "host", epochs=2), progress=False)
    calls = []
    original = train.dataset.DevicePairs.batch
    monkeypatch.setattr(train.dataset, "default_budget", lambda device: 2 ** 40)
    monkeypatch.setattr(train.dataset.DevicePairs, "batch", lambda self, *a: calls.append(1) or original(self, *a))
    held = train_run(tiny_config(manifest, tmp_path / "held", epochs=2), progress=False)
    assert len(calls) == 4                                          # 2 epochs x 2 training scenes
    assert [{**r, "seconds": 0} for r in metrics(held)] == [{**r, "seconds": 0} for r in metrics(host)]
    a = load_checkpoint(host / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(held / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_sigterm_saves_last_and_stops(manifest, tmp_path):
    config = tiny_config(manifest, tmp_path / "run", epochs=50)
    import train.loop as loop

    original = loop.train_step
    calls = []

    def step_then_signal(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args)

    loop.train_step = step_then_signal
    try:
        with pytest.raises(TrainingStopped) as stopped:
            train_run(config, progress=False)
    finally:
        loop.train_step = original
    payload = load_checkpoint(stopped.value.out / "checkpoints" / "last.pt")
    assert payload["step"] == 2 and len(calls) == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_existing_run_is_never_overwritten(manifest, tiny_run, tmp_path):
    import shutil

    run = shutil.copytree(tiny_run, tmp_path / "run")
    before = (run / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(SidkitError, match="already holds a run; continue it with --resume"):
        train_run(tiny_config(manifest, run, epochs=1), progress=False)
    assert (run / "checkpoints" / "last.pt").read_bytes() == before


def test_bad_learning_rate_and_missing_cuda_are_one_line_errors(manifest, tmp_path):
    with pytest.raises(SidkitError, match="learning rates must be positive"):
        train_run(tiny_config(manifest, tmp_path / "a", lr=-1), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(SidkitError, match="no CUDA GPU"):
            train_run(tiny_config(manifest, tmp_path / "b", device="cuda"), progress=False)


def test_resume_without_a_checkpoint_is_a_one_line_error(manifest, tmp_path):
    with pytest.raises(SidkitError, match="nothing to resume"):
        train_run(tiny_config(manifest, tmp_path / "none"), progress=False, resume=True)


def test_resuming_a_finished_run_says_so_in_one_line_and_changes_nothing(manifest, tmp_path):
    import contextlib
    import io

    run = train_run(tiny_config(manifest, tmp_path / "done", epochs=2), progress=False)
    before = (run / "checkpoints" / "last.pt").read_bytes(), (run / "metrics.csv").read_text()
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        train_run(tiny_config(manifest, tmp_path / "done", epochs=2), progress=True, resume=True)
    lines = [line for line in printed.getvalue().splitlines() if "already finished" in line]
    assert lines == [f"{run}: already finished at epoch 2 of 2; nothing to train (give --epochs above 2 to train "
                     "longer)"]
    assert ((run / "checkpoints" / "last.pt").read_bytes(), (run / "metrics.csv").read_text()) == before


def test_to_network_scales_the_target_and_lays_both_out_as_the_network_wants():
    counts = torch.randint(0, 65536, (2, 16, 16, 3), dtype=torch.int32).to(torch.uint16)
    batch = Batch(torch.rand(2, 4, 8, 8), counts, torch.tensor([100.0, 250.0]))
    x, y = to_network(batch, RunConfig(channels_last=True))
    assert y.shape == (2, 3, 16, 16) and y.dtype == torch.float32 and 0 <= y.min() and y.max() <= 1
    assert torch.equal(y, counts.permute(0, 3, 1, 2).to(torch.float32) / 65535)
    assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, batch.input)
    assert y.is_contiguous(memory_format=torch.channels_last)       # the target as the output: no mixed layouts
    x, y = to_network(batch, RunConfig(channels_last=False))
    assert x.is_contiguous() and y.is_contiguous()
    assert torch.equal(y, counts.permute(0, 3, 1, 2).to(torch.float32) / 65535)


def test_epoch_scenes_split_evenly_across_ranks_and_replay():
    one = epoch_scenes(10, 1, epoch=5, seed=0)
    assert sorted(s for b in one for s in b) == list(range(10)) and one == epoch_scenes(10, 1, 5, 0)
    ranks = [epoch_scenes(5, 2, 5, 0, rank, 2) for rank in range(2)]
    assert [sum(len(b) for b in r) for r in ranks] == [3, 3]
    assert {s for r in ranks for b in r for s in b} == set(range(5))


def test_config_file_overridden_by_flags_and_unknown_keys_rejected(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('manifest = "m.csv"\nepochs = 10\nlr_steps = "5:1e-5"\npatch_choices = [64, 128]\n')
    config = load_config(path, epochs=20)
    assert (config.epochs, config.lr_steps, config.patch_choices) == (20, [(5, 1e-5)], [64, 128])
    resolved = config.resolved()
    assert resolved.out == str(Path("runs") / "m") and resolved.device in ("cpu", "cuda")
    path.write_text('manifest = "m.csv"\nepoch = 10\n')
    with pytest.raises(SidkitError, match="unknown key 'epoch'"):
        load_config(path)


@pytest.mark.parametrize("settings, message", [
    ({"arch": "resnet"}, "unknown arch 'resnet'"),
    ({"spec": {"widths": [8, 16], "encoder_convs": [1, 1]}}, "does not make a network"),
    ({"ratio_policy": "cap"}, "policy 'cap'"),
    ({"amp": "fp16"}, "amp 'fp16'"),
    ({"epochs": 0}, "epochs must be at least 1"),
])
def test_bad_settings_fail_before_any_decoding(settings, message):
    with pytest.raises(SidkitError, match=message):
        load_config(None, manifest="m.csv", **settings).resolved()


@pytest.mark.parametrize("native", [True, False])
def test_amp_defaults_to_bf16_where_the_hardware_computes_it(native, monkeypatch):
    monkeypatch.setattr(config_module, "native_bf16", lambda: native)
    cpu = "bf16" if native else "off"
    assert load_config(None, manifest="m.csv", device="cpu").resolved().amp == cpu
    assert load_config(None, manifest="m.csv", device="cpu", amp="off").resolved().amp == "off"
    assert default_amp("cpu") == cpu and default_amp("cuda") == default_amp("cuda:1") == "bf16"


def test_numbers_from_a_config_file_are_checked_and_converted(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('manifest = "m.csv"\nepochs = "12"\nlr = 1\n')
    resolved = load_config(path).resolved()
    assert (resolved.epochs, resolved.lr) == (12, 1.0) and isinstance(resolved.lr, float)
    path.write_text('manifest = "m.csv"\nbatch = "two"\n')
    with pytest.raises(SidkitError, match="batch = 'two' is not a number"):
        load_config(path).resolved()


def test_a_patch_larger_than_the_images_gets_one_note(manifest, tmp_path):
    import contextlib
    import io

    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        train_run(tiny_config(manifest, tmp_path / "big", epochs=1, patch=512), progress=True)
    notes = [line for line in printed.getvalue().splitlines() if line.startswith("note: patch")]
    assert notes == ["note: patch 512 is larger than the smallest training image (32 packed pixels a side); crops "
                     "of it are 32 (--patch 32 or less crops every image alike)"]
    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        train_run(tiny_config(manifest, tmp_path / "small", epochs=1, patch=16), progress=True)
    assert "note: patch" not in printed.getvalue()


def test_a_worker_restarted_by_torchrun_resumes_from_last_pt(manifest, tmp_path, monkeypatch):
    """`torchrun --max-restarts N` starts a failed worker again with the same command line (no
    --resume): it goes on from last.pt instead of refusing the folder."""
    from train.loop import TrainingStopped

    config = tiny_config(manifest, tmp_path / "run", epochs=2)
    with pytest.raises(TrainingStopped):
        train_run(config, progress=False, stop_after_steps=3)
    with pytest.raises(SidkitError, match="already holds a run"):
        train_run(config, progress=False)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    run = train_run(config, progress=False)
    assert [r["epoch"] for r in metrics(run)] == ["1", "2"]
