"""Raw files on disk: which names are raws, which names a camera wrote, and which paths must never be
opened (FIFOs, devices, sockets, folders named like raws, names that are not UTF-8 or hold control
characters, paths too long for the OS)."""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from .findings import Finding
from .rawfile import CONTROL, shown

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
    """A finding when ``path`` must not be opened as a raw (missing, too long for the OS, not a
    regular file, a name that is not UTF-8 or holds a control character), else None. Only stat is
    called: a FIFO or a device is never opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return Finding(pair_id, shown(path), "missing-file", "file does not exist; restore it or re-scan")
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return Finding(pair_id, shown(path), "unreadable", f"{too_long(path)}; shorten the folder or file "
                           "names (or move the data nearer the root) and scan again")
        return Finding(pair_id, shown(path), "unreadable", f"cannot stat it ({exc.strerror}); check the path "
                       "and its permissions")
    except ValueError:     # a NUL byte: no OS path can hold one
        return Finding(pair_id, shown(path), "unreadable", "the path holds a NUL byte, which no file name can; "
                       "fix the path")
    if not stat.S_ISREG(mode):
        return Finding(pair_id, shown(path), "unreadable", f"{kind_of(mode)}, not a regular file, so it is "
                       "never opened; remove it from the dataset folder")
    text = os.fsdecode(path)
    control = CONTROL.search(text)
    if control:
        return Finding(pair_id, shown(path), "unreadable", f"the name holds a control character "
                       f"({shown(control.group())}), which would break a manifest's lines, so the file is left "
                       "out; rename it (e.g. `mv` with the name in quotes) and scan again")
    if shown(path) != text:
        return Finding(pair_id, shown(path), "unreadable", "the path is not valid UTF-8, so a manifest cannot "
                       "record it; rename the file or folder (e.g. `convmv -f latin1 -t utf8`) and scan again")
    return None


def too_long(path: str | os.PathLike) -> str:
    """Why the OS refuses ``path`` as too long: its longest name and the whole path, in bytes."""
    data = os.fsencode(path)
    longest = max(len(part) for part in data.split(b"/"))
    return (f"the path is too long for this system (its longest name is {longest} bytes, the whole path "
            f"{len(data)}; most file systems allow 255 a name and 4096 a path)")


def kind_of(mode: int) -> str:
    """What a stat mode that is no regular file names: 'a folder', 'a FIFO (named pipe)', ..."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def walk(folder: Path) -> tuple[list[Path], list[Finding]]:
    """Every regular, visible file under ``folder`` (sorted, recursive), and a finding for each path
    named like a raw that is not a regular file or whose name is not UTF-8 or holds a control
    character (that file is left out), and each folder that cannot be listed."""
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
            elif is_raw_name(CONTROL.sub("", name)):      # 'x.dng\r' is a raw's name too
                findings.append(problem)
    return files, findings
