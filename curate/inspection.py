"""What `curate inspect` shows of a raw: its RawMeta as a table or as JSON-ready values."""
from __future__ import annotations

from dataclasses import asdict

from rich.table import Table

from .exposure import format_exposure
from .rawfile import shown


def meta_table(meta) -> Table:
    """A RawMeta as a table of field, value and the reader it came from (findings are listed apart)."""
    table = Table(title=shown(meta.path))
    for column in ("field", "value", "source"):
        table.add_column(column)
    for name, value in meta_dict(meta).items():
        if name not in ("path", "sources", "disagreements", "has_pixels", "sha256", "pixel_problem", "bits_problem"):
            table.add_row(name, as_written(value), meta.sources.get(name, ""))
    return table


def as_written(value) -> str:
    """A value as a person writes it: 100 not 100.0, '126 126 126 126' not a list, '-' for none."""
    if value is None or value == {} or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(as_written(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {as_written(v)}" for k, v in value.items())
    return str(value)


def meta_dict(meta) -> dict:
    """A RawMeta as JSON-ready values; `pixel_data` is present, missing or unknown (not checked)."""
    data = asdict(meta)
    data["path"] = shown(meta.path)
    data["exposure_s"] = format_exposure(meta.exposure_s) if meta.exposure_s else None
    data["pixel_data"] = ("missing" if meta.pixel_problem or meta.has_pixels is False
                          else "present" if meta.has_pixels else "unknown")
    return data


def file_dict(path, meta, findings) -> dict:
    """One file of `curate inspect --format json`: its metadata (when readable) and its findings."""
    data = meta_dict(meta) if meta is not None else {"path": shown(path), "pixel_data": "unknown"}
    data["findings"] = [f.to_dict() for f in findings]
    return data
