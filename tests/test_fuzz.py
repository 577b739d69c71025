"""Issue 8's promise on a fuzz corpus (tests/fuzzcorpus.py): a damaged raw is a finding, never a
traceback or a hang, in read_metadata (scan's reader), `curate inspect`, validate's pixel checks
(the spawn pool included) and `train predict`; memory stays bounded.

`python scripts/fuzz_report.py [--full]` prints the same counts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import fuzzcorpus
from helpers import time_limit

STRUCTURAL = ("truncate", "loop", "tag", "special", "zero")


def samples_or_none() -> Path | None:
    from helpers import RAW_SAMPLE_DIRS

    return next((d for d in RAW_SAMPLE_DIRS if d.is_dir() and any(d.iterdir())), None)


def check_report(report: fuzzcorpus.Report, minimum: int) -> dict:
    counts = report.counts()
    print("\nfuzz counts:", json.dumps(counts))
    tracebacks = [f"{r['origin']} {r['name']}: {r['error']}\n{r['trace']}" for r in report.results
                  if r["outcome"] == "traceback"]
    assert not tracebacks, "\n".join(tracebacks[:3])
    assert not report.hangs, report.hangs
    assert counts["variants"] >= minimum
    # bounded memory: no variant makes a worker grow by more than 512 MiB over its imports
    assert report.peak_rss_kib - report.base_rss_kib < 512 * 1024, counts
    by_name = {(r["origin"], r["name"]): r for r in report.results}
    assert by_name[("sim-a", "intact")]["outcome"] == "correct"
    assert by_name[("sim-b", "intact")]["outcome"] == "correct"
    assert by_name[("sim-x", "intact")]["outcome"] == "correct"            # X-Trans
    for r in report.results:
        if r["origin"].startswith("sim") and r["kind"] in STRUCTURAL:
            # damage to the structure of a simulated DNG is always seen (the zeroed middle of the
            # pixels included: validate's pixel checks)
            assert r["outcome"] in ("finding", "correct"), r
        # what is read without a finding is either right, or a value whose bytes were changed
        # (a flipped ISO digit is a plausible ISO): never a structural change
        if r["outcome"] == "changed":
            assert r["kind"] in ("bitflip", "entry"), r
    return counts


@pytest.mark.slow      # 600 variants through worker processes: minutes on 2 cores
def test_quick_corpus_has_no_traceback_hang_or_runaway_memory(tmp_path):
    """~500 variants of two simulated DNGs and four small sample raws (about 25 s of one core)."""
    report = fuzzcorpus.run(tmp_path / "corpus", samples_or_none())
    counts = check_report(report, minimum=300 if samples_or_none() else 250)
    results = {(r["origin"], r["name"]): r for r in report.results}
    # the cases, by name
    for origin in ("sim-a", "sim-b", "sim-x"):
        for name in ("cfa-repeat-dim-count-3", "black-repeat-dim-count-1", "cfa-pattern-0x09", "white-level-0",
                     "strips-past-end", "truncated-1000"):
            assert results[(origin, name)]["outcome"] == "finding", results[(origin, name)]
    assert "inspect: no-pixel-data" in results[("sim-a", "white-level-0")]["findings"]
    assert "read_metadata: pixel_problem" in results[("sim-a", "strips-past-end")]["findings"]
    assert results[("", "fifo")]["findings"] == ["read_metadata: unreadable", "inspect: unreadable"]
    assert results[("", "directory")]["outcome"] == "finding"
    assert results[("sim-a", "non-utf8-latin1")]["outcome"] == "correct"        # caf\xe9-latin1.dng reads
    assert counts["findings"] > counts["correct reads"]


@pytest.mark.slow
def test_full_corpus_of_every_sample(tmp_path):
    """Every sample raw, more bit flips and entry extremes (a few minutes)."""
    samples = samples_or_none()
    if samples is None:
        pytest.skip("no raw samples")
    check_report(fuzzcorpus.run(tmp_path / "corpus", samples, full=True), minimum=1500)


def _manifest_of_variants(tmp_path) -> Path:
    """A manifest whose shorts are damaged variants (and /dev/zero, a FIFO, a folder) of one good pair."""
    import pandas as pd

    from curate.manifest import COLUMNS, write_manifest
    from curate.rawmeta import read_metadata, sha256_file

    folder = tmp_path / "data"
    folder.mkdir()
    short = fuzzcorpus.sim_dng(folder / "short.dng")
    long = fuzzcorpus.sim_dng(folder / "long.dng", exposure_s=10, seed=7)
    tags = fuzzcorpus.dng_tag_variants(short.read_bytes())
    shorts = {"good": short}
    for name in ("cfa-pattern-0x09", "white-level-0", "strips-past-end", "truncated-1000", "pixels-zeroed",
                 "cfa-repeat-dim-count-3"):
        shorts[name] = folder / f"{name}.dng"
        shorts[name].write_bytes(tags[name])
    os.mkfifo(folder / "fifo.dng")
    (folder / "dir.dng").mkdir()
    shorts.update({"fifo": folder / "fifo.dng", "dir": folder / "dir.dng", "dev-zero": Path("/dev/zero")})
    meta = read_metadata(short)
    rows = []
    for name, path in shorts.items():
        rows.append({
            "pair_id": name, "scene_id": "fuzz", "split": "train", "environment": "indoor",
            "short_path": os.path.relpath(path, tmp_path) if path.is_relative_to(tmp_path) else str(path),
            "long_path": "data/long.dng", "short_exposure_s": 0.1, "long_exposure_s": 10.0, "ratio": 100.0,
            "short_iso": 100, "long_iso": 100, "short_fnumber": 8, "long_fnumber": 8, "camera": meta.camera,
            "cfa": "RGGB", "black_level": " ".join(f"{b:g}" for b in meta.black_level),
            "white_level": meta.white_level, "width": meta.width, "height": meta.height,
            "short_sha256": sha256_file(path) if path.is_file() and path.stat().st_size else "",
            "long_sha256": sha256_file(long)})
    manifest = tmp_path / "fuzz.csv"
    write_manifest(pd.DataFrame(rows, columns=list(COLUMNS)), manifest)
    return manifest


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "spawn-pool"])
@pytest.mark.slow
def test_validate_reports_each_bad_pair_and_goes_on(tmp_path, workers):
    """validate (its pool too) on damaged shorts, a FIFO, a folder and /dev/zero: each pair gets its
    findings, the good pair none, nothing hangs or escapes."""
    from click.testing import CliRunner

    from curate.cli import main

    manifest = _manifest_of_variants(tmp_path)
    with time_limit(300):
        result = CliRunner().invoke(main, ["validate", str(manifest), "--format", "json",
                                           "--workers", str(workers)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1
    found = json.loads(result.stdout)
    errors = {}
    for f in found:
        if f["severity"] == "error":
            errors.setdefault(f["pair_id"], set()).add(f["code"])
    assert "good" not in errors
    assert errors["cfa-pattern-0x09"] and errors["cfa-pattern-0x09"] <= {"unreadable", "not-raw"}
    assert errors["white-level-0"] & {"no-pixel-data", "bad-value"}
    assert "no-pixel-data" in errors["strips-past-end"] and "no-pixel-data" in errors["truncated-1000"]
    assert "no-pixel-data" in errors.get("pixels-zeroed", ()), [f for f in found if f["pair_id"] == "pixels-zeroed"]
    for special in ("fifo", "dir", "dev-zero"):
        assert "unreadable" in errors[special], (special, errors.get(special))


def test_predict_refuses_damaged_files_and_writes_nothing(tmp_path):
    """`train predict` on damaged variants: a one-line error each, no PNG, no traceback."""
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from helpers import make_dataset, tiny_config
    from train.cli import main
    from train.loop import train_run

    run = train_run(tiny_config(make_dataset(tmp_path / "data"), tmp_path / "run", epochs=1), progress=False)
    checkpoint = run / "checkpoints" / "last.pt"
    good = fuzzcorpus.sim_dng(tmp_path / "good.dng", 64, 64)
    tags = fuzzcorpus.dng_tag_variants(good.read_bytes())
    inputs = []
    for name in ("truncated-1000", "strips-past-end", "pixels-zeroed", "cfa-pattern-0x09", "width-huge"):
        inputs.append(tmp_path / f"{name}.dng")
        inputs[-1].write_bytes(tags[name])
    for cut in (9, 300, 2000):
        inputs.append(tmp_path / f"cut-{cut}.dng")
        inputs[-1].write_bytes(good.read_bytes()[:cut])
    os.mkfifo(tmp_path / "fifo.dng")
    inputs += [tmp_path / "fifo.dng", Path("/dev/zero")]
    for path in inputs:
        out = tmp_path / f"{path.stem}.png"
        with time_limit(60):
            result = CliRunner().invoke(main, ["predict", str(checkpoint), str(path), "--ratio", "100",
                                               "-o", str(out)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (path, result.output)
        assert "Traceback" not in result.output and not out.exists(), (path, result.output)
        assert str(path) in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr


def _dies_on_two(job):
    """A pool job whose worker process dies (as on a decoder crash) for job 2."""
    if job == 2:
        os._exit(3)
    return job * 10


def test_pool_goes_on_when_a_worker_process_dies():
    from curate.validate import pool_map

    with time_limit(120):
        results = list(pool_map(_dies_on_two, [0, 1, 2, 3, 4], 2, lambda job: f"crashed {job}"))
    assert results == [0, 10, "crashed 2", 30, 40]
