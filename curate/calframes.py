"""Calibration frames from disk: `capture calibrate`'s dark and flat raws (or dark/ and flat/ folders),
with their settings and levels, and their mosaics from where packing starts (curate.cfa.raw_origin)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cfa import raw_origin
from .common.errors import SidkitError
from .findings import Finding


@dataclass
class CalFrame:
    """One calibration raw: its settings and levels, and the mosaic (an array or a loader)."""
    path: str
    role: str                          # dark | flat
    iso: float
    exposure_s: float
    camera: str
    cfa: str
    black_level: list[float]           # declared, per 2x2 position, row-major
    white_level: float
    mosaic: np.ndarray | Callable[[], np.ndarray] = field(repr=False, default=None)

    def pixels(self) -> np.ndarray:
        m = self.mosaic() if callable(self.mosaic) else self.mosaic
        return np.asarray(m, dtype=np.float64)


def calibration_files(cal: Path) -> list[tuple[Path, str]]:
    """(path, role) of every dark and flat: the capture log's roles, else dark/ and flat/ folders."""
    from .capturelog import read_log

    cal = Path(cal)
    if not cal.is_dir():
        raise SidkitError(f"{cal}: no such folder; give the folder `capture calibrate --dataset` wrote")
    from .scan import is_raw_name

    records = [r for r in read_log(cal) if r.role in ("dark", "flat")]
    if records:
        return [(cal / r.path, r.role) for r in records if is_raw_name(Path(r.path))]
    out = []
    for role in ("dark", "flat"):
        folder = cal / role
        if folder.is_dir():
            out += [(p, role) for p in sorted(folder.rglob("*")) if p.is_file() and is_raw_name(p)]
    if not out:
        raise SidkitError(f"{cal}: no calibration frames (no dark/flat roles in captures.jsonl, no dark/ or "
                          "flat/ folder); shoot them with `capture calibrate --dataset "
                          f"{cal}` or put raws in {cal}/dark and {cal}/flat")
    return out


def load_frames(cal: Path) -> tuple[list[CalFrame], list[Finding]]:
    """CalFrames (ISO and exposure from EXIF, levels and CFA from the raw) and findings for bad files."""
    from .rawmeta import UnreadableRaw, read_metadata

    frames, findings = [], []
    for path, role in calibration_files(cal):
        try:
            meta = read_metadata(path)
        except (UnreadableRaw, SidkitError, OSError) as exc:
            findings.append(Finding("", str(path), "unreadable", f"{exc}; remove it or copy it again"))
            continue
        if not meta.cfa or meta.black_level is None or meta.white_level is None or meta.iso is None:
            findings.append(Finding("", str(path), "unreadable", "no CFA, levels or ISO in the file; calibration "
                                    "needs the camera's raw files"))
            continue
        camera = f"{meta.camera} {meta.serial}".strip()
        frames.append(CalFrame(str(path), role, float(meta.iso), float(meta.exposure_s or 0), camera, meta.cfa,
                               [float(v) for v in meta.black_level], float(meta.white_level),
                               mosaic=lambda p=path: read_mosaic(p)))
    return frames, findings


def read_mosaic(path: Path) -> np.ndarray:
    """The raw's visible mosaic from where train's packing starts (X-Trans: the layout's phase)."""
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            mosaic, (oy, ox) = raw.raw_image_visible.copy(), raw_origin(raw, path)
    except (rawpy.LibRawError, OSError) as exc:
        raise SidkitError(f"{path}: rawpy cannot read its pixels ({exc}); remove it or copy it again") from None
    return mosaic[oy:, ox:]

