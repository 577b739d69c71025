"""Raw files on disk: which names are raws, which names a camera wrote, and which paths must never be
opened (FIFOs, devices, sockets, folders named like raws, names that are not UTF-8)."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from .findings import Finding
from .rawfile import shown

RAW_EXTENSIONS = {".dng", ".arw", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".raf", ".rw2", ".orf",
                  ".pef", ".srw", ".3fr", ".iiq", ".erf", ".kdc", ".mos", ".raw", ".x3f"}

# Names cameras and phones give their files: IMG_0001, _MG_1234, DSC00001, DSC_0001, _DSC0001,
# DSCF0001, P1000001, IMGP0001, _IGP0001, CRW_0001, PXL_20240101_123456789, IMG_20240101_123456.
CAMERA_NAME = re.compile(r"(?:IMG|_MG|DSC|_DSC|DSCF|_DSF|IMGP|_IGP|CRW|CIMG|PXL|DJI|P\d{3})"
                         r"_?\d{3,}(?:_\d+)*", re.IGNORECASE)


def is_raw_name(path: str | os.PathLike) -> bool:
    """A raw file's extension (any case: .CR3, .cr3)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def is_camera_name(path: str | os.PathLike) -> bool:
    """True for a name as a camera writes it (IMG_0001.CR3), which carries no scene id."""
    return bool(CAMERA_NAME.fullmatch(Path(path).stem))


def file_problem(path: str | os.PathLike, pair_id: str = "") -> Finding | None:
    """A finding when ``path`` must not be opened as a raw (missing, not a regular file, a name that
    is not UTF-8), else None. Only stat is called: a FIFO or a device is never opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Finding(pair_id, shown(path), "missing-file", "file does not exist; restore it or re-scan")
    except OSError as exc:
        return Finding(pair_id, shown(path), "unreadable", f"cannot stat it ({exc.strerror}); check the path "
                       "and its permissions")
    if not stat.S_ISREG(mode):
        return Finding(pair_id, shown(path), "unreadable", f"{_kind(mode)}, not a regular file, so it is "
                       "never opened; remove it from the dataset folder")
    if shown(path) != str(path):
        return Finding(pair_id, shown(path), "unreadable", "the path is not valid UTF-8, so a manifest cannot "
                       "record it; rename the file or folder (e.g. `convmv -f latin1 -t utf8`) and scan again")
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def walk(folder: Path) -> tuple[list[Path], list[Finding]]:
    """Every regular, visible file under ``folder`` (sorted, recursive), and a finding for each path
    named like a raw that is not a regular file or whose name is not UTF-8, and each folder that
    cannot be listed."""
    files, findings = [], []

    def unlisted(exc: OSError) -> None:
        findings.append(Finding("", shown(exc.filename), "unreadable",
                                f"cannot list this folder ({exc.strerror}); check its permissions"))

    for root, dirs, names in os.walk(folder, onerror=unlisted):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in dirs:
            if is_raw_name(name):
                findings.append(file_problem(Path(root) / name))
        for name in sorted(names):
            path = Path(root) / name
            if name.startswith("."):
                continue
            problem = file_problem(path)
            if problem is None:
                files.append(path)
            elif is_raw_name(path):
                findings.append(problem)
    return files, findings
