"""Findings: what `curate validate`, `scan` and `import-sid` report, as a table or JSON."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

# Codes are part of the on-disk contract: extend, never rename.
CODES = {
    "ratio-out-of-range": "error",
    "name-exif-mismatch": "error",
    "iso-mismatch": "warning",
    "fnumber-mismatch": "warning",
    "camera-mismatch": "error",
    "size-mismatch": "error",
    "cfa-mismatch": "error",         # short and long with different colour filter patterns
    "missing-file": "error",
    "unreadable": "error",
    "checksum-mismatch": "error",
    "measured-ratio-mismatch": "error",
    "misaligned": "error",
    "clipped": "warning",
    "too-dark": "warning",
    "split-leak": "error",
    "unbalanced-split": "warning",
    "duplicate-file": "error",
    "no-pixel-data": "error",
    "metadata-disagreement": "warning",
    "unpaired": "warning",
    "not-raw": "error",
    "no-pairs": "error",
    "bracket": "warning",
    # calibration frames (`curate noise-profile`)
    "dark-light-leak": "error",
    "flat-saturated": "warning",
    "flat-too-dark": "warning",
    "too-few-flat-levels": "error",
    "missing-calibration": "error",
    "bad-value": "error",            # a manifest cell that cannot be true (zero exposure, empty id)
    "formula-cell": "warning",       # a text cell a spreadsheet would run (=, +, -, @ first)
    "path-outside-root": "warning",  # a manifest path that leaves the manifest's project folder (the one above it)
    "not-measured": "warning",       # a pixel check that cannot be measured on the pair (says why)
    "excluded": "warning",           # a pair the dataset's authors leave out of scores (validate --clean drops it)
    "longs-only": "warning",         # a manifest of long exposures only: pair checks skipped, trains with --synthetic
    "no-exposure": "warning",        # a file with no exposure time, kept by --longs-only (a pair would need one)
    "manifest-file-mismatch": "error",   # a value the manifest states and the file contradicts
    "scene-id-variant": "warning",   # scene ids that differ only by case or whitespace
    "bad-levels": "error",           # levels the header or the pixels contradict
    "level-unstated": "warning",     # a DNG that states no black or white level
}


@dataclass(frozen=True)
class Finding:
    pair_id: str
    path: str
    code: str
    message: str
    severity: str = ""

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code!r}")
        if not self.severity:
            object.__setattr__(self, "severity", CODES[self.code])

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in ("pair_id", "path", "code", "severity", "message")}


def has_errors(findings) -> bool:
    return any(f.severity == "error" for f in findings)


def findings_to_json(findings) -> str:
    return json.dumps([f.to_dict() for f in findings], indent=2)


def findings_table(findings, title: str = "Findings"):
    """A rich Table of findings, errors first."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("severity", "code", "pair_id", "path", "message"):
        table.add_column(column, overflow="fold")
    order = sorted(findings, key=lambda f: (f.severity != "error", f.code, f.pair_id, f.path))
    for f in order:
        style = "red" if f.severity == "error" else "yellow"
        table.add_row(f"[{style}]{f.severity}[/]", f.code, f.pair_id, f.path, f.message)
    return table
