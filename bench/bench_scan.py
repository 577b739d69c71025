"""Metadata throughput: curate.rawmeta.read_metadata + sha256 against `exiftool -csv` over the same files.

    python bench/bench_scan.py [FOLDER ...] [--dngs 200] [--size 512x768]

Default files: the raw samples (../shared/raw-samples) plus DNGs written by capture.dng in a temp
folder (the samples repeated when capture.dng is missing). Both readers run in this one process's
run, one after the other, on a warm page cache; the ratio is ours / exiftool's files per second.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

from curate.rawmeta import UnreadableRaw, read_metadata, sha256_file

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "raw-samples"


def generated_dngs(folder: Path, count: int, width: int, height: int) -> list[Path]:
    """``count`` DNGs of noisy mosaics; [] when capture.dng is not there."""
    try:
        from capture.dng import write_dng
    except ImportError:
        return []
    rng = np.random.default_rng(0)
    mosaic = rng.integers(512, 16000, (height, width)).astype(np.uint16)
    paths = []
    for i in range(count):
        paths.append(write_dng(folder / f"bench_{i:04d}.dng", mosaic, make="Sidkit", model="BENCH-1",
                               serial=str(i), cfa="RGGB", black_level=[512, 512, 512, 512],
                               white_level=16383, exposure_s=Fraction(1, 10 * (1 + i % 25)), iso=100,
                               fnumber=Fraction(28, 10),
                               captured_at=datetime(2025, 1, 1, 12, 0, i % 60, tzinfo=timezone.utc)))
    return paths


def ours(files: list[Path]) -> tuple[float, float, int]:
    """Seconds for read_metadata over every file, for sha256_file over every file, and the readable count."""
    readable = 0
    started = time.perf_counter()
    for path in files:
        try:
            read_metadata(path)
            readable += 1
        except UnreadableRaw:
            pass
    metadata_s = time.perf_counter() - started
    started = time.perf_counter()
    for path in files:
        sha256_file(path)
    return metadata_s, time.perf_counter() - started, readable


def exiftool(files: list[Path], exe: str) -> float:
    """Seconds for one `exiftool -csv -ExposureTime -ISO -FNumber` run over every file."""
    started = time.perf_counter()
    subprocess.run([exe, "-csv", "-ExposureTime", "-ISO", "-FNumber", *map(str, files)],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--dngs", type=int, default=200, help="generated DNGs (default 200)")
    parser.add_argument("--size", default="512x768", help="generated DNG size, HxW (default 512x768)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.folders:
            files = sorted(p for folder in args.folders for p in folder.iterdir() if p.is_file() and p.suffix != ".md")
        else:
            samples = sorted(p for p in SAMPLES.glob("*") if p.suffix != ".md") if SAMPLES.is_dir() else []
            height, width = (int(v) for v in args.size.lower().split("x"))
            generated = generated_dngs(Path(tmp), args.dngs, width, height)
            files = samples + generated if generated else samples * max(1, args.dngs // max(1, len(samples)))
        if not files:
            print("no files to scan: give a folder, or put the raw samples in ../shared/raw-samples")
            return 0
        megabytes = sum(p.stat().st_size for p in files) / 2**20
        exe = shutil.which("exiftool")
        for path in files:                 # warm the page cache so that neither reader pays for the disk
            sha256_file(path)
        metadata_s, hash_s, readable = ours(files)
        rate = len(files) / metadata_s
        both = len(files) / (metadata_s + hash_s)
        print(f"{len(files)} files, {megabytes:.1f} MiB ({readable} readable raws)")
        print(f"sidkit read_metadata:         {rate:8.1f} files/s ({metadata_s:.2f} s)")
        print(f"sidkit read_metadata+sha256:  {both:8.1f} files/s ({metadata_s + hash_s:.2f} s)")
        if exe is None:
            print("exiftool not found: install it (Debian: apt-get install libimage-exiftool-perl) "
                  "for the baseline; no ratio printed")
            return 0
        tool_s = exiftool(files, exe)
        print(f"exiftool -csv (one process):  {len(files) / tool_s:8.1f} files/s ({tool_s:.2f} s)")
        print(f"ratio read_metadata / exiftool:        {tool_s / metadata_s:6.2f}x")
        print(f"ratio read_metadata+sha256 / exiftool: {tool_s / (metadata_s + hash_s):6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
