"""A malformed-file corpus: every file raises UnreadableRaw with a one-line message, quickly, never a crash."""
from __future__ import annotations

import struct
import time
import tracemalloc
from datetime import datetime, timezone
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from capture.dng import write_dng
from curate.rawmeta import UnreadableRaw, check_pixels, read_metadata


def _dng(path):
    mosaic = np.random.default_rng(3).integers(100, 4000, (32, 48)).astype(np.uint16)
    return write_dng(path, mosaic, make="Sidkit", model="SIM-1", serial="1", cfa="RGGB", black_level=[64] * 4,
                     white_level=4095, exposure_s=Fraction(1, 100), iso=400, fnumber=Fraction(4),
                     captured_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc))


def _tiff(entries, next_ifd=0):
    """A little-endian TIFF: header + one IFD of (tag, type, count, 4-byte value) entries."""
    body = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\0" + struct.pack("<I", 8) + body + struct.pack("<I", next_ifd)


def zero_bytes(tmp):
    (tmp / "empty.dng").write_bytes(b"")
    return tmp / "empty.dng"


def truncated_dng(tmp):
    data = _dng(tmp / "full.dng").read_bytes()
    (tmp / "cut.dng").write_bytes(data[:60])                 # cut inside IFD0
    return tmp / "cut.dng"


def random_bytes(tmp):
    (tmp / "noise.dng").write_bytes(np.random.default_rng(7).bytes(65536))
    return tmp / "noise.dng"


def jpeg_named_dng(tmp):
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp / "photo.dng", format="JPEG")
    return tmp / "photo.dng"


def absurd_dimensions(tmp):
    data = _tiff([(256, 4, 1, 2_000_000_000), (257, 4, 1, 2_000_000_000), (262, 3, 1, 32803),
                  (273, 4, 1, 8), (279, 4, 1, 4_000_000_000)])
    (tmp / "huge.dng").write_bytes(data)
    return tmp / "huge.dng"


def text_named_arw(tmp):
    (tmp / "notes.ARW").write_text("DSC01234: long exposure, 10 s, ISO 100\n" * 20)
    return tmp / "notes.ARW"


def hostile_tiff(tmp):
    """Huge counts, offsets past the end, an IFD chain that points at itself: must end quickly."""
    data = _tiff([(256, 4, 0xFFFFFFFF, 8), (271, 2, 0x7FFFFFFF, 4), (330, 4, 3, 8), (34665, 4, 1, 8)],
                 next_ifd=8)
    (tmp / "loop.NEF").write_bytes(data)
    return tmp / "loop.NEF"


def broken_cr3(tmp):
    head = struct.pack(">I4s4sI", 24, b"ftyp", b"crx ", 1) + b"crx isom"
    moov = struct.pack(">I4s", 1, b"moov") + struct.pack(">Q", 2**62)            # 64-bit size, absurd
    (tmp / "broken.CR3").write_bytes(head + moov + b"\0" * 64)
    return tmp / "broken.CR3"


CORPUS = {
    zero_bytes: "empty file (0 bytes)",
    truncated_dng: "truncated or corrupt: its TIFF directory at offset 8 runs past the end of the file (60 bytes)",
    random_bytes: "not a camera raw",
    jpeg_named_dng: "a JPEG image, not a camera raw",
    absurd_dimensions: "absurd image dimensions 2000000000x2000000000",
    text_named_arw: "not a camera raw (starts with b'DSC01234'",
    hostile_tiff: "no exposure time",
    broken_cr3: "no exposure time",
}


@pytest.mark.parametrize("make", list(CORPUS), ids=lambda f: f.__name__)
def test_malformed_file_raises_unreadable_raw(tmp_path, make):
    path = make(tmp_path)
    started = time.perf_counter()
    with pytest.raises(UnreadableRaw) as caught:
        read_metadata(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert CORPUS[make] in message
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("make", list(CORPUS), ids=lambda f: f.__name__)
def test_check_pixels_on_malformed_file_reports_or_raises(tmp_path, make):
    path = make(tmp_path)
    try:
        reason = check_pixels(path)
    except UnreadableRaw as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert isinstance(reason, str) and reason


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(UnreadableRaw, match="cannot open"):
        read_metadata(tmp_path / "absent.dng")


def test_hostile_counts_allocate_nothing_large(tmp_path):
    """A 4 MiB TIFF whose entries each claim the whole file as 2 million SHORTs: skipped, not decoded."""
    size = 4 << 20
    data = bytearray(_tiff([(50714, 3, size // 2 - 8, 0), (273, 3, size // 2 - 8, 0)]))
    data += bytes(size - len(data))
    path = tmp_path / "counts.dng"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(UnreadableRaw, match="no exposure time"):
            read_metadata(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20                  # decoding either entry would take a 16 MB tuple


def test_cut_and_damaged_dngs_never_crash(tmp_path):
    """Every prefix length through the header and random header bytes flipped: RawMeta or UnreadableRaw."""
    data = _dng(tmp_path / "good.dng").read_bytes()
    rng = np.random.default_rng(11)
    variants = [data[:cut] for cut in range(1, 800, 37)]
    for _ in range(30):
        damaged = np.frombuffer(data, np.uint8).copy()
        damaged[rng.integers(0, 800, 6)] = rng.integers(0, 256, 6)
        variants.append(damaged.tobytes())
    outcomes = {"read": 0, "unreadable": 0}
    for number, variant in enumerate(variants):
        path = tmp_path / f"v{number}.dng"
        path.write_bytes(variant)
        try:
            read_metadata(path)
            outcomes["read"] += 1
        except UnreadableRaw as exc:
            assert str(exc).startswith(f"{path}: ")
            outcomes["unreadable"] += 1
        reason = None
        try:
            reason = check_pixels(path)
        except UnreadableRaw:
            pass
        assert reason is None or isinstance(reason, str)
    assert outcomes["read"] > 0 and outcomes["unreadable"] > 0
