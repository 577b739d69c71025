"""A non-finite loss or weight never reaches a checkpoint: the run stops with one line naming the step
and the likely cause, exit 1; last.pt and best.pt stay the last finite ones and --resume goes on."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import train.loop as loop
from curate.common.errors import SidkitError
from helpers import tiny_config
from train.checkpoint import load_checkpoint
from train.cli import main
from train.loop import train_run

# A spec deep enough that --lr 1e4 overflows float32 in a step or two (test_train_loop's TINY stays finite).
CONFIG = """patch = 16
eval_every = 1
save_every = 1
log_every = 1
device = "cpu"
seed = 3
[spec]
widths = [8, 8, 8, 8, 8]
encoder_convs = [1, 1, 1, 1]
decoder_convs = [1, 1, 1, 1]
bottleneck_convs = 1
"""


def checkpoints(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "checkpoints").glob("*.pt"))}


def assert_finite(path: Path) -> dict:
    payload = load_checkpoint(path)      # refuses NaN/inf weights and Adam moments
    assert all(bool(torch.isfinite(t).all()) for t in payload["model"].values())
    return payload


def test_a_run_at_lr_1e4_exits_1_leaving_finite_checkpoints(manifest, tmp_path):
    """Two epochs at 1e-2, then --lr-steps 2:1e4: the third epoch's first readback is NaN."""
    config, run = tmp_path / "run.toml", tmp_path / "run"
    config.write_text(CONFIG)
    runner = CliRunner()
    result = runner.invoke(main, ["run", str(manifest), "--config", str(config), "--out", str(run),
                                  "--epochs", "4", "--lr", "1e-2", "--lr-steps", "2:1e4"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {run}: training diverged: the loss is NaN or inf at step ")
    assert "the learning rate (10000) is likely too high, or the data is bad" in lines[-1]
    assert f"{run / 'checkpoints' / 'last.pt'} keeps the last finite weights" in lines[-1]
    assert "Traceback" not in result.output
    step = int(lines[-1].split(" at step ")[1].split(";")[0])
    assert step in (5, 6)                                   # the first or second step at 1e4
    kept = checkpoints(run)
    assert sorted(kept) == ["best.pt", "last.pt"]
    last = assert_finite(run / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step"]) == (2, 4)          # 2 epochs of 2 training scenes
    assert assert_finite(run / "checkpoints" / "best.pt")["step"] <= 4

    result = runner.invoke(main, ["run", str(manifest), "--out", str(run), "--resume", "--lr-steps", "2:1e-3"])
    assert result.exit_code == 0, result.output
    last = assert_finite(run / "checkpoints" / "last.pt")
    assert (last["epoch"], last["step"]) == (4, 8)
    assert checkpoints(run)["last.pt"] != kept["last.pt"]


def test_a_run_that_diverges_at_once_saves_nothing(manifest, tmp_path):
    config, run = tmp_path / "run.toml", tmp_path / "run"
    config.write_text(CONFIG)
    result = CliRunner().invoke(main, ["run", str(manifest), "--config", str(config), "--out", str(run),
                                       "--epochs", "2", "--lr", "1e4"])
    assert result.exit_code == 1, result.output
    assert "nothing was saved; start again with `train run" in result.stderr and "--lr 1000`" in result.stderr
    assert checkpoints(run) == {}


@pytest.fixture
def broken_step(monkeypatch):
    """``broken_step(at, loss=..., weight=...)``: from step ``at`` on, the step returns ``loss`` and/or
    fills the first weight with ``weight`` (as bad data or a blow-up would)."""
    def install(at: int, loss: float | None = None, weight: float | None = None):
        calls = []
        original = loop.train_step

        def step(net, optimizer, x, y, config):
            result = original(net, optimizer, x, y, config)
            calls.append(1)
            if len(calls) >= at and weight is not None:
                with torch.no_grad():
                    next(net.parameters()).fill_(weight)
            return torch.full_like(result, loss) if len(calls) >= at and loss is not None else result

        monkeypatch.setattr(loop, "train_step", step)
        return calls
    return install


def test_a_nan_loss_is_caught_where_it_is_read_back(manifest, tmp_path, broken_step):
    """The loss is read at every log_every-th step only: a NaN at step 5 is seen at step 6."""
    calls = broken_step(at=5, loss=float("nan"))
    config = tiny_config(manifest, tmp_path / "run", epochs=6, log_every=2)
    with pytest.raises(SidkitError, match=r"the loss is NaN or inf at step 6; the learning rate \(0.01\)"):
        train_run(config, progress=False)
    assert len(calls) == 6                                  # stopped at the readback, not at the epoch's end
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 4


def test_a_nan_weight_is_caught_before_the_save(manifest, tmp_path, broken_step):
    """A finite loss but a NaN weight (no readback in the epoch): refused at the epoch's save."""
    calls = broken_step(at=3, weight=float("nan"))
    config = tiny_config(manifest, tmp_path / "run", epochs=4, log_every=1000)
    with pytest.raises(SidkitError, match=r"training diverged: weight encoders\.0\.0\.weight is NaN or inf at step 4"):
        train_run(config, progress=False)
    assert len(calls) == 4
    last = assert_finite(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["step"] == 2
    assert assert_finite(tmp_path / "run" / "checkpoints" / "best.pt")["step"] == 2


def test_an_inf_loss_on_the_stop_path_is_not_saved(manifest, tmp_path, broken_step):
    """stop_after_steps (as SIGINT) saves last.pt only when finite, else the divergence error."""
    broken_step(at=3, loss=float("inf"))
    config = tiny_config(manifest, tmp_path / "run", epochs=4, log_every=1000, eval_every=1000)
    with pytest.raises(SidkitError, match="the loss is NaN or inf at step 3"):
        train_run(config, progress=False, stop_after_steps=3)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2


@pytest.fixture(scope="module")
def manifest(tiny_manifest) -> Path:
    return tiny_manifest


def test_a_run_config_never_makes_a_network_its_checkpoint_would_refuse():
    """The LeakyReLU slope bound of the checkpoint checks holds for a run's config too."""
    from train.config import _check_network

    with pytest.raises(SidkitError, match="spec slope .LeakyReLU's. must be a number from 0 to 1, not 1e\\+308"):
        _check_network("sid", {"slope": 1e308})
    _check_network("sid", {"slope": 0.3})
