"""The libgphoto2 backend (python-gphoto2): detect, settings, timed and bulb shots, downloads.

Known traps, each handled here:
- -53 "Could not claim the USB device": another program holds the camera; the error says which
  to stop (gvfs-gphoto2-volume-monitor on Linux desktops, ptpcamerad on macOS).
- -110 "I/O in progress": drain pending events, then retry (a few times).
- a camera that stops answering (I/O error, timeout): reset the port and re-initialise once,
  then a clear error.
- labels follow the C locale as long as nobody calls setlocale, so this module never does.
- capturetarget persists in ~/.gphoto/settings between programs: `capture pair` sets it every run.
- python-gphoto2 2.6.4 aborts when a current value is missing from its choice list (issue 203);
  reads here tolerate a missing or odd current value anyway.
- `capture()` returns only the first file and times out on long exposures on some bodies, so
  shots use trigger_capture and collect FILE_ADDED events against a wall-clock deadline.
"""
from __future__ import annotations

import time
from pathlib import Path

import gphoto2 as gp

from curate.common.errors import SidkitError
from curate.exposure import parse_shutter

from .backend import Camera, CameraSettings, Choice, bulb_label, save_new

WIDGETS = {   # generic setting -> widget names across makes, preferred first
    "shutter": ("shutterspeed", "shutterspeed2", "exposuretime"),
    "iso": ("iso", "isospeed"),
    "fnumber": ("f-number", "aperture", "fnumber"),
    "image_format": ("imageformat", "imagequality"),
    "capture_target": ("capturetarget",),
}
BUSY_RETRIES = 5
LOST = {gp.GP_ERROR_IO, gp.GP_ERROR_TIMEOUT, gp.GP_ERROR_IO_READ, gp.GP_ERROR_IO_WRITE,
        gp.GP_ERROR_IO_USB_FIND, gp.GP_ERROR_CAMERA_ERROR}
CLAIM_HELP = ("another program holds the camera: on Linux run `pkill -f gvfs-gphoto2-volume-monitor` "
              "(or `systemctl --user stop gvfs-gphoto2-volume-monitor`), on macOS `sudo killall ptpcamerad`; "
              "close other photo apps (Lightroom, darktable, Shotwell), then try again")


WITHOUT_CAMERA = ("no camera at hand? `--camera sim` shoots with the simulated sensor, and libgphoto2's virtual "
                  "camera runs this same path: docs/capture.md, 'Without a camera'")


def explain(exc: gp.GPhoto2Error, what: str) -> SidkitError:
    """A libgphoto2 error as a one-line message with the fix."""
    if exc.code == gp.GP_ERROR_IO_USB_CLAIM:
        return SidkitError(f"{what}: [-53] could not claim the USB device; {CLAIM_HELP}")
    if exc.code == gp.GP_ERROR_MODEL_NOT_FOUND:
        return SidkitError(f"{what}: no camera found; connect it by USB, switch it on, set USB mode to "
                           f"PTP/PC remote, and check `capture detect` ({WITHOUT_CAMERA})")
    if exc.code in LOST:
        return SidkitError(f"{what}: the camera stopped answering ({exc}); check the cable, switch the "
                           "camera off and on, and run again")
    return SidkitError(f"{what}: {exc}")


def detect() -> list[tuple[str, str]]:
    """(model, port) of every camera libgphoto2 sees."""
    found = gp.Camera.autodetect()
    return [(found.get_name(i), found.get_value(i)) for i in range(found.count())]


def widget_choices(widget) -> list[str]:
    if widget.get_type() not in (gp.GP_WIDGET_RADIO, gp.GP_WIDGET_MENU):
        return []
    return [widget.get_choice(i) for i in range(widget.count_choices())]


def widget_value(widget) -> str | None:
    """The current value as text; None when the camera reports none (python-gphoto2 issue 203)."""
    try:
        value = widget.get_value()
    except gp.GPhoto2Error:
        return None
    return None if value is None else str(value)


def find_widget(config, names):
    for name in names:
        try:
            return config.get_child_by_name(name)
        except gp.GPhoto2Error:
            continue
    return None


class GPhotoCamera(Camera):
    """A camera over libgphoto2; ``port`` None takes the first detected camera."""

    backend = "gphoto2"
    setting_timeout_s = 8.0

    def __init__(self, port: str | None = None, *, settle_s: float = 0.5, margin_s: float = 20.0):
        self.settle_s, self.margin_s = settle_s, margin_s
        cameras = detect()
        if not cameras:
            raise SidkitError(f"no camera found{f' at {port}' if port else ''}; connect it by USB, switch it on, "
                              f"set USB mode to PTP/PC remote, and check `capture detect` ({WITHOUT_CAMERA})")
        if port is None:
            self.model, self.port = cameras[0]
        else:
            match = [c for c in cameras if c[1] == port]
            if not match:
                raise SidkitError(f"no camera on port {port}; `capture detect` lists: "
                                  + ", ".join(f"{m} on {p}" for m, p in cameras))
            self.model, self.port = match[0]
        self._cam = self._open()
        self._names: dict[str, str | None] = {}
        self._identity = self._read_identity()

    def _open(self):
        ports = gp.PortInfoList()
        ports.load()
        cam = gp.Camera()
        cam.set_port_info(ports[ports.lookup_path(self.port)])
        try:
            cam.init()
        except gp.GPhoto2Error as exc:
            raise explain(exc, f"{self.model} on {self.port}") from None
        return cam

    def _reopen(self) -> None:
        """Reset the USB port and initialise the camera again (once, after it stopped answering)."""
        try:
            self._cam.exit()
        except gp.GPhoto2Error:
            pass
        ports = gp.PortInfoList()
        ports.load()
        port = gp.GPPort()
        port.set_info(ports[ports.lookup_path(self.port)])
        try:
            port.open()
            port.reset()
            port.close()
        except gp.GPhoto2Error:
            pass
        self._cam = self._open()
        self.generation += 1

    def _call(self, method: str, *args):
        """Call a camera method: drain and retry on -110, reset and re-initialise once when lost."""
        reopened = False
        busy = 0
        while True:
            try:
                return getattr(self._cam, method)(*args)
            except gp.GPhoto2Error as exc:
                if exc.code == gp.GP_ERROR_CAMERA_BUSY and busy < BUSY_RETRIES:
                    busy += 1
                    self._drain(0.2)
                    continue
                if exc.code in LOST and not reopened:
                    reopened = True
                    self._reopen()
                    continue
                raise explain(exc, f"{self.model} on {self.port}") from None

    def _drain(self, seconds: float) -> list:
        """Read pending events until the camera is quiet for a moment; returns them."""
        events, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline:
            kind, data = self._cam.wait_for_event(int(seconds * 1000))
            if kind == gp.GP_EVENT_TIMEOUT:
                break
            events.append((kind, data))
        return events

    def _read_identity(self) -> str:
        config = self._call("get_config")
        parts = [widget_value(w) for w in (find_widget(config, ("manufacturer",)),
                                           find_widget(config, ("cameramodel", "model")),
                                           find_widget(config, ("eosserialnumber", "serialnumber")))
                 if w is not None]
        return " ".join(p for p in parts if p) or self.model

    @property
    def identity(self) -> str:
        return self._identity

    def read_settings(self) -> CameraSettings:
        config = self._call("get_config")
        found = {}
        for name, candidates in WIDGETS.items():
            widget = find_widget(config, candidates)
            found[name] = None if widget is None else Choice(widget_value(widget), widget_choices(widget))
        shutter = found["shutter"] or Choice(None, [])
        can_hold = find_widget(config, ("eosremoterelease", "bulb")) is not None
        return CameraSettings(self.identity, shutter, found["iso"], found["fnumber"], found["image_format"],
                              found["capture_target"], bulb=can_hold and bulb_label(shutter.choices) is not None)

    def _widget_name(self, name: str) -> str | None:
        """The widget behind a generic setting on this body ('f-number' or 'aperture'), cached."""
        if name not in self._names:
            widget = find_widget(self._call("get_config"), WIDGETS[name])
            self._names[name] = None if widget is None else widget.get_name()
        return self._names[name]

    def read_setting(self, name: str) -> Choice | None:
        widget_name = self._widget_name(name)
        if widget_name is None:
            return None
        widget = self._call("get_single_config", widget_name)
        return Choice(widget_value(widget), widget_choices(widget))

    def _set(self, widget_name: str, value) -> None:
        widget = self._call("get_single_config", widget_name)
        widget.set_value(value)
        self._call("set_single_config", widget_name, widget)

    def _apply(self, name: str, value: str) -> None:
        self._set(self._widget_name(name), value)

    def shoot(self, folder: Path, stem: str) -> list[Path]:
        shutter = self.read_setting("shutter").current
        seconds = float(parse_shutter(shutter) or 0)
        self._drain(0.05)
        self._call("trigger_capture")
        return self._collect(folder, stem, deadline_s=seconds * 2 + self.margin_s)

    def shoot_bulb(self, seconds: float, folder: Path, stem: str) -> list[Path]:
        """Hold the shutter open: Canon via eosremoterelease (labels read at run time), others via `bulb`."""
        config = self._call("get_config")
        remote = find_widget(config, ("eosremoterelease",))
        self._drain(0.05)
        if remote is not None:
            press, release = canon_release_labels(widget_choices(remote))
            self._set("eosremoterelease", press)
            time.sleep(seconds)
            self._set("eosremoterelease", release)
        elif find_widget(config, ("bulb",)) is not None:
            self._set("bulb", 1)
            time.sleep(seconds)
            self._set("bulb", 0)
        else:
            raise SidkitError(f"{self.identity}: offers no way to hold a bulb exposure; use --long 30 or less")
        return self._collect(folder, stem, deadline_s=seconds + self.margin_s)

    def _collect(self, folder: Path, stem: str, deadline_s: float) -> list[Path]:
        """Wait for the shot's FILE_ADDED events (exposure + noise reduction + margin), then download."""
        added = collect_added(self._cam.wait_for_event, deadline_s, self.settle_s)
        if not added:
            raise SidkitError(f"{self.identity}: no file arrived within {deadline_s:.0f} s; check the card "
                              "or capture target, and that the camera is in M mode with manual focus")
        files = []
        for camera_folder, name in added:
            camera_file = self._call("file_get", camera_folder, name, gp.GP_FILE_TYPE_NORMAL)
            data = bytes(memoryview(camera_file.get_data_and_size()))
            files.append(save_new(folder / f"{stem}{Path(name).suffix}", data))
        return files

    def close(self) -> None:
        try:
            self._cam.exit()
        except gp.GPhoto2Error:
            pass


def collect_added(wait_for_event, deadline_s: float, settle_s: float, clock=time.monotonic) -> list[tuple]:
    """(folder, name) of files the camera announces before ``deadline_s``; after the first one, stop
    once no further file arrives for ``settle_s`` (a RAW + JPEG shot announces two files; other
    events, such as property changes, keep coming and do not count)."""
    start, added, last_file = clock(), [], None
    while True:
        now = clock()
        left = deadline_s - (now - start)
        if last_file is not None:
            left = min(left, settle_s - (now - last_file))
        if left <= 0:
            return added
        kind, data = wait_for_event(max(1, int(min(left, 1.0) * 1000)))
        if kind == gp.GP_EVENT_FILE_ADDED:
            added.append((data.folder, data.name))
            last_file = clock()


def canon_release_labels(choices: list[str]) -> tuple[str, str]:
    """Press and release labels of eosremoterelease; libgphoto2 2.5.34 renamed them, so match loosely."""
    def pick(patterns):
        for pattern in patterns:
            for choice in choices:
                if choice.lower() == pattern or choice.lower().startswith(pattern + " "):
                    return choice
        return None
    press = pick(["immediate", "press full mf", "press full"])
    release = pick(["release full", "release"])
    if press is None or release is None:
        raise SidkitError(f"eosremoterelease offers {choices}; cannot find press/release for bulb")
    return press, release
