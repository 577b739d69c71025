"""The user cache folder every sidkit cache lives under (decoded raws, report thumbnails).

``$SIDKIT_CACHE`` if set, else ``$XDG_CACHE_HOME/sidkit``, else ``~/.cache/sidkit``: never inside
a source tree or a dataset.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """sidkit's cache folder (not created here)."""
    if os.environ.get("SIDKIT_CACHE"):
        return Path(os.environ["SIDKIT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).expanduser().is_absolute() else Path.home() / ".cache"
    return base / "sidkit"


def folder_usage(folder: str | os.PathLike) -> tuple[int, int]:
    """(files, bytes) under ``folder``; (0, 0) when it does not exist."""
    files = size = 0
    for path in Path(folder).rglob("*"):
        if path.is_file():
            files, size = files + 1, size + path.stat().st_size
    return files, size
