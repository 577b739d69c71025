"""train sweep end to end on real tiny runs: train, evaluate, skip, resume, tables and plot."""
import json

import pandas as pd
import pytest

from curate.common.errors import SidkitError
from train.loop import TrainingStopped, train_run
from train.sweep import collect_results, load_sweep, run_config, run_sweep, scored_checkpoint, write_outputs

SWEEP = """
title = "Tiny learning rates"
[base]
epochs = 2
patch = 16
lr_steps = []
eval_every = 1
save_every = 1
device = "cpu"
spec = { widths = [8, 16], encoder_convs = [1], decoder_convs = [1], bottleneck_convs = 1 }
[[runs]]
name = "1e-2"
lr = 1e-2
[[runs]]
name = "1e-3"
lr = 1e-3
"""


@pytest.fixture(scope="module")
def manifest(tiny_manifest):
    return tiny_manifest


def test_sweep_trains_evaluates_skips_and_resumes(manifest, tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    sweep = load_sweep(path)
    out = tmp_path / "runs"

    # an interrupted first run: last.pt exists, result.json does not
    with pytest.raises(TrainingStopped):
        train_run(run_config(sweep.runs[0], manifest, out, {}, 1.0), progress=False, stop_after_steps=1)
    assert (out / "1e-2" / "checkpoints" / "last.pt").exists()

    messages = []
    results = run_sweep(sweep, manifest, out, log=messages.append)
    assert [m.split(": ")[1].split(" ")[0] for m in messages] == ["resuming", "training"]
    assert results["setting"].tolist() == ["1e-2", "1e-3"]
    assert results["psnr"].between(5, 60).all() and results["ssim"].between(-1, 1).all()
    metrics = pd.read_csv(out / "1e-2" / "metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2]

    messages.clear()
    again = run_sweep(sweep, manifest, out, log=messages.append)
    assert all("skipped" in m for m in messages) and again.equals(results)

    paths = write_outputs(sweep, results, out)
    table = paths["markdown"].read_text().splitlines()
    assert table[2] == "| setting | PSNR | SSIM | baseline PSNR | baseline SSIM |"
    assert table[4] == (f"| 1e-2 | {results.psnr[0]:.2f} | {results.ssim[0]:.3f} | {results.baseline_psnr[0]:.2f} | "
                        f"{results.baseline_ssim[0]:.3f} |")
    assert results.baseline_psnr.between(5, 60).all()
    assert pd.read_csv(paths["csv"], dtype={"setting": str})["setting"].tolist() == ["1e-2", "1e-3"]
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "1e-3" / "result.json").read_text())
    assert (result["split"], result["checkpoint"]) == ("test", "best.pt")    # best.pt was chosen on val
    assert collect_results(sweep, out).equals(results)


def test_sweep_refuses_changed_settings_and_a_missing_split_before_training(manifest, tmp_path):

    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.replace('name = "1e-3"\nlr = 1e-3\n', 'name = "1e-3"\nlr = 1e-3\nepochs = 1\n'))
    out = tmp_path / "runs"
    trained = []

    def fake_train(config, resume):
        trained.append(config.out)
        raise AssertionError("must not train")

    with pytest.raises(SidkitError, match="no pairs in split 'bogus'"):
        run_sweep(load_sweep(path), manifest, out, split="bogus", train=fake_train)
    run_sweep(load_sweep(path), manifest, out)            # trains both
    path.write_text(SWEEP)                                 # run "1e-3" now has 2 epochs
    with pytest.raises(SidkitError, match=r"run '1e-3' was made with epochs = 1, the sweep now says 2; delete that "
                                          r"folder to re-run it, give another --out, or pass --set epochs=1 to go on"):
        run_sweep(load_sweep(path), manifest, out, train=fake_train)
    assert trained == []


def test_a_sweep_made_on_other_hardware_names_amp_and_how_to_go_on(manifest, tmp_path, monkeypatch):
    from train import config as config_module

    path = tmp_path / "sweep.toml"
    path.write_text('[base]\nepochs = 1\n[[runs]]\nname = "a"\nlr = 1e-3\n')
    out = tmp_path / "runs"
    monkeypatch.setattr(config_module, "native_bf16", lambda: False)     # made on a CPU without bf16
    folder = out / "a"
    folder.mkdir(parents=True)
    config = run_config(load_sweep(path).runs[0], manifest, out, {"device": "cpu"}, 1.0)
    config.save(folder / "config.toml")
    monkeypatch.setattr(config_module, "native_bf16", lambda: True)      # resumed on one with bf16
    with pytest.raises(SidkitError, match=r"amp = 'off', the sweep now says 'bf16' \(amp's default follows the "
                                          r"hardware.*or pass --set amp=off to go on as it was made"):
        run_sweep(load_sweep(path), manifest, out, overrides={"device": "cpu"}, train=lambda c, resume: None)
    run_sweep(load_sweep(path), manifest, out, overrides={"device": "cpu", "amp": "off"},
              train=lambda c, resume: None, evaluate=lambda *a, **k: {"psnr": 1.0, "ssim": 0.5})


@pytest.mark.parametrize("text, message", [
    ("", "no runs"),
    ('[[runs]]\nlr = 1e-3\n', "entry 1 has no name"),
    ("[grid]\nseed = 0\n", r"every \[grid\] entry must be a non-empty list"),
])
def test_bad_sweep_files(tmp_path, text, message):
    from curate.common.errors import SidkitError

    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SidkitError, match=message):
        load_sweep(path)


def test_scored_checkpoint_is_last_when_best_was_chosen_on_the_test_split(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.pt").touch()
    assert scored_checkpoint(tmp_path, has_val=True).name == "best.pt"
    assert scored_checkpoint(tmp_path, has_val=False).name == "last.pt"
    (tmp_path / "checkpoints" / "best.pt").unlink()
    assert scored_checkpoint(tmp_path, has_val=True).name == "last.pt"
