"""Plan and shoot one short/long pair: the exposure pair from the camera's own list, settings set and
read back before the first shot, the long reference then N shorts (and optionally the long again),
every file downloaded under a human name, one capture-log record per shot, a summary.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from curate.capturelog import CaptureRecord, append_record, read_log
from curate.common.errors import SidkitError
from curate.exposure import ExposurePair, choose_pair, file_label, format_exposure, parse_ladder
from curate.rawmeta import sha256_file

from .backend import Camera, CameraSettings, bulb_label, choice_for_number, format_choice
from .tables import titled_table

BULB_ABOVE_S = 30                        # longer exposures use bulb where the camera offers it
SCENE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")   # whole name: fullmatch ('$' lets "a\n" through)
SCENE_NAME_MAX = 100     # characters: it starts every file name of the scene (<scene>_short_1-8000s_00.jpeg), and
                         # a file name holds 255 bytes; a longer one failed at the first shot, leaving its folder
ENVIRONMENTS = ("indoor", "outdoor")
TARGETS = {"ram": re.compile(r"ram|internal", re.IGNORECASE), "card": re.compile(r"card|sd|cf", re.IGNORECASE)}


@dataclass
class PairRequest:
    """What the user asked for (the options of `capture pair`)."""
    scene: str
    environment: str
    ratio: float = 250
    long: Fraction | None = None
    short: Fraction | None = None
    shorts: int = 3
    iso: float | None = None
    fnumber: float | None = None
    image_format: str = "raw"            # raw | raw+jpeg
    capture_target: str = "ram"          # ram | card
    repeat_long: bool = False
    allow_any_ratio: bool = False
    notes: str = ""


@dataclass
class Shot:
    role: str                            # long | short
    label: str                           # shutter label as the camera writes it ('bulb' for bulb)
    seconds: Fraction
    bulb: bool
    stem: str                            # '<scene>/<scene>_short_1-25s_00', relative to the dataset
    notes: str = ""                      # this shot's own note, logged after the request's notes


@dataclass
class PairPlan:
    request: PairRequest
    camera: str
    pair: ExposurePair
    settings: dict[str, str]             # setting -> label to set before the first shot
    shots: list[Shot]
    notes: list[str] = field(default_factory=list)


@dataclass
class ShotResult:
    shot: Shot
    files: list[Path]
    seconds: float                       # how long the shot took, download included
    captured_at: str                     # ISO 8601, by the camera's clock (`Camera.now`)
    details: dict = field(default_factory=dict)     # the backend's `shot_details()`


@dataclass
class PairResult:
    plan: PairPlan
    shots: list[ShotResult]
    seconds: float
    checks: list[dict] | None = None     # the quick check's entries (capture.session.quick_check), once run


def check_scene_name(scene: str) -> str:
    """``scene`` if it can name the scene's folder and start its file names, else SidkitError."""
    if not isinstance(scene, str) or not SCENE_NAME.fullmatch(scene):
        raise SidkitError(f"scene name {scene!r}: use letters, digits and '-' only (no '_', which "
                          "separates the scene from the rest of a file name), e.g. desk-lamp-01")
    if len(scene) > SCENE_NAME_MAX:
        raise SidkitError(f"scene name {scene[:20]}... is {len(scene)} characters: at most {SCENE_NAME_MAX}, since "
                          "it starts every file name of the scene and a file name holds 255; shorten it")
    return scene


def plan_pair(camera: Camera, request: PairRequest, dataset: Path) -> PairPlan:
    """Choose the pair from the camera's list, the settings to apply, and every file name."""
    check_scene_name(request.scene)
    if request.environment not in ENVIRONMENTS:
        raise SidkitError(f"environment {request.environment!r} is not indoor or outdoor")
    if request.shorts < 1:
        raise SidkitError("--shorts must be at least 1")
    if request.long is not None and request.short is not None:
        raise SidkitError("give --long or --short, not both: the other one follows from --ratio")
    current = camera.read_settings()
    labels = current.shutter.choices
    if not labels:
        raise SidkitError(f"{camera.identity}: reports no shutter speeds; set the mode dial to M (manual)")
    pair = choose_pair(labels, request.ratio, long=on_ladder(labels, request.long),
                       short=on_ladder(labels, request.short), bulb=current.bulb,
                       allow_any_ratio=request.allow_any_ratio)
    if pair.long_s > BULB_ABOVE_S and current.bulb and not pair.bulb_long:
        pair = replace(pair, long_label="bulb", bulb_long=True)
    settings, notes = settings_to_apply(current, request)
    long_shot = Shot("long", bulb_label(labels) if pair.bulb_long else pair.long_label, pair.long_s,
                     pair.bulb_long, "")
    short_shot = Shot("short", pair.short_label, pair.short_s, False, "")
    order = [long_shot] + [short_shot] * request.shorts + ([long_shot] if request.repeat_long else [])
    shots = name_shots(request.scene, order, dataset)
    return PairPlan(request, camera.identity, pair, settings, shots, notes)


def on_ladder(labels: list[str], seconds: Fraction | None, tolerance: float = 0.05) -> Fraction | None:
    """The camera's own value for a requested exposure within 5% (Canon labels 10 s as '10.3')."""
    if seconds is None:
        return None
    ladder = parse_ladder(labels).values()
    near = [s for s in ladder if abs(float(s / seconds) - 1) <= tolerance]
    return min(near, key=lambda s: abs(float(s / seconds) - 1)) if near else seconds


def long_exposure(labels: list[str], requested: Fraction | None = None) -> Fraction:
    """The body's own value for a requested long exposure, or with none its timed speed nearest 10 s."""
    if requested is not None:
        return on_ladder(labels, requested)
    ladder = parse_ladder(labels).values()
    if not ladder:
        raise SidkitError("the camera reports no timed shutter speeds; set the mode dial to M (manual)")
    return min([s for s in ladder if s <= 30] or ladder, key=lambda s: abs(math.log(float(s) / 10)))


def settings_to_apply(current: CameraSettings, request: PairRequest) -> tuple[dict[str, str], list[str]]:
    """Labels for capture target, image format, ISO and aperture; notes for what the camera lacks."""
    settings, notes = {}, []
    if current.capture_target is not None:
        match = [c for c in current.capture_target.choices if TARGETS[request.capture_target].search(c)]
        if not match:
            other = next(t for t in TARGETS if t != request.capture_target)
            raise SidkitError(f"capture target {request.capture_target} is not offered (the camera has "
                              f"{', '.join(current.capture_target.choices)}); use --target {other}")
        settings["capture_target"] = match[0]
    else:
        notes.append("the camera has no capture target setting")
    if current.image_format is not None:
        settings["image_format"] = format_choice(current.image_format.choices, request.image_format)
    else:
        notes.append("the camera has no image format setting: files are kept as it sends them")
    for name, wanted, flag in (("iso", request.iso, "--iso"), ("fnumber", request.fnumber, "--fnumber")):
        setting = current.get(name)
        if wanted is not None:
            if setting is None:
                raise SidkitError(f"{current.camera}: has no {name} setting; leave out {flag}")
            settings[name] = choice_for_number(setting.choices, wanted, name) if setting.choices else f"{wanted:g}"
        elif setting is not None and (setting.current or "").lower().startswith("auto"):
            raise SidkitError(f"{current.camera}: {name} is on {setting.current}; give {flag} so that the "
                              "short and the long share one value")
    return settings, notes


def name_shots(scene: str, order: list[Shot], dataset: Path) -> list[Shot]:
    """Human file stems, numbered after what the log and the folder already hold (never overwrite)."""
    taken = {Path(r.path).with_suffix("").as_posix() for r in read_log(dataset)}
    folder = Path(dataset) / scene
    if folder.is_dir():
        taken |= {f"{scene}/{p.name.split('.', 1)[0]}" for p in folder.iterdir()}
    out, next_index = [], {"long": 0, "short": 0}
    for shot in order:
        while True:
            index = next_index[shot.role]
            next_index[shot.role] += 1
            stem = f"{scene}/{scene}_{shot.role}_{file_label(shot.seconds)}"
            if shot.role == "short" or index:
                stem += f"_{index:02d}"
            if stem not in taken:
                break
        taken.add(stem)
        out.append(replace(shot, stem=stem))
    return out


def shoot_pair(camera: Camera, plan: PairPlan, dataset: Path, backend: str | None = None,
               on_shot=None) -> PairResult:
    """Apply and verify the settings, shoot every planned shot, log each shot as it lands."""
    dataset = Path(dataset)
    request, started = plan.request, time.monotonic()
    applied = apply_settings(camera, plan)
    generation = camera.generation
    camera.aim(request.scene, request.environment)
    after = camera.read_settings()
    iso = _as_number(applied.get("iso") or (after.iso and after.iso.current))
    fnumber = _as_number(applied.get("fnumber") or (after.fnumber and after.fnumber.current))
    results = []
    for index, shot in enumerate(plan.shots):
        if camera.generation != generation:       # the camera was re-initialised: settings again
            apply_settings(camera, plan)
            generation = camera.generation
        reported = camera.set_and_verify("shutter", shot.label)
        t0, when = time.monotonic(), camera.now().isoformat(timespec="seconds")
        folder, stem = dataset / Path(shot.stem).parent, Path(shot.stem).name
        files = (camera.shoot_bulb(float(shot.seconds), folder, stem) if shot.bulb
                 else camera.shoot(folder, stem))
        result = ShotResult(shot, files, time.monotonic() - t0, when, camera.shot_details())
        for record in shot_records(plan, result, index, reported, iso, fnumber, dataset, backend or camera.backend):
            append_record(dataset, record)
        results.append(result)
        if on_shot:
            on_shot(result)
    return PairResult(plan, results, time.monotonic() - started)


def apply_settings(camera: Camera, plan: PairPlan) -> dict[str, str]:
    """Set and read back every planned setting; name -> the value the camera reports."""
    return {name: camera.set_and_verify(name, value) for name, value in plan.settings.items()}


def shot_records(plan: PairPlan, result: ShotResult, index: int, reported: str, iso, fnumber,
                 dataset: Path, backend: str) -> list[CaptureRecord]:
    """One log record per downloaded file (the raw and, for RAW+JPEG, the JPEG): the capture log
    of docs/capture.md. All files of one shot share ``extra.shot_index``; `curate scan` pairs the raw ones.
    """
    pair, request = plan.pair, plan.request
    notes = "; ".join(n for n in (request.notes, result.shot.notes) if n)
    details = {"long_label": pair.long_label, "short_label": pair.short_label,
               "nominal_ratio": round(pair.nominal_ratio, 4), "true_ratio": round(pair.true_ratio, 4),
               "requested_ratio": request.ratio, "allow_any_ratio": request.allow_any_ratio,
               "bulb": result.shot.bulb, "shot_index": index, "shot_seconds": round(result.seconds, 3),
               **result.details}
    return [CaptureRecord(
        scene_id=request.scene, role=result.shot.role, path=f.relative_to(dataset).as_posix(),
        requested_exposure_s=float(result.shot.seconds),
        camera_exposure=f"bulb {format_exposure(result.shot.seconds)}" if result.shot.bulb else reported,
        iso=iso, fnumber=fnumber, environment=request.environment, camera=plan.camera,
        captured_at=result.captured_at, backend=backend, notes=notes, sha256=sha256_file(f), extra=details)
        for f in result.files]


def _as_number(value) -> float | None:
    """A setting's label as a number for the log ('f/8' -> 8.0, '800' -> 800.0); None when not a number."""
    if value is None:
        return None
    try:
        return float(str(value).lower().lstrip("f/"))
    except ValueError:
        return None


# --- what the user sees ----------------------------------------------------------------------------
def pair_title(plan: PairPlan) -> str:
    """'kitchen (indoor) on Canon EOS R5 0123: 10.3 / 1/25 = 257.5x (true 256x)'."""
    pair = plan.pair
    return (f"{plan.request.scene} ({plan.request.environment}) on {plan.camera}: {pair.long_label} / "
            f"{pair.short_label} = {pair.nominal_ratio:g}x (true {pair.true_ratio:.4g}x)")


def plan_table(plan: PairPlan):
    """The plan as a rich Table (what --dry-run prints): every shot and its file stem."""
    table = titled_table(pair_title(plan), "#", "role", "shutter", "seconds", "file stem")
    for index, shot in enumerate(plan.shots):
        table.add_row(str(index), shot.role, _shutter_text(shot),
                      format_exposure(shot.seconds), shot.stem)
    return table


def settings_line(plan: PairPlan) -> str:
    parts = [f"{k.replace('_', ' ')}={v}" for k, v in plan.settings.items()]
    return "settings: " + (", ".join(parts) or "as the camera is") + "".join(f"; {n}" for n in plan.notes)


def summary_table(result: PairResult):
    """What was shot, each shot once: role, shutter, files and the seconds it took."""
    table = titled_table(f"{pair_title(result.plan)}, {result.seconds:.1f} s", "#", "role", "shutter", "files",
                         "seconds")
    for index, shot in enumerate(result.shots):
        table.add_row(str(index), shot.shot.role, _shutter_text(shot.shot), " ".join(p.name for p in shot.files),
                      f"{shot.seconds:.1f}")
    return table


def plan_dict(plan: PairPlan) -> dict:
    """The plan as plain data (`capture pair --dry-run --format json`)."""
    pair, request = plan.pair, plan.request
    return {"scene": request.scene, "environment": request.environment, "camera": plan.camera,
            "long_label": pair.long_label, "short_label": pair.short_label, "bulb_long": pair.bulb_long,
            "nominal_ratio": round(pair.nominal_ratio, 4), "true_ratio": round(pair.true_ratio, 4),
            "settings": dict(plan.settings), "notes": list(plan.notes),
            "shots": [{"role": s.role, "shutter": _shutter_text(s), "seconds": float(s.seconds), "bulb": s.bulb,
                       "stem": s.stem} for s in plan.shots]}


def result_dict(result: PairResult) -> dict:
    """What was shot as plain data (`capture pair --format json`): files relative to the dataset."""
    out = plan_dict(result.plan)
    out["shots"] = [{"role": s.shot.role, "shutter": _shutter_text(s.shot), "seconds": float(s.shot.seconds),
                     "bulb": s.shot.bulb, "files": [f"{Path(s.shot.stem).parent.as_posix()}/{f.name}" for f in s.files],
                     "captured_at": s.captured_at, "took_s": round(s.seconds, 3)} for s in result.shots]
    out["seconds"] = round(result.seconds, 3)
    out["checks"] = result.checks
    return out


def _shutter_text(shot: Shot) -> str:
    return f"bulb {format_exposure(shot.seconds)}" if shot.bulb else shot.label
