"""`curate import-sid`: the original SID dataset's list files into a manifest.

A list line is `./Sony/short/00001_00_0.1s.ARW ./Sony/long/00001_00_10s.ARW ISO200 F8`. Exposures come
from EXIF; the exposure written in each file name is only compared (`name-exif-mismatch`). The split
comes from the list file's name (train/val/test), else from the scene id's first digit
(0 train, 1 test, 2 val, as the original code). SID's conventions (curate/sidrules.py): the three
misaligned Sony scenes are `excluded` findings, left out on request; the paper's test set is burst 00.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from .common.errors import SidkitError
from .files import shown
from .findings import Finding
from .scan import PairSpec, build_rows, is_raw_name, scene_id_from_name
from .sidrules import excluded_finding, excluded_findings, in_paper_test_set, is_misaligned

DIGIT_SPLIT = {"0": "train", "1": "test", "2": "val"}


def split_from_list_name(name: str) -> str | None:
    for split in ("train", "val", "test"):
        if re.search(rf"(^|[_\-.]){split}([_\-.]|$)", Path(name).stem.lower()):
            return split
    return None


def parse_list(list_file: Path, root: Path) -> tuple[list[PairSpec], list[Finding]]:
    """A pair with its split for every line of one list file; malformed lines become findings.
    Files are only named here: build_rows checks each before opening it."""
    if not list_file.is_file():                 # is_file: a FIFO is refused here, never opened
        raise SidkitError(f"{shown(list_file)}: no such list file")
    list_split = split_from_list_name(list_file.name)
    out, findings = [], []
    # bytes that are not UTF-8 stay as they are (surrogateescape), so that such a name is reported as one
    text = list_file.read_bytes().decode("utf-8", "surrogateescape")
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not all(is_raw_name(f) for f in fields[:2]):
            findings.append(Finding("", f"{shown(list_file)}:{number}", "unreadable",
                                    f"line {number} is not 'SHORT LONG [ISOnnn Fnn]' with two raw file paths"))
            continue
        short, long = (root / f for f in fields[:2])
        scene = scene_id_from_name(short)
        split = list_split or DIGIT_SPLIT.get(scene[:1], "train")
        out.append(PairSpec(scene, "unknown", short, long, split=split))
    return out, findings


def import_sid(list_files, root: str | os.PathLike, manifest_dir: str | os.PathLike,
               labels: dict[str, str] | None = None, progress: Callable | None = None,
               exclude_misaligned: bool = False, paper_test_set: bool = False
               ) -> tuple[pd.DataFrame, list[Finding]]:
    """Manifest rows for the pairs the list files name; none readable: a `no-pairs` error finding.

    Pairs of the misaligned Sony scenes get `excluded` warnings (``exclude_misaligned``: and are
    left out, unread); ``paper_test_set`` keeps only burst 00 of the test split (train and val whole)."""
    root = Path(root)
    if not root.is_dir():
        raise SidkitError(f"{root}: no such folder; --root is the folder the list's ./Sony/... paths start from")
    entries, findings = [], []
    for list_file in list_files:
        more_entries, more = parse_list(Path(list_file), root)
        entries += more_entries
        findings += more
    seen, pairs = set(), []
    for spec in entries:
        if (spec.short, spec.long) in seen:
            continue
        seen.add((spec.short, spec.long))
        if labels and spec.scene_id in labels:
            spec.environment = labels[spec.scene_id]
        if paper_test_set and not in_paper_test_set(spec.split, spec.short):
            continue
        if exclude_misaligned and is_misaligned(spec.scene_id, spec.short):
            findings.append(excluded_finding(spec.short.stem, shown(spec.short), spec.scene_id, left_out=True))
            continue
        pairs.append(spec)
    df, more = build_rows(pairs, Path(manifest_dir), progress)
    findings += more + excluded_findings(df)
    if not len(df):
        findings.append(Finding("", ", ".join(map(shown, list_files)), "no-pairs",
                                f"no readable pair in {len(pairs)} listed ({len(findings)} other finding(s)); "
                                "import-sid looks for SID list lines like ./Sony/short/00001_00_0.1s.ARW "
                                "./Sony/long/00001_00_10s.ARW ISO200 F8, with paths under --root; for a folder "
                                "of raws use `curate scan`"))
    return df, findings
