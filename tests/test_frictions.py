"""Issue 11's train-side frictions: `--set` as a shell leaves it, metric names after the split scored."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from train.cli import main
from train.config import parse_set

SWEEP = 'title = "t"\n[base]\n[[runs]]\nname = "a"\nlr = 1e-4\n'


@pytest.mark.parametrize("item, expected", [
    ("device=cpu", ("device", "cpu")),              # device='cpu' after the shell strips the quotes
    ("device='cpu'", ("device", "cpu")),
    ("epochs=100", ("epochs", 100)),
    ("lr=1e-4", ("lr", 1e-4)),
    ("lr_steps=[[200, 1e-05]]", ("lr_steps", [[200, 1e-05]])),
    ("lr_steps=200:1e-5", ("lr_steps", "200:1e-5")),
    ("compile=true", ("compile", True)),
])
def test_set_values(item, expected):
    assert parse_set(item) == expected


def test_sweep_set_bare_word_and_bad_form(tiny_manifest, tmp_path):
    sweep = tmp_path / "s.toml"
    sweep.write_text(SWEEP)
    args = ["sweep", str(sweep), str(tiny_manifest), "--out", str(tmp_path / "runs"), "--dry-run"]
    result = CliRunner().invoke(main, args + ["--set", "device=cpu", "--set", "epochs=7"])
    assert result.exit_code == 0, result.output
    assert " 7 " in result.output
    bad = CliRunner().invoke(main, args + ["--set", "device"])
    assert bad.exit_code == 1
    assert "--set device=cpu" in bad.output and "'cpu'" not in bad.output
    wrong = CliRunner().invoke(main, args + ["--set", "device=gpu"])
    assert wrong.exit_code == 1 and "'gpu' is not one of cuda, cpu" in wrong.output


def test_scores_are_named_after_the_split_evaluated_and_a_noop_resume_writes_no_events(tiny_manifest, tmp_path):
    """No val split: metrics.csv says test_psnr/test_ssim, TensorBoard test/psnr, never val_*; a
    --resume of a finished run adds no (empty) events file."""
    import csv

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from curate.manifest import read_manifest, write_manifest
    from helpers import tiny_config
    from train.loop import train_run

    manifest = read_manifest(tiny_manifest)
    df = manifest.rows
    for column in ("short_path", "long_path"):
        df[column] = [str(manifest.resolve(p)) for p in df[column]]
    df["split"] = df["split"].replace({"val": "train"})
    write_manifest(df, tmp_path / "no-val.csv")
    run = train_run(tiny_config(tmp_path / "no-val.csv", tmp_path / "run", epochs=2, eval_every=1, log_every=1), progress=False)
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "step", "train_loss", "lr", "test_psnr", "test_ssim", "seconds"]
    assert len(rows) == 2 and all(5 < float(r["test_psnr"]) < 60 for r in rows)
    events = sorted(run.glob("events.out.tfevents*"))
    assert len(events) == 1
    tags = EventAccumulator(str(events[0])).Reload().Tags()["scalars"]
    assert {"test/psnr", "test/ssim", "train/loss"} <= set(tags) and not any(t.startswith("val/") for t in tags)
    train_run(tiny_config(tmp_path / "no-val.csv", tmp_path / "run", epochs=2, eval_every=1, log_every=1), progress=False,
              resume=True)
    assert sorted(run.glob("events.out.tfevents*")) == events
    assert list(csv.DictReader((run / "metrics.csv").open())) == rows
