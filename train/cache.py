"""Decode each raw once: packed inputs and ground truths as .npy files, opened as read-only memmaps.

A file is keyed by the raw's checksum and a hash of the processing settings
(``<sha256[:16]>-<kind>-<settings[:12]>.npy``), so edited settings or files never reuse a stale
entry. Entries are written to a temp file and renamed into place, so concurrent or crashed fills
leave either a whole entry or none. Readers never decode once the cache is filled, and memory
does not grow with the dataset (pages of the memmaps come and go with the OS page cache).
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import partial
from pathlib import Path

import numpy as np

from curate.common.atomic import atomic_write
from curate.common.cachedir import cache_root, folder_usage
from curate.manifest import Manifest, black_levels, verify_checksum
from curate.rawmeta import sha256_file

from . import rawpack

FORMAT_VERSION = 2      # 2: X-Trans packed and rendered from where SID's 6x6 layout starts (rawpack.raw_origin)


def default_cache_dir() -> Path:
    """Where decoded raws go unless --cache-dir says otherwise: <user cache folder>/raw."""
    return cache_root() / "raw"


def cache_usage(folder: str | os.PathLike | None = None) -> dict:
    """{'folder', 'files', 'bytes'} of a decoded-raw cache (default_cache_dir() when None)."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    files, size = folder_usage(folder)
    return {"folder": str(folder), "files": files, "bytes": size}


def clear_cache(folder: str | os.PathLike | None = None) -> dict:
    """Delete a decoded-raw cache's entries (and stray temp files of interrupted fills); returns
    {'folder', 'files', 'bytes'} removed. Anything else in the folder is left alone."""
    folder = Path(folder) if folder is not None else default_cache_dir()
    files = size = 0
    for path in folder.glob("*"):
        if path.is_file() and path.name.endswith((".npy", ".tmp")) and ("-packed-" in path.name or "-truth-" in path.name):
            files, size = files + 1, size + path.stat().st_size
            path.unlink()
    return {"folder": str(folder), "files": files, "bytes": size}


def _settings_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


class RawCache:
    """A folder of decoded raws; ``packed``/``truth`` decode on a miss and return memmaps."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def packed_key(self, sha256: str, cfa: str | None, black, white) -> Path:
        import rawpy

        settings = {"kind": "packed", "v": FORMAT_VERSION, "cfa": cfa, "rawpy": rawpy.__version__,
                    "black": None if black is None else [float(b) for b in black],
                    "white": None if white is None else float(white)}
        return self.folder / f"{sha256[:16]}-packed-{_settings_hash(settings)}.npy"

    def truth_key(self, sha256: str) -> Path:
        import rawpy

        settings = {"kind": "truth", "v": FORMAT_VERSION, "libraw": list(rawpy.libraw_version),
                    "postprocess": repr(sorted(rawpack.POSTPROCESS.items()))}
        return self.folder / f"{sha256[:16]}-truth-{_settings_hash(settings)}.npy"

    def packed(self, path, sha256: str | None = None, cfa: str | None = None, black=None,
               white: float | None = None) -> np.memmap:
        """The packed raw counts of ``path``: uint16 (C, h, w), decoded on the first call only."""
        key = self.packed_key(sha256 or sha256_file(path), cfa, black, white)
        return self._get(key, lambda: rawpack.pack_raw_counts(rawpack.read_raw(verify_checksum(path, sha256), cfa,
                                                                                   black, white)))

    def truth(self, path, sha256: str | None = None) -> np.memmap:
        """The ground truth of ``path``: uint16 (H, W, 3), rendered on the first call only."""
        return self._get(self.truth_key(sha256 or sha256_file(path)),
                         lambda: rawpack.ground_truth(verify_checksum(path, sha256)))

    def _get(self, key: Path, decode) -> np.memmap:
        if not key.is_file():
            array = decode()
            with atomic_write(key, "wb") as handle:
                np.save(handle, array)
        return np.load(key, mmap_mode="r")

    def fill(self, manifest: Manifest, workers: int | None = None, progress: bool = True) -> dict[str, int]:
        """Decode every short (packed) and long (truth) file of a manifest once, ``workers`` threads
        at a time (rawpy releases the GIL; None: one per CPU core); returns {'decoded', 'cached'}.

        The one filler: `train run`, the tests and the benchmarks all call it."""
        from concurrent.futures import ThreadPoolExecutor, as_completed

        from curate.common.clitools import progress_bar

        jobs = {}
        for row in manifest.rows.itertuples(index=False):
            black, white = black_levels(row.black_level), float(row.white_level)
            short, long = manifest.resolve(row.short_path), manifest.resolve(row.long_path)
            jobs[self.packed_key(row.short_sha256, row.cfa, black, white)] = \
                partial(self.packed, short, row.short_sha256, row.cfa, black, white)
            jobs[self.truth_key(row.long_sha256)] = partial(self.truth, long, row.long_sha256)
        todo = [job for key, job in jobs.items() if not key.is_file()]
        with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool, \
                progress_bar(len(todo), f"decoding {len(todo)} raws ({len(jobs) - len(todo)} cached)",
                             enabled=progress) as advance:
            for future in as_completed([pool.submit(job) for job in todo]):
                future.result()
                advance()
        return {"decoded": len(todo), "cached": len(jobs) - len(todo)}
