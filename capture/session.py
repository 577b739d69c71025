"""`capture session`: scene after scene at the tripod, with a quick pixel check after each pair.

Scene names default to `<prefix>-NNN`, numbered after the highest in the capture log, so a
session that crashed goes on where it stopped; shots of a scene that exists get the next free
file numbers (never an overwrite).
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from rich.markup import escape

from curate.capturelog import read_log
from curate.common.errors import SidkitError

from .backend import RAW_WORDS, Camera
from .pair import ENVIRONMENTS, PairRequest, PairResult, check_scene_name, plan_pair, shoot_pair
from .tables import titled_table


def next_scene_name(dataset: Path, prefix: str = "scene") -> str:
    """`<prefix>-NNN` one above the highest such scene in the log (001 for a new dataset)."""
    pattern = re.compile(rf"{re.escape(prefix)}-([0-9]+)")
    numbers = [int(m[1]) for r in read_log(dataset) if (m := pattern.fullmatch(r.scene_id))]
    return f"{prefix}-{max(numbers, default=0) + 1:03d}"


def quick_check(result: PairResult) -> list[dict]:
    """Curate's pixel checks of each short against the long (too dark, clipped, moved, changed light).

    One entry per finding, ``{"file", "code", "severity", "message"}``, plus per short the measured
    brightness ratio (code ``measured-ratio``, severity ``info``, with ``measured_ratio``); files that
    are not raw (a JPEG-only camera) give one ``skipped`` entry. An empty list: nothing to check.
    """
    from curate.pixelchecks import check_pair_pixels     # here, not at the top: scipy takes a second to load
    from curate.rawmeta import read_metadata

    longs = [s for s in result.shots if s.shot.role == "long"]
    shorts = [s for s in result.shots if s.shot.role == "short"]
    if not longs:
        return []
    long_file = longs[0].files[0]
    if not RAW_WORDS.search(long_file.suffix.lstrip(".")):
        return [{"file": long_file.name, "code": "skipped", "severity": "info",
                 "message": "quick check skipped: not a raw file"}]
    meta = read_metadata(long_file)
    checks = []
    for short in shorts:
        findings, measured = check_pair_pixels(
            short.files[0], long_file, exif_ratio=result.plan.pair.nominal_ratio,
            black_level=meta.black_level, white_level=meta.white_level, cfa=meta.cfa,
            pair_id=short.files[0].stem)
        for f in findings:
            entry = {"file": Path(f.path).name, "code": f.code, "severity": f.severity, "message": f.message}
            if entry not in checks:
                checks.append(entry)
        if ratio := (measured or {}).get("measured_ratio"):
            checks.append({"file": short.files[0].name, "code": "measured-ratio", "severity": "info",
                           "message": f"measured brightness ratio {ratio:.4g}", "measured_ratio": round(ratio, 4)})
    return checks


def check_lines(checks: list[dict]) -> list[str]:
    """The quick check as text, one line per entry."""
    if not checks:
        return ["quick check: no findings"]
    return [f"{c['file']}: {c['message']}" if c["severity"] == "info"
            else f"{c['severity']} {c['code']}: {c['file']}: {c['message']}" for c in checks]


def run_session(camera: Camera, template: PairRequest, dataset: Path, ask: Callable[[str, str], str],
                show: Callable[[object], None], prefix: str = "scene", max_scenes: int | None = None
                ) -> list[PairResult]:
    """Ask for scene, environment and notes; plan, shoot, show the ratio and the quick check; repeat.

    ``ask(question, default)`` returns the answer; the scene name 'q' ends the session.
    """
    results = []
    while max_scenes is None or len(results) < max_scenes:
        scene = ask("scene name (q to finish)", next_scene_name(dataset, prefix)).strip()
        if scene.lower() in ("", "q", "quit"):
            break
        try:
            check_scene_name(scene)
        except SidkitError as exc:
            show(f"[red]{escape(str(exc))}[/]")
            continue
        environment = ask("environment (indoor/outdoor)", template.environment or "indoor").strip().lower()
        while environment not in ENVIRONMENTS:
            environment = ask("environment: type indoor or outdoor", template.environment or "indoor").strip().lower()
        notes = ask("notes", "").strip()
        request = replace(template, scene=scene, environment=environment, notes=notes)
        try:
            plan = plan_pair(camera, request, dataset)
            if any(r.scene_id == scene for r in read_log(dataset)):
                show(f"scene {scene} already has shots: new files get the next numbers")
            result = shoot_pair(camera, plan, dataset)
        except SidkitError as exc:
            show(f"[red]not shot:[/] {escape(str(exc))}")
            continue
        pair = plan.pair
        show(f"{scene}: {pair.long_label} / {pair.short_label} = {pair.nominal_ratio:g}x "
             f"(true {pair.true_ratio:.4g}x), {sum(len(s.files) for s in result.shots)} files, "
             f"{result.seconds:.1f} s")
        result.checks = quick_check(result)
        for line in check_lines(result.checks):
            show(f"  {line}")
        results.append(result)
    return results


def session_table(results: list[PairResult]):
    """One row per scene shot: pair, ratio, files, the quick check's errors and warnings, seconds."""
    table = titled_table(f"{len(results)} scenes", "scene", "environment", "long / short", "ratio (true)", "files",
                         "errors", "warnings", "seconds")
    for r in results:
        pair, checks = r.plan.pair, r.checks or []
        table.add_row(r.plan.request.scene, r.plan.request.environment, f"{pair.long_label} / {pair.short_label}",
                      f"{pair.nominal_ratio:g} ({pair.true_ratio:.4g})", str(sum(len(s.files) for s in r.shots)),
                      str(sum(c["severity"] == "error" for c in checks)),
                      str(sum(c["severity"] == "warning" for c in checks)), f"{r.seconds:.1f}")
    return table
