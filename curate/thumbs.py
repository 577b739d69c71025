"""The pictures of `curate report`: each raw rendered small as the ground truth is (its short amplified
by the pair's ratio), a JPEG thumbnail cached by file checksum, rendered in a process pool where a
decoder crash costs one picture, not the page."""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from .common.atomic import atomic_write
from .common.cachedir import cache_root
from .common.html import data_uri
from .cfa import mosaic_black
from .files import file_problem
from .rawfile import shown

THUMB_WIDTH = 320        # pixels across one thumbnail
THUMB_VERSION = 1        # bump when the rendering changes: old cached thumbnails are not reused


def cache_dir() -> Path:
    """Where thumbnails are cached: curate.common.cachedir.cache_root()/thumbs ($SIDKIT_CACHE/thumbs,
    else $XDG_CACHE_HOME/sidkit/thumbs, else ~/.cache/sidkit/thumbs)."""
    return cache_root() / "thumbs"


def render_small(path: str | os.PathLike, black: list[float], white: float, gain: float = 1.0) -> np.ndarray:
    """A raw at half size as 8-bit RGB, its counts above black first scaled by ``gain`` (clipped).

    Rendered as the ground truth is (camera white balance, no auto brightness), so a long and a
    short amplified by the right ratio look alike.
    """
    import rawpy

    with rawpy.imread(str(path)) as raw:
        if gain != 1.0:
            counts, level = raw.raw_image_visible, mosaic_black(black, raw)
            scaled = level + np.maximum(counts.astype(np.float32) - level, 0) * np.float32(gain)
            counts[...] = np.clip(scaled, 0, white).astype(np.uint16)
        return raw.postprocess(use_camera_wb=True, half_size=True, no_auto_bright=True, output_bps=8,
                               user_flip=0)


def thumbnail(path: Path, black: list[float], white: float, gain: float = 1.0, width: int = THUMB_WIDTH,
              cache: Path | None = None, digest: str | None = None) -> bytes:
    """A JPEG thumbnail of a raw (see render_small), cached under ``cache`` by the file's checksum."""
    from PIL import Image

    from .rawmeta import sha256_file

    digest = digest or sha256_file(path)
    cached = cache / _thumb_name(digest, black, white, gain, width) if cache else None
    if cached and cached.is_file():
        return cached.read_bytes()
    image = Image.fromarray(render_small(path, black, white, gain))
    image.thumbnail((width, width * 4), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    data = buffer.getvalue()
    if cached:
        try:
            with atomic_write(cached, "wb") as handle:
                handle.write(data)
        except OSError:
            pass     # a cache that cannot be written only costs time
    return data


def _thumb_name(digest: str, black: list[float], white: float, gain: float, width: int) -> str:
    return f"{digest}-g{gain:.6g}-b{'_'.join(f'{v:g}' for v in black)}-w{white:g}-{width}-v{THUMB_VERSION}.jpg"


def _digest_memo(path: Path, cache: Path) -> Path:
    from hashlib import sha1

    st = path.stat()
    return cache / "digests" / sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()


def _remembered_digest(path: Path, cache: Path) -> str | None:
    try:
        known = _digest_memo(path, cache).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return known if re.fullmatch(r"[0-9a-f]{64}", known) else None


def file_digest(path: Path, cache: Path | None = None) -> str:
    """The file's SHA-256, remembered under ``cache`` by path, size and modification time so that a
    second report of unchanged files reads none of them."""
    from .rawmeta import sha256_file

    if cache is None:
        return sha256_file(path)
    known = _remembered_digest(path, cache)
    if known:
        return known
    digest = sha256_file(path)
    try:
        with atomic_write(_digest_memo(path, cache), "w") as handle:
            handle.write(digest)
    except OSError:
        pass
    return digest


Job = tuple[str, tuple[float, ...], float, float, str]   # path, black, white, gain, cache folder ('' none)


def render_job(job: Job) -> tuple[str, str]:
    """(data URI, '') or ('', 'code: why there is no picture') for one thumbnail; never raises."""
    path, black, white, gain, cache = Path(job[0]), list(job[1]), job[2], job[3], Path(job[4]) if job[4] else None
    problem = file_problem(path)       # stat alone: missing, a FIFO, a path too long for the OS
    if problem is not None:
        return "", f"{problem.code}: {_name(path)}" + ("" if problem.code == "missing-file" else f" ({problem.message})")
    try:
        return data_uri(thumbnail(path, black, white, gain, cache=cache, digest=file_digest(path, cache))), ""
    except Exception as exc:  # noqa: BLE001 - any undecodable file is a badge on the page, not a traceback
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        return "", f"unreadable: {_name(path)} ({type(exc).__name__}: {detail})"


def _name(path: Path, limit: int = 80) -> str:
    """A file's name for a picture's caption: printable, and its middle left out past ``limit`` characters."""
    name = shown(path.name)
    return name if len(name) <= limit else f"{name[:limit // 2 - 1]}...{name[-(limit // 2 - 2):]}"


def _cached_job(job: Job) -> tuple[str, str] | None:
    """The job's result when its thumbnail and checksum are cached (reads no raw), else None."""
    path, cache = Path(job[0]), Path(job[4]) if job[4] else None
    if cache is None or file_problem(path) is not None:
        return None
    digest = _remembered_digest(path, cache)
    thumb = cache / _thumb_name(digest, list(job[1]), job[2], job[3], THUMB_WIDTH) if digest else None
    return (data_uri(thumb.read_bytes()), "") if thumb and thumb.is_file() else None


def _crashed_job(job: Job) -> tuple[str, str]:
    return "", f"unreadable: {_name(Path(job[0]))} (the raw decoder crashed on it; run `curate inspect` on it)"


def render_all(jobs: list[Job], workers: int = 0, progress: Callable[[int], None] | None = None,
               weights: list[int] | None = None) -> list[tuple[str, str]]:
    """render_job of every job, cached ones first without decoding; the rest in a spawn pool of
    ``workers`` (0: every core from 16 renders on, as validate's pixel checks; a decoder crash
    kills one worker and becomes that file's 'unreadable'). ``progress(weights[i])`` after job i."""
    from .validate import pool_map

    weights = weights or [1] * len(jobs)
    results = [_cached_job(job) for job in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    for i, r in enumerate(results):
        if r is not None and progress:
            progress(weights[i])
    workers = workers or (min(len(todo), os.cpu_count() or 1) if len(todo) >= 16 else 1)
    rendered = map(render_job, (jobs[i] for i in todo)) if workers <= 1 else \
        pool_map(render_job, [jobs[i] for i in todo], workers, _crashed_job)
    for i, result in zip(todo, rendered):
        results[i] = result
        if progress:
            progress(weights[i])
    return results
