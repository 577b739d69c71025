"""Helpers the test modules share: tiny datasets and run configs, manifest rows, a hang guard.
Test modules import them from here (never from each other); fixtures stay in conftest.py."""
from __future__ import annotations

import csv
import signal
from contextlib import contextmanager
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd

from capture.dng import write_dng
from curate.manifest import write_manifest
from curate.rawmeta import sha256_file
from train.config import RunConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_SAMPLE_DIRS = (REPO_ROOT.parent / "shared" / "raw-samples", Path("/work/shared/raw-samples"))
TINY = {"widths": [8, 16], "encoder_convs": [1], "decoder_convs": [1], "bottleneck_convs": 1}
WHITE, BLACK = 16383, 512


@contextmanager
def time_limit(seconds: int):
    """A hang becomes a test failure (SIGALRM), not a stuck suite. Generous on purpose: it catches
    hangs, never slowness (no test asserts elapsed time; speed is for bench/)."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def make_dataset(folder: Path, splits=("train", "train", "val", "test"), size: int = 64, cfa: str = "RGGB",
                 ratio: int = 100) -> Path:
    """Tiny DNG pairs (a smooth scene, long = 10 s, short = 10 s / ratio with read noise) + manifest."""
    rng = np.random.default_rng(7)
    rows = []
    yy, xx = np.mgrid[0:size, 0:size] / size
    for index, split in enumerate(splits):
        scene = 0.15 + 0.3 * (np.sin(6 * xx + index) * np.cos(4 * yy - index) + 1) / 2
        long = (BLACK + scene * (WHITE - BLACK)).astype(np.uint16)
        short = np.clip(BLACK + scene * (WHITE - BLACK) / ratio + rng.normal(0, 3, scene.shape), 0, WHITE)
        common = dict(make="Sim", model="Tiny", serial="1", cfa=cfa, black_level=[BLACK] * 4,
                      white_level=WHITE, iso=100, fnumber=4, captured_at=datetime(2026, 1, 1))
        scene_id = f"s{index}"
        long_path = write_dng(folder / f"{scene_id}_long.dng", long, exposure_s=Fraction(10), **common)
        short_path = write_dng(folder / f"{scene_id}_short.dng", short.astype(np.uint16),
                               exposure_s=Fraction(10, ratio), **common)
        rows.append({"pair_id": f"{scene_id}-0", "scene_id": scene_id, "split": split,
                     "environment": "indoor" if index % 2 else "outdoor",
                     "short_path": short_path.name, "long_path": long_path.name,
                     "short_exposure_s": 10 / ratio, "long_exposure_s": 10.0, "ratio": float(ratio),
                     "short_iso": 100.0, "long_iso": 100.0, "short_fnumber": 4.0, "long_fnumber": 4.0,
                     "camera": "Sim Tiny", "cfa": cfa, "black_level": " ".join([str(BLACK)] * 4),
                     "white_level": WHITE, "width": size, "height": size,
                     "short_sha256": sha256_file(short_path), "long_sha256": sha256_file(long_path)})
    return write_manifest(pd.DataFrame(rows), folder / "tiny.csv")


def tiny_config(manifest: Path, out: Path, **overrides) -> RunConfig:
    settings = dict(manifest=str(manifest), out=str(out), epochs=3, patch=16, lr=1e-2, lr_steps=[],
                    spec=TINY, eval_every=1, save_every=1, device="cpu", seed=3)
    return load_config(None, **{**settings, **overrides})


def metrics(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def make_rows(n_scenes=4, shorts=2, envs=("indoor", "outdoor")):
    rows = []
    for s in range(n_scenes):
        for k in range(shorts):
            rows.append({
                "pair_id": f"s{s:02d}_{k}", "scene_id": f"s{s:02d}", "split": "train",
                "environment": envs[s % len(envs)], "short_path": f"s{s:02d}/short_{k}.dng",
                "long_path": f"s{s:02d}/long.dng", "short_exposure_s": 0.04, "long_exposure_s": 10.0,
                "ratio": 250.0, "short_iso": 100.0, "long_iso": 100.0, "short_fnumber": 8.0,
                "long_fnumber": 8.0, "camera": "Sim DSLR", "cfa": "RGGB", "black_level": "2048 2048 2048 2048",
                "white_level": 15000, "width": 128, "height": 96, "short_sha256": f"{s}{k}a",
                "long_sha256": f"{s}b"})
    return pd.DataFrame(rows)


# A run config as a torchrun test writes it: the tiny network on the CPU.
CONFIG = """
patch = 16
lr_steps = []
eval_every = 1
device = "cpu"
spec = { widths = [8, 16], encoder_convs = [1], decoder_convs = [1], bottleneck_convs = 1 }
"""


def torchrun_data(folder: Path, training_scenes: int) -> tuple[Path, Path]:
    """(manifest, run config) for a torchrun test: tiny scenes (all train, one val) and CONFIG."""
    manifest = make_dataset(folder, splits=("train",) * training_scenes + ("val",))
    config = folder / "run.toml"
    config.write_text(CONFIG)
    return manifest, config


def rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader((run / "metrics.csv").open())]


def set_cell(path, column, value, row=0):
    """Rewrite one cell of a written manifest (text level, so any string can be planted)."""
    lines = path.read_text().split("\n")
    header = lines[1].split(",")
    cells = lines[2 + row].split(",")
    cells[header.index(column)] = value
    lines[2 + row] = ",".join(cells)
    path.write_text("\n".join(lines))


# --- card dumps: camera-named DNGs shot at chosen times -------------------------------------------
T0 = datetime(2026, 3, 1, 20, 0, 0)
BODIES = {"A": ("Canon", "Canon EOS R6", "0123"), "B": ("SONY", "ILCE-7M3", "4567"), "N": ("NIKON", "Z 6", "")}


def shoot(folder: Path, name: str, seconds: float, exposure: str, iso: int = 800, fnumber: float = 8,
          body: str = "A") -> Path:
    """One DNG named as a camera names it, shot ``seconds`` after T0."""
    make, model, serial = BODIES[body]
    mosaic = np.full((24, 32), 600, np.uint16)
    mosaic[::2, ::2] = 900
    return write_dng(folder / name, mosaic, make=make, model=model, serial=serial, cfa="RGGB",
                     black_level=[512] * 4, white_level=16383, exposure_s=Fraction(exposure), iso=iso,
                     fnumber=fnumber, captured_at=T0 + timedelta(seconds=seconds))


def codes_of(findings) -> list[tuple[str, str]]:
    return sorted((f.code, Path(f.path).name) for f in findings)
