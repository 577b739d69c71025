"""A simulated capture session: short/long DNG pairs of procedural scenes plus a capture log,
with a few deliberately bad pairs recorded in `planted_defects.json` so that checks can be tested.

Layout: `<out>/captures.jsonl`, `<out>/<scene>/<scene>_long_10s.dng`,
`<out>/<scene>/<scene>_short_1-25s_00.dng`; `write_folder_layout` copies a simulated dataset
into the log-free folder convention (`indoor/short/sim01_00_0.04s.dng`, `indoor/long/...`).
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable

from curate.atomic import atomic_write
from curate.capturelog import LOG_NAME, CaptureRecord, append_record, read_log
from curate.errors import SidkitError
from curate.exposure import ExposurePair, choose_pair, file_label, true_exposure
from curate.rawmeta import sha256_file

from .dng import write_dng
from .sensor import SensorProfile, expose, get_profile, render_scene, scene_rng

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
                     allow_any_ratio: bool = False, progress: Callable[[int, int], None] | None = None) -> Path:
    """Shoot ``scenes`` simulated scenes into ``out`` and return it.

    The first half of the scenes are indoor, the rest outdoor; scene i uses profile i mod
    len(profiles). ``size`` is (width, height), even, overriding the profiles' sizes. With
    ``defects`` the last scene is shot at ratio 20, the second last has one short moved by ~12 px
    and the third last one short in light dimmed to 0.4; each is noted in the log and listed in
    `planted_defects.json` ([{scene_id, short_path, defect}], defect being the finding code).
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
    for name in (LOG_NAME, DEFECTS_NAME):
        if (out / name).exists():
            raise SidkitError(f"{out / name} exists; simulate into a new folder or delete the old dataset")

    planted, total, done = [], scenes * (1 + shorts_per_scene), 0
    for index in range(scenes):
        scene_id = f"sim{index + 1:02d}"
        profile = sensors[index % len(sensors)]
        environment = "indoor" if index < (scenes + 1) // 2 else "outdoor"
        width, height = size or (profile.width, profile.height)
        rng = scene_rng(scene_id, seed)
        iso = int(rng.choice([i for i in SCENE_ISOS if i in profile.isos] or [profile.base_iso]))
        fnumber = min(profile.fnumbers, key=lambda n: abs(n - 8))
        # Darker scenes for higher ISO and wider apertures: the long exposure lands in the same range.
        light = float(rng.uniform(0.85, 1.15)) * (fnumber / 8) ** 2 * profile.base_iso / iso
        bad_ratio = defects and index == scenes - 1
        pair = choose_pair(profile.shutter_labels, DEFECT_RATIO if bad_ratio else ratio,
                           long=Fraction(long_s).limit_denominator(1000),
                           allow_any_ratio=bad_ratio or allow_any_ratio)
        radiance = render_scene(scene_id, width, height, seed, environment=environment)
        shot = _Shooter(out, profile, scene_id, environment, radiance, iso, fnumber, pair,
                        seed=seed * 1000 + index, allow_any_ratio=bad_ratio or allow_any_ratio)
        when = START + timedelta(minutes=10 * index)
        ratio_note = f"planted ratio-out-of-range: shot at ratio {pair.nominal_ratio:g}" if bad_ratio else ""

        shot.take("long", f"{scene_id}_long_{file_label(pair.long_s)}.dng", pair.long_s, light, (0, 0), when,
                  ratio_note)
        done += 1
        if progress:
            progress(done, total)
        for k in range(shorts_per_scene):
            defect, note, shift, short_light = None, "", (0, 0), light
            if bad_ratio:
                defect, note = "ratio-out-of-range", ratio_note
            elif defects and k == 0 and index == scenes - 2:
                defect, shift = "misaligned", DEFECT_SHIFT
                note = f"planted misaligned: camera moved by {shift} px (dy, dx)"
            elif defects and k == 0 and index == scenes - 3:
                defect, short_light = "measured-ratio-mismatch", light * DEFECT_LIGHT
                note = f"planted measured-ratio-mismatch: light dimmed to {DEFECT_LIGHT:g}x"
            when += timedelta(seconds=float(pair.long_s) + 5 * (k + 1))
            name = f"{scene_id}_short_{file_label(pair.short_s)}_{k:02d}.dng"
            path = shot.take("short", name, pair.short_s, short_light, shift, when, note)
            if defect:
                planted.append({"scene_id": scene_id, "short_path": path, "defect": defect})
            done += 1
            if progress:
                progress(done, total)

    with atomic_write(out / DEFECTS_NAME, "w", encoding="utf-8") as handle:
        json.dump(planted, handle, indent=2)
    return out


class _Shooter:
    """Exposes, writes and logs the shots of one scene."""

    def __init__(self, out: Path, profile: SensorProfile, scene_id: str, environment: str, radiance,
                 iso: int, fnumber: float, pair: ExposurePair, *, seed: int, allow_any_ratio: bool):
        self.out, self.profile, self.scene_id, self.environment = out, profile, scene_id, environment
        self.radiance, self.iso, self.fnumber, self.pair, self.seed = radiance, iso, fnumber, pair, seed
        self.allow_any_ratio = allow_any_ratio
        self.shots = 0

    def take(self, role: str, name: str, exposure: Fraction, light: float, shift: tuple[int, int],
             when: datetime, note: str) -> str:
        """One exposure: the sensor sees the label's true power-of-two time, EXIF gets the label."""
        relpath = f"{self.scene_id}/{name}"
        path = self.out / relpath
        if path.exists():
            raise SidkitError(f"{path} exists; simulate into a new folder or delete the old dataset")
        p = self.profile
        self.shots += 1
        mosaic = expose(p, self.radiance, exposure_s=true_exposure(exposure), iso=self.iso, fnumber=self.fnumber,
                        light=light, shift=shift, seed=self.seed * 100 + self.shots)
        write_dng(path, mosaic, make=p.make, model=p.model, serial=p.serial, cfa=p.cfa,
                  black_level=list(p.black_level), white_level=p.white_level, exposure_s=exposure,
                  iso=self.iso, fnumber=self.fnumber, captured_at=when, color_matrix=p.color_matrix())
        label = self.pair.long_label if role == "long" else self.pair.short_label
        append_record(self.out, CaptureRecord(
            scene_id=self.scene_id, role=role, path=relpath, requested_exposure_s=float(exposure),
            camera_exposure=label, iso=self.iso, fnumber=self.fnumber, environment=self.environment,
            camera=p.camera, captured_at=when.isoformat(), backend="sim", notes=note,
            sha256=sha256_file(path),
            extra={"profile": p.name, "label": label, "nominal_ratio": self.pair.nominal_ratio,
                   "true_ratio": self.pair.true_ratio, "light": light, "shift": list(shift),
                   "allow_any_ratio": self.allow_any_ratio}))
        return relpath


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
