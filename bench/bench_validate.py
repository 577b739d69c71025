"""Pixel checks of `curate validate` on simulated pairs: one process against a spawn pool.

    .venv/bin/python bench/bench_validate.py [--pairs 12] [--size 2048x1536] [--workers 2]

Prints seconds per pair in one process (the baseline, with its CPU time and the load average: on a
busy machine the wall times say little), then with the pool (counting its start-up, as a user
waits for it, and warm), and the speed-ups against the baseline.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# Before numpy loads: OpenBLAS threads spin through the checks' tiny matrix products (skimage's
# sub-pixel DFT) and, one set per worker, fight over the cores; the spawned workers inherit this.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from capture.sensor import get_profile  # noqa: E402
from capture.simulate import simulate_dataset  # noqa: E402
from curate.capturelog import read_log  # noqa: E402
from curate.pixelchecks import check_pair_pixels  # noqa: E402


def pair_jobs(dataset: Path) -> list[tuple]:
    """(short, long, keyword arguments) for every short of a simulated dataset."""
    records = read_log(dataset)
    longs = {r.scene_id: r for r in records if r.role == "long"}
    jobs = []
    for short in (r for r in records if r.role == "short"):
        long, profile = longs[short.scene_id], get_profile(short.extra["profile"])
        jobs.append((str(dataset / short.path), str(dataset / long.path), dict(
            exif_ratio=long.requested_exposure_s / short.requested_exposure_s, iso_short=short.iso,
            iso_long=long.iso, fnumber_short=short.fnumber, fnumber_long=long.fnumber,
            black_level=list(profile.black_level), white_level=profile.white_level, cfa=profile.cfa,
            pair_id=short.path)))
    return jobs


def check(job) -> int:
    short, long, kwargs = job
    return len(check_pair_pixels(short, long, **kwargs)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--size", default="2048x1536", help="WIDTHxHEIGHT of the simulated raws")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        # Two scenes (one per default profile) keep the simulation short; the checks see every pair.
        dataset = simulate_dataset(Path(tmp) / "ds", scenes=2, shorts_per_scene=max(1, args.pairs // 2),
                                   size=(width, height), defects=False)
        jobs = pair_jobs(dataset)
        print(f"{len(jobs)} pairs of {width}x{height} DNGs simulated in {time.perf_counter() - start:.1f} s; "
              f"{os.cpu_count()} CPUs")

        start, cpu = time.perf_counter(), time.process_time()
        serial = [check(job) for job in jobs]
        one, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"1 process:            {one:7.2f} s  {one / len(jobs) * 1000:7.1f} ms/pair  (baseline; "
              f"CPU {cpu / len(jobs) * 1000:.1f} ms/pair, load average {os.getloadavg()[0]:.1f})")

        context = multiprocessing.get_context("spawn")
        start = time.perf_counter()
        with ProcessPoolExecutor(args.workers, mp_context=context) as pool:
            pooled = list(pool.map(check, jobs))
            cold = time.perf_counter() - start
            start = time.perf_counter()
            list(pool.map(check, jobs))
            warm = time.perf_counter() - start
        assert pooled == serial, "the pool found other findings than one process"
        for state, seconds in (("cold", cold), ("warm", warm)):
            print(f"{args.workers} processes, {state}: {seconds:7.2f} s  "
                  f"{seconds / len(jobs) * 1000:7.1f} ms/pair  speed-up {one / seconds:.2f}x")


if __name__ == "__main__":
    main()
