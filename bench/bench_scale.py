"""Real sensor sizes: every stage of the job on simulated raws of a Canon 90D (6960x4640, 32.5 MP) and
SID's Sony (4256x2848, 12 MP), against a 512x384 baseline measured in the same run.

    .venv/bin/python bench/bench_scale.py                                  # about 10 minutes on 2 cores
    .venv/bin/python bench/bench_scale.py --sizes 512x384,1024x768         # a quick look

Each stage is the command a user runs, in its own process (the tree's memory sampled from /proc every
20 ms: pool workers count): capture simulate, curate scan, curate validate (1 and 2 workers), train run
with a cold cache minus the same run warm (the cache fill), 6 training steps at patch 512, train eval
(full frames), train predict, curate report. Printed per stage and size: seconds per item, peak RSS of
the process tree, and time per pixel against the baseline (1.0 = linear in pixels). Budgets: peak
RSS under 3 GB at 32.5 MP, time per pixel no worse than linear (at most about 1.0).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curate.manifest import read_manifest, write_manifest

REPO = Path(__file__).resolve().parents[1]
SCENES = 3              # two train, one test
RSS_BUDGET_GB = 3.0


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and every descendant (0 for a process that is gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as status:
                total += next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as children:
                    todo += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total


def measured(args: list[str], env: dict, ok: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """(seconds, peak RSS of the process tree) of one command; an exit status outside ``ok`` stops the bench."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    err = proc.stderr.read()
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, peak


def stages(work: Path, size: str, env: dict) -> list[tuple[str, int, float, int]]:
    """(stage, items, seconds, peak bytes) of every stage at ``size``."""
    py = [sys.executable, "-m"]
    data, manifest = work / "data", work / "m.csv"
    out = []

    def run(name: str, items: int, *args: str, ok: tuple[int, ...] = (0,)) -> None:
        seconds, peak = measured([*py, *args], env, ok)
        out.append((name, items, seconds, peak))

    run("simulate", 2 * SCENES, "capture", "simulate", str(data), "--scenes", str(SCENES), "--profiles",
        "sim-dslr14", "--shorts", "1", "--size", size, "--no-defects")
    run("scan", 2 * SCENES, "curate", "scan", str(data), "-o", str(manifest))
    df = read_manifest(manifest).rows
    last = sorted(df["scene_id"].unique())[-1]
    df["split"] = ["test" if s == last else "train" for s in df["scene_id"]]
    write_manifest(df, manifest)
    findings = (0, 1)                                       # validate exits 1 on findings, which is fine here
    run("validate 1 worker", SCENES, "curate", "validate", str(manifest), "--workers", "1", ok=findings)
    run("validate 2 workers", SCENES, "curate", "validate", str(manifest), "--workers", "2", ok=findings)
    steps = ["--epochs", "3", "--patch", "512", "--eval-every", "100", "--device", "cpu"]
    cold_s, cold_peak = measured([*py, "train", "run", str(manifest), "--out", str(work / "cold"), *steps], env)
    run("train: 6 steps, patch 512", 6, "train", "run", str(manifest), "--out", str(work / "warm"), *steps)
    out.append(("cache fill (cold - warm run)", 2 * SCENES, max(cold_s - out[-1][2], 0.0), cold_peak))
    run("eval (full frames)", 1, "train", "eval", str(work / "warm" / "checkpoints" / "last.pt"), str(manifest),
        "--split", "test", "--no-images", "--format", "json")
    short = manifest.parent / df.loc[df["split"] == "test", "short_path"].iloc[0]
    run("predict", 1, "train", "predict", str(work / "warm" / "checkpoints" / "last.pt"), str(short), "--ratio", "250",
        "-o", str(work / "p.png"))
    run("report (thumbnails)", SCENES, "curate", "report", str(manifest), "-o", str(work / "r.html"), "--no-cache")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512x384,4256x2848,6960x4640", help="WIDTHxHEIGHT,...; the first is the baseline")
    args = parser.parse_args()
    sizes = args.sizes.split(",")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            work = Path(tmp) / size
            work.mkdir()
            env = {**os.environ, "SIDKIT_CACHE": str(work / "cache"), "PYTHONPATH": str(REPO)}
            results[size] = stages(work, size, env)
            print(f"{size}: done", file=sys.stderr, flush=True)
    base = sizes[0]
    pixels = {s: int(s.split("x")[0]) * int(s.split("x")[1]) for s in sizes}
    print(f"{'stage':30} {'size':>10} {'s/item':>9} {'peak RSS':>9} {'time/pixel vs ' + base:>22}")
    over = []
    for size in sizes:
        for (name, items, seconds, peak), (_, _, base_s, _) in zip(results[size], results[base]):
            per_pixel = f"{(seconds / pixels[size]) / (base_s / pixels[base]):22.2f}" if base_s > 0.05 else f"{'-':>22}"
            print(f"{name:30} {size:>10} {seconds / items:9.2f} {peak / 2**30:8.2f}G {per_pixel}")
            if size != base and peak / 2**30 > RSS_BUDGET_GB:
                over.append(f"{name} at {size}: {peak / 2**30:.2f} GB")
    print("RSS budget (3 GB): " + ("kept at every stage" if not over else "over: " + "; ".join(over)))


if __name__ == "__main__":
    main()
