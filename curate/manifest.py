"""The manifest: CSV, one row per short/long pair, schema version 1 (see manifests/README.md)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd

from .atomic import atomic_write
from .errors import SidkitError

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
OPTIONAL_EMPTY = {"short_fnumber", "long_fnumber", "short_iso", "long_iso"}


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if t is str else t) for c, t in COLUMNS.items()})


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write atomically with the version header; columns in contract order, extra columns kept after."""
    path = Path(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SidkitError(f"{path}: cannot write a manifest without columns {', '.join(missing)}")
    extra = [c for c in df.columns if c not in COLUMNS]
    out = df[list(COLUMNS) + extra].sort_values(["scene_id", "pair_id"], kind="stable")
    with atomic_write(path, "w", newline="") as handle:
        handle.write(HEADER + "\n")
        out.to_csv(handle, index=False, float_format="%.10g")
    return path


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a manifest; bad input raises SidkitError naming the column and the row."""
    path = Path(path)
    if not path.is_file():
        raise SidkitError(f"{path}: no such manifest; create one with `curate scan DATASET -o {path}`")
    text = path.read_text(encoding="utf-8", errors="replace")
    first = text.split("\n", 1)[0].strip()
    if not first.startswith("# sidkit-manifest"):
        raise SidkitError(f"{path}: not a sidkit manifest (first line must be '{HEADER}'); "
                          "re-create it with `curate scan`")
    if first != HEADER:
        raise SidkitError(f"{path}: manifest schema '{first[2:]}' is not supported by this sidkit "
                          f"(expects v{SCHEMA_VERSION}); re-create it with `curate scan`")
    try:
        df = pd.read_csv(io.StringIO(text.split("\n", 1)[1] if "\n" in text else ""), dtype=str,
                         keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SidkitError(f"{path}: cannot parse CSV ({exc}); fix or re-create it with `curate scan`")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise SidkitError(f"{path}: missing column {missing[0]!r}; re-create it with `curate scan`")
    for column, kind in COLUMNS.items():
        if kind is str:
            continue
        values = df[column].str.strip()
        converted = pd.to_numeric(values.where(values != ""), errors="coerce")
        bad = converted.isna() & ((values != "") | (column not in OPTIONAL_EMPTY))
        if bad.any():
            row = int(bad.idxmax())
            raise SidkitError(f"{path}: row {row + 1} (line {row + 3}), column {column!r}: "
                              f"{df[column][row]!r} is not a number; fix that cell or re-scan")
        df[column] = converted.astype("Int64" if kind is int else float) if kind is int else converted
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
    df.attrs["root"] = str(path.resolve().parent)
    df.attrs["path"] = str(path)
    return df


CFAS = ("RGGB", "GRBG", "GBRG", "BGGR", "XTRANS")


def _check_row(path: Path, df: pd.DataFrame, row: int) -> None:
    """Values that parse but cannot be true: a ratio that is not long/short, an unknown CFA, bad levels."""
    r = df.iloc[row]
    where = f"{path}: row {row + 1} (line {row + 3})"
    expected = r.long_exposure_s / r.short_exposure_s if r.short_exposure_s > 0 else float("nan")
    if not abs(r.ratio - expected) <= 0.01 * expected:
        raise SidkitError(f"{where}, column 'ratio': {r.ratio:g} is not long_exposure_s / short_exposure_s "
                          f"= {expected:g}; fix the cell or re-scan")
    if r.cfa not in CFAS:
        raise SidkitError(f"{where}, column 'cfa': {r.cfa!r} is not one of {', '.join(CFAS)}; re-scan")
    try:
        black = black_levels(r.black_level)
    except ValueError:
        black = []
    if len(black) not in (1, 4) or not r.white_level > max(black or [0]):
        raise SidkitError(f"{where}, columns 'black_level', 'white_level': {r.black_level!r} / {r.white_level} "
                          "must be 1 or 4 black levels below the white level; re-scan")


def resolve(df: pd.DataFrame, relpath: str) -> Path:
    """A manifest path resolved against the manifest's own folder (normalised, no '..')."""
    p = Path(relpath)
    return p if p.is_absolute() else Path(os.path.normpath(Path(df.attrs.get("root", ".")) / p))


def relative_to(path: Path, folder: Path) -> str:
    """``path`` written relative to ``folder`` when it can be, absolute otherwise."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(folder).resolve())
    except ValueError:
        return str(Path(path).resolve())


def verify_checksum(path: str | os.PathLike, sha256: str | None) -> Path:
    """``path``, after checking that it still holds what the manifest's checksum says."""
    from .rawmeta import sha256_file

    if sha256 and Path(path).is_file() and sha256_file(path) != sha256:
        raise SidkitError(f"{path}: file changed since the manifest was written (checksum-mismatch); "
                          "re-scan the dataset with `curate scan`")
    return Path(path)


def black_levels(value: str) -> list[float]:
    """'512 512 512 512' -> [512.0, ...] (per position in the 2x2 CFA tile, row-major)."""
    return [float(v) for v in str(value).split()]
