"""`curate validate`: every defect of a manifest, from its rows, its files and (unless fast) its pixels."""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import replace
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

import math

import pandas as pd

from . import rawmeta
from .carddump import body
from .exposure import RATIO_MAX, RATIO_MIN, exposure_from_name, name_agrees
from .files import file_problem
from .findings import Finding
from .scan import cfa_mismatch
from .manifest import Manifest, black_levels, formula_cells, is_longs_only, path_findings, value_problems
from .rawfile import shown
from .sidrules import excluded_findings

UNBALANCED_SHARE = 0.75   # a split whose indoor or outdoor share of scenes exceeds this is unbalanced
BLACK_TOLERANCE_DN = 2    # a short's black level may differ this much from the row's (its long's): LibRaw
                          # measures some bodies' black from masked pixels, a DN or two apart between shots


def row_findings(row, min_ratio: float = RATIO_MIN, max_ratio: float = RATIO_MAX,
                 longs_only: bool = False) -> list[Finding]:
    """Defects visible in one manifest row alone; a row with an impossible value (``bad-value``,
    which read_manifest refuses) gets only those, since the other checks divide by its values.
    ``longs_only`` (a row of a longs-only manifest): none of the checks that compare short and long."""
    out, pid = [], row.pair_id
    for column in formula_cells(row):
        out.append(Finding(pid, row.short_path, "formula-cell",
                           f"column {column!r} starts with {str(getattr(row, column))[:1]!r}: a spreadsheet "
                           "would run it as a formula if the manifest is opened in one; rename it"))
    problems = value_problems(row)
    for columns, message in problems:
        out.append(Finding(pid, row.short_path, "bad-value", f"column {columns.replace(' ', ', ')}: {message}"))
    if problems:
        return out
    if longs_only:
        written = exposure_from_name(row.long_path)
        if written and not name_agrees(written, row.long_exposure_s):
            out.append(Finding(pid, row.long_path, "name-exif-mismatch",
                               f"name says {written} s, EXIF says {row.long_exposure_s:.6g} s; EXIF is used"))
        return out
    if not (min_ratio <= row.ratio <= max_ratio):
        out.append(Finding(pid, row.short_path, "ratio-out-of-range",
                           f"exposure ratio {row.ratio:.4g} is outside {min_ratio:g}-{max_ratio:g}; "
                           "reshoot with `capture pair --ratio 250` or drop the pair"))
    if pd.notna(row.short_iso) and pd.notna(row.long_iso) and row.short_iso != row.long_iso:
        out.append(Finding(pid, row.short_path, "iso-mismatch",
                           f"short ISO {row.short_iso:g}, long ISO {row.long_iso:g}; shoot both at one ISO"))
    if pd.notna(row.short_fnumber) and pd.notna(row.long_fnumber) and row.short_fnumber != row.long_fnumber:
        out.append(Finding(pid, row.short_path, "fnumber-mismatch",
                           f"short f/{row.short_fnumber:g}, long f/{row.long_fnumber:g}; lock the aperture"))
    short_camera, long_camera = getattr(row, "short_camera", ""), getattr(row, "long_camera", "")
    if short_camera and long_camera and short_camera != long_camera:
        out.append(Finding(pid, row.short_path, "camera-mismatch",
                           f"short from {short_camera}, long from {long_camera}; pair shots of one body"))
    for path, exposure in ((row.short_path, row.short_exposure_s), (row.long_path, row.long_exposure_s)):
        written = exposure_from_name(path)
        if written and not name_agrees(written, exposure):
            out.append(Finding(pid, path, "name-exif-mismatch",
                               f"name says {written} s, EXIF says {exposure:.6g} s; EXIF is used"))
    return out


def file_findings(manifest: Manifest, progress: Callable | None = None, longs_only: bool = False,
                  digests: dict | None = None, against_metadata: bool = False) -> list[Finding]:
    """Missing files, changed checksums and one file used twice (``longs_only``: the long of each row);
    ``against_metadata``: also the values of a row that its files' metadata contradict
    (`manifest_contradictions`; not for a changed file). Each file is hashed and its metadata read once; ``digests``
    (resolved path -> sha256) is filled for split_findings."""
    out, by_sha, metas = [], {}, {}
    digests = {} if digests is None else digests
    for row in manifest.rows.itertuples():
        for role in ("long",) if longs_only else ("short", "long"):
            rel, expected = getattr(row, f"{role}_path"), getattr(row, f"{role}_sha256")
            path = manifest.resolve(rel)
            problem = file_problem(path, row.pair_id)    # stat alone: missing, too long for the OS, a FIFO...
            if problem is not None:
                out.append(replace(problem, path=rel))
                continue
            key = path.resolve()
            try:
                digest = digests[key] = digests.get(key) or rawmeta.sha256_file(key)
            except rawmeta.UnreadableRaw as exc:     # a FIFO, device or directory: never read
                out.append(Finding(row.pair_id, rel, "unreadable", str(exc).removeprefix(f"{shown(key)}: ")))
                continue
            changed = bool(expected) and digest != expected
            if changed:
                out.append(Finding(row.pair_id, rel, "checksum-mismatch",
                                   "file content changed since the manifest was written; re-scan"))
            by_sha.setdefault(digest, set()).add(str(key))
            if changed or not against_metadata:      # a changed file: that one error says re-scan
                continue
            if key not in metas:       # a long standing as its own short needs no exposure time (--longs-only)
                metas[key] = _read_meta(key, need_exposure=row.short_path != row.long_path)
            meta = metas[key]
            if isinstance(meta, str):
                out.append(Finding(row.pair_id, rel, "unreadable", meta))
                continue
            for column, stated, found in manifest_contradictions(row, role, meta):
                line = row.Index + 1
                out.append(Finding(row.pair_id, rel, "manifest-file-mismatch",
                                   f"row {line} (line {line + 2}), column {column!r}: the manifest says {stated}, "
                                   f"the file says {found}; re-scan the dataset (`curate scan`) or fix the cell"))
            out += [Finding(row.pair_id, rel, code, message) for code, message in header_level_findings(meta)]
        files = [metas.get(manifest.resolve(getattr(row, f"{r}_path")).resolve()) for r in ("short", "long")]
        if (not longs_only and all(isinstance(m, rawmeta.RawMeta) and m.cfa and not m.pixel_problem for m in files)
                and files[0].cfa != files[1].cfa):    # a corrupt pattern is the pixel checks' `unreadable`
            out.append(Finding(row.pair_id, row.short_path, "cfa-mismatch", cfa_mismatch(files[0].cfa, files[1].cfa)))
        if progress:
            progress()
    for paths in by_sha.values():
        if len(paths) > 1:
            names = sorted(paths)
            out.append(Finding("", names[1], "duplicate-file",
                               f"same content as {names[0]}; a copied file is not a new exposure"))
    return out


def _read_meta(path, need_exposure: bool = True) -> rawmeta.RawMeta | str:
    """The file's metadata, or why it cannot be read (the message of an `unreadable` finding)."""
    try:
        return rawmeta.read_metadata(path, need_exposure=need_exposure)
    except rawmeta.UnreadableRaw as exc:
        return str(exc).removeprefix(f"{shown(path)}: ")
    except Exception as exc:               # a reader's bug on one file: its finding, the others go on
        return f"reading its metadata failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); re-scan"


def manifest_contradictions(row, role: str, meta: rawmeta.RawMeta) -> list[tuple[str, str, str]]:
    """(column, manifest value, file value) for each value of ``row`` that the ``role`` file's
    metadata contradicts: camera, size, CFA, levels (the row's, read from its long) and the file's own
    exposure, ISO, f-number and body. A value the file does not give is not compared."""
    out = []

    def differ(column, stated, found, same):
        if found is not None and found != "" and not _missing(stated) and not same(stated, found):
            out.append((column, _shown(stated), _shown(found)))

    differ("camera", row.camera, meta.camera, _same_text)
    stated_body = getattr(row, f"{role}_camera", "")
    if isinstance(stated_body, str) and stated_body:
        differ(f"{role}_camera", stated_body, body(meta), _same_text)
    differ("width", row.width, meta.width, _close)
    differ("height", row.height, meta.height, _close)
    if role == "long":                   # the row's CFA is its long's; a short's is compared with the long's file
        differ("cfa", row.cfa, meta.cfa, lambda a, b: str(a).upper() == str(b).upper())
    if meta.black_level:
        stated = black_levels(row.black_level)
        stated = stated * 4 if len(stated) == 1 else stated
        tolerance = BLACK_TOLERANCE_DN if role == "short" else 0.01     # the row's levels are its long's
        if len(stated) != len(meta.black_level) or any(
                abs(a - float(b)) > tolerance for a, b in zip(stated, meta.black_level)):
            out.append(("black_level", repr(str(row.black_level)), repr(" ".join(f"{b:g}" for b in meta.black_level))))
    differ("white_level", row.white_level, meta.white_level, _close)
    differ(f"{role}_exposure_s", getattr(row, f"{role}_exposure_s"),
           float(meta.exposure_s) if meta.exposure_s else None, _close)
    differ(f"{role}_iso", getattr(row, f"{role}_iso"), meta.iso, _close)
    differ(f"{role}_fnumber", getattr(row, f"{role}_fnumber"), meta.fnumber, _close)
    return out


def header_level_findings(meta: rawmeta.RawMeta) -> list[tuple[str, str]]:
    """(code, message) for levels a file's header cannot back (`bad-levels`): a BitsPerSample its
    uncompressed strips contradict, a white level above what its BitsPerSample allows, a level entry that is no level, no WhiteLevel on 16-bit samples
    (the default 65535 fits no 12- or 14-bit sensor); and a level it does not state otherwise
    (`level-unstated`: the DNG default is used; the pixel checks say where the pixels contradict it)."""
    out, bits = [], meta.bits_per_sample
    if meta.bits_problem:
        out.append(("bad-levels", f"{meta.bits_problem}: a wrong BitsPerSample entry, and every pixel decodes "
                    "wrongly; copy the original file or drop the pair"))
    if bits and meta.white_level and meta.white_level > (1 << bits) - 1:
        out.append(("bad-levels", f"white level {meta.white_level} is above what its BitsPerSample {bits} allows "
                    f"({(1 << bits) - 1}): a wrong BitsPerSample or WhiteLevel entry, and its pixels decode "
                    "wrongly; copy the original file or drop the pair"))
    for name, how in meta.unstated_levels.items():
        entry, used = ("BlackLevel", meta.black_level) if name == "black_level" else ("WhiteLevel", meta.white_level)
        used = "none" if used is None else " ".join(f"{v:g}" for v in used) if isinstance(used, list) else f"{used:g}"
        if how == "unusable":
            out.append(("bad-levels", f"its {entry} entry is not a usable level (read instead: {used}); "
                        "copy the original file or drop the pair"))
        elif name == "white_level" and (bits or 16) >= 16:
            out.append(("bad-levels", f"it states no WhiteLevel: the DNG default {used} (16 bits) is used, which "
                        "12- or 14-bit data never reach (they would train 4-16x too dark); copy the original "
                        "file or drop the pair"))
        else:
            out.append(("level-unstated", f"it states no {entry}: the DNG default {used} is used; check it against "
                        "the camera's (`curate inspect`) before training on it"))
    return out


def _same_text(a, b) -> bool:
    return str(a).strip() == str(b).strip()


def _close(a, b) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-6)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) or value == ""


def _shown(value) -> str:
    """A value for a message: numbers as '%g', text quoted."""
    if isinstance(value, str):
        return repr(value)
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return repr(value)


def scene_key(scene_id) -> str:
    """A scene id as compared across rows: case and whitespace do not make another scene."""
    return " ".join(str(scene_id).split()).casefold()


def split_findings(manifest: Manifest, digests: dict | None = None) -> list[Finding]:
    """A scene in two splits (scene ids compared by `scene_key`; a warning where ids differ only by
    case or whitespace); one file in two splits under different scenes (the same checksum, from
    ``digests`` (resolved path -> sha256) or the manifest, else the same resolved path); a split far
    from half indoor, half outdoor."""
    out = []
    df = manifest.rows.assign(normalised_scene=manifest.rows["scene_id"].map(scene_key))
    for names in df.groupby("normalised_scene")["scene_id"].unique():
        if len(names) > 1:
            shown_names = ", ".join(repr(n) for n in sorted(names))
            out.append(Finding("", str(names[0]), "scene-id-variant",
                               f"scene ids {shown_names} differ only by case or spaces and count as one scene; "
                               "write them alike in the manifest"))
    for _, group in df.groupby("normalised_scene"):
        values = group["split"].unique()
        if len(values) > 1:
            scene = group["scene_id"].iloc[0]
            out.append(Finding("", scene, "split-leak",
                               f"scene {scene} is in {', '.join(sorted(values))}; run `curate split` again"))
    out += _file_leaks(manifest.with_rows(df), digests or {})
    scenes = df.drop_duplicates("normalised_scene")
    for split, group in scenes.groupby("split"):
        known = group[group["environment"].isin(["indoor", "outdoor"])]
        if len(known) < 2:
            continue
        share = (known["environment"] == "indoor").mean()
        # from 4 scenes on, a share far from half; below that, a split of one environment only
        limit = UNBALANCED_SHARE if len(known) >= 4 else 0.99
        if max(share, 1 - share) > limit:
            out.append(Finding("", split, "unbalanced-split",
                               f"{split}: {share:.0%} of {len(known)} scenes are indoor; aim for about half"))
    return out


def _file_leaks(manifest: Manifest, digests: dict) -> list[Finding]:
    """`split-leak` for a file (or a copy of it) used in two splits by rows of different scenes (one
    scene in two splits is reported as such)."""
    uses: dict[str, list] = {}
    for row in manifest.rows.itertuples():
        for role in ("short", "long"):
            rel = getattr(row, f"{role}_path")
            path = manifest.resolve(rel)
            key = digests.get(path.resolve()) or getattr(row, f"{role}_sha256") or str(path.resolve())
            uses.setdefault(key, []).append((row.split, row.normalised_scene, row.scene_id, row.pair_id, rel))
    out = []
    for found in uses.values():
        splits, scenes = {u[0] for u in found}, {u[1] for u in found}
        if len(splits) > 1 and len(scenes) > 1:
            first = {}
            for split, _, scene, pair_id, rel in found:
                first.setdefault(split, (scene, pair_id, rel))
            where = "; ".join(f"{split}: {rel} (scene {scene}, pair {pair_id})"
                              for split, (scene, pair_id, rel) in sorted(first.items()))
            out.append(Finding("", found[0][4], "split-leak",
                               f"the same file is in {len(first)} splits under other scene ids ({where}); "
                               "a copy under a new scene id still leaks: give them one scene id and run "
                               "`curate split` again, or drop one"))
    return out


def _pixel_job(args):
    from .pixelchecks import check_pair_pixels

    pair_id, short, long, kwargs, shown = args
    try:
        findings, _ = check_pair_pixels(short, long, pair_id=pair_id, **kwargs)
    except Exception as exc:   # one pair's failure is its finding; the pool goes on with the others
        text = " ".join(str(exc).split())[:300]
        findings = [Finding(pair_id, short, "unreadable",
                            f"pixel checks of this pair failed ({type(exc).__name__}: {text}); "
                            "run `curate inspect` on both files, re-scan or drop the pair")]
    # report paths as the manifest writes them
    return [replace(f, path=shown.get(f.path, f.path)) for f in findings]


def _long_job(args):
    """_pixel_job for a row of a longs-only manifest: its long alone."""
    from .pixelchecks import check_long_pixels

    pair_id, _, long, kwargs, shown = args
    try:
        findings = check_long_pixels(long, pair_id=pair_id, **kwargs)
    except Exception as exc:
        text = " ".join(str(exc).split())[:300]
        findings = [Finding(pair_id, long, "unreadable", f"pixel checks of this file failed ({type(exc).__name__}: "
                            f"{text}); run `curate inspect` on it, re-scan or drop the row")]
    return [replace(f, path=shown.get(f.path, f.path)) for f in findings]


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool (no traceback from every worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def pixel_findings(manifest: Manifest, workers: int = 0, progress: Callable | None = None,
                   longs_only: bool = False) -> list[Finding]:
    """The pixel checks of every pair, in a spawn pool (rawpy uses OpenMP, which fork breaks);
    ``longs_only``: of every row's long alone (check_long_pixels)."""
    jobs = []
    for row in manifest.rows.itertuples():
        short, long = manifest.resolve(row.short_path), manifest.resolve(row.long_path)
        if file_problem(short) or file_problem(long):  # missing, too long, not a file: file_findings says so
            continue
        shown = {str(short): row.short_path, str(long): row.long_path}
        levels = dict(black_level=black_levels(row.black_level), white_level=row.white_level, cfa=row.cfa)
        pair = {} if longs_only else dict(
            exif_ratio=row.ratio, iso_short=row.short_iso, iso_long=row.long_iso,
            fnumber_short=row.short_fnumber, fnumber_long=row.long_fnumber)
        jobs.append((row.pair_id, str(short), str(long), {**pair, **levels}, shown))
    job = _long_job if longs_only else _pixel_job
    # a pool costs about a second to start (spawn imports numpy, skimage, rawpy): on 2 cores at
    # 2048x1536 it broke even at 12 pairs and gained 1.57x at 40 (bench/bench_validate.py)
    workers = workers or (min(len(jobs), os.cpu_count() or 1) if len(jobs) >= 16 else 1)
    out = []
    if workers <= 1:
        for one in jobs:
            out += job(one)
            if progress:
                progress()
        return out
    # OpenBLAS threads spin in skimage's small products and steal the other workers' cores
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    for findings in pool_map(job, jobs, workers, _crashed_job):
        out += findings
        if progress:
            progress()
    return out


def _crashed_job(job) -> list[Finding]:
    pair_id, short, _, _, shown = job
    return [Finding(pair_id, shown.get(short, short), "unreadable",
                    "the raw decoder crashed on this pair (its worker process died); run `curate inspect` "
                    "on both files, copy them again or drop the pair")]


def pool_map(func: Callable, jobs: list, workers: int, crashed: Callable):
    """func(job) for every job in a spawn pool, in order. A worker that dies (a decoder crash on
    one file) breaks the pool: the jobs not done yet then run one pool each, and the one that
    kills its worker again gives crashed(job) instead of its result."""
    context = multiprocessing.get_context("spawn")
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint) as pool:
            for result in pool.map(func, jobs):
                done += 1
                yield result
    except BrokenProcessPool:
        for job in jobs[done:]:
            with ProcessPoolExecutor(1, mp_context=context, initializer=_ignore_sigint) as pool:
                try:
                    result = pool.submit(func, job).result()
                except BrokenProcessPool:
                    result = crashed(job)
            yield result


def validate_manifest(manifest: Manifest, fast: bool = False, min_ratio: float = RATIO_MIN,
                      max_ratio: float = RATIO_MAX, workers: int = 0,
                      progress: Callable | None = None) -> list[Finding]:
    """Every finding for a manifest (curate.manifest.read_manifest). A longs-only manifest
    (curate.manifest.is_longs_only) gets one `longs-only` warning and no check that compares two shots."""
    df = manifest.rows
    longs_only = is_longs_only(df)
    findings = [longs_only_finding(manifest)] if longs_only else []
    for row in df.itertuples():
        findings += row_findings(row, min_ratio, max_ratio, longs_only)
    digests: dict = {}
    files = file_findings(manifest, progress, longs_only, digests, against_metadata=True)
    findings += split_findings(manifest, digests)
    findings += path_findings(manifest)
    findings += excluded_findings(df)
    findings += files
    if not fast:
        # a file whose metadata is unreadable gets one `unreadable` finding for its pair, not two
        said = {(f.pair_id, f.path) for f in files if f.code == "unreadable"}
        findings += [f for f in pixel_findings(manifest, workers, progress, longs_only)
                     if not (f.code == "unreadable" and (f.pair_id, f.path) in said)]
    return findings


def longs_only_finding(manifest: Manifest) -> Finding:
    """The one `longs-only` warning of a manifest whose every short is its long."""
    name = str(manifest.path or "MANIFEST")
    return Finding("", name, "longs-only",
                   f"{len(manifest.rows)} long exposure(s), each its own short (ratio 1): no real short to learn "
                   f"from, so the checks that compare a short with its long are skipped; train with `train run {name} "
                   "--synthetic PROFILE` (a profile from `curate noise-profile`; see docs/train.md)")


def without_error_pairs(df: pd.DataFrame, findings) -> pd.DataFrame:
    """The manifest less every pair that an error or an `excluded` finding names."""
    bad = {f.pair_id for f in findings if (f.severity == "error" or f.code == "excluded") and f.pair_id}
    return df[~df["pair_id"].isin(bad)]
