"""The capture log `<dataset>/captures.jsonl`: append-only, one object per downloaded file."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .common.atomic import file_lock
from .common.errors import SidkitError

LOG_NAME = "captures.jsonl"


@dataclass
class CaptureRecord:
    scene_id: str
    role: str                      # "long" | "short"
    path: str                      # relative to the dataset folder
    requested_exposure_s: float
    camera_exposure: str           # the value the camera reported back, e.g. '1/25'
    iso: float | None
    fnumber: float | None
    environment: str               # indoor | outdoor | unknown
    camera: str                    # make + model + serial
    captured_at: str               # ISO 8601
    backend: str                   # gphoto2 | sim | ...
    notes: str = ""
    sha256: str = ""
    extra: dict | None = None      # backend details: labels, nominal/true ratio, allow_any_ratio...


def append_record(dataset: str | os.PathLike, record: CaptureRecord) -> None:
    """Append one line and fsync, so that a crash loses at most the shot in flight; under the log's
    lock (curate.common.atomic.file_lock), so two commands capturing into one dataset never mix lines."""
    path = Path(dataset) / LOG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({k: v for k, v in asdict(record).items() if v is not None or k in ("iso", "fnumber")})
    with file_lock(path), open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_log(dataset: str | os.PathLike, torn: list[int] | None = None) -> list[CaptureRecord]:
    """Every record of a capture log; a torn last line (crash mid-write) is skipped, its number
    appended to ``torn`` when given."""
    path = Path(dataset) / LOG_NAME
    if not path.exists():
        return []
    names = {f.name for f in fields(CaptureRecord)}
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                if torn is not None:
                    torn.append(number)
                continue
            raise SidkitError(f"{path}: line {number} is not JSON; remove or fix that line") from None
        try:
            records.append(CaptureRecord(**{k: v for k, v in data.items() if k in names}))
        except TypeError as exc:
            raise SidkitError(f"{path}: line {number}: {exc}; fix that line") from None
    return records
