"""The simulated-sensor backend (`--camera sim`): a profile's shutter list, DNGs whose EXIF matches.

Scene content comes from capture.sensor.render_scene with the scene name as id, so the long and
the shorts of one scene show the same picture; every shot gets its own noise seed.
"""
from __future__ import annotations

import zlib
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

from curate.errors import SidkitError
from curate.exposure import parse_shutter

from . import dng, sensor
from .backend import Camera, CameraSettings, Choice, bulb_label, save_new


def _number(value) -> str:
    return f"{float(value):g}"


class SimCamera(Camera):
    """A simulated body of one sensor profile ('sim-dslr14', 'sim-phone10', 'sim-mirrorless12')."""

    backend = "sim"

    def __init__(self, profile: str = "sim-dslr14", *, width: int = 256, height: int = 192, seed: int = 0):
        if profile not in sensor.PROFILES:
            raise SidkitError(f"unknown simulated profile {profile!r}; choose one of: {', '.join(sensor.PROFILES)}")
        self.profile = sensor.PROFILES[profile]
        self.profile_name, self.width, self.height, self.seed = profile, width, height, seed
        labels = list(self.profile.shutter_labels)
        self.choices = {"shutter": labels, "iso": [_number(i) for i in self.profile.isos],
                        "fnumber": [_number(f) for f in self.profile.fnumbers],
                        "image_format": ["RAW"], "capture_target": ["Internal RAM"]}
        timed = [label for label in labels if parse_shutter(label) is not None]
        self.values = {"shutter": timed[len(timed) // 2], "iso": self.choices["iso"][0],
                       "fnumber": _number(min(self.profile.fnumbers, key=lambda f: abs(f - sensor.REFERENCE_FNUMBER))),
                       "image_format": "RAW",
                       "capture_target": "Internal RAM"}
        self.scene_id, self.environment, self.shot_count = "scene", "unknown", 0

    @property
    def identity(self) -> str:
        return self.profile.camera

    def aim(self, scene_id: str, environment: str = "unknown") -> None:
        self.scene_id, self.environment = scene_id, environment

    def read_settings(self) -> CameraSettings:
        c = {k: Choice(self.values[k], self.choices[k]) for k in self.values}
        return CameraSettings(self.identity, c["shutter"], c["iso"], c["fnumber"], c["image_format"],
                              c["capture_target"], bulb=bulb_label(self.choices["shutter"]) is not None)

    def _apply(self, name: str, value: str) -> None:
        self.values[name] = value

    def shoot(self, folder: Path, stem: str) -> list[Path]:
        seconds = parse_shutter(self.values["shutter"])
        if seconds is None:
            raise SidkitError(f"{self.identity}: shutter is on bulb; use a bulb exposure")
        return self._expose(seconds, folder, stem)

    def shoot_bulb(self, seconds: float, folder: Path, stem: str) -> list[Path]:
        if bulb_label(self.choices["shutter"]) is None:
            raise SidkitError(f"{self.identity}: profile {self.profile_name} has no bulb mode")
        return self._expose(Fraction(seconds).limit_denominator(1000), folder, stem)

    def _expose(self, seconds: Fraction, folder: Path, stem: str) -> list[Path]:
        scene_seed = zlib.crc32(self.scene_id.encode())
        if self.scene_id in sensor.CALIBRATION_SCENES:       # `capture calibrate`: lens cap, grey card
            radiance = sensor.calibration_scene(self.profile, self.scene_id, self.width, self.height)
        else:
            radiance = sensor.render_scene(self.scene_id, self.width, self.height, self.seed,
                                           environment=self.environment if self.environment != "unknown" else None)
        self.shot_count += 1
        iso, fnumber = float(self.values["iso"]), float(self.values["fnumber"])
        mosaic = sensor.expose(self.profile, radiance, exposure_s=float(seconds), iso=iso, fnumber=fnumber,
                               seed=self.seed * 100003 + scene_seed % 100003 + self.shot_count)
        path = folder / f"{stem}.dng"

        def write(tmp: Path) -> None:
            p = self.profile
            dng.write_dng(tmp, mosaic, make=p.make, model=p.model, serial=p.serial, color_matrix=p.color_matrix(),
                          cfa=p.cfa, black_level=p.black_level, white_level=p.white_level, exposure_s=Fraction(seconds),
                          iso=int(iso), fnumber=Fraction(self.values["fnumber"]),
                          captured_at=datetime.now(timezone.utc).replace(microsecond=0))
        return [save_new(path, writer=write)]
