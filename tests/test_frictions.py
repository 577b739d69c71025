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
