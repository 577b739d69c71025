"""The small camera interface every backend obeys, and safe file placement.

A backend opens a camera, reports its settings (`CameraSettings`), applies a setting and reads
it back (a camera that did not apply it raises SidkitError), shoots a timed or a bulb exposure
into a folder and returns every file the shot produced (RAW, or RAW + JPEG), and closes.
The backends: capture.gphoto (libgphoto2) and capture.simcamera (the simulated sensor); the
tests add a fake body (tests/fakecamera.py) for what no camera here can show.
"""
from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from curate.common.atomic import atomic_path
from curate.common.errors import SidkitError
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

    def now(self) -> datetime:
        """When a shot starts, for the capture log (a simulated body keeps its own clock)."""
        return datetime.now(timezone.utc)

    def shot_details(self) -> dict:
        """What the backend knows about its last shot beyond the settings, for the log's `extra`."""
        return {}

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
    try:
        with atomic_path(path, overwrite=False, suffix=".part") as tmp:
            if data is not None:
                tmp.write_bytes(data)
            if writer is not None:
                writer(tmp)
    except FileExistsError:
        raise SidkitError(f"{path}: already exists; captures are never overwritten, use another scene name") from None
    return Path(path)
