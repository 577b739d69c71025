"""Logs that read well: plain progress lines outside a terminal, one line per message, epoch lines."""
import subprocess
import sys

import pytest

from curate.common.clitools import PlainProgress, progress_bar, stderr
from train.progresslog import EpochLog


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_progress_start_throttled_lines_and_end():
    clock, lines = FakeClock(), []
    bar = PlainProgress(100, "decoding", every=10.0, clock=clock, write=lines.append)
    assert lines == ["decoding: 0/100"]
    for _ in range(20):             # 20 items in 4 s: no line yet
        clock.now += 0.2
        bar.advance()
    assert len(lines) == 1
    for _ in range(30):             # 30 more over 6 s: 10 s reached, one line
        clock.now += 0.2
        bar.advance(status="file 50")
    assert lines[1:] == ["decoding: 50/100, 5/s, ETA 0:00:10, file 50"]
    clock.now += 5.0                # not 10 s since the last line: silent
    bar.advance(50)
    assert len(lines) == 2
    bar.finish()
    assert lines[2] == "decoding: 100/100, done in 0:00:15, 6.67/s, file 50"


def test_plain_progress_unknown_total_and_no_work():
    clock, lines = FakeClock(), []
    bar = PlainProgress(0, "scanning", clock=clock, write=lines.append)
    assert lines == []              # nothing before the first file
    clock.now += 2
    bar.advance()
    clock.now += 2
    bar.advance()
    bar.finish()
    assert lines == ["scanning: started", "scanning: 2, done in 0:00:04, 0.5/s"]
    idle = []
    PlainProgress(0, "decoding 0 raws", clock=clock, write=idle.append).finish()
    PlainProgress(5, "epoch", completed=5, clock=clock, write=idle.append).finish()   # resumed at the end
    assert idle == []               # no work: no lines at all


def test_resumed_progress_counts_its_rate_from_where_it_started():
    clock, lines = FakeClock(), []
    bar = PlainProgress(10, "epoch", completed=6, every=1.0, clock=clock, write=lines.append)
    clock.now += 4
    bar.advance(2)
    assert lines == ["epoch: 6/10", "epoch: 8/10, 0.5/s, ETA 0:00:04"]


def test_progress_bar_off_a_terminal_prints_lines_and_nothing_after_an_error(capsys):
    assert not stderr.is_terminal   # pytest captures stderr
    with progress_bar(3, "rendering", every=0.0) as advance:
        for _ in range(3):
            advance()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "rendering: 0/3" and err[1].startswith("rendering: 1/3, ")
    assert err[-1].startswith("rendering: 3/3, done in 0:00:00")
    with pytest.raises(RuntimeError), progress_bar(3, "validating") as advance:
        advance()
        raise RuntimeError
    assert capsys.readouterr().err.splitlines() == ["validating: 0/3"]
    for kwargs in ({"enabled": False}, {"plain": False}):
        with progress_bar(3, "quiet", **kwargs) as advance:
            advance(3, status="x")
    assert capsys.readouterr().err == ""


def test_long_messages_stay_on_one_line(capsys):
    command = "train run " + "/very/long/folder" * 12 + "/manifest.csv --out runs/a --resume"
    stderr.print(f"stopped in epoch 3 at step 12; continue with `{command}`", highlight=False)
    assert capsys.readouterr().err == f"stopped in epoch 3 at step 12; continue with `{command}`\n"


def test_epoch_log_first_last_and_at_most_one_line_every_few_seconds():
    clock, lines = FakeClock(), []
    log = EpochLog(100, every=10.0, clock=clock, write=lines.append)
    asked = []

    def loss():
        asked.append(1)
        return 0.25

    for epoch in range(1, 101):     # 0.5 s and 4 steps per epoch
        clock.now += 0.5
        log(epoch, 4 * epoch, loss, lr=1e-4)
    assert [line.split(",")[0] for line in lines] == ["epoch 1/100", "epoch 21/100", "epoch 41/100",
                                                       "epoch 61/100", "epoch 81/100", "epoch 100/100"]
    assert lines[0] == "epoch 1/100, step 4, loss 0.2500, lr 1.0e-04, 8 steps/s, ETA 0:00:50"
    assert lines[1] == "epoch 21/100, step 84, loss 0.2500, lr 1.0e-04, 8 steps/s, ETA 0:00:40"
    assert lines[-1] == "epoch 100/100, step 400, loss 0.2500, lr 1.0e-04, 8 steps/s"
    assert len(asked) == len(lines)  # the loss is fetched only for a printed line


def test_epoch_log_slow_epochs_each_get_a_line_and_resume_counts_from_its_start():
    clock, lines = FakeClock(), []
    log = EpochLog(10, epoch=6, step=60, clock=clock, write=lines.append)
    for epoch in range(7, 11):      # 30 s and 10 steps per epoch
        clock.now += 30
        log(epoch, 10 * epoch, 0.1)
    assert lines == ["epoch 7/10, step 70, loss 0.1000, 0.333 steps/s, ETA 0:01:30",
                     "epoch 8/10, step 80, loss 0.1000, 0.333 steps/s, ETA 0:01:00",
                     "epoch 9/10, step 90, loss 0.1000, 0.333 steps/s, ETA 0:00:30",
                     "epoch 10/10, step 100, loss 0.1000, 0.333 steps/s"]


def test_epoch_log_disabled_or_on_a_terminal_is_silent(capsys):
    assert EpochLog(3, enabled=False, write=print)(1, 1, 0.1) is False
    assert EpochLog(3)(1, 1, 0.1) is True   # stderr captured: not a terminal
    assert capsys.readouterr().err.startswith("epoch 1/3, step 1, loss 0.1000")


def test_scan_into_a_log_file(sim_dataset, tmp_path):
    """`curate scan ... > log 2>&1` as a person would run it: progress lines, one line per message."""
    out = tmp_path / ("a-rather-long-folder-name-" * 6) / ("and-another-one-" * 8) / "sim.csv"
    log = tmp_path / "log"
    with log.open("w") as handle:
        done = subprocess.run([sys.executable, "-c", "from curate.cli import main; main()", "scan", str(sim_dataset),
                               "-o", str(out)], stdout=handle, stderr=subprocess.STDOUT, timeout=120)
    text = log.read_text()
    assert done.returncode == 0, text
    lines = text.splitlines()
    assert "scanning: started" in lines
    assert any(line.startswith("scanning: 8, done in ") for line in lines), text
    assert f"wrote {out}: 8 pairs, 4 scenes" in lines


def test_train_run_in_a_log_prints_epoch_lines(tiny_manifest, tmp_path, capsys):
    """train_run off a terminal: an EpochLog line for the first and the last epoch (these epochs are
    far shorter than 10 s), none of the generic 'epoch: 0/3' lines."""
    import re

    from helpers import tiny_config
    from train.loop import train_run

    train_run(tiny_config(tiny_manifest, tmp_path / "run", epochs=3, eval_every=3), progress=True)
    err = capsys.readouterr().err.splitlines()
    epochs = [line for line in err if re.fullmatch(r"epoch \d+/3, step \d+, loss \d\.\d{4}, lr 1\.0e-02, "
                                                    r"[\d.]+ steps/s(, ETA \d+:\d\d:\d\d)?", line)]
    assert [line.split(",")[:2] for line in epochs] == [["epoch 1/3", " step 2"], ["epoch 3/3", " step 6"]], err
    assert "ETA" in epochs[0] and "ETA" not in epochs[-1]
    assert not any(line.startswith("epoch: ") for line in err)


def test_every_console_keeps_messages_whole():
    """Every rich Console in capture/, curate/ and train/ is made with soft_wrap=True (no 80-column wrap)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    made = []
    for path in [p for package in ("capture", "curate", "train") for p in (root / package).rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Console":
                wraps = {k.arg: k.value for k in node.keywords}.get("soft_wrap")
                made.append((path.name, isinstance(wraps, ast.Constant) and wraps.value is True))
    assert len(made) >= 3 and all(ok for _, ok in made), made
