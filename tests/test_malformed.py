"""A malformed-file corpus: every file raises UnreadableRaw with a one-line message, quickly, never a crash."""
from __future__ import annotations

import os
import struct
import tracemalloc
from datetime import datetime, timezone
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from capture.dng import write_dng
from helpers import time_limit
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
    with time_limit(60), pytest.raises(UnreadableRaw) as caught:
        read_metadata(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert CORPUS[make] in message


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


# --- issue 8: the bugs a fuzz of real samples and simulated DNGs found ------------------------------

def _patched(tmp, name, **change):
    from fuzzcorpus import set_entry

    data = _dng(tmp / f"{name}-good.dng").read_bytes()
    path = tmp / f"{name}.dng"
    path.write_bytes(set_entry(data, **change))
    return path


@pytest.mark.parametrize("tag,count,value", [(33421, 3, 8), (33421, 1, None), (50713, 1, None), (50713, 3, 8),
                                               (33421, 3, None)],
                         ids=["cfa-dim-3", "cfa-dim-1", "black-dim-1", "black-dim-3", "cfa-dim-3-past-end"])
def test_repeat_dim_count_other_than_two_is_a_header_finding(tmp_path, tag, count, value):
    """CFARepeatPatternDim/BlackLevelRepeatDim with 1 or 3 values raised ValueError in curate.tiff;
    now the tag is not used (LibRaw's reading stands) and the damage is a header finding."""
    meta = read_metadata(_patched(tmp_path, "dim", tag=tag, count=count, value=value))
    assert meta.exposure_s == Fraction(1, 100)
    kind = "DNG " if value is not None or count == 1 else "TIFF entry CFA_REPEAT_PATTERN_DIM: its 3 values"
    assert any(text.startswith(f"header: {kind}") for text in meta.disagreements), meta.disagreements


def test_cfa_pattern_out_of_range_is_a_finding_in_the_pool(tmp_path):
    """CFAPattern bytes 0x09 raised IndexError inside validate's worker pool and killed validate."""
    from curate.findings import Finding
    from curate.validate import pixel_findings
    from curate.manifest import COLUMNS, Manifest

    bad = _patched(tmp_path, "cfa9", tag=33422, value=bytes((0, 9, 9, 2)))
    good = _dng(tmp_path / "long.dng")
    rows = [dict.fromkeys(COLUMNS, "") | {
        "pair_id": f"p{i}", "short_path": str(short), "long_path": str(good), "ratio": 100.0,
        "short_iso": 400, "long_iso": 400, "short_fnumber": 4, "long_fnumber": 4, "cfa": "RGGB",
        "black_level": "64 64 64 64", "white_level": 4095} for i, short in enumerate([bad, good, bad])]
    import pandas as pd

    found = pixel_findings(Manifest(pd.DataFrame(rows), tmp_path), workers=2)
    bad_findings = [f for f in found if f.path == str(bad)]
    assert {f.pair_id for f in bad_findings} == {"p0", "p2"}
    assert all(isinstance(f, Finding) and f.code == "unreadable" and "CFA" in f.message for f in bad_findings)
    assert not [f for f in found if f.pair_id == "p1" and f.severity == "error"]


def test_non_utf8_name_is_read(tmp_path):
    """rawpy raised UnicodeEncodeError on a latin-1 file name."""
    import os

    data = _dng(tmp_path / "good.dng").read_bytes()
    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.dng")
    with open(name, "wb") as handle:
        handle.write(data)
    meta = read_metadata(os.fsdecode(name), with_pixels=True)
    assert meta.exposure_s == Fraction(1, 100) and meta.width == 48 and meta.has_pixels
    assert check_pixels(os.fsdecode(name)) is None


def test_fifo_and_directory_named_like_raws_are_never_opened(tmp_path):
    """A FIFO named x.dng hung inspect and scan forever."""
    import os

    from curate.rawmeta import sha256_file

    os.mkfifo(tmp_path / "x.dng")
    (tmp_path / "d.dng").mkdir()
    for name, what in (("x.dng", "a FIFO"), ("d.dng", "a directory")):
        for call in (read_metadata, check_pixels, sha256_file):
            with time_limit(60), pytest.raises(UnreadableRaw, match=f"{what}.*never opened"):
                call(tmp_path / name)


def test_dev_zero_is_never_hashed(tmp_path):
    """A manifest path to /dev/zero hung validate at 100% CPU."""
    from curate.rawmeta import sha256_file

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    with time_limit(60), pytest.raises(UnreadableRaw, match="a character device"):
        sha256_file("/dev/zero")


def test_sha256_stops_at_the_size_stat_gave(tmp_path):
    import hashlib

    from curate.rawmeta import sha256_file

    path = tmp_path / "a.dng"
    path.write_bytes(b"x" * 3000)
    assert sha256_file(path, chunk=1024) == hashlib.sha256(b"x" * 3000).hexdigest()


@pytest.mark.parametrize("damage", ["truncated-1000", "white-level-0", "strips-past-end", "strip-bytes-short"])
def test_missing_or_broken_pixel_data_is_reported_by_read_metadata(tmp_path, damage):
    """These entered the manifest with no error: read_metadata (scan's reader) now says why."""
    from fuzzcorpus import dng_tag_variants, sim_dng

    data = dng_tag_variants(sim_dng(tmp_path / "sim.dng").read_bytes())[damage]
    path = tmp_path / f"{damage}.dng"
    path.write_bytes(data)
    try:
        meta = read_metadata(path)
    except UnreadableRaw as exc:
        assert damage == "truncated-1000" and "truncated" in str(exc)
        return
    expected = "DNG WhiteLevel 0 is not above" if damage == "white-level-0" else "strip data missing"
    assert meta.pixel_problem and meta.pixel_problem.startswith(expected), meta.pixel_problem


def test_any_reader_exception_becomes_unreadable(tmp_path, monkeypatch):
    """Whatever a reader raises on a damaged file is one UnreadableRaw line naming the file."""
    import curate.exif

    path = _dng(tmp_path / "good.dng")
    monkeypatch.setattr(curate.exif, "read_tags", lambda *a: (_ for _ in ()).throw(OverflowError("x\ny")))
    with pytest.raises(UnreadableRaw) as caught:
        read_metadata(path)
    assert str(caught.value).startswith(f"{path}: corrupt, a reader failed on it (OverflowError: x y)")


def test_inspect_reports_every_file_good_or_bad(tmp_path):
    """`curate inspect a b c` stopped at the first bad file and printed no JSON for the good ones."""
    import json

    from click.testing import CliRunner

    from curate.cli import main

    good = _dng(tmp_path / "good.dng")
    cut = tmp_path / "cut.dng"
    cut.write_bytes(good.read_bytes()[:-1000])
    os.mkfifo(tmp_path / "fifo.dng")
    (tmp_path / "dir.dng").mkdir()
    paths = [good, cut, tmp_path / "fifo.dng", tmp_path / "dir.dng", good]
    result = CliRunner().invoke(main, ["inspect", *map(str, paths), "--format", "json"])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit))
    reports = json.loads(result.stdout)
    assert [r["path"] for r in reports] == [str(p) for p in paths]
    assert [r["pixel_data"] for r in reports] == ["present", "missing", "unknown", "unknown", "present"]
    assert [[f["code"] for f in r["findings"]] for r in reports] == [
        [], ["no-pixel-data"], ["unreadable"], ["unreadable"], []]
    assert reports[0]["exposure_s"] == "1/100" and reports[1]["exposure_s"] == "1/100"
    assert "FIFO" in reports[2]["findings"][0]["message"]
    table = CliRunner().invoke(main, ["inspect", str(good), str(tmp_path / "fifo.dng")])
    assert table.exit_code == 1 and "exposure_s" in table.stdout and "unreadable" in table.stdout
    assert CliRunner().invoke(main, ["inspect", str(good)]).exit_code == 0


@pytest.mark.parametrize("damage,reason", [("bits-0", "BitsPerSample 0 is no raw's"),
                                           ("bits-64", "BitsPerSample 64 is no raw's"),
                                           ("pixels-zeroed", "decodes to all zeros"),
                                           ("pixels-ff", "every raw value is 65535")])
def test_pixel_data_that_cannot_be_a_photo(tmp_path, damage, reason):
    """Header sample sizes no raw has, and pixels of one value: check_pixels (predict's and inspect's
    check) says why; read_metadata's header-only pixel_problem catches the sample sizes."""
    from fuzzcorpus import dng_tag_variants, sim_dng

    path = tmp_path / f"{damage}.dng"
    path.write_bytes(dng_tag_variants(sim_dng(tmp_path / "sim.dng").read_bytes())[damage])
    assert reason in (check_pixels(path) or "")
    if damage.startswith("bits"):
        assert reason in read_metadata(path).pixel_problem


def test_cr3_of_tiny_boxes_is_read_quickly(tmp_path):
    """A 'CR3' of 500,000 empty 8-byte boxes: the box walk stops at MAX_BOXES, well inside a second."""
    from curate.containers import MAX_BOXES, _boxes

    head = struct.pack(">I4s4sI", 24, b"ftyp", b"crx ", 1) + b"crx isom"
    data = head + struct.pack(">I4s", 8, b"free") * 500_000
    path = tmp_path / "boxes.CR3"
    path.write_bytes(data)
    assert sum(1 for _ in _boxes(data, 0, len(data))) == MAX_BOXES
    with time_limit(60), pytest.raises(UnreadableRaw, match="no exposure time"):
        read_metadata(path)
