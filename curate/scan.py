"""`curate scan`: a dataset folder (capture log or folder convention) into manifest rows + findings.

Pairing:
- with `<dataset>/captures.jsonl`: every short of a scene is paired with the scene's first long;
- otherwise the folder convention: raw files under a `short/` or `long/` folder, the scene id is
  the file name up to the first underscore (`00001_00_0.1s.ARW` -> `00001`), and an `indoor/` or
  `outdoor/` folder anywhere above gives the environment.
`--labels FILE.csv` (scene_id,environment) overrides environments either way.
Exposure, ISO, aperture and camera come from EXIF, never from names; levels, CFA and size from the raw.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import rawmeta
from .capturelog import LOG_NAME, read_log
from .errors import SidkitError
from .exposure import exposure_from_name, name_agrees
from .findings import Finding
from .manifest import COLUMNS, ENVIRONMENTS, empty_manifest, relative_to
from .split import assign_splits

RAW_EXTENSIONS = {".dng", ".arw", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".raf", ".rw2", ".orf",
                  ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".mos", ".raw", ".x3f"}


def is_raw_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RAW_EXTENSIONS


@dataclass
class PairSpec:
    """One short/long pair before metadata is read."""
    scene_id: str
    environment: str
    short: Path
    long: Path
    expected_sha: dict | None = None   # path -> sha256 recorded by capture
    split: str = ""


def pairs_from_log(dataset: Path) -> tuple[list[PairSpec], list[Finding]]:
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


def pairs_from_folders(dataset: Path) -> tuple[list[PairSpec], list[Finding]]:
    findings, longs, shorts = [], {}, []
    for root, dirs, files in os.walk(dataset):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            role, env = _role_and_env(path.relative_to(dataset))
            if role is None or name.startswith("."):
                continue
            if not is_raw_name(path):
                findings.append(Finding("", str(path), "not-raw",
                                        f"{path.suffix or 'no extension'} is not a raw format; move it out of {role}/"))
                continue
            scene = scene_id_from_name(path)
            if role == "long":
                if scene in longs:
                    findings.append(Finding("", str(path), "duplicate-file",
                                            f"scene {scene} has a second long exposure; {longs[scene][0].name} is used"))
                    continue
                longs[scene] = (path, env)
            else:
                shorts.append((scene, path, env))
    pairs = []
    for scene, short, env in shorts:
        if scene not in longs:
            findings.append(Finding("", str(short), "unpaired",
                                    f"no long exposure named {scene}_* in a long/ folder"))
            continue
        pairs.append(PairSpec(scene, env if env != "unknown" else longs[scene][1], short, longs[scene][0]))
    return pairs, findings


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """scene_id,environment CSV -> {scene_id: environment}."""
    try:
        labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SidkitError(f"{path}: cannot read labels ({exc}); give a CSV with columns scene_id,environment")
    if not {"scene_id", "environment"} <= set(labels.columns):
        raise SidkitError(f"{path}: labels need columns scene_id,environment")
    bad = labels[~labels["environment"].isin(ENVIRONMENTS)]
    if len(bad):
        raise SidkitError(f"{path}: row {bad.index[0] + 1}: environment {bad.iloc[0]['environment']!r} "
                          f"is not one of {', '.join(ENVIRONMENTS)}")
    return dict(zip(labels["scene_id"], labels["environment"]))


class MetadataReader:
    """read_metadata + sha256 once per file; failures become findings."""

    def __init__(self):
        self.cache: dict[Path, object] = {}

    def __call__(self, path: Path, pair_id: str, findings: list[Finding]):
        if path in self.cache:
            return self.cache[path]
        meta = None
        if not path.exists():
            findings.append(Finding(pair_id, str(path), "missing-file", "file does not exist; restore it or re-scan"))
        else:
            try:
                meta = rawmeta.read_metadata(path)
                meta.sha256 = rawmeta.sha256_file(path)
            except rawmeta.UnreadableRaw as exc:
                findings.append(Finding(pair_id, str(path), "unreadable", str(exc)))
        self.cache[path] = meta
        return meta


def build_rows(pairs: list[PairSpec], manifest_dir: Path, progress: Callable | None = None
               ) -> tuple[pd.DataFrame, list[Finding]]:
    """Read metadata of every pair's files into manifest rows; unreadable pairs become findings."""
    findings: list[Finding] = []
    read = MetadataReader()
    rows, used_ids = [], set()
    for spec in pairs:
        pair_id = spec.short.stem if spec.short.stem not in used_ids else relative_to(spec.short, manifest_dir)
        used_ids.add(pair_id)
        short, long = read(spec.short, pair_id, findings), read(spec.long, pair_id, findings)
        if progress:
            progress()
        if short is None or long is None or not (levels_known(short, spec.short, pair_id, findings)
                                                 and levels_known(long, spec.long, pair_id, findings)):
            continue
        findings += pair_findings(pair_id, spec, short, long)
        rows.append({
            "pair_id": pair_id, "scene_id": spec.scene_id, "split": spec.split,
            "environment": spec.environment or "unknown",
            "short_path": relative_to(spec.short, manifest_dir), "long_path": relative_to(spec.long, manifest_dir),
            "short_exposure_s": float(short.exposure_s), "long_exposure_s": float(long.exposure_s),
            "ratio": float(long.exposure_s / short.exposure_s),
            "short_iso": short.iso, "long_iso": long.iso,
            "short_fnumber": short.fnumber, "long_fnumber": long.fnumber,
            "camera": long.camera, "cfa": long.cfa,
            "black_level": " ".join(f"{b:g}" for b in long.black_level),
            "white_level": int(long.white_level), "width": int(long.width), "height": int(long.height),
            "short_sha256": short.sha256, "long_sha256": long.sha256,
            "short_sources": sources_text(short), "long_sources": sources_text(long),
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS) + list(SOURCE_COLUMNS)) if rows else empty_manifest()
    return df, findings


SOURCE_COLUMNS = ("short_sources", "long_sources")


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


def pair_findings(pair_id: str, spec: PairSpec, short, long) -> list[Finding]:
    """Defects visible in the metadata of one pair's two files."""
    out = []
    for meta, path in ((short, spec.short), (long, spec.long)):
        for text in getattr(meta, "disagreements", []) or []:
            out.append(Finding(pair_id, str(path), "metadata-disagreement", text))
        expected = (spec.expected_sha or {}).get(path)
        if expected and expected != meta.sha256:
            out.append(Finding(pair_id, str(path), "checksum-mismatch",
                               "file changed since capture (sha256 differs from captures.jsonl)"))
        written = exposure_from_name(path.name)
        if written and meta.exposure_s and not name_agrees(written, float(meta.exposure_s)):
            out.append(Finding(pair_id, str(path), "name-exif-mismatch",
                               f"name says {written} s, EXIF says {float(meta.exposure_s):.6g} s; EXIF is used"))
    if short.camera != long.camera:
        out.append(Finding(pair_id, str(spec.short), "camera-mismatch",
                           f"short from {short.camera!r}, long from {long.camera!r}"))
    if (short.width, short.height, short.cfa) != (long.width, long.height, long.cfa):
        out.append(Finding(pair_id, str(spec.short), "size-mismatch",
                           f"short {short.width}x{short.height} {short.cfa}, long {long.width}x{long.height} {long.cfa}"))
    return out


def scan_dataset(dataset: str | os.PathLike, manifest_dir: str | os.PathLike | None = None,
                 labels: dict[str, str] | None = None, progress: Callable | None = None,
                 test: float = 0.2, val: float = 0.1, seed: int = 0) -> tuple[pd.DataFrame, list[Finding]]:
    """Manifest rows for a dataset folder, with a default scene split, and every finding on the way."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise SidkitError(f"{dataset}: no such dataset folder")
    has_log = (dataset / LOG_NAME).exists()
    pairs, findings = (pairs_from_log if has_log else pairs_from_folders)(dataset)
    if not pairs and not findings:
        raise SidkitError(f"{dataset}: found no {LOG_NAME} and no raw files under short/ and long/ folders; "
                          "see docs/curate.md for the folder convention")
    for spec in pairs:
        if labels and spec.scene_id in labels:
            spec.environment = labels[spec.scene_id]
    df, more = build_rows(pairs, Path(manifest_dir or dataset), progress)
    if len(df):
        df = assign_splits(df, test=test, val=val, seed=seed)
    return df, findings + more
