"""Pairing a card dump: the raws a camera wrote (IMG_0001.CR3 ...), grouped into scenes by EXIF alone.

Shots are taken in capture-time order (sub-second time where the EXIF has it, then name). A scene is
a run of shots from one body (serial where the EXIF has one, else make + model) at one ISO and
aperture with no gap longer than ``gap`` seconds between the end of one exposure (capture time +
exposure time) and the start of the next. Its longest exposure is the long; every shot at least 2x
shorter is a short of it; a shot in between (a bracket, a second long) is left out with a warning.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Callable

from .exposure import format_exposure
from .files import shown
from .findings import Finding

SCENE_GAP_S = 60.0
SHORT_FACTOR = 2            # a short is at least this many times shorter than its scene's long


@dataclass
class Shot:
    """One raw file of a card dump, with what grouping needs."""
    path: Path
    time: float | None         # capture time, seconds (UTC when the EXIF has an offset)
    when: str                  # capture time as written (ISO 8601, sub-second where known)
    exposure_s: Fraction | None      # None: the file records none (read for --longs-only alone)
    iso: float | None
    fnumber: float | None
    body: str                  # camera + serial: shots of one body
    scene: str = ""
    role: str = ""             # long, short, bracket, unpaired

    @property
    def end(self) -> float:
        return self.time + float(self.exposure_s or 0)


def body(meta) -> str:
    """'Canon EOS R6 #012345' (serial where the EXIF has one), else 'Canon EOS R6'."""
    return f"{meta.camera} #{meta.serial}" if meta.serial else meta.camera


def capture_time(captured_at: str | None) -> tuple[float | None, str]:
    """(seconds, text) from an ISO 8601 capture time (sub-seconds and offset as EXIF gave them)."""
    if not captured_at:
        return None, ""
    try:
        moment = datetime.fromisoformat(captured_at)
    except ValueError:
        return None, captured_at
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp(), text


def group_scenes(shots: list[Shot], gap: float = SCENE_GAP_S) -> list[list[Shot]]:
    """Shots (with a time) into scenes, in capture-time order; each shot's ``scene`` is not yet set."""
    scenes, current = [], {}
    for shot in sorted(shots, key=lambda s: (s.time, s.path.name, str(s.path))):
        scene = current.get(shot.body)
        if (scene and (scene[0].iso, scene[0].fnumber) == (shot.iso, shot.fnumber)
                and shot.time - max(s.end for s in scene) <= gap
                and None not in (shot.exposure_s, scene[0].exposure_s)):     # no exposure time: a scene of its own
            scene.append(shot)
        else:
            current[shot.body] = [shot]
            scenes.append(current[shot.body])
    return scenes


def assign_roles(scene: list[Shot], longs_only: bool = False) -> list[Finding]:
    """Long, shorts and left-out shots of one scene (its shots in time order), with a finding per
    shot that is not paired. ``longs_only``: the longest is the long even with no short (one-shot
    scenes included), and another shot of that exposure is a bracket."""
    if scene[0].exposure_s is None:     # no exposure time (read for --longs-only alone): its own long
        scene[0].role = "long" if longs_only else "unpaired"
        return []
    long = max(scene, key=lambda s: s.exposure_s)       # the first of equal longest exposures
    shorts = [s for s in scene if s.exposure_s * SHORT_FACTOR <= long.exposure_s]
    short_ids = {id(s) for s in shorts}
    findings = []
    for shot in scene:
        if shot is long:
            shot.role = "long" if shorts or longs_only else "unpaired"
        elif id(shot) in short_ids:
            shot.role = "short"
        elif shot.exposure_s == long.exposure_s and not shorts and not longs_only:
            shot.role = "unpaired"
        else:
            shot.role = "bracket"
            same = "the same exposure as" if shot.exposure_s == long.exposure_s else "less than 2x shorter than"
            findings.append(Finding("", shown(shot.path), "bracket",
                                    f"{_exposure(shot)} is {same} scene {shot.scene}'s longest "
                                    f"{_exposure(long)} ({long.path.name}): neither its long nor a short, "
                                    "left out (a bracket?); check `curate scan --show-scenes`"
                                    + ("; --longs-only takes one long per scene (--scene-gap 0: a new "
                                       "scene at any pause between shots)" if longs_only else "")))
    if not shorts and not longs_only:
        why = (f"has one exposure ({_exposure(long)})" if all(s.exposure_s == long.exposure_s for s in scene)
               else f"has no shot {SHORT_FACTOR}x shorter than its longest ({_exposure(long)})")
        for shot in (s for s in scene if s.role == "unpaired"):
            findings.append(Finding("", shown(shot.path), "unpaired",
                                    f"scene {shot.scene} {why}; a pair needs a long and a shorter shot from one "
                                    "body at one ISO and aperture (widen --scene-gap if the scene was split)"))
    return findings


def _exposure(shot: Shot) -> str:
    return f"{format_exposure(shot.exposure_s)} s" if shot.exposure_s is not None else "unknown exposure"


def scene_name(first: Path, dataset: Path, taken: set[str]) -> str:
    """'card-IMG_0001': the first file's folder and name; the folder's path when that is taken."""
    name = f"{first.parent.name}-{first.stem}"
    if name in taken:
        rel = first.parent.relative_to(dataset).parts if first.parent != dataset else ()
        name = "-".join((dataset.name, *rel, first.stem))
    return name


def card_shots(files: list[Path], read: Callable) -> tuple[list[Shot], list[Finding]]:
    """A Shot per raw that reads (``read(path, pair_id, findings)`` returns its RawMeta or None)."""
    shots, findings = [], []
    for path in files:
        meta = read(path, "", findings)
        if meta is None:
            continue
        seconds, when = capture_time(meta.captured_at)
        if seconds is None:
            findings.append(Finding("", shown(path), "unpaired",
                                    "no capture time in its EXIF, so it cannot be placed in a scene; "
                                    "pair it with the folder convention (short/ and long/ folders) instead"))
            continue
        shots.append(Shot(path, seconds, when, meta.exposure_s, meta.iso, meta.fnumber, body(meta)))
    return shots, findings


def pair_card(dataset: Path, shots: list[Shot], gap: float = SCENE_GAP_S, longs_only: bool = False
              ) -> tuple[list[tuple[str, Shot, Shot]], list[Finding]]:
    """(scene, short, long) for every short of every scene, and the findings of the grouping.
    Each shot gets its ``scene`` and ``role``. ``longs_only``: (scene, long, long) for every scene."""
    pairs, findings, taken = [], [], set()
    for scene in group_scenes(shots, gap):
        name = scene_name(scene[0].path, dataset, taken)
        taken.add(name)
        for shot in scene:
            shot.scene = name
        findings += assign_roles(scene, longs_only)
        long = next((s for s in scene if s.role == "long"), None)
        pairs += [(name, long, long)] if longs_only else [(name, s, long) for s in scene if s.role == "short"]
    return pairs, findings


def shot_dict(shot: Shot, dataset: Path) -> dict:
    """One row of `curate scan --show-scenes --format json`."""
    known = shot.exposure_s is not None
    return {"time": shot.when, "exposure": format_exposure(shot.exposure_s) if known else "unknown",
            "exposure_s": float(shot.exposure_s) if known else None,
            "iso": shot.iso, "fnumber": shot.fnumber, "camera": shot.body,
            "file": shown(shot.path.relative_to(dataset)), "scene": shot.scene, "role": shot.role}


def scenes_table(shots: list[Shot], dataset: Path, title: str):
    """A rich Table of the shots in capture-time order, a rule between scenes."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for column in ("time", "exposure", "ISO", "f", "camera", "file", "scene", "role"):
        table.add_column(column, overflow="fold")
    previous = None
    for shot in shots:
        row = shot_dict(shot, dataset)
        style = {"long": "bold", "bracket": "yellow", "unpaired": "yellow"}.get(shot.role, "")
        table.add_row(row["time"], row["exposure"], f"{shot.iso:g}" if shot.iso else "",
                      f"{shot.fnumber:g}" if shot.fnumber else "", escape(shot.body), escape(row["file"]),
                      escape(shot.scene),
                      f"[{style}]{shot.role}[/]" if style else shot.role,
                      end_section=False)
        if previous is not None and previous != shot.scene:
            table.rows[-2].end_section = True
        previous = shot.scene
    return table
