"""A fuzz corpus of damaged raws and the harness that runs it through curate's readers.

The corpus is generated from simulated DNGs (capture.dng + capture.sensor, small) and, where present,
the real sample raws: truncations at many offsets, bit flips in the first KiB, every IFD entry's
count and offset set to extremes, IFD loops, zeroed regions, DNG tags with impossible values, plus
special files (a FIFO and a directory named like raws, non-UTF-8 names).

Each variant runs in a worker process (``python tests/fuzzcorpus.py --worker``) through
read_metadata (scan's reader), `curate inspect` (CliRunner) and the pixel checks of `curate validate`
(check_pair_pixels against a good long). The parent gives each variant 10 s; a worker that overruns
is killed and counted as a hang. Used by tests/test_fuzz.py and scripts/fuzz_report.py.
"""
from __future__ import annotations

import json
import os
import resource
import select
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TIME_LIMIT_S = 10.0
MEMORY_LIMIT = 3 << 30            # address space of a worker (RLIMIT_AS)
MAX_VALUE = 0xFFFFFFFF
# Small sample raws (a few KiB to 64 KiB) for the quick part; the rest join the slow part.
SMALL_SAMPLES = ("DNG.dng", "Nikon.nef", "Panasonic.rw2", "CanonRaw.cr3")
EXTREMES = ("count-max", "count-0", "offset-max", "offset-half")


@dataclass
class Variant:
    name: str
    path: str                       # os.fsdecode'd (surrogateescape for non-UTF-8 names)
    origin: str                     # the file it was made from ('' for special files)
    kind: str                       # truncate, bitflip, entry, loop, zero, tag, special


# --- the simulated DNG and TIFF surgery -----------------------------------------------------------

# The simulated origins: (width, height), the exposure of their long (100x theirs), body.
SIZES = {"sim-a": ((96, 64), Fraction(10), "sim-dslr14"), "sim-b": ((64, 48), Fraction(200), "sim-dslr14"),
         "sim-x": ((96, 66), Fraction(10), "sim-xtrans14")}


def sim_dng(path: Path, width: int = 96, height: int = 64, *, exposure_s=Fraction(1, 10), light: float = 1.0,
            seed: int = 0, body: str = "sim-dslr14") -> Path:
    """A small DNG of a simulated scene (capture.sensor's 14-bit Bayer body, or ``body``)."""
    from capture.dng import write_dng
    from capture.sensor import expose, get_profile, render_scene

    profile = get_profile(body)
    radiance = render_scene("fuzz", width, height, environment="indoor")
    mosaic = expose(profile, radiance, exposure_s=float(exposure_s), iso=100, fnumber=8, light=light, seed=seed)
    return write_dng(path, mosaic, make=profile.make, model=profile.model, serial=profile.serial, cfa=profile.cfa,
                     black_level=list(profile.black_level), white_level=profile.white_level,
                     exposure_s=exposure_s, iso=100, fnumber=8,
                     captured_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))


def ifd_entries(data: bytes) -> list[tuple[int, int, int, int]]:
    """(entry offset, tag, type, count) of IFD0 and the EXIF IFD of a TIFF (either byte order)."""
    if len(data) < 8 or data[:2] not in (b"II", b"MM"):
        return []
    order = "<" if data[:2] == b"II" else ">"
    out, queue, seen = [], [struct.unpack_from(order + "I", data, 4)[0]], set()
    while queue:
        offset = queue.pop(0)
        if offset in seen or offset + 2 > len(data):
            continue
        seen.add(offset)
        count = struct.unpack_from(order + "H", data, offset)[0]
        for at in range(offset + 2, min(offset + 2 + 12 * count, len(data) - 11), 12):
            tag, kind, n = struct.unpack_from(order + "HHI", data, at)
            out.append((at, tag, kind, n))
            if tag == 34665 and len(seen) < 4:
                queue.append(struct.unpack_from(order + "I", data, at + 8)[0])
    return out


def set_entry(data: bytes, tag: int, *, count: int | None = None, value: bytes | int | None = None,
              kind: int | None = None) -> bytes:
    """``data`` with the first entry of ``tag`` given a new type, count or 4-byte value field."""
    order = "<" if data[:2] == b"II" else ">"
    out = bytearray(data)
    for at, entry_tag, _, _ in ifd_entries(data):
        if entry_tag == tag:
            if kind is not None:
                struct.pack_into(order + "H", out, at + 2, kind)
            if count is not None:
                struct.pack_into(order + "I", out, at + 4, count)
            if value is not None:
                out[at + 8:at + 12] = value if isinstance(value, bytes) else struct.pack(order + "I", value)
            return bytes(out)
    raise KeyError(f"tag {tag} not in the file")


def value_offset(data: bytes, tag: int) -> int:
    """Where the values of ``tag`` are (the field itself when they fit in 4 bytes)."""
    order = "<" if data[:2] == b"II" else ">"
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}
    for at, entry_tag, kind, n in ifd_entries(data):
        if entry_tag == tag:
            return at + 8 if sizes.get(kind, 4) * n <= 4 else struct.unpack_from(order + "I", data, at + 8)[0]
    raise KeyError(tag)


def dng_tag_variants(data: bytes) -> dict[str, bytes]:
    """The damaged DNGs the issue lists (each once), from a DNG written by capture.dng."""
    out = {}
    strip = struct.unpack_from("<I", data, value_offset(data, 273))[0]      # the (one) strip's offset
    out["cfa-repeat-dim-count-3"] = set_entry(data, 33421, count=3)
    out["cfa-repeat-dim-count-1"] = set_entry(data, 33421, count=1)
    out["black-repeat-dim-count-1"] = set_entry(data, 50713, count=1)
    out["black-repeat-dim-count-3"] = set_entry(data, 50713, count=3)
    out["cfa-pattern-0x09"] = set_entry(data, 33422, value=bytes((0, 9, 9, 2)))
    out["cfa-pattern-0xff"] = set_entry(data, 33422, value=bytes((255, 1, 1, 2)))
    out["white-level-0"] = set_entry(data, 50717, value=0)
    out["white-level-below-black"] = set_entry(data, 50717, value=100)
    out["strips-past-end"] = set_entry(data, 273, value=len(data) - 10)
    out["strip-bytes-huge"] = set_entry(data, 279, value=MAX_VALUE)
    out["strip-bytes-short"] = set_entry(data, 279, value=64)
    out["width-0"] = set_entry(data, 256, value=0)
    out["width-huge"] = set_entry(data, 256, value=MAX_VALUE)
    out["height-1"] = set_entry(data, 257, value=1)
    out["bits-0"] = set_entry(data, 258, value=struct.pack("<HH", 0, 0))
    out["bits-64"] = set_entry(data, 258, value=struct.pack("<HH", 64, 0))
    out["photometric-linear"] = set_entry(data, 262, value=struct.pack("<HH", 34892, 0))
    out["compression-jpeg"] = set_entry(data, 259, value=struct.pack("<HH", 7, 0))
    out["exposure-zero"] = _set_rational(data, 33434, 0, 1)
    out["exposure-zero-denominator"] = _set_rational(data, 33434, 1, 0)
    out["exposure-huge"] = _set_rational(data, 33434, MAX_VALUE, 1)
    out["truncated-1000"] = data[:-1000]
    out["pixels-zeroed"] = data[:strip] + bytes(len(data) - strip)
    out["pixels-ff"] = data[:strip] + b"\xff" * (len(data) - strip)
    return out


def _set_rational(data: bytes, tag: int, numerator: int, denominator: int) -> bytes:
    at = value_offset(data, tag)
    out = bytearray(data)
    struct.pack_into("<II", out, at, numerator, denominator)
    return bytes(out)


# --- the corpus -------------------------------------------------------------------------------------

def byte_variants(data: bytes, *, flips: int, seed: int, extremes=EXTREMES, many_cuts: bool = True
                  ) -> dict[str, bytes]:
    """Generic damage: truncations, bit flips in the first KiB, IFD entry extremes, loops, zeroed spans."""
    size, out = len(data), {}
    cuts = {1, 2, 4, 7, 8, 9, 12, 16, 24, 50, 100, 200, 300, 500, 800, 1024, 2048} if many_cuts else {4, 9, 100, 500}
    cuts = sorted(cuts | {size // 4, size // 2, size - 1000, size - 100, size - 1})
    for cut in cuts:
        if 0 < cut < size:
            out[f"cut-{cut}"] = data[:cut]
    rng = np.random.default_rng(seed)
    for number in range(flips):
        flipped = bytearray(data)
        for _ in range(1 + number % 3):
            at = int(rng.integers(0, min(1024, size)))
            flipped[at] ^= 1 << int(rng.integers(0, 8))
        out[f"flip-{number}"] = bytes(flipped)
    order = "<" if data[:2] == b"II" else ">"
    tiff = data[:2] in (b"II", b"MM")
    for at, tag, _, _ in ifd_entries(data) if tiff else ():
        for what, pos, value in (("count-max", at + 4, MAX_VALUE), ("count-0", at + 4, 0),
                                 ("offset-max", at + 8, MAX_VALUE), ("offset-half", at + 8, 0x7FFFFFF0)):
            if what not in extremes:
                continue
            damaged = bytearray(data)
            struct.pack_into(order + "I", damaged, pos, value)
            out[f"entry-{tag}-{what}"] = bytes(damaged)
    if tiff:
        first = struct.unpack_from(order + "I", data, 4)[0]
        count = struct.unpack_from(order + "H", data, first)[0] if first + 2 <= size else 0
        next_at = first + 2 + 12 * count
        if next_at + 4 <= size:
            looped = bytearray(data)
            struct.pack_into(order + "I", looped, next_at, first)                 # IFD0 -> IFD0
            out["loop-ifd0-self"] = bytes(looped)
        for at, tag, _, _ in ifd_entries(data):
            if tag in (34665, 330):                                               # EXIF/SubIFD -> IFD0
                looped = bytearray(data)
                struct.pack_into(order + "I", looped, at + 8, first)
                out[f"loop-{tag}-to-ifd0"] = bytes(looped)
        deep = bytearray(data)
        struct.pack_into(order + "I", deep, 4, size - 2)                          # IFD0 at the last 2 bytes
        out["ifd0-at-end"] = bytes(deep)
    for name, start, length in (("head", 8, 64), ("ifd", 8, 512), ("middle", size // 2, size // 8),
                                ("tail", size - size // 4, size // 4), ("all-but-magic", 4, size)):
        zeroed = bytearray(data)
        zeroed[start:start + length] = bytes(len(zeroed[start:start + length]))
        out[f"zero-{name}"] = bytes(zeroed)
    return out


def build_corpus(folder: Path, samples: Path | None, *, full: bool = False) -> tuple[list[Variant], dict]:
    """Write the variants under ``folder``; returns them and {origin: path of the intact file}.

    Quick (default): two simulated DNGs with every kind of damage and the small samples with
    truncations and entry extremes. ``full``: more bit flips and every sample raw.
    """
    folder.mkdir(parents=True, exist_ok=True)
    originals: dict[str, Path] = {}
    variants: list[Variant] = []

    def add(origin: str, kind: str, name: str, data: bytes, suffix: str) -> None:
        path = folder / f"{origin}--{name}{suffix}"
        path.write_bytes(data)
        variants.append(Variant(name, str(path), origin, kind))

    sources = []
    sim = sim_dng(folder / "sim-a.dng")
    originals["sim-a"] = sim
    sources.append(("sim-a", sim, dict(flips=40 if full else 20)))
    sim_b = sim_dng(folder / "sim-b.dng", 64, 48, exposure_s=Fraction(2), seed=1)
    originals["sim-b"] = sim_b
    sources.append(("sim-b", sim_b, dict(flips=10, extremes=EXTREMES if full else ())))
    sim_x = sim_dng(folder / "sim-x.dng", *SIZES["sim-x"][0], body="sim-xtrans14")      # a 6x6 X-Trans CFA
    originals["sim-x"] = sim_x
    sources.append(("sim-x", sim_x, dict(flips=10, extremes=EXTREMES if full else ())))
    if samples is not None:
        names = sorted(p.name for p in samples.iterdir() if p.suffix != ".md") if full else SMALL_SAMPLES
        for name in names:
            if (samples / name).is_file():
                originals[name] = samples / name
                options = (dict(flips=8, extremes=("count-max", "offset-max")) if full
                           else dict(flips=4, extremes=("count-max",), many_cuts=False))
                sources.append((name, samples / name, options))
    for origin, path, options in sources:
        data = path.read_bytes()
        suffix = path.suffix
        add(origin, "intact", "intact", data, suffix)                 # the control: a correct read
        for name, damaged in byte_variants(data, seed=len(variants), **options).items():
            kind = name.split("-")[0].replace("cut", "truncate").replace("flip", "bitflip")
            kind = {"ifd0": "loop"}.get(kind, kind)
            add(origin, kind, name, damaged, suffix)
    for origin in ("sim-a", "sim-b", "sim-x"):
        for name, damaged in dng_tag_variants(originals[origin].read_bytes()).items():
            add(origin, "tag", name, damaged, ".dng")
    variants += special_files(folder, originals["sim-a"])
    return variants, {k: str(v) for k, v in originals.items()}


def special_files(folder: Path, good: Path) -> list[Variant]:
    """A FIFO and a directory named like raws, an empty file, non-UTF-8 names (good and cut)."""
    out = []
    fifo = folder / "fifo.dng"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
        out.append(Variant("fifo", str(fifo), "", "special"))
    (folder / "dir.dng").mkdir()
    out.append(Variant("directory", str(folder / "dir.dng"), "", "special"))
    (folder / "empty.dng").write_bytes(b"")
    out.append(Variant("empty", str(folder / "empty.dng"), "", "special"))
    data = good.read_bytes()
    for label, name, content in (("non-utf8-latin1", b"caf\xe9-latin1.dng", data),
                                 ("non-utf8-cut", b"\xff\xfe-cut.dng", data[:700])):
        raw_name = os.path.join(os.fsencode(folder), name)
        with open(raw_name, "wb") as handle:
            handle.write(content)
        out.append(Variant(label, os.fsdecode(raw_name), "sim-a", "special"))
    link = folder / "zero.dng"
    if Path("/dev/zero").exists():
        link.symlink_to("/dev/zero")
        out.append(Variant("dev-zero-link", str(link), "", "special"))
    return out


# --- one variant, in the worker -----------------------------------------------------------------------

KEY_FIELDS = ("exposure_s", "iso", "fnumber", "cfa", "black_level", "white_level", "width", "height", "camera")


def _key(meta) -> dict:
    return {name: str(getattr(meta, name)) for name in KEY_FIELDS}


def reference(path: str) -> dict | None:
    """The key fields of an intact file (None when the intact file is itself unreadable)."""
    from curate.rawmeta import UnreadableRaw, read_metadata

    try:
        return _key(read_metadata(path))
    except UnreadableRaw:
        return None


def check_variant(variant: dict, references: dict, longs: dict) -> dict:
    """Run one variant through read_metadata, `curate inspect` and validate's pixel checks.

    outcome: 'finding' (some step reports it), 'correct' (read back as the intact file, no finding),
    'changed' (read without a finding but with other values: damage to a value, not the structure),
    'traceback' (an exception escaped: its text in 'error').
    """
    from click.testing import CliRunner

    from curate.cli import main
    from curate.pixelchecks import check_pair_pixels
    from curate.rawmeta import UnreadableRaw, read_metadata

    path, origin = variant["path"], variant["origin"]
    result = {"name": variant["name"], "origin": origin, "kind": variant["kind"], "findings": []}
    try:
        try:
            meta = read_metadata(path)
            if meta.pixel_problem:
                result["findings"].append("read_metadata: pixel_problem")
        except UnreadableRaw as exc:
            meta = None
            assert "\n" not in str(exc), "multi-line message"
            result["findings"].append("read_metadata: unreadable")
        invoked = CliRunner().invoke(main, ["inspect", path, "--format", "json"])
        if invoked.exception is not None and not isinstance(invoked.exception, SystemExit):
            raise invoked.exception
        (report,) = json.loads(invoked.stdout)
        assert invoked.exit_code == (1 if any(f["severity"] == "error" for f in report["findings"]) else 0)
        result["findings"] += [f"inspect: {f['code']}" for f in report["findings"]]
        if origin in longs and meta is not None:
            found, _ = check_pair_pixels(path, longs[origin]["path"], exif_ratio=longs[origin]["ratio"],
                                         black_level=meta.black_level or [0] * 4,
                                         white_level=meta.white_level or 16383, cfa=meta.cfa or "RGGB",
                                         pair_id="fuzz")
            result["findings"] += [f"validate: {f.code}" for f in found if f.severity == "error"]
        if result["findings"]:
            result["outcome"] = "finding"
        elif meta is not None and references.get(origin) == _key(meta):
            result["outcome"] = "correct"
        else:
            result["outcome"] = "changed"
            result["values"] = _key(meta) if meta is not None else None
    except BaseException as exc:            # noqa: BLE001 - the harness counts what escapes
        import traceback

        result["outcome"] = "traceback"
        result["error"] = f"{type(exc).__name__}: {exc}"[:500]
        result["trace"] = traceback.format_exc()[-2000:]
    return result


def worker() -> None:
    """Read a job header then one variant per line on stdin; write one JSON result per line."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    sys.path.insert(0, str(REPO))
    header = json.loads(sys.stdin.readline())
    references = {origin: reference(path) for origin, path in header["originals"].items()}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"ready": True, "base_rss_kib": base}), flush=True)
    for line in sys.stdin:
        variant = json.loads(line)
        started = time.perf_counter()
        result = check_variant(variant, references, header["longs"])
        result["seconds"] = round(time.perf_counter() - started, 3)
        result["rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(result), flush=True)


# --- the parent: time limits, restarts, counts ---------------------------------------------------------

@dataclass
class Report:
    results: list = field(default_factory=list)
    hangs: list = field(default_factory=list)
    peak_rss_kib: int = 0
    base_rss_kib: int = 0
    seconds: float = 0.0

    def counts(self) -> dict:
        outcomes = [r["outcome"] for r in self.results]
        return {"variants": len(self.results) + len(self.hangs),
                "findings": outcomes.count("finding"), "correct reads": outcomes.count("correct"),
                "changed reads": outcomes.count("changed"), "tracebacks": outcomes.count("traceback"),
                "hangs": len(self.hangs), "peak worker RSS MiB": round(self.peak_rss_kib / 1024, 1),
                "worker RSS before variants MiB": round(self.base_rss_kib / 1024, 1),
                "slowest variant s": max((r["seconds"] for r in self.results), default=0.0),
                "seconds": round(self.seconds, 1)}


def run_corpus(variants: list[Variant], originals: dict, longs: dict, log: Path, time_limit: float = TIME_LIMIT_S,
               startup_limit: float = 120.0) -> Report:
    """Every variant through a worker process, ``time_limit`` seconds each (a hang is killed)."""
    report, pending, started = Report(), list(variants), time.perf_counter()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    header = json.dumps({"originals": originals, "longs": longs})
    log_file = open(log, "a")               # LibRaw's and the workers' stderr
    while pending:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True,
                                errors="surrogateescape")
        try:
            proc.stdin.write(header + "\n")
            proc.stdin.flush()
            ready = _read_line(proc, startup_limit)
            if ready is None:
                raise RuntimeError("fuzz worker did not start")
            report.base_rss_kib = max(report.base_rss_kib, json.loads(ready)["base_rss_kib"])
            while pending:
                variant = pending[0]
                proc.stdin.write(json.dumps(variant.__dict__) + "\n")
                proc.stdin.flush()
                line = _read_line(proc, time_limit)
                pending.pop(0)
                if line is None:                      # over the limit or the worker died: next worker
                    alive = proc.poll() is None
                    report.hangs.append({"name": variant.name, "origin": variant.origin,
                                         "why": "time limit" if alive else f"worker died ({proc.returncode})"})
                    break
                result = json.loads(line)
                report.peak_rss_kib = max(report.peak_rss_kib, result["rss_kib"])
                report.results.append(result)
        finally:
            proc.kill()
            proc.wait()
    log_file.close()
    report.seconds = time.perf_counter() - started
    return report


def _read_line(proc, limit: float) -> str | None:
    ready, _, _ = select.select([proc.stdout], [], [], limit)
    if not ready:
        return None
    line = proc.stdout.readline()
    return line or None


def longs_for(folder: Path, originals: dict) -> dict:
    """A good long for each simulated origin (the pair validate checks a variant in)."""
    return {origin: {"path": str(sim_dng(folder / f"{origin}-long.dng", *size, exposure_s=exposure, seed=7,
                                         body=body)),
                     "ratio": 100.0} for origin, (size, exposure, body) in SIZES.items() if origin in originals}


def run(folder: Path, samples: Path | None, full: bool = False) -> Report:
    variants, originals = build_corpus(folder, samples, full=full)
    return run_corpus(variants, originals, longs_for(folder, originals), folder / "worker-stderr.log")


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    worker()
