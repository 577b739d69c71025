"""The simulated-sensor backend (`--camera sim`): a profile's shutter list, DNGs whose EXIF matches.

Exposure semantics, the same for every simulated shot (`capture pair --camera sim`, `capture
session` and `capture simulate`, which all shoot through this body): the shutter stays open for
the time the label stands for, as a real body's does. A marked speed is a rounded power of two
(10 s is 2^(10/3) = 10.08 s, 1/25 s is 2^(-14/3) = 1/25.4 s), so a timed shot exposes the sensor
for `true_exposure(label)`; a bulb shot for the seconds it is held open. EXIF and the capture log
record the nominal label (10 s), so a 10 s / 1/25 s pair measures 256x in the pixels.

Scene content comes from capture.sensor.render_scene with the scene name as id, so the long and
the shorts of one scene show the same picture; every shot gets its own noise seed. The body keeps
its own clock (the EXIF capture time), advanced by each exposure and its readout (and kept up with
the wall clock unless a ``clock`` is given, as `capture simulate` does for repeatable files). ``light`` is
the brightness of what it points at; `disturb` plants a changed light or a moved camera for one
named shot (what `capture simulate` uses for its planted defects).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path

from curate.common.errors import SidkitError
from curate.exposure import parse_shutter, true_exposure

from . import dng, sensor
from .backend import Camera, CameraSettings, Choice, bulb_label, save_new


def _label(value: float) -> str:
    """A setting's label as this body writes it: 100 -> '100', 8.0 -> '8', 5.6 -> '5.6'."""
    return f"{float(value):g}"


@dataclass(frozen=True)
class Disturbance:
    """What went wrong during one shot: the light changed, or the camera was moved."""
    light: float = 1.0                    # the scene's light during this shot, relative to ``light``
    shift: tuple[int, int] = (0, 0)       # the scene moved down and right by (dy, dx) pixels


class SimCamera(Camera):
    """A simulated body of one sensor profile ('sim-dslr14', 'sim-phone10', 'sim-mirrorless12', 'sim-xtrans14')."""

    backend = "sim"

    def __init__(self, profile: str = "sim-dslr14", *, width: int | None = None, height: int | None = None,
                 seed: int = 0, light: float = 1.0, clock: datetime | None = None, readout_s: float = 2.0):
        """``width`` and ``height`` default to half the profile's size (256x192 for the Bayer bodies,
        384x258 for sim-xtrans14); an X-Trans body needs multiples of 6."""
        if profile not in sensor.PROFILES:
            raise SidkitError(f"unknown simulated profile {profile!r}; choose one of: {', '.join(sensor.PROFILES)}")
        self.profile = sensor.PROFILES[profile]
        t = self.profile.tile
        width = width or self.profile.width // 2 // t * t
        height = height or self.profile.height // 2 // t * t
        if width % t or height % t:
            raise SidkitError(f"{profile} has a {t}x{t} CFA tile ({self.profile.cfa_name}): the image size "
                              f"{width}x{height} must be multiples of {t}, e.g. {width // t * t}x{height // t * t}")
        self.profile_name, self.width, self.height, self.seed = profile, width, height, seed
        self.light, self.readout_s = light, readout_s
        self.clock, self._own_clock = clock or datetime.now(timezone.utc).replace(microsecond=0), clock is not None
        labels = list(self.profile.shutter_labels)
        self.choices = {"shutter": labels, "iso": [_label(i) for i in self.profile.isos],
                        "fnumber": [_label(f) for f in self.profile.fnumbers],
                        "image_format": ["RAW"], "capture_target": ["Internal RAM"]}
        timed = [label for label in labels if parse_shutter(label) is not None]
        reference = min(self.profile.fnumbers, key=lambda f: abs(f - sensor.REFERENCE_FNUMBER))
        self.values = {"shutter": timed[len(timed) // 2], "iso": self.choices["iso"][0],
                       "fnumber": _label(reference), "image_format": "RAW", "capture_target": "Internal RAM"}
        self.scene_id, self.environment, self.shot_count = "scene", "unknown", 0
        self.disturbances: dict[str, Disturbance] = {}
        self._radiance: tuple[tuple, object] | None = None
        self._details: dict = {}

    @property
    def identity(self) -> str:
        return self.profile.camera

    def aim(self, scene_id: str, environment: str = "unknown") -> None:
        self.scene_id, self.environment = scene_id, environment

    def disturb(self, stem: str, *, light: float = 1.0, shift: tuple[int, int] = (0, 0)) -> None:
        """The shot saved as ``stem`` (file name without extension) sees ``light`` x the light, moved by ``shift``."""
        self.disturbances[stem] = Disturbance(light, tuple(shift))

    def now(self) -> datetime:
        """The body's clock: ``clock`` advanced by each shot; without one it never lags the wall clock."""
        if not self._own_clock:
            self.clock = max(self.clock, datetime.now(timezone.utc).replace(microsecond=0))
        return self.clock

    def shot_details(self) -> dict:
        return dict(self._details)

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
        return self._expose(seconds, true_exposure(seconds), folder, stem)

    def shoot_bulb(self, seconds: float, folder: Path, stem: str) -> list[Path]:
        if bulb_label(self.choices["shutter"]) is None:
            raise SidkitError(f"{self.identity}: profile {self.profile_name} has no bulb mode")
        held = Fraction(seconds).limit_denominator(1000)
        return self._expose(held, float(held), folder, stem)

    def _scene(self):
        """The radiance of the scene aimed at, rendered once per scene."""
        key = (self.scene_id, self.environment, self.width, self.height, self.seed)
        if self._radiance is None or self._radiance[0] != key:
            environment = self.environment if self.environment != "unknown" else None
            self._radiance = key, sensor.render_scene(self.scene_id, self.width, self.height, self.seed,
                                                      environment=environment)
        return self._radiance[1]

    def _expose(self, label_s: Fraction, open_s: float, folder: Path, stem: str) -> list[Path]:
        """Expose for ``open_s`` seconds; EXIF records ``label_s``, the time the label names."""
        disturbance = self.disturbances.pop(stem, Disturbance())
        self.shot_count += 1
        iso, fnumber = float(self.values["iso"]), float(self.values["fnumber"])
        light = self.light * disturbance.light
        scene_seed = zlib.crc32(self.scene_id.encode())
        mosaic = sensor.expose(self.profile, self._scene(), exposure_s=open_s, iso=iso, fnumber=fnumber,
                               light=light, shift=disturbance.shift,
                               seed=self.seed * 100003 + scene_seed % 100003 + self.shot_count)
        when = self.now()
        self.clock += timedelta(seconds=open_s + self.readout_s)
        self._details = {"profile": self.profile_name, "exposed_s": open_s, "light": light,
                         "shift": list(disturbance.shift)}

        def write(tmp: Path) -> None:
            p = self.profile
            dng.write_dng(tmp, mosaic, make=p.make, model=p.model, serial=p.serial, color_matrix=p.color_matrix(),
                          cfa=p.cfa, black_level=p.black_level, white_level=p.white_level, exposure_s=label_s,
                          iso=int(iso), fnumber=Fraction(self.values["fnumber"]), captured_at=when)
        return [save_new(folder / f"{stem}.dng", writer=write)]
