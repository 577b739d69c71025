"""Guided calibration shooting: dark frames (lens cap on) and flat pairs (a grey card) per ISO.

Darks are shot at each ISO at the short exposures the user shoots, then checked to be dark. Flats
come in pairs (their difference cancels vignetting and pixel non-uniformity) at several exposure
times per ISO, from about 2% to 70% of the white level: a test shot's measured level gives the
signal per second, and the times are the nearest the camera offers on its own shutter list. Every
file goes into captures.jsonl with role ``dark`` or ``flat``; `curate noise-profile` fits them.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

from curate.capturelog import CaptureRecord, append_record, read_log
from curate.common.errors import SidkitError
from curate.manifest import is_number
from curate.exposure import file_label, format_exposure, parse_ladder
from curate.rawmeta import sha256_file

from . import sensor
from .backend import Camera, choice_for_number
from .pair import PairRequest, Shot, settings_to_apply

DEFAULT_ISOS = (100, 400, 1600, 6400)
FLAT_RANGE = (0.02, 0.70)            # flat levels, fractions of (white - black)
TEST_WINDOW = (0.005, 0.8)           # a test shot inside this gives a usable signal per second
DARK_LIMIT = 0.005                   # a dark whose mean is this far above black is not dark
LENS_CAP_PROMPT = ("Put the lens cap on (and cover the eyepiece): dark frames come next. "
                   "Press Enter when ready")
GREY_CARD_PROMPT = ("Take the cap off and fill the frame with an evenly lit grey card or a diffuser, "
                    "focus off, light steady. Press Enter when ready")


@dataclass
class CalibrationRequest:
    """What `capture calibrate` was asked for."""
    isos: list[str] | None = None               # ISO labels as offered; None: the camera's own ISO
    darks: int = 10                             # per ISO, spread over dark_exposures
    flat_levels: int = 6
    dark_exposures: list[Fraction] = field(default_factory=lambda: [Fraction(1, 30)])
    fnumber: float | None = None
    notes: str = ""


@dataclass
class CalibrationResult:
    darks: list[Path] = field(default_factory=list)
    flats: list[Path] = field(default_factory=list)
    flat_times: dict = field(default_factory=dict)     # ISO label -> [(shutter label, expected level)]


def resolve_isos(camera: Camera, text: str | None) -> list[str] | None:
    """'100,400,1600,6400', 'all' or None -> the camera's ISO labels; None when it has no ISO setting."""
    setting = camera.read_setting("iso")
    if setting is None or not setting.choices:
        if text not in (None, "all"):
            raise SidkitError(f"{camera.identity}: has no ISO setting; leave out --isos "
                              "(frames are shot at its fixed ISO)")
        return None
    if text == "all":
        return [c for c in setting.choices if is_number(c)]
    items = [v.strip() for v in (text or ",".join(map(str, DEFAULT_ISOS))).split(",") if v.strip()]
    if not items or not all(is_number(v) and float(v) > 0 for v in items):
        raise SidkitError(f"--isos {text}: give ISO numbers separated by commas, e.g. --isos 100,400,1600,6400, "
                          "or --isos all")
    wanted = [float(v) for v in items]
    return [choice_for_number(setting.choices, v, "ISO") for v in wanted]


def log_short_exposures(dataset: Path) -> list[Fraction]:
    """The short exposures already in the dataset's capture log (the darks match them)."""
    seen = sorted({Fraction(r.requested_exposure_s).limit_denominator(100000)
                   for r in read_log(dataset) if r.role == "short"})
    return seen


def nearest_label(ladder: dict[str, Fraction], seconds: float) -> str:
    return min(ladder, key=lambda label: abs(math.log(float(ladder[label]) / seconds)))


def plan_darks(camera: Camera, request: CalibrationRequest, dataset: Path) -> list[tuple[str | None, Shot]]:
    """(ISO label, shot) for every dark frame, the exposures taken in turn."""
    ladder = parse_ladder(camera.read_settings().shutter.choices)
    if not ladder:
        raise SidkitError(f"{camera.identity}: reports no shutter speeds; set the mode dial to M (manual)")
    if request.darks < 1:
        raise SidkitError("--darks must be at least 1")
    labels = [nearest_label(ladder, float(t)) for t in request.dark_exposures]
    out = []
    for iso in request.isos or [None]:
        order = [Shot("dark", labels[i % len(labels)], ladder[labels[i % len(labels)]], False, "")
                 for i in range(request.darks)]
        out += [(iso, s) for s in name_shots(scene_for(iso), order, dataset)]
    return out


def name_shots(scene: str, order: list[Shot], dataset: Path) -> list[Shot]:
    """Stems '<scene>/<scene>_dark_1-30s_00', numbered after what the log and the folder hold."""
    taken = {Path(r.path).with_suffix("").as_posix() for r in read_log(dataset)}
    folder = Path(dataset) / scene
    if folder.is_dir():
        taken |= {f"{scene}/{p.name.split('.', 1)[0]}" for p in folder.iterdir()}
    out, index = [], 0
    for shot in order:
        while (stem := f"{scene}/{scene}_{shot.role}_{file_label(shot.seconds)}_{index:02d}") in taken:
            index += 1
        taken.add(stem)
        out.append(replace(shot, stem=stem))
    return out


def scene_for(iso: str | None) -> str:
    return f"calibration-iso{iso}" if iso is not None else "calibration"


def flat_times(ladder: dict[str, Fraction], level_per_s: float, levels: int,
               low: float = FLAT_RANGE[0], high: float = FLAT_RANGE[1]) -> list[tuple[str, float]]:
    """Shutter labels for ``levels`` flat levels spaced evenly in log from ``low`` to ``high`` of white,
    with the level each is expected to reach; labels the camera lacks are replaced by its nearest."""
    if levels < 2:
        raise SidkitError("--flat-levels must be at least 2: the gain is the slope through two or more levels")
    targets = np.geomspace(low, high, levels)
    chosen: dict[str, float] = {}
    for target in targets:
        label = nearest_label(ladder, target / level_per_s)
        chosen.setdefault(label, float(ladder[label]) * level_per_s)
    usable = {k: v for k, v in chosen.items() if low / 2 <= v <= 0.8}
    if len(usable) < 2:
        raise SidkitError(f"the shutter list reaches {len(usable)} flat level(s) between {low:.0%} and {high:.0%} "
                          "of white at this light; make the card brighter or dimmer and run again")
    return sorted(usable.items(), key=lambda kv: kv[1])


def measure_level(path: Path) -> float:
    """Mean of the brightest CFA channel above black, as a fraction of (white - black).

    Files rawpy cannot read as a mosaic (a camera sending JPEGs) are measured from their 8-bit
    pixels, undoing a 2.2 gamma: a rough level, enough to plan exposure times.
    """
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            mosaic = raw.raw_image_visible.astype(np.float64)
            colours = raw.raw_colors_visible
            black = np.asarray(raw.black_level_per_channel, float)
            white = float(raw.white_level)
            means = [(mosaic[colours == c].mean() - black[c]) / (white - black[c]) for c in np.unique(colours)]
            return float(max(means))
    except (rawpy.LibRawError, OSError, ValueError):
        pass
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise SidkitError(f"{path}: neither a raw nor an image ({exc}); check the camera's image format") from None
    return float((rgb ** 2.2).mean(axis=(0, 1)).max())


def run_calibration(camera: Camera, request: CalibrationRequest, dataset: Path, *, confirm, show,
                    backend: str | None = None) -> CalibrationResult:
    """Darks (after ``confirm(LENS_CAP_PROMPT)``, each checked dark), then flat pairs per ISO
    (after ``confirm(GREY_CARD_PROMPT)``), every file logged. ``show(text)`` reports progress."""
    dataset = Path(dataset)
    result = CalibrationResult()
    settings, notes = settings_to_apply(camera.read_settings(), PairRequest(
        scene="calibration", environment="indoor", iso=None, fnumber=request.fnumber))
    settings.pop("iso", None)
    for name, value in settings.items():
        camera.set_and_verify(name, value)
    for note in notes:
        show(note)
    darks = plan_darks(camera, request, dataset)
    confirm(LENS_CAP_PROMPT)
    camera.aim(sensor.LENS_CAP)
    current_iso = None
    for iso, shot in darks:
        if iso is not None and iso != current_iso:
            camera.set_and_verify("iso", iso)
            current_iso = iso
        path = shoot_logged(camera, shot, iso, dataset, request, backend, {"calibration": "dark"})
        level = measure_level(path)
        if level > DARK_LIMIT:
            raise SidkitError(f"{path}: not dark ({level:.1%} of white above black); put the lens cap on, cover "
                              "the eyepiece, darken the room and run again (this frame stays in the log: "
                              "delete the calibration folder first)")
        result.darks.append(path)
        show(f"dark ISO {iso or 'fixed'} {shot.label}: {path.name}")
    confirm(GREY_CARD_PROMPT)
    camera.aim(sensor.GREY_CARD)
    ladder = parse_ladder(camera.read_settings().shutter.choices)
    for iso in request.isos or [None]:
        if iso is not None:
            camera.set_and_verify("iso", iso)
        per_s = level_per_second(camera, ladder, show)
        times = flat_times(ladder, per_s, request.flat_levels)
        result.flat_times[iso] = times
        order = [Shot("flat", label, ladder[label], False, "") for label, _ in times for _ in range(2)]
        for shot in name_shots(scene_for(iso), order, dataset):
            path = shoot_logged(camera, shot, iso, dataset, request, backend, {"calibration": "flat"})
            result.flats.append(path)
        show(f"flats ISO {iso or 'fixed'}: " + ", ".join(f"{label} (~{level:.0%})" for label, level in times))
    return result


def level_per_second(camera: Camera, ladder: dict[str, Fraction], show, tries: int = 6) -> float:
    """Test shots (kept out of the dataset) until one lands inside TEST_WINDOW; its level per second."""
    label = nearest_label(ladder, 1 / 30)
    folder = Path(tempfile.mkdtemp(prefix="sidkit-test-shot-"))
    try:
        for attempt in range(tries):
            camera.set_and_verify("shutter", label)
            files = camera.shoot(folder, f"test{attempt}")
            level = measure_level(files[0])
            seconds = float(ladder[label])
            show(f"test shot {label}: {level:.1%} of white")
            if TEST_WINDOW[0] <= level <= TEST_WINDOW[1]:
                return level / seconds
            aim = 0.3 / max(level, 1e-4) * seconds if level < TEST_WINDOW[0] else seconds / 8
            new = nearest_label(ladder, aim)
            if new == label:
                break
            label = new
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raise SidkitError(f"{camera.identity}: no test shot between {TEST_WINDOW[0]:.1%} and {TEST_WINDOW[1]:.0%} of "
                      "white on the shutter list; make the grey card brighter or dimmer and run again")


def shoot_logged(camera: Camera, shot: Shot, iso: str | None, dataset: Path, request: CalibrationRequest,
                 backend: str | None, extra: dict) -> Path:
    """One timed shot, logged; the raw file's path (the first file of a RAW+JPEG shot)."""
    reported = camera.set_and_verify("shutter", shot.label)
    folder, stem = dataset / Path(shot.stem).parent, Path(shot.stem).name
    files = camera.shoot(folder, stem)
    settings = camera.read_settings()
    fnumber = settings.fnumber.current if settings.fnumber else None
    for f in files:
        append_record(dataset, CaptureRecord(
            scene_id=Path(shot.stem).parent.name, role=shot.role, path=f.relative_to(dataset).as_posix(),
            requested_exposure_s=float(shot.seconds), camera_exposure=reported,
            iso=float(iso) if iso is not None else None, fnumber=_fnumber(fnumber), environment="unknown",
            camera=camera.identity, captured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            backend=backend or camera.backend, notes=request.notes, sha256=sha256_file(f), extra=extra))
    return files[0]


def _fnumber(value) -> float | None:
    try:
        return float(str(value).lower().lstrip("f/"))
    except (TypeError, ValueError):
        return None


def plan_lines(camera: Camera, request: CalibrationRequest, dataset: Path) -> list[str]:
    """What a dry run prints: the darks, and how the flats will be chosen."""
    darks = plan_darks(camera, request, dataset)
    lines = [f"{camera.identity}: {len(darks)} dark frames, then {request.flat_levels} flat levels x 2 per ISO"]
    for iso in request.isos or [None]:
        mine = [s for i, s in darks if i == iso]
        exposures = [label for _, label in sorted({(s.seconds, s.label) for s in mine})]
        lines.append(f"ISO {iso or '(fixed)'}: {len(mine)} darks at {', '.join(exposures)} "
                     f"({mine[0].stem} ...); flats: {request.flat_levels} pairs from "
                     f"{FLAT_RANGE[0]:.0%} to {FLAT_RANGE[1]:.0%} of white, times from a test shot")
    return lines


def exposures_text(values: list[Fraction]) -> str:
    return ", ".join(format_exposure(v) for v in values)
