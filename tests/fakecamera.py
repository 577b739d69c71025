"""A fake camera body for the tests: what no camera here can show (a real body's timing, bulb,
RAW + JPEG, settings it ignores, a reconnect that resets its settings)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from capture.backend import JPEG_WORDS, RAW_WORDS, SETTINGS, Camera, CameraSettings, Choice, bulb_label, save_new
from curate.common.errors import SidkitError
from curate.exposure import parse_shutter


class FakeCamera(Camera):
    """A camera body with a label list, RAW or RAW + JPEG output, bulb, and a clock that advances.

    ``clock`` holds the body's seconds since start; every exposure advances it by the
    exposure time plus ``noise_reduction`` (a dark frame as long as the exposure, when on) plus
    ``readout_s``. ``refuse`` names settings the body silently ignores (a dial in the wrong mode).
    ``reconnect_after_shots`` re-initialises the body once after that many shots, which resets
    its settings (what the libgphoto2 backend's port reset can do).
    """

    backend = "fake"

    def __init__(self, shutter_labels, *, iso_choices=("100", "200", "400", "800", "1600", "3200"),
                 fnumber_choices=("2.8", "4", "5.6", "8", "11"),
                 format_choices=("RAW", "Large Fine JPEG", "RAW + Large Fine JPEG"),
                 target_choices=("Internal RAM", "Memory card"), raw_extension=".CR3",
                 noise_reduction=False, readout_s=0.5, refuse=(), bulb=True, model="Fake EOS",
                 reconnect_after_shots=None):
        self.values = {"shutter": shutter_labels[0], "iso": iso_choices[0], "fnumber": fnumber_choices[0],
                       "image_format": format_choices[0], "capture_target": target_choices[0]}
        self.choices = {"shutter": list(shutter_labels), "iso": list(iso_choices),
                        "fnumber": list(fnumber_choices), "image_format": list(format_choices),
                        "capture_target": list(target_choices)}
        self.raw_extension, self.noise_reduction, self.readout_s = raw_extension, noise_reduction, readout_s
        self.refuse, self.has_bulb, self.model = set(refuse), bulb, model
        self.reconnect_after_shots, self.initial = reconnect_after_shots, dict(self.values)
        self.clock = 0.0
        self.shots: list[dict] = []     # what the body did: exposure, bulb, settings at the time
        self.closed = False

    @property
    def identity(self) -> str:
        return f"Fake {self.model} 0001"

    def read_settings(self) -> CameraSettings:
        c = {k: Choice(self.values[k], self.choices[k]) for k in SETTINGS}
        return CameraSettings(self.identity, c["shutter"], c["iso"], c["fnumber"], c["image_format"],
                              c["capture_target"],
                              bulb=self.has_bulb and bulb_label(self.choices["shutter"]) is not None)

    def _apply(self, name: str, value: str) -> None:
        if name not in self.refuse:
            self.values[name] = value

    def _expose(self, seconds: float, folder: Path, stem: str, bulb: bool) -> list[Path]:
        self.clock += seconds * (2 if self.noise_reduction and seconds >= 1 else 1) + self.readout_s
        self.shots.append({"seconds": seconds, "bulb": bulb, **self.values, "clock": self.clock})
        if len(self.shots) == self.reconnect_after_shots:
            self.values, self.generation = dict(self.initial), self.generation + 1
        header = f"{self.identity} {seconds!r}s ISO {self.values['iso']} f/{self.values['fnumber']}\n".encode()
        fmt = self.values["image_format"]
        files = []
        if RAW_WORDS.search(fmt):
            files.append(save_new(folder / f"{stem}{self.raw_extension}", b"RAW " + header))
        if JPEG_WORDS.search(fmt) or not RAW_WORDS.search(fmt):
            files.append(save_new(folder / f"{stem}.JPG", b"JPG " + header))
        return files

    def shoot(self, folder: Path, stem: str) -> list[Path]:
        seconds = parse_shutter(self.values["shutter"])
        if seconds is None:
            raise SidkitError(f"{self.identity}: shutter is on bulb; use a bulb exposure")
        return self._expose(float(seconds), folder, stem, bulb=False)

    def shoot_bulb(self, seconds: float, folder: Path, stem: str) -> list[Path]:
        if not self.has_bulb:
            raise SidkitError(f"{self.identity}: no bulb mode")
        return self._expose(float(Fraction(seconds)), folder, stem, bulb=True)

    def close(self) -> None:
        self.closed = True
