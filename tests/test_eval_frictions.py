"""Issue 19, a newcomer's first hour: `train eval` says what it does while it works, names the files it
wrote as the user named them, and `train report` marks an evaluation older than its checkpoint beside
its numbers, with the command that refreshes it."""
from __future__ import annotations

import html
import io
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

import curate.common.clitools
from train.cli import _finite, main
from train.evaluate import evaluate
from train.report import build_report


def copy_run(tiny_run: Path, where: Path) -> Path:
    """A writable copy of the shared tiny run (6 epochs, last.pt at epoch 6) at ``where``."""
    return Path(shutil.copytree(tiny_run, where))


# ---------------------------------------------------------------- item 1: a stale evaluation

def test_report_marks_an_eval_older_than_the_checkpoint_beside_the_number_and_names_the_refresh(
        tiny_manifest, tiny_run, tmp_path, monkeypatch):
    """eval at epoch 6, resume to epoch 8: the page and the command's text say the eval is stale, and the
    command they name, run as printed, refreshes it (the warning goes away)."""
    from helpers import tiny_config
    from train.loop import train_run

    monkeypatch.chdir(tmp_path)
    run = copy_run(tiny_run, tmp_path / "runs" / "a")
    evaluate(Path("runs/a/checkpoints/last.pt"), tiny_manifest, images=False)                 # epoch 6
    train_run(tiny_config(tiny_manifest, Path("runs/a"), epochs=8, eval_every=3), progress=False, resume=True)

    result = CliRunner().invoke(main, ["report", "runs/a", "-o", "page.html"])
    assert result.exit_code == 0, result.output
    command = f"train eval runs/a/checkpoints/last.pt {shlex.quote(str(tiny_manifest))}"
    assert (f"warning: a: stale evaluation of epoch 6, but last.pt now holds epoch 8 (the run trained on since); "
            f"refresh it with: {command}") in result.stderr
    page = (tmp_path / "page.html").read_text()
    # the overview: the stale mark in the eval PSNR cell itself, right after the number
    assert re.search(r'<td>\d+\.\d\d<br><span class="stale"[^>]*>&#9888; stale: epoch 6, last.pt now 8</span></td>', page)
    # the run's eval table: a caption above the numbers, with the command
    caption = re.search(r'<caption class="stale" data-stale="a">(.*?)</caption>', page).group(1)
    assert "Stale evaluation of epoch 6, but last.pt now holds epoch 8" in caption
    assert f'<code class="refresh">{html.escape(command)}</code>' in caption

    words = shlex.split(command)
    assert words[:2] == ["train", "eval"]
    assert CliRunner().invoke(main, words[1:] + ["--device", "cpu"]).exit_code == 0
    done = build_report([run], tmp_path / "fresh.html")
    fresh = (tmp_path / "fresh.html").read_text()
    assert done["stale"] == [] and "<caption" not in fresh and '<span class="stale"' not in fresh
    assert "checkpoint epoch 8" in (run / "report.md").read_text()


def test_a_stale_eval_json_in_a_sweep_folder_refreshes_into_the_same_files(tiny_manifest, tiny_run, tmp_path,
                                                                           monkeypatch):
    """`train sweep` evaluates into <run>/eval/, `make demo` keeps eval.json: the refresh names both."""
    monkeypatch.chdir(tmp_path)
    copy_run(tiny_run, tmp_path / "sweep" / "lr-high")
    result = evaluate(Path("sweep/lr-high/checkpoints/last.pt"), tiny_manifest, split="all", images=False,
                      out=Path("sweep/lr-high/eval"), protocol="sid")
    older = {**_finite(result), "epoch": 3}            # as if scored before the last 3 epochs were trained
    Path("sweep/lr-high/eval/eval.json").write_text(json.dumps(older))

    done = build_report([Path("sweep")], tmp_path / "page.html")
    [stale] = done["stale"]
    assert stale["why"] == "evaluation of epoch 3, but last.pt now holds epoch 6 (the run trained on since)"
    assert stale["refresh"] == (f"train eval sweep/lr-high/checkpoints/last.pt {shlex.quote(str(tiny_manifest))} "
                                "--split all --protocol sid --out sweep/lr-high/eval --format json > "
                                "sweep/lr-high/eval/eval.json")


def test_an_eval_of_an_unchanged_best_checkpoint_is_not_stale(tiny_manifest, tiny_run, tmp_path):
    """The run trained on, but best.pt still holds the epoch evaluated: no warning; the page says which
    checkpoint and epoch the number is of when that is not the last epoch trained."""
    run = copy_run(tiny_run, tmp_path / "b")
    result = evaluate(run / "checkpoints" / "best.pt", tiny_manifest, images=False)
    done = build_report([run], tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text()
    assert done["stale"] == [] and '<span class="stale"' not in page
    if result["epoch"] != 6:
        assert f'<span class="of">best.pt, epoch {result["epoch"]}</span>' in page


# ---------------------------------------------------------------- item 2: progress while it works

def test_eval_in_a_log_prints_progress_lines_on_stderr(tiny_manifest, tiny_run, tmp_path):
    out = CliRunner().invoke(main, ["eval", str(tiny_run / "checkpoints" / "last.pt"), str(tiny_manifest),
                                    "--split", "all", "--no-images", "--out", str(tmp_path / "e"),
                                    "--format", "json"])
    assert out.exit_code == 0, out.output
    json.loads(out.stdout)                              # stdout stays pure data
    lines = out.stderr.splitlines()
    assert lines[0] == "eval all: 0/4"
    assert re.fullmatch(r"eval all: 4/4, done in \d:\d\d:\d\d, .*s3-0: \d+\.\d\d dB", lines[-1]), lines


def test_eval_on_a_terminal_draws_a_rich_bar(tiny_manifest, tiny_run, tmp_path, monkeypatch):
    screen = io.StringIO()
    monkeypatch.setattr(curate.common.clitools, "stderr", Console(file=screen, force_terminal=True, width=120))
    evaluate(tiny_run / "checkpoints" / "last.pt", tiny_manifest, out=tmp_path, images=False, progress=True)
    text = screen.getvalue()
    assert "eval test" in text and "1/1" in text and "━" in text and "s3-0:" in text


def test_eval_as_a_library_call_is_silent(tiny_manifest, tiny_run, tmp_path, capsys):
    evaluate(tiny_run / "checkpoints" / "last.pt", tiny_manifest, out=tmp_path, images=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- item 3: paths as the user gave them

def test_eval_names_what_it_wrote_as_the_user_named_it(tiny_manifest, tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    copy_run(tiny_run, tmp_path / "runs" / "a")
    out = CliRunner().invoke(main, ["eval", "runs/a/checkpoints/last.pt", str(tiny_manifest)])
    assert out.exit_code == 0, out.output
    assert out.stderr.splitlines()[-1] == \
        "wrote runs/a/report.md and runs/a/outputs/ (1 pair: output PNG and sheet each)"

    out = CliRunner().invoke(main, ["eval", "runs/a/checkpoints/last.pt", str(tiny_manifest), "--format", "json"])
    result = json.loads(out.stdout)
    assert result["report"] == "runs/a/report.md" and result["images"][0]["sheet"] == "runs/a/outputs/s3-0-sheet.png"

    monkeypatch.chdir(tmp_path / "runs" / "a" / "checkpoints")      # the checkpoint named from its own folder
    out = CliRunner().invoke(main, ["eval", "last.pt", str(tiny_manifest), "--no-images"])
    assert out.exit_code == 0, out.output
    assert out.stderr.splitlines()[-1] == "wrote ../report.md"

    absolute = tmp_path / "elsewhere"                                # an absolute --out stays absolute
    out = CliRunner().invoke(main, ["eval", "last.pt", str(tiny_manifest), "--no-images", "--out", str(absolute)])
    assert out.stderr.splitlines()[-1] == f"wrote {absolute / 'report.md'}"


@pytest.mark.parametrize("given", ["runs/a/checkpoints/last.pt", "runs/a/checkpoints/../checkpoints/last.pt"])
def test_the_default_out_is_the_run_folder_named_relatively(given, tiny_run, tmp_path, monkeypatch):
    from train.evaluate import _run_folder

    monkeypatch.chdir(tmp_path)
    copy_run(tiny_run, tmp_path / "runs" / "a")
    folder = _run_folder(Path(given))
    assert not folder.is_absolute() and folder.resolve() == (tmp_path / "runs" / "a").resolve()
