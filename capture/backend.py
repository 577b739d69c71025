"""The small camera interface every backend obeys, safe file placement, and a fake body.

A backend opens a camera, reports its settings (`CameraSettings`), applies a setting and reads
it back (a camera that did not apply it raises SidkitError), shoots a timed or a bulb exposure
into a folder and returns every file the shot produced (RAW, or RAW + JPEG), and closes.
`FakeCamera` stands in for what cannot run here: a real body's timing, bulb and RAW + JPEG.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from curate.atomic import new_file_mode
from curate.errors import SidkitError
from curate.exposure import BULB_WORDS, parse_shutter

SETTINGS = ("shutter", "iso", "fnumber", "image_format", "capture_target")
RAW_WORDS = re.compile(r"\b(raw|craw|nef|arw|raf|cr2|cr3|dng|orf|rw2|pef)\b", re.IGNORECASE)
JPEG_WORDS = re.compile(r"jpe?g|fine|normal|basic|\+", re.IGNORECASE)


@dataclass
class Choice:
    """One setting: its current value and the values the camera offers (empty when free text)."""
    current: str | None
    choices: list[str] = field(default_factory=list)


@dataclass
class CameraSettings:
    """What `capture settings` shows; a setting the camera lacks is None."""
    camera: str
    shutter: Choice
    iso: Choice | None = None
    fnumber: Choice | None = None
    image_format: Choice | None = None
    capture_target: Choice | None = None
    bulb: bool = False          # a bulb exposure is possible (label offered and a way to hold it open)

    def get(self, name: str) -> Choice | None:
        return getattr(self, name)


class Camera(ABC):
    """A tethered camera; use as a context manager so that it is always closed."""

    backend: str = ""
    setting_timeout_s: float = 0.0     # how long a setting may take to show (Sony steps through values)
    generation: int = 0                # counts re-initialisations, after which settings are applied again

    @property
    @abstractmethod
    def identity(self) -> str:
        """Make, model and serial, as written to the capture log."""

    @abstractmethod
    def read_settings(self) -> CameraSettings:
        """Current values and choices of shutter, ISO, aperture, image format and capture target."""

    def read_setting(self, name: str) -> Choice | None:
        """One setting's current value and choices (None when the camera lacks it)."""
        return self.read_settings().get(name)

    @abstractmethod
    def _apply(self, name: str, value: str) -> None:
        """Send one setting to the camera (no read-back)."""

    @abstractmethod
    def shoot(self, folder: Path, stem: str) -> list[Path]:
        """A timed exposure at the current shutter speed; every file it produced, saved as stem.ext."""

    @abstractmethod
    def shoot_bulb(self, seconds: float, folder: Path, stem: str) -> list[Path]:
        """A bulb exposure held open for ``seconds``; every file it produced."""

    def aim(self, scene_id: str, environment: str = "unknown") -> None:
        """The camera now points at this scene (only a simulated camera needs to know)."""

    def close(self) -> None:
        """Release the camera."""

    def set_and_verify(self, name: str, value: str) -> str:
        """Apply a setting and read it back; a camera that did not apply it is an error."""
        if name not in SETTINGS:
            raise ValueError(f"unknown setting {name!r}")
        before = self.read_setting(name)
        if before is None:
            raise SidkitError(f"{self.identity}: this camera offers no {name.replace('_', ' ')} setting; "
                              f"leave that option out")
        if before.choices and value not in before.choices:
            raise SidkitError(f"{self.identity}: {name.replace('_', ' ')} {value!r} is not offered; "
                              f"choose one of: {', '.join(before.choices)}")
        self._apply(name, value)
        deadline = time.monotonic() + self.setting_timeout_s
        while not same_value(name, after := self.read_setting(name).current, value) \
                and time.monotonic() < deadline:
            time.sleep(0.25)
        if not same_value(name, after, value):
            raise SidkitError(f"{self.identity}: set {name.replace('_', ' ')} to {value!r} but the camera "
                              f"reports {after!r}; turn the mode dial to M (manual) and check the camera's "
                              "own menu locks")
        return after

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def same_value(name: str, reported: str | None, wanted: str) -> bool:
    """Equal labels, or equal numbers ('f/8' and '8', '800' and '800.0', '1/25' and '0.0400s')."""
    if reported is None:
        return False
    if reported.strip().lower() == wanted.strip().lower():
        return True
    try:
        if name == "shutter":
            return parse_shutter(reported) == parse_shutter(wanted)
        return float(reported.lower().lstrip("f/")) == float(wanted.lower().lstrip("f/"))
    except (ValueError, TypeError):
        return False


def format_choice(choices: list[str], wanted: str) -> str:
    """The image-format label for 'raw' or 'raw+jpeg' among a camera's choices ('RAW', 'NEF (Raw)')."""
    raw = [c for c in choices if RAW_WORDS.search(c)]
    if wanted == "raw":
        found = [c for c in raw if not JPEG_WORDS.search(c)]
    elif wanted == "raw+jpeg":
        found = [c for c in raw if JPEG_WORDS.search(c)]
        fine = [c for c in found if re.search(r"large|fine", c, re.IGNORECASE)]
        found = fine or found
    else:
        raise SidkitError(f"image format {wanted!r} is not raw or raw+jpeg")
    if not found:
        raise SidkitError(f"the camera offers no {wanted} image format (it offers: {', '.join(choices)}); "
                          "pick RAW on the camera's menu")
    return min(found, key=len)


def choice_for_number(choices: list[str], value: float, what: str) -> str:
    """The label among ``choices`` that means ``value`` ('f/8' or '8' for 8, '800' for ISO 800)."""
    for choice in choices:
        try:
            if float(choice.lower().lstrip("f/")) == float(value):
                return choice
        except ValueError:
            continue
    raise SidkitError(f"{what} {value:g} is not offered; choose one of: {', '.join(choices)}")


def bulb_label(labels: list[str]) -> str | None:
    """The shutter label that selects bulb ('Bulb', 'bulb', 'B'), or None."""
    return next((label for label in labels if label.strip().lower() in BULB_WORDS), None)


def save_new(path: Path, data: bytes | None = None, writer=None) -> Path:
    """Write a new file atomically and never over an existing one (SidkitError if it exists).

    Either ``data`` or ``writer(temp_path)`` provides the content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        raise SidkitError(f"{path}: already exists; captures are never overwritten, use another scene name")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if data is not None:
                handle.write(data)
        if writer is not None:
            writer(Path(tmp))
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, new_file_mode())
        try:
            os.link(tmp, path)            # fails if the name appeared meanwhile: never overwrite
        except FileExistsError:
            raise SidkitError(f"{path}: already exists; captures are never overwritten") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path




# --- a fake body, for what no camera here can show -----------------------------------------------
class FakeCamera(Camera):
    """A camera body with a label list, RAW or RAW + JPEG output, bulb, and a clock that advances.

    ``clock`` is a list holding the body's seconds since start; every exposure advances it by the
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
