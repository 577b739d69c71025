"""train CLI wiring: exit codes, stdout/stderr, help text, docs for every command."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from helpers import TINY, make_dataset
from train.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs" / "train.md"


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny run trained through the CLI with a config file and flags; returns (manifest, run)."""
    folder = tmp_path_factory.mktemp("cli")
    manifest = make_dataset(folder)
    config = folder / "run.toml"
    config.write_bytes(tomli_w.dumps({"epochs": 50, "patch": 16, "lr": 1e-2, "lr_steps": "",
                                      "spec": TINY, "eval_every": 2, "device": "cpu"}).encode())
    result = CliRunner().invoke(main, ["run", str(manifest), "--config", str(config), "--epochs", "2",
                                       "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return manifest, Path(result.stdout.strip())


def test_run_writes_the_run_folder_with_flags_over_the_config_file(run_folder):
    _, run = run_folder
    assert run.name == "run" and (run / "checkpoints" / "best.pt").is_file()
    assert "epochs = 2\n" in (run / "config.toml").read_text()


def test_eval_prints_a_table_or_json_and_writes_the_report(run_folder, tmp_path):
    manifest, run = run_folder
    result = CliRunner().invoke(main, ["eval", str(run / "checkpoints" / "best.pt"), str(manifest),
                                       "--split", "all", "--format", "json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["images"]) == 4 and (tmp_path / "report.md").is_file()
    table = CliRunner().invoke(main, ["eval", str(run / "checkpoints" / "best.pt"), str(manifest),
                                      "--out", str(tmp_path), "--no-images"])
    assert table.exit_code == 0 and "baseline PSNR" in table.stdout and "test" in table.stdout


def test_predict_writes_a_png_and_needs_a_ratio(run_folder, tmp_path):
    manifest, run = run_folder
    args = ["predict", str(run / "checkpoints" / "best.pt"), str(manifest.parent / "s3_short.dng"),
            "-o", str(tmp_path / "b.png")]
    missing = CliRunner().invoke(main, args)
    assert missing.exit_code == 1 and missing.stderr.startswith("error:") and "--ratio" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    done = CliRunner().invoke(main, args + ["--ratio", "100"])
    assert done.exit_code == 0 and Path(done.stdout.strip()) == tmp_path / "b.png"


def test_bad_input_is_one_line_on_stderr_and_exit_1(tmp_path):
    (tmp_path / "run.toml").write_text("epoch = 3\n")
    cases = [["run", str(tmp_path / "missing.csv"), "--device", "cpu"],
             ["run", "m.csv", "--config", str(tmp_path / "run.toml")],
             ["run", "m.csv", "--lr-steps", "2000"],
             ["run", "m.csv", "--patch", "64", "--patch-choices", "64,128"],
             ["eval", str(tmp_path / "none.pt"), "m.csv"]]
    for args in cases:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stdout == ""


def test_run_help_defaults_come_from_run_config():
    import re

    from train.config import RunConfig

    text = " ".join(CliRunner().invoke(main, ["run", "-h"]).stdout.split())
    assert "--epochs INTEGER Passes over the training scenes. [default: 4000]" in text
    assert "[default: 1e-4]" in text and "[default: 2000:1e-5]" in text
    assert len(re.findall(r"\[default: ", text)) == 18      # 15 + --synthetic-fraction, -ratio, -iso
    defaults = RunConfig()
    for flag in ("patch", "batch", "eval_every", "save_every", "log_every", "seed"):
        assert re.search(rf"--{flag.replace('_', '-')} INTEGER [^[]*\[default: {getattr(defaults, flag)}\]", text)


def test_presets_lists_the_paper_network_with_its_parameter_count():
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0 and "7,760,748" in result.stdout and "single-layer" in result.stdout


def test_python_dash_m_train_works():
    result = subprocess.run([sys.executable, "-m", "train", "-h"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("Usage: train ")


def test_run_warns_about_pairs_with_errors_and_refuses_to_overwrite(tmp_path):
    manifest = make_dataset(tmp_path, ratio=20)
    config = tmp_path / "run.toml"
    config.write_bytes(tomli_w.dumps({"epochs": 1, "patch": 16, "spec": TINY, "device": "cpu"}).encode())
    args = ["run", str(manifest), "--config", str(config), "--out", str(tmp_path / "run")]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0
    assert "warning: 4 pair(s)" in first.stderr and "ratio-out-of-range" in first.stderr
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "already holds a run" in again.stderr


def test_resume_takes_the_run_settings_and_lists_the_flags_that_change_them(tmp_path):
    manifest = make_dataset(tmp_path)
    config = tmp_path / "run.toml"
    config.write_bytes(tomli_w.dumps({"patch": 16, "lr": 1e-2, "lr_steps": "", "spec": TINY,
                                      "eval_every": 1, "device": "cpu"}).encode())
    out = tmp_path / "run"
    first = CliRunner().invoke(main, ["run", str(manifest), "--config", str(config), "--epochs", "2",
                                      "--out", str(out)])
    assert first.exit_code == 0, first.output
    # no --config, no --lr, no --patch: the run's own config.toml, not the defaults (lr 1e-4, patch 512)
    more = CliRunner().invoke(main, ["run", str(manifest), "--out", str(out), "--resume", "--epochs", "3"])
    assert more.exit_code == 0, more.output
    assert "resuming with changed settings: epochs: 2 -> 3" in more.stderr
    saved = (out / "config.toml").read_text()
    assert "lr = 0.01\n" in saved and "patch = 16\n" in saved and "epochs = 3\n" in saved
    assert [line.split(",")[0] for line in (out / "metrics.csv").read_text().splitlines()] == ["epoch", "1", "2", "3"]
    again = CliRunner().invoke(main, ["run", str(manifest), "--out", str(out), "--resume"])
    assert again.exit_code == 0 and "changed settings" not in again.stderr


def test_the_cpu_is_described_with_its_instruction_set():
    """Speed figures name the CPU and what torch dispatches to (bench_train prints it beside its ratio)."""
    import torch

    from train.config import cpu_description, native_bf16

    text = cpu_description()
    assert torch.backends.cpu.get_cpu_capability() in text
    assert ("with native bf16" in text) == native_bf16() and ("no native bf16" in text) != native_bf16()
