"""Two processes writing one manifest or one capture log: the second waits for the first or is
refused with the first's pid; no result is silently lost, no line torn, no lock file left."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from curate.common.atomic import file_lock, lock_path
from curate.capturelog import CaptureRecord, append_record, read_log
from curate.common.errors import SidkitError
from curate.manifest import read_manifest, write_manifest
from helpers import make_rows

REPO = Path(__file__).resolve().parents[1]


def spawn(code: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    """A real second process running ``code`` (with the repo importable), its output piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'tests'}", **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOLD = """
    import sys, time
    from pathlib import Path
    from curate.common.atomic import file_lock
    with file_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
        Path(sys.argv[1] + ".held").write_text("done")     # the last thing done under the lock
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    """A process holding ``path``'s lock for ``seconds``; returns once it holds it."""
    holder = spawn(HOLD, str(path), str(seconds))
    assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
    return holder


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path, monkeypatch):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    before = path.read_bytes()
    holder = hold_lock(path, 30)
    monkeypatch.setattr("curate.common.atomic.LOCK_WAIT_S", 0.3)
    with pytest.raises(SidkitError) as err:
        write_manifest(make_rows(n_scenes=2), path)
    assert not Path(f"{path}.held").exists()    # refused while the first writer still held the lock
    assert str(err.value) == (f"{path}: another command (pid {holder.pid}) is writing it (lock m.csv.lock); "
                              "let it finish or stop it, then run this again")
    assert path.read_bytes() == before
    holder.kill()
    holder.wait(10)


def test_a_second_writer_waits_for_the_first_then_writes(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    holder = hold_lock(path, 1.0)
    write_manifest(make_rows(n_scenes=2), path)          # default wait (10 s) outlasts the holder
    assert Path(f"{path}.held").exists() and holder.wait(10) == 0     # it wrote after the first let go
    Path(f"{path}.held").unlink()
    assert len(read_manifest(path).rows) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]      # no lock or temp file left


WRITE_MANY = """
    import sys
    import pandas as pd
    from curate.manifest import write_manifest
    from helpers import make_rows
    tag = sys.argv[2]
    for i in range(int(sys.argv[3])):
        rows = make_rows(n_scenes=2, shorts=1)
        rows["camera"] = f"{tag}-{i}"
        write_manifest(rows, sys.argv[1])
    print("done", flush=True)
"""


def test_two_processes_writing_one_manifest_at_once_both_finish_and_it_stays_whole(tmp_path):
    path = tmp_path / "m.csv"
    writers = [spawn(WRITE_MANY, str(path), tag, "25") for tag in ("a", "b")]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0 and out.strip() == "done", err
    df = read_manifest(path).rows
    assert len(df) == 2 and df["camera"].nunique() == 1 and df["camera"][0] in {"a-24", "b-24"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


REWRITE = """
    import sys
    from curate.manifest import write_manifest
    from helpers import make_rows
    write_manifest(make_rows(n_scenes=1), sys.argv[1])
"""


def test_a_read_modify_write_refuses_when_another_process_rewrote_the_file(tmp_path):
    path = write_manifest(make_rows(), tmp_path / "m.csv")
    manifest = read_manifest(path)                 # like `curate split m.csv` between read and write
    other = spawn(REWRITE, str(path))
    assert other.wait(60) == 0, other.stderr.read()
    theirs = path.read_bytes()
    with pytest.raises(SidkitError, match="another command rewrote it after this one read it; nothing written"):
        write_manifest(manifest, path)
    assert path.read_bytes() == theirs             # their result is kept, not silently replaced
    write_manifest(read_manifest(path), path)      # read again: fine
    write_manifest(manifest, tmp_path / "elsewhere.csv")  # writing a read manifest to another file: fine


APPEND_MANY = """
    import sys
    from curate.capturelog import CaptureRecord, append_record
    tag = sys.argv[2]
    for i in range(int(sys.argv[3])):
        append_record(sys.argv[1], CaptureRecord(
            scene_id=f"{tag}{i:03d}", role="short", path=f"{tag}/{i}.dng", requested_exposure_s=0.01,
            camera_exposure="1/100", iso=100.0, fnumber=4.0, environment="indoor", camera="Sim",
            captured_at="2026-01-01T00:00:00", backend="sim", notes="x" * 5000))
"""


def test_processes_appending_to_one_capture_log_lose_no_record(tmp_path):
    writers = [spawn(APPEND_MANY, str(tmp_path), tag, "40") for tag in "abcd"]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    torn: list[int] = []
    records = read_log(tmp_path, torn)
    assert torn == [] and len(records) == 160
    assert sorted(r.scene_id for r in records) == sorted(f"{t}{i:03d}" for t in "abcd" for i in range(40))
    assert all(json.loads(line) for line in (tmp_path / "captures.jsonl").read_text().splitlines())
    assert not lock_path(tmp_path / "captures.jsonl").exists()


def test_an_append_waits_for_or_refuses_the_log_lock(tmp_path, monkeypatch):
    log = tmp_path / "captures.jsonl"
    record = CaptureRecord(scene_id="s", role="long", path="s.dng", requested_exposure_s=1.0,
                           camera_exposure="1", iso=100.0, fnumber=4.0, environment="indoor",
                           camera="Sim", captured_at="2026-01-01T00:00:00", backend="sim")
    holder = hold_lock(log, 2)
    monkeypatch.setattr("curate.common.atomic.LOCK_WAIT_S", 0.2)
    with pytest.raises(SidkitError, match=f"pid {holder.pid}"):
        append_record(tmp_path, record)
    assert not log.exists()
    monkeypatch.setattr("curate.common.atomic.LOCK_WAIT_S", 10)
    append_record(tmp_path, record)                 # waits for the holder to finish
    assert holder.wait(10) == 0 and [r.scene_id for r in read_log(tmp_path)] == ["s"]


def test_a_lock_dies_with_its_process_and_nests_in_one(tmp_path):
    path = tmp_path / "m.csv"
    holder = hold_lock(path, 30)
    holder.kill()
    holder.wait(10)
    with file_lock(path, wait=1):                  # the dead holder's lock file is no obstacle
        with file_lock(path, wait=0):               # nested in one process: no self-deadlock
            write_manifest(make_rows(n_scenes=1), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_a_second_scan_to_the_same_manifest_is_refused_while_the_first_runs(tmp_path):
    """`curate scan -o same.csv` holds the manifest's lock for the whole scan, not just the write."""
    out = tmp_path / "same.csv"
    holder = spawn(HOLD, str(out), "20")
    try:
        assert holder.stdout.readline().strip() == "locked"
        (tmp_path / "empty").mkdir()
        second = subprocess.run([sys.executable, "-m", "curate", "scan", str(tmp_path / "empty"), "-o", str(out)],
                                cwd=REPO, env={**os.environ, "SIDKIT_LOCK_WAIT": "0.5"},
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert f"pid {holder.pid}" in second.stderr and "Traceback" not in second.stderr
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
