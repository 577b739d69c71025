"""A simulated dataset: scenes shot by the simulated camera through `capture pair`'s own plan and
shoot code, with a few deliberately bad pairs recorded in `planted_defects.json` so that checks can
be tested.

Every scene is one `plan_pair` + `shoot_pair` on a `SimCamera` (so the files, names, log records and
exposure semantics are those of `capture pair --camera sim`: the sensor sees the label's true
power-of-two time, EXIF and the log the nominal label; see capture/simcamera.py). Layout:
`<out>/captures.jsonl`, `<out>/<scene>/<scene>_long_10s.dng`, `<out>/<scene>/<scene>_short_1-25s_00.dng`;
`write_folder_layout` copies a simulated dataset into the log-free folder convention
(`indoor/short/sim01_00_0.04s.dng`, `indoor/long/...`).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable

from curate.common.atomic import atomic_write
from curate.capturelog import LOG_NAME, read_log
from curate.common.errors import SidkitError

from .pair import PairPlan, PairRequest, plan_pair, shoot_pair
from .sensor import get_profile, scene_rng
from .simcamera import SimCamera
from .tables import titled_table

DEFECTS_NAME = "planted_defects.json"
DEFECT_RATIO = 20            # the bad scene's ratio (ratio-out-of-range)
DEFECT_SHIFT = (5, 11)       # pixels (dy, dx), about 12 px (misaligned)
DEFECT_LIGHT = 0.4           # light level of one short (measured-ratio-mismatch)
SCENE_ISOS = (100, 200, 400)
START = datetime(2025, 11, 1, 20, 0, tzinfo=timezone.utc)


def simulate_dataset(out: str | os.PathLike, *, scenes: int = 8,
                     profiles: tuple[str, ...] = ("sim-dslr14", "sim-mirrorless12"),
                     shorts_per_scene: int = 2, long_s: float = 10, ratio: float = 250,
                     size: tuple[int, int] | None = None, defects: bool = True, seed: int = 0,
                     allow_any_ratio: bool = False, isos: tuple[int, ...] | None = None,
                     ratios: tuple[float, ...] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Shoot ``scenes`` simulated scenes into ``out`` and return it.

    The first half of the scenes are indoor, the rest outdoor; scene i uses profile i mod
    len(profiles), an ISO of 100-400 and a light level that puts the long exposure in the same
    range whatever the ISO. ``size`` is (width, height), even (multiples of 6 for an X-Trans profile such
    as 'sim-xtrans14'), overriding the profiles' sizes. With
    ``defects`` the last scene is shot at ratio 20, the second last has one short moved by ~12 px
    and the third last one short in light dimmed to 0.4; each is noted in the log and listed in
    `planted_defects.json` ([{scene_id, short_path, defect}], defect being the finding code).
    ``isos`` gives scene i the ISO isos[i mod len(isos)] (default: one of 100-400 drawn per scene);
    ``ratios`` draws each scene's ratio from its values (default: ``ratio`` for every scene).
    """
    out = Path(out)
    sensors = [get_profile(name) for name in profiles]
    if scenes < 1 or shorts_per_scene < 1 or not sensors:
        raise SidkitError(f"{out}: need at least one scene, one short per scene and one profile")
    if defects and scenes < 3:
        raise SidkitError(f"{out}: planting defects needs at least 3 scenes; "
                          "pass more scenes or plant none (--no-defects)")
    if size is not None and (size[0] % 2 or size[1] % 2 or min(size) < 16):
        raise SidkitError(f"{out}: size {size} must be even and at least 16x16 pixels")
    for body in sensors:
        t = body.tile
        if size is not None and (size[0] % t or size[1] % t):
            raise SidkitError(f"{out}: size {size[0]}x{size[1]} does not fit {body.name}'s {t}x{t} CFA tile; "
                              f"give multiples of {t}, e.g. {size[0] // t * t}x{size[1] // t * t}")
    for name in (LOG_NAME, DEFECTS_NAME, *(f"sim{i + 1:02d}" for i in range(scenes))):
        if (out / name).exists():
            raise SidkitError(f"{out / name} exists; simulate into a new folder or delete the old dataset")

    planted, total = [], scenes * (1 + shorts_per_scene)
    shots_done = iter(range(1, total + 1))

    def advance(_result) -> None:
        if progress:
            progress(next(shots_done), total)

    for index in range(scenes):
        scene_id = f"sim{index + 1:02d}"
        profile = sensors[index % len(sensors)]
        width, height = size or (profile.width, profile.height)
        rng = scene_rng(scene_id, seed)
        iso = (int(isos[index % len(isos)]) if isos else
               int(rng.choice([i for i in SCENE_ISOS if i in profile.isos] or [profile.base_iso])))
        fnumber = min(profile.fnumbers, key=lambda n: abs(n - 8))
        # Darker scenes for higher ISO and wider apertures: the long exposure lands in the same range.
        light = float(rng.uniform(0.85, 1.15)) * (fnumber / 8) ** 2 * profile.base_iso / iso
        camera = SimCamera(profile.name, width=width, height=height, seed=seed, light=light,
                           clock=START + timedelta(minutes=10 * index))
        bad_ratio = defects and index == scenes - 1
        scene_ratio = float(rng.choice(ratios)) if ratios else ratio
        request = PairRequest(scene=scene_id, environment="indoor" if index < (scenes + 1) // 2 else "outdoor",
                              ratio=DEFECT_RATIO if bad_ratio else scene_ratio, shorts=shorts_per_scene,
                              long=Fraction(long_s).limit_denominator(1000), iso=iso, fnumber=fnumber,
                              allow_any_ratio=bad_ratio or allow_any_ratio)
        plan = plan_pair(camera, request, out)
        defect, stems = _plant(plan, camera, index, scenes) if defects else (None, set())
        result = shoot_pair(camera, plan, out, on_shot=advance)
        planted += [{"scene_id": scene_id, "short_path": f.relative_to(out).as_posix(), "defect": defect}
                    for shot in result.shots if shot.shot.stem in stems for f in shot.files]

    with atomic_write(out / DEFECTS_NAME, "w", encoding="utf-8") as handle:
        json.dump(planted, handle, indent=2)
    return out


def _plant(plan: PairPlan, camera: SimCamera, index: int, scenes: int) -> tuple[str | None, set[str]]:
    """Plant scene ``index``'s defect, if it has one, on the camera and in the plan's notes.

    Returns the finding code and the stems of the shorts that carry it.
    """
    if index == scenes - 1:          # planned at ratio 20 already: the whole scene is noted
        plan.request = replace(plan.request, notes=f"planted ratio-out-of-range: shot at ratio "
                                                   f"{plan.pair.nominal_ratio:g}")
        return "ratio-out-of-range", {shot.stem for shot in plan.shots if shot.role == "short"}
    first = next(k for k, shot in enumerate(plan.shots) if shot.role == "short")
    file_stem = Path(plan.shots[first].stem).name
    if index == scenes - 2:
        camera.disturb(file_stem, shift=DEFECT_SHIFT)
        defect, note = "misaligned", f"planted misaligned: camera moved by {DEFECT_SHIFT} px (dy, dx)"
    elif index == scenes - 3:
        camera.disturb(file_stem, light=DEFECT_LIGHT)
        defect, note = "measured-ratio-mismatch", f"planted measured-ratio-mismatch: light dimmed to {DEFECT_LIGHT:g}x"
    else:
        return None, set()
    plan.shots[first] = replace(plan.shots[first], notes=note)
    return defect, {plan.shots[first].stem}


def write_folder_layout(dataset: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Copy a simulated dataset into the folder convention, without a capture log, and return ``out``.

    `<out>/<environment>/long/<scene>_00_10s.dng` and `<out>/<environment>/short/<scene>_<k>_0.04s.dng`
    (the SID naming: exposure in decimal seconds); `planted_defects.json` follows with the new paths.
    """
    dataset, out = Path(dataset), Path(out)
    records = read_log(dataset)
    if not records:
        raise SidkitError(f"{dataset}: no {LOG_NAME}; create the dataset with simulate_dataset first")
    renamed, counters = {}, {}
    for rec in records:
        k = counters[(rec.scene_id, rec.role)] = counters.get((rec.scene_id, rec.role), -1) + 1
        target = out / rec.environment / rec.role / f"{rec.scene_id}_{k:02d}_{rec.requested_exposure_s:g}s.dng"
        if target.exists():
            raise SidkitError(f"{target} exists; write the folder layout into a new folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dataset / rec.path, target)
        renamed[rec.path] = target.relative_to(out).as_posix()
    defects_path = dataset / DEFECTS_NAME
    planted = json.loads(defects_path.read_text(encoding="utf-8")) if defects_path.exists() else []
    with atomic_write(out / DEFECTS_NAME, "w", encoding="utf-8") as handle:
        json.dump([{**d, "short_path": renamed[d["short_path"]]} for d in planted], handle, indent=2)
    return out


def dataset_summary(dataset: str | os.PathLike) -> dict:
    """A simulated dataset in plain data: one entry per scene (from the log) and the planted defects."""
    dataset = Path(dataset)
    scenes: dict[str, dict] = {}
    for rec in read_log(dataset):
        extra = rec.extra or {}
        scene = scenes.setdefault(rec.scene_id, {
            "scene_id": rec.scene_id, "environment": rec.environment, "camera": rec.camera, "iso": rec.iso,
            "fnumber": rec.fnumber, "long_label": extra.get("long_label"), "short_label": extra.get("short_label"),
            "nominal_ratio": extra.get("nominal_ratio"), "true_ratio": extra.get("true_ratio"), "files": []})
        scene["files"].append(rec.path)
    defects_path = dataset / DEFECTS_NAME
    planted = json.loads(defects_path.read_text(encoding="utf-8")) if defects_path.exists() else []
    return {"dataset": str(dataset), "scenes": list(scenes.values()), "planted_defects": planted}


def scenes_table(summary: dict):
    """`dataset_summary` as a rich Table: one row per scene, its planted defects named."""
    defects: dict[str, set] = {}
    for d in summary["planted_defects"]:
        defects.setdefault(d["scene_id"], set()).add(d["defect"])
    table = titled_table(f"{summary['dataset']}: {len(summary['scenes'])} scenes", "scene", "environment", "camera",
                         "ISO", "long / short", "ratio (true)", "files", "planted")
    for s in summary["scenes"]:
        table.add_row(s["scene_id"], s["environment"], s["camera"], f"{s['iso']:g}",
                      f"{s['long_label']} / {s['short_label']}", f"{s['nominal_ratio']:g} ({s['true_ratio']:.4g})",
                      str(len(s["files"])), ", ".join(sorted(defects.get(s["scene_id"], ()))))
    return table
