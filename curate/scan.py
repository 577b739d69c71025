"""`curate scan`: a dataset folder (capture log, folder convention or card dump) into manifest rows + findings.

Pairing, first match wins:
- with `<dataset>/captures.jsonl`: every short of a scene is paired with the scene's first long;
- raws under `short/` or `long/` folders: the scene id is the file name up to the first underscore
  (`00001_00_0.1s.ARW` -> `00001`), and an `indoor/` or `outdoor/` folder anywhere above gives the
  environment; camera-named files (`IMG_0001.CR3`) carry no scene id and are reported, not paired;
- otherwise a card dump: raws paired by EXIF capture time, body, ISO and aperture (curate.carddump).
`--labels FILE.csv` (scene_id,environment) overrides environments either way.
Exposure, ISO, aperture and camera come from EXIF, never from names; levels, CFA and size from the raw.
Every file is checked before it is opened and any failure to read one becomes a finding for it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import rawmeta
from .capturelog import LOG_NAME, read_log
from .carddump import SCENE_GAP_S, Shot, body, capture_time, card_shots, pair_card
from .common.errors import SidkitError
from .exposure import exposure_from_name, name_agrees
from .files import RAW_EXTENSIONS, file_problem, is_camera_name, is_raw_name, shown, walk
from .findings import Finding
from .manifest import COLUMNS, ENVIRONMENTS, empty_rows, relative_to
from .split import assign_splits

__all__ = ["RAW_EXTENSIONS", "PairSpec", "build_rows", "is_raw_name", "read_labels", "scan_dataset",
           "scan_scenes", "scene_id_from_name"]
CONVENTIONS = (f"{LOG_NAME} (sidkit's capture log), raw files under short/ and long/ folders "
               "(00001_00_0.1s.ARW), and a card dump (camera-named raws paired by EXIF capture time)")


@dataclass
class PairSpec:
    """One short/long pair before metadata is read."""
    scene_id: str
    environment: str
    short: Path
    long: Path
    expected_sha: dict | None = None   # path -> sha256 recorded by capture
    split: str = ""


def pairs_from_log(dataset: Path, longs_only: bool = False) -> tuple[list[PairSpec], list[Finding]]:
    torn: list[int] = []
    records = read_log(dataset, torn)
    shot = lambda rec: (rec.scene_id, rec.role, (rec.extra or {}).get("shot_index"))
    shots_with_raw = {shot(rec) for rec in records if is_raw_name(rec.path)}
    findings, longs, shorts, shas = [], {}, [], {}
    for number in torn:
        findings.append(Finding("", f"{dataset / LOG_NAME}:{number}", "unreadable",
                                "last line is cut off (a crash while writing?); that shot is not paired, "
                                "re-shoot the scene or remove the line"))
    for rec in records:
        if not is_raw_name(rec.path) and shot(rec) in shots_with_raw:
            continue  # the JPEG of a RAW+JPEG shot

        path = dataset / rec.path
        if rec.sha256:
            shas[path] = rec.sha256
        if rec.role == "long":
            longs.setdefault(rec.scene_id, (path, rec.environment))
        elif rec.role == "short":
            shorts.append((rec.scene_id, path, rec.environment))
    if longs_only:
        return [PairSpec(scene, env, long, long, shas) for scene, (long, env) in longs.items()], findings
    pairs = []
    for scene, short, env in shorts:
        if scene not in longs:
            findings.append(Finding("", str(short), "unpaired", f"scene {scene} has no long exposure in {LOG_NAME}"))
            continue
        pairs.append(PairSpec(scene, env or longs[scene][1], short, longs[scene][0], shas))
    return pairs, findings


def _role_and_env(rel: Path) -> tuple[str | None, str]:
    parts = [p.lower() for p in rel.parts[:-1]]
    role = "short" if "short" in parts else "long" if "long" in parts else None
    env = "indoor" if "indoor" in parts else "outdoor" if "outdoor" in parts else "unknown"
    return role, env


def scene_id_from_name(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def pairs_from_folders(dataset: Path, files: list[Path], longs_only: bool = False
                       ) -> tuple[list[PairSpec], list[Finding]]:
    """Files under short/ and long/ folders, paired by the scene id at the start of their names
    (``longs_only``: every file under long/ as its own short; short/ is not looked at)."""
    findings, longs, shorts = [], {}, []
    for path in files:
        role, env = _role_and_env(path.relative_to(dataset))
        if role is None or (longs_only and role == "short"):
            continue
        if not is_raw_name(path):
            findings.append(Finding("", shown(path), "not-raw",
                                    f"{path.suffix or 'no extension'} is not a raw format; move it out of {role}/"))
            continue
        if is_camera_name(path) or not scene_id_from_name(path):
            why = "is a name the camera wrote, so it" if is_camera_name(path) else "starts with '_', so it"
            findings.append(Finding("", shown(path), "unpaired",
                                    f"{path.name} {why} names no scene (the folder convention needs "
                                    "SCENE_..., e.g. 00001_00_0.1s.ARW); rename the files, or scan the card's "
                                    "own folder (no short/ and long/) to pair them by capture time"))
            continue
        scene = scene_id_from_name(path)
        if role == "long":
            if scene in longs:
                findings.append(Finding("", shown(path), "duplicate-file",
                                        f"scene {scene} has a second long exposure; {longs[scene][0].name} is used"))
                continue
            longs[scene] = (path, env)
        else:
            shorts.append((scene, path, env))
    if longs_only:
        return [PairSpec(scene, env, long, long) for scene, (long, env) in longs.items()], findings
    pairs = []
    for scene, short, env in shorts:
        if scene not in longs:
            findings.append(Finding("", shown(short), "unpaired",
                                    f"no long exposure named {scene}_* in a long/ folder"))
            continue
        pairs.append(PairSpec(scene, env if env != "unknown" else longs[scene][1], short, longs[scene][0]))
    return pairs, findings


def pairs_from_card(dataset: Path, files: list[Path], read: "MetadataReader", gap: float = SCENE_GAP_S,
                    longs_only: bool = False) -> tuple[list[PairSpec], list[Finding], list[Shot]]:
    """Every raw under ``dataset`` grouped into scenes by EXIF (curate.carddump); the shots for --show-scenes.
    ``longs_only``: each scene's longest exposure as its own short, one-shot scenes included."""
    shots, findings = card_shots([f for f in files if is_raw_name(f)], read)
    pairs, more = pair_card(dataset, shots, gap, longs_only)
    specs = [PairSpec(scene, _role_and_env(short.path.relative_to(dataset))[1], short.path, long.path)
             for scene, short, long in pairs]
    return specs, findings + more, shots


def find_pairs(dataset: Path, read: "MetadataReader", gap: float = SCENE_GAP_S, longs_only: bool = False
               ) -> tuple[str, list[PairSpec], list[Finding], list[Shot] | None]:
    """(convention, pairs, findings, card shots or None): the first convention that applies.
    ``longs_only``: a PairSpec(short=long) for every long exposure the convention finds."""
    if (dataset / LOG_NAME).exists():
        problem = file_problem(dataset / LOG_NAME)
        if problem:
            raise SidkitError(f"{problem.path}: {problem.message}")
        return "log", *pairs_from_log(dataset, longs_only), None
    files, findings = walk(dataset)
    if any(_role_and_env(f.relative_to(dataset))[0] for f in files if is_raw_name(f)):
        pairs, more = pairs_from_folders(dataset, files, longs_only)
        return "folders", pairs, findings + more, None
    pairs, more, shots = pairs_from_card(dataset, files, read, gap, longs_only)
    return "card", pairs, findings + more, shots


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """scene_id,environment CSV -> {scene_id: environment}."""
    problem = file_problem(path)
    if problem:
        raise SidkitError(f"{problem.path}: {problem.message}; --labels takes a CSV with columns scene_id,environment")
    try:
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SidkitError(f"{path}: cannot read labels ({exc}); give a CSV with columns scene_id,environment") from None
    if not {"scene_id", "environment"} <= set(labels.columns):
        raise SidkitError(f"{path}: labels need columns scene_id,environment")
    bad = labels[~labels["environment"].isin(ENVIRONMENTS)]
    if len(bad):
        raise SidkitError(f"{path}: row {bad.index[0] + 1}: environment {bad.iloc[0]['environment']!r} "
                          f"is not one of {', '.join(ENVIRONMENTS)}")
    return dict(zip(labels["scene_id"], labels["environment"]))


class MetadataReader:
    """read_metadata + sha256 once per file. Nothing is opened before file_problem has passed it, and
    any exception while reading one file becomes an `unreadable` finding for that file alone."""

    def __init__(self, need_exposure: bool = True):
        self.cache: dict[Path, object] = {}
        self.levels: dict[Path, bool] = {}
        self.need_exposure = need_exposure       # False for --longs-only: a long as its own short needs none

    def __call__(self, path: Path, pair_id: str, findings: list[Finding]):
        if path in self.cache:
            return self.cache[path]
        meta, problem = None, file_problem(path, pair_id)
        if problem:
            findings.append(problem)
        else:
            try:
                read = rawmeta.read_metadata(path, need_exposure=self.need_exposure)
                if read.exposure_s is None:
                    findings.append(Finding(pair_id, shown(path), "no-exposure",
                                            "records no exposure time (a cinema camera or a converter's DNG?); "
                                            "kept as a long exposure standing as its own short, which needs none "
                                            "(a pair would)", "warning"))
                elif not read.exposure_s > 0:
                    raise rawmeta.UnreadableRaw(f"{shown(path)}: exposure time {read.exposure_s} is not positive; "
                                                f"{NOT_RAW_FIX}")
                read.sha256 = rawmeta.sha256_file(path)
                meta = read
            except rawmeta.UnreadableRaw as exc:
                findings.append(Finding(pair_id, shown(path), "unreadable", one_line(str(exc))))
            except Exception as exc:       # a reader's bug must not stop the scan of every other file
                findings.append(Finding(pair_id, shown(path), "unreadable",
                                        f"reading it failed ({type(exc).__name__}: {one_line(str(exc))}); "
                                        f"{NOT_RAW_FIX}"))
        self.cache[path] = meta
        return meta

    def usable(self, path: Path, pair_id: str, findings: list[Finding]) -> bool:
        """The file read and gave what a manifest row needs (levels, CFA, size); a finding once if not."""
        meta = self(path, pair_id, findings)
        if meta is None:
            return False
        if path not in self.levels:
            self.levels[path] = levels_known(meta, path, pair_id, findings)
            if self.levels[path] and getattr(meta, "pixel_problem", None):   # from the header: no decode
                findings.append(Finding(pair_id, shown(path), "no-pixel-data",
                                        f"{one_line(meta.pixel_problem)}; {NOT_RAW_FIX}"))
                self.levels[path] = False
        return self.levels[path]


NOT_RAW_FIX = "remove it from the folder or copy the original file from the camera again"


def one_line(text: str, limit: int = 300) -> str:
    """A message on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def build_rows(pairs: list[PairSpec], manifest_dir: Path, progress: Callable | None = None,
               read: MetadataReader | None = None) -> tuple[pd.DataFrame, list[Finding]]:
    """Read metadata of every pair's files into manifest rows; both files of a pair are checked, and
    a pair with an unusable file becomes findings instead of a row."""
    findings: list[Finding] = []
    read = read or MetadataReader()
    rows, used_ids = [], set()
    for spec in pairs:
        pair_id = spec.short.stem if spec.short.stem not in used_ids else relative_to(spec.short, manifest_dir)
        used_ids.add(pair_id)
        usable = [read.usable(path, pair_id, findings) for path in (spec.short, spec.long)]
        if progress:
            progress()
        if not all(usable):
            continue
        short, long = read(spec.short, pair_id, findings), read(spec.long, pair_id, findings)
        findings += pair_findings(pair_id, spec, short, long)
        rows.append({
            "pair_id": pair_id, "scene_id": spec.scene_id, "split": spec.split,
            "environment": spec.environment or "unknown",
            "short_path": relative_to(spec.short, manifest_dir), "long_path": relative_to(spec.long, manifest_dir),
            "short_exposure_s": seconds(short.exposure_s), "long_exposure_s": seconds(long.exposure_s),
            "ratio": 1.0 if spec.short == spec.long else float(long.exposure_s / short.exposure_s),
            "short_iso": short.iso, "long_iso": long.iso,
            "short_fnumber": short.fnumber, "long_fnumber": long.fnumber,
            "camera": long.camera, "cfa": long.cfa,
            "black_level": " ".join(f"{b:g}" for b in long.black_level),
            "white_level": int(long.white_level), "width": int(long.width), "height": int(long.height),
            "short_sha256": short.sha256, "long_sha256": long.sha256,
            "short_camera": body(short), "long_camera": body(long),
            "short_sources": sources_text(short), "long_sources": sources_text(long),
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS) + list(EXTRA_COLUMNS)) if rows else empty_rows()
    return df, findings


def seconds(exposure) -> float | None:
    """An exposure time as a manifest cell: seconds, or None (empty) where the file records none."""
    return None if exposure is None else float(exposure)


# beyond the schema: each file's body (camera + serial: validate finds camera-mismatch again from
# them) and where each value came from
EXTRA_COLUMNS = ("short_camera", "long_camera", "short_sources", "long_sources")


def sources_text(meta) -> str:
    """Where each value came from, grouped: 'exif: exposure_s iso ... | dng-tags: cfa black_level ...'."""
    groups: dict[str, list[str]] = {}
    for name, source in meta.sources.items():
        groups.setdefault(source, []).append(name)
    return " | ".join(f"{source}: {' '.join(names)}" for source, names in groups.items())


def levels_known(meta, path: Path, pair_id: str, findings: list[Finding]) -> bool:
    """True when the raw gave its CFA, levels and size; else a finding (a manifest row needs them)."""
    missing = [name for name in ("cfa", "black_level", "white_level", "width", "height")
               if getattr(meta, name) in (None, "")]
    if missing:
        findings.append(Finding(pair_id, str(path), "no-pixel-data",
                                f"{', '.join(missing)} could not be read from the raw (pixel data stripped "
                                "or not a CFA raw); re-copy the file from the card"))
    return not missing


def cfa_mismatch(short_cfa: str, long_cfa: str) -> str:
    """The message of a `cfa-mismatch` (scan and validate say it alike)."""
    return (f"the short's colour filter is {short_cfa}, its long's {long_cfa}: the two do not line up colour for colour (another body, or a file converted or cropped by other software): drop the pair, or copy both originals from the camera")


def pair_findings(pair_id: str, spec: PairSpec, short, long) -> list[Finding]:
    """Defects visible in the metadata of one pair's two files."""
    out = []
    files = ((long, spec.long),) if spec.short == spec.long else ((short, spec.short), (long, spec.long))
    for meta, path in files:     # a long standing as its own short (--longs-only): its findings once
        for text in getattr(meta, "disagreements", []) or []:
            out.append(Finding(pair_id, str(path), "metadata-disagreement", text))
        expected = (spec.expected_sha or {}).get(path)
        if expected and str(expected).strip().lower() != meta.sha256:     # hex digits in any case
            out.append(Finding(pair_id, str(path), "checksum-mismatch",
                               "file changed since capture (sha256 differs from captures.jsonl)"))
        written = exposure_from_name(path.name)
        if written and meta.exposure_s and not name_agrees(written, float(meta.exposure_s)):
            out.append(Finding(pair_id, str(path), "name-exif-mismatch",
                               f"name says {written} s, EXIF says {float(meta.exposure_s):.6g} s; EXIF is used"))
    if short.camera != long.camera or (short.serial and long.serial and short.serial != long.serial):
        out.append(Finding(pair_id, str(spec.short), "camera-mismatch",
                           f"short from {body(short)!r}, long from {body(long)!r}; a pair needs one body "
                           "(both are kept in the manifest's short_camera and long_camera)"))
    if (short.width, short.height) != (long.width, long.height):
        out.append(Finding(pair_id, str(spec.short), "size-mismatch",
                           f"short {short.width}x{short.height}, long {long.width}x{long.height}; a pair needs one "
                           "sensor size: drop the pair, or copy both originals from the camera"))
    if short.cfa != long.cfa:
        out.append(Finding(pair_id, str(spec.short), "cfa-mismatch", cfa_mismatch(short.cfa, long.cfa)))
    return out


def no_pairs(dataset: Path, convention: str, findings: list[Finding], longs_only: bool = False) -> Finding:
    """The `no-pairs` error: which conventions were looked for and what was found."""
    seen = {"log": f"read {LOG_NAME}", "folders": "read short/ and long/ folders",
            "card": "read it as a card dump"}[convention]
    what = "no long exposure" if longs_only else "no short/long pair"
    return Finding("", shown(dataset), "no-pairs",
                   f"{what} found ({seen}; {len(findings)} other finding(s)); scan looks for "
                   f"{CONVENTIONS}: see docs/curate.md")


def scan_dataset(dataset: str | os.PathLike, manifest_dir: str | os.PathLike | None = None,
                 labels: dict[str, str] | None = None, progress: Callable | None = None,
                 test: float = 0.2, val: float = 0.1, seed: int = 0,
                 scene_gap: float = SCENE_GAP_S, longs_only: bool = False) -> tuple[pd.DataFrame, list[Finding]]:
    """Manifest rows for a dataset folder, with a default scene split, and every finding on the way.
    No pair at all: an empty frame and a `no-pairs` error finding (write no manifest then).

    ``longs_only``: one row per long exposure standing as its own short (short_* = long_*, ratio 1,
    pair_id the long's stem): a manifest for `train run --synthetic` (curate.manifest.is_longs_only)."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise SidkitError(f"{dataset}: no such dataset folder")
    read = MetadataReader(need_exposure=not longs_only)
    convention, pairs, findings, _ = find_pairs(dataset, read, scene_gap, longs_only)
    for spec in pairs:
        if labels and spec.scene_id in labels:
            spec.environment = labels[spec.scene_id]
    df, more = build_rows(pairs, Path(manifest_dir or dataset), progress, read)
    findings += more
    if len(df):
        df = assign_splits(df, test=test, val=val, seed=seed)
    else:
        findings.append(no_pairs(dataset, convention, findings, longs_only))
    return df, findings


def scan_scenes(dataset: str | os.PathLike, scene_gap: float = SCENE_GAP_S, longs_only: bool = False
                ) -> tuple[list[Shot], list[Finding]]:
    """Every shot scan would use, with its scene and role, in capture-time order (for --show-scenes)."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise SidkitError(f"{dataset}: no such dataset folder")
    read = MetadataReader(need_exposure=not longs_only)
    _, pairs, findings, shots = find_pairs(dataset, read, scene_gap, longs_only)
    if shots is None:                      # log or folders: the files of the pairs found
        shots, seen = [], set()
        for spec in pairs:
            for role, path in (("long", spec.long), ("short", spec.short)):
                meta = read(path, "", findings) if path not in seen else None
                seen.add(path)
                if meta is not None:
                    seconds, when = capture_time(meta.captured_at)
                    shots.append(Shot(path, seconds, when, meta.exposure_s, meta.iso, meta.fnumber, body(meta),
                                      spec.scene_id, role))
    start: dict[str, float] = {}
    for shot in shots:
        start[shot.scene] = min(start.get(shot.scene, float("inf")), shot.time if shot.time is not None else float("inf"))
    order = lambda s: (start[s.scene], s.scene, s.time is None, s.time or 0, s.path.name)
    return sorted(shots, key=order), findings
