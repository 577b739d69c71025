"""The manifest: CSV, one row per short/long pair, schema version 1 (see manifests/README.md)."""
from __future__ import annotations

import csv
import errno
import io
import math
import os
import stat as statmode
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from .common.atomic import atomic_write, file_lock
from .cfa import CFAS
from .common.errors import SidkitError
from .rawfile import CONTROL, escape_controls

HEADER = "# sidkit-manifest v1"
SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
ENVIRONMENTS = ("indoor", "outdoor", "unknown")

# column -> type: str, float or int
COLUMNS: dict[str, type] = {
    "pair_id": str,
    "scene_id": str,
    "split": str,
    "environment": str,
    "short_path": str,
    "long_path": str,
    "short_exposure_s": float,
    "long_exposure_s": float,
    "ratio": float,
    "short_iso": float,
    "long_iso": float,
    "short_fnumber": float,
    "long_fnumber": float,
    "camera": str,
    "cfa": str,
    "black_level": str,
    "white_level": int,
    "width": int,
    "height": int,
    "short_sha256": str,
    "long_sha256": str,
}
OPTIONAL_EMPTY = {"short_fnumber", "long_fnumber", "short_iso", "long_iso",
                  "short_exposure_s", "long_exposure_s"}   # exposures: only on a long standing as its own short
INT_MAX = 2 ** 53           # integer columns beyond this are not whole numbers a float can hold
MAX_SIDE = 1_000_000        # no raw is wider or taller (TIFF allows 2**32: a corrupt header)


@dataclass(frozen=True, eq=False)
class Manifest:
    """A manifest's rows (a DataFrame, one row per pair) and the folder its relative paths start from.

    ``root``: that folder, made absolute (read_manifest: the file's own folder); None for rows not
    placed yet, which cannot resolve a relative path. ``path``: the file the rows were read from, None
    for rows built in memory. ``with_rows`` keeps both for a subset or an edited copy of the rows.
    """
    rows: pd.DataFrame
    root: Path | None = None
    path: Path | None = None
    read_from: tuple | None = field(default=None, repr=False)   # (absolute file, its _stat_key) when read

    def __post_init__(self):
        if self.root is not None:
            object.__setattr__(self, "root", Path(os.path.abspath(self.root)))

    @property
    def name(self) -> str:
        """The manifest as messages name it: its path, else 'the manifest'."""
        return str(self.path) if self.path is not None else "the manifest"

    def with_rows(self, rows: pd.DataFrame) -> Manifest:
        """The same manifest (root, path, the file as read) holding ``rows``: a subset or an edited copy."""
        return replace(self, rows=rows)

    def resolve(self, relpath: str) -> Path:
        """A manifest path resolved against ``root`` (normalised, no '..'); an absolute path as it is."""
        p = Path(relpath)
        if p.is_absolute():
            return p
        if self.root is None:
            raise SidkitError(f"{self.name}: {relpath!r} is relative and these rows have no root folder to resolve "
                              "it against; read the manifest with read_manifest(PATH) or build "
                              "Manifest(rows, root=FOLDER) with the folder its paths start from")
        return Path(os.path.normpath(self.root / p))


def empty_rows() -> pd.DataFrame:
    """Manifest rows with every column and no pair."""
    return pd.DataFrame({c: pd.Series(dtype=object if t is str else t) for c, t in COLUMNS.items()})


def write_manifest(manifest: Manifest | pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a Manifest's rows (or rows alone: a scan's) atomically with the version header; columns
    in contract order, extra columns kept after; control characters in text cells written as escapes
    (a CR in a name as \\r), so every row is one line. Paths are written as the rows hold them.

    Holds the manifest's lock (curate.common.atomic.file_lock) while writing. A Manifest read from ``path``
    (read_manifest) is not written back over a file another command has replaced since: SidkitError.
    """
    path = Path(path)
    read_from = manifest.read_from if isinstance(manifest, Manifest) else None
    df = manifest.rows if isinstance(manifest, Manifest) else manifest
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SidkitError(f"{path}: cannot write a manifest without columns {', '.join(missing)}")
    extra = [c for c in df.columns if c not in COLUMNS]
    out = df[list(COLUMNS) + extra].sort_values(["scene_id", "pair_id"], kind="stable")
    out = out.apply(_escaped)       # a CR, LF or other control character never reaches the file as itself
    with file_lock(path):
        if read_from is not None and read_from[0] == str(path.resolve()) and _stat_key(path) != read_from[1]:
            raise SidkitError(f"{path}: another command rewrote it after this one read it; nothing written, "
                              "so its result is kept; run this command again")
        with atomic_write(path, "w", newline="") as handle:
            handle.write(HEADER + "\n")
            out.to_csv(handle, index=False, float_format="%.10g")
    return path


def _escaped(column: pd.Series) -> pd.Series:
    """A column with control characters in its text cells escaped (curate.rawfile.escape_controls)."""
    if pd.api.types.is_numeric_dtype(column):
        return column
    text = column.map(lambda v: isinstance(v, str) and CONTROL.search(v) is not None)
    return column.where(~text, column[text].map(escape_controls)) if text.any() else column


def _stat_key(path: Path, st: os.stat_result | None = None):
    """What changes when a manifest is rewritten (atomic writes give a new inode)."""
    try:
        st = st or os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a manifest: its rows, rooted at the file's own folder (whatever the working
    folder); bad input raises SidkitError naming the column and the row.

    UTF-8 (a BOM is skipped) with LF or CRLF line ends. Refused: a path that is no regular file (a
    FIFO, a device, a folder: the error says which), bytes that are not UTF-8, a CR inside a line, a
    column named twice, a value that is not a number, and values that cannot be true (see
    ``value_problems``). Checksums are read in lower case: hex digits in any case are one checksum.
    """
    path = Path(path)
    _require_file(path)
    with open(path, "rb") as handle:
        stat, data = _stat_key(path, os.fstat(handle.fileno())), handle.read()
    text = decode_text(path, data).replace("\r\n", "\n") if data.lstrip(b"\xef\xbb\xbf").startswith(b"#") else ""
    first = text.split("\n", 1)[0].strip()
    if not first.startswith("# sidkit-manifest"):
        raise SidkitError(f"{path}: not a sidkit manifest (first line must be '{HEADER}'); "
                          "re-create it with `curate scan`")
    if first != HEADER:
        raise SidkitError(f"{path}: manifest schema '{first[2:]}' is not supported by this sidkit "
                          f"(expects v{SCHEMA_VERSION}); re-create it with `curate scan`")
    if "\r" in text:      # a lone CR: readers split the line there or not (older sidkit wrote names with one)
        line = text.count("\n", 0, text.index("\r")) + 1
        raise SidkitError(f"{path}: line {line} holds a carriage return (\\r) inside it, so its row cannot be "
                          "read back; rename the file whose name holds it and re-create the manifest with "
                          "`curate scan`")
    try:
        df = pd.read_csv(io.StringIO(text.split("\n", 1)[1] if "\n" in text else ""), dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SidkitError(f"{path}: cannot parse CSV ({exc}); fix or re-create it with `curate scan`") from None
    _require_unique_header(path, text)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SidkitError(f"{path}: missing column {missing[0]!r}; re-create it with `curate scan`")
    for column in ("short_sha256", "long_sha256"):      # hex digits in any case: one checksum
        df[column] = df[column].str.strip().str.lower()
    for column, kind in COLUMNS.items():
        if kind is str:
            continue
        values = df[column].str.strip()
        converted = pd.to_numeric(values.where(values != ""), errors="coerce")
        bad = converted.isna() & ((values != "") | (column not in OPTIONAL_EMPTY))
        if kind is int:
            bad |= converted.notna() & ((converted != converted.round()) | (converted.abs() > INT_MAX))
        if bad.any():
            row = int(bad.idxmax())
            what = "a whole number" if kind is int else "a number"
            raise SidkitError(f"{path}: row {row + 1} (line {row + 3}), column {column!r}: "
                              f"{df[column][row]!r} is not {what}; fix that cell or re-scan")
        df[column] = converted.astype("Int64" if kind is int else float)
    for column, allowed in (("split", SPLITS + ("",)), ("environment", ENVIRONMENTS)):
        bad = ~df[column].isin(allowed)
        if bad.any():
            row = int(bad.idxmax())
            raise SidkitError(f"{path}: row {row + 1} (line {row + 3}), column {column!r}: "
                              f"{df[column][row]!r} is not one of {', '.join(a for a in allowed if a)}")
    for row in range(len(df)):
        _check_row(path, df, row)
    dup = df["pair_id"].duplicated()
    if dup.any():
        row = int(dup.idxmax())
        raise SidkitError(f"{path}: row {row + 1}, column 'pair_id': {df['pair_id'][row]!r} is not unique")
    return Manifest(df, path.resolve().parent, path, (str(path.resolve()), stat))


def _require_file(path: Path) -> None:
    """SidkitError unless ``path`` is a regular file: what it is instead (missing, a folder, a FIFO,
    a device, a path too long), found with stat alone (opening a FIFO would wait for a writer)."""
    from .files import kind_of, too_long

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise SidkitError(f"{path}: no such manifest; create one with `curate scan DATASET -o {path}`") from None
    except OSError as exc:
        why = too_long(path) if exc.errno == errno.ENAMETOOLONG else f"cannot read it ({exc.strerror})"
        raise SidkitError(f"{path}: {why}; give the path of a manifest CSV") from None
    if not statmode.S_ISREG(mode):
        raise SidkitError(f"{path}: {kind_of(mode)}, not a manifest file, so it is not opened; give the CSV "
                          "that `curate scan` wrote")


def _require_unique_header(path: Path, text: str) -> None:
    """SidkitError naming the first column that the header line names twice (pandas would rename the
    second 'ratio' to 'ratio.1' and read the first)."""
    body = text.split("\n", 1)[1] if "\n" in text else ""
    header = next(csv.reader(io.StringIO(body)), [])
    seen: dict[str, int] = {}
    for number, name in enumerate(header, 1):
        if name in seen:
            raise SidkitError(f"{path}: column {name!r} appears twice in the header (columns {seen[name]} and "
                              f"{number}); delete the wrong one or re-create the manifest with `curate scan`")
        seen[name] = number


def decode_text(path: Path, data: bytes) -> str:
    """``data`` as UTF-8 (a leading BOM dropped); SidkitError naming the line of a byte that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SidkitError(f"{path}: line {line}, byte {column} (0x{data[exc.start]:02x}) is not UTF-8 text; "
                          "save the file as UTF-8 (not Latin-1 or Windows-1252) or re-create it with "
                          "`curate scan`") from None


def _check_row(path: Path, df: pd.DataFrame, row: int) -> None:
    """The first value of ``row`` that cannot be true, as a SidkitError naming row and column."""
    problems = value_problems(df.iloc[row])
    if problems:
        columns, message = problems[0]
        named = ", ".join(repr(c) for c in columns.split())
        raise SidkitError(f"{path}: row {row + 1} (line {row + 3}), column{'s' if ' ' in columns else ''} "
                          f"{named}: {message}")


def _positive(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0


def _show(value) -> str:
    """A cell's value for a message: numbers as written (0, -1, inf), anything else quoted."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return "empty" if math.isnan(value) else f"{value:g}"
    return "empty" if value is None or value is pd.NA else repr(value)


def value_problems(r) -> list[tuple[str, str]]:
    """Values of one manifest row (a Series or itertuples row) that parse but cannot be true, as
    (column names separated by spaces, message ending in the fix): exposures and ratio not finite and positive, a ratio
    that is not long/short, empty ids or paths, an unknown CFA, size or levels that cannot be."""
    out = []
    for column in ("pair_id", "scene_id", "short_path", "long_path"):
        value = getattr(r, column)
        if not isinstance(value, str) or not value.strip():
            out.append((column, "is empty; every pair needs one (re-scan)"))
    own_long = r.short_path == r.long_path and _positive(r.ratio) and r.ratio == 1
    for column in ("short_exposure_s", "long_exposure_s", "ratio"):
        value = getattr(r, column)
        if own_long and column != "ratio" and pd.isna(value):
            continue                   # a long exposure as its own short (--longs-only) needs no exposure time
        if not _positive(value):
            unit = "" if column == "ratio" else " of seconds"
            out.append((column, f"{_show(value)} must be a finite number{unit} above 0; fix the cell or re-scan"))
    if _positive(r.short_exposure_s) and _positive(r.long_exposure_s) and _positive(r.ratio):
        expected = float(r.long_exposure_s) / float(r.short_exposure_s)   # python floats: inf, no warning
        if not (math.isfinite(expected) and abs(r.ratio - expected) <= 0.01 * expected):
            out.append(("ratio", f"{r.ratio:g} is not long_exposure_s / short_exposure_s "
                                   f"= {expected:g}; fix the cell or re-scan"))
    for column in ("short_iso", "long_iso", "short_fnumber", "long_fnumber"):
        value = getattr(r, column)
        if pd.notna(value) and not (math.isfinite(value) and value >= 0):
            out.append((column, f"{_show(value)} must be empty or a finite number >= 0; fix the cell or re-scan"))
    if r.cfa not in CFAS:
        out.append(("cfa", f"{r.cfa!r} is not one of {', '.join(CFAS)}; re-scan"))
    for column in ("width", "height"):
        value = getattr(r, column)
        if pd.isna(value) or not 0 < value <= MAX_SIDE:
            out.append((column, f"{_show(value)} must be a whole number of pixels from 1 to {MAX_SIDE}; re-scan"))
    try:
        black = black_levels(r.black_level)
    except ValueError:
        black = []
    white = r.white_level
    if (len(black) not in (1, 4) or not all(math.isfinite(b) and b >= 0 for b in black)
            or pd.isna(white) or not white > max(black or [0])):
        out.append(("black_level white_level", f"{r.black_level!r} / {white} must be 1 or 4 black "
                    "levels, each >= 0 and below the white level; re-scan"))
    return out


FORMULA_START = ("=", "+", "@", "\t", "\r")


def formula_cells(r) -> list[str]:
    """Columns of one row (itertuples row or Series) whose text a spreadsheet would run as a
    formula: starting with =, +, @, a tab or CR, or with - followed by something not a number."""
    items = r._asdict().items() if hasattr(r, "_asdict") else r.items()
    out = []
    for column, value in items:
        if not isinstance(value, str) or not value:
            continue
        if value.startswith(FORMULA_START) or (value.startswith("-") and len(value) > 1 and not is_number(value)):
            out.append(str(column))
    return out


def is_number(text: str) -> bool:
    """Whether ``text`` parses as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def path_findings(manifest: Manifest) -> list:
    """`path-outside-root` warnings: one per place outside the manifest's project folder that its
    paths reach. The project folder is the one above the manifest's folder: the layout the README
    recommends (manifests/ beside datasets/, paths '../datasets/...') is inside it. Lexical: '..'
    that climbs out of it, or an absolute path elsewhere; symlinks are not followed."""
    from .findings import Finding

    project = manifest.resolve(".").parent      # above the root (a SidkitError for rows without one)
    groups: dict[str, list[tuple[str, str]]] = {}
    for row in manifest.rows.itertuples():
        for rel in (row.short_path, row.long_path):
            target = str(manifest.resolve(rel))
            try:
                parts = Path(os.path.relpath(target, project)).parts
            except ValueError:     # another drive (Windows)
                parts = (Path(target).anchor, Path(target).name)
            climbs = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
            if climbs:
                key = os.path.join("..", *parts[: min(climbs + 1, len(parts) - 1)])
                groups.setdefault(key, []).append((row.pair_id, rel))
    out = []
    for key, uses in groups.items():
        pairs = sorted({pid for pid, _ in uses})
        out.append(Finding(pairs[0] if len(pairs) == 1 else "", uses[0][1], "path-outside-root",
                           f"{len(uses)} path(s) of {len(pairs)} pair(s) leave the manifest's project folder (the one "
                           f"above its own) for {key}; fine if your data lives there, but a manifest from "
                           "elsewhere can point at any file: check the paths"))
    return out


def is_longs_only(df: pd.DataFrame) -> bool:
    """A manifest of long exposures only (`curate scan --longs-only`): every row's short is its long
    (the same checksum, or the same path where checksums are missing), so it trains on synthetic
    shorts; empty or mixed: False."""
    if not len(df):
        return False
    short, long = df["short_sha256"].astype(str), df["long_sha256"].astype(str)
    return bool((((short == long) & (short != "")) | (df["short_path"] == df["long_path"])).all())


def relative_to(path: Path, folder: Path) -> str:
    """``path`` written relative to ``folder`` when it can be, absolute otherwise."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(folder).resolve())
    except ValueError:
        return str(Path(path).resolve())


def verify_checksum(path: str | os.PathLike, sha256: str | None) -> Path:
    """``path``, after checking that it still holds what the manifest's checksum says."""
    from .rawmeta import sha256_file

    if sha256 and Path(path).is_file() and sha256_file(path) != sha256.strip().lower():
        raise SidkitError(f"{path}: file changed since the manifest was written (checksum-mismatch); "
                          "re-scan the dataset with `curate scan`")
    return Path(path)


def black_levels(value: str) -> list[float]:
    """'512 512 512 512' -> [512.0, ...] (per position in the 2x2 CFA tile, row-major)."""
    return [float(v) for v in str(value).split()]
