"""What non-TIFF camera containers hold, read with bounds checks: the EXIF/TIFF blocks inside a Canon
CR3 (ISO base media boxes) and a Fuji RAF (its embedded JPEG), the byte spans their image data
claims, and the shooting data of a Canon CRW's CIFF records (which have no EXIF at all)."""
from __future__ import annotations

import struct
from datetime import datetime, timezone

from .exposure import snap_exposure

CANON_CR3_UUID = bytes.fromhex("85c0b687820f11e08111f4ce462b6a48")


# --- Canon CR3 (ISO base media boxes) ---------------------------------------------------------------

MAX_BOXES = 4096                  # boxes per level (a CR3 holds a few dozen); more is a corrupt file


def _boxes(buf, start: int, end: int):
    """(type, payload start, payload end) of each box in [start, end), clipped to ``end``; at most
    MAX_BOXES of them, so a file of tiny boxes cannot keep the reader busy."""
    pos, count = start, 0
    while pos + 8 <= end and count < MAX_BOXES:
        count += 1
        size, name = struct.unpack_from(">I4s", buf, pos)
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield name, pos + header, min(pos + size, end)
        pos += size


def cr3_tiff_blocks(buf) -> list[bytes]:
    """The TIFF blocks of a CR3: CMT1 (IFD0: make, model) and CMT2 (the EXIF IFD) in Canon's uuid box."""
    blocks = []
    for name, start, end in _boxes(buf, 0, len(buf)):
        if name != b"moov":
            continue
        for child, cstart, cend in _boxes(buf, start, end):
            if child == b"uuid" and bytes(buf[cstart:cstart + 16]) == CANON_CR3_UUID:
                blocks += [buf[s:e] for n, s, e in _boxes(buf, cstart + 16, cend) if n in (b"CMT1", b"CMT2")]
    return blocks


def cr3_track_spans(buf) -> list[tuple[int, int]]:
    """(offset, size) of the first sample of every track (JPEG, preview, raw): stco/co64 and stsz."""
    def child(start, end, name):
        return next(((s, e) for n, s, e in _boxes(buf, start, end) if n == name), None)

    spans = []
    for name, start, end in _boxes(buf, 0, len(buf)):
        if name != b"moov":
            continue
        for track, tstart, tend in _boxes(buf, start, end):
            box = (tstart, tend) if track == b"trak" else None
            for step in (b"mdia", b"minf", b"stbl"):
                box = box and child(*box, step)
            sizes = box and child(*box, b"stsz")
            offsets, wide = (box and child(*box, b"co64"), True)
            if box and offsets is None:
                offsets, wide = child(*box, b"stco"), False
            if not (sizes and offsets) or sizes[0] + 12 > sizes[1] or offsets[0] + 8 + (8 if wide else 4) > offsets[1]:
                continue
            size = struct.unpack_from(">I", buf, sizes[0] + 4)[0]
            if size == 0 and sizes[0] + 16 <= sizes[1]:
                size = struct.unpack_from(">I", buf, sizes[0] + 12)[0]
            offset = struct.unpack_from(">Q" if wide else ">I", buf, offsets[0] + 8)[0]
            spans.append((offset, size))
    return spans


# --- Fuji RAF ---------------------------------------------------------------------------------------

def raf_jpeg(buf) -> bytes | None:
    """The embedded JPEG of a RAF (it carries the EXIF); None when the header points past the end."""
    if len(buf) < 92:
        return None
    offset, length = struct.unpack_from(">II", buf, 84)
    return buf[offset:offset + length] if offset + length <= len(buf) else None


def raf_raw_spans(buf) -> list[tuple[int, int]]:
    """(offset, size) of a RAF's CFA data as its header declares it; [] when the header is too short."""
    return [struct.unpack_from(">II", buf, 100)] if len(buf) >= 108 else []


# --- Canon CRW (CIFF) ------------------------------------------------------------------------------

def ciff_values(buf) -> dict:
    """Make, model, serial, time, exposure, ISO and f-number from a CRW's CIFF records (as exiftool)."""
    order = "<" if bytes(buf[:2]) == b"II" else ">"
    records = dict(_ciff_records(buf, order, struct.unpack_from(order + "I", buf, 2)[0], len(buf), 0))
    values: dict = {}
    if 0x080A in records:
        parts = bytes(records[0x080A]).split(b"\0")
        values["make"] = parts[0].decode("latin-1") or None
        values["model"] = parts[1].decode("latin-1") if len(parts) > 1 and parts[1] else None
    if 0x180B in records and len(records[0x180B]) >= 4:
        values["serial"] = f"{struct.unpack_from(order + 'I', records[0x180B])[0]:010d}"
    if 0x180E in records and len(records[0x180E]) >= 4:
        stamp = struct.unpack_from(order + "I", records[0x180E])[0]
        values["captured_at"] = _guarded(lambda: datetime.fromtimestamp(stamp, timezone.utc)
                                         .strftime("%Y-%m-%dT%H:%M:%S"))
    shot = records.get(0x102A)
    if shot is not None and len(shot) >= 46:
        info = struct.unpack_from(f"{order}{len(shot) // 2}h", shot)
        if info[22]:
            values["exposure_s"] = _guarded(lambda: snap_exposure(2.0 ** -_canon_ev(info[22])))
        values["iso"] = _guarded(lambda: float(round(2 ** (info[2] / 32) * 100 / 32 * 2 ** (info[1] / 32))))
        if info[21]:
            values["fnumber"] = _guarded(lambda: round(2 ** (_canon_ev(info[21]) / 2), 1))
    return values


def _guarded(compute):
    """A value computed from damaged records: None when it overflows or is no time or exposure."""
    try:
        return compute()
    except (ValueError, OverflowError, OSError):
        return None


def _ciff_records(buf, order: str, start: int, end: int, depth: int):
    """(tag id, bytes) of every value record in a CIFF heap, descending into sub-heaps."""
    if end - start < 4 or end > len(buf) or depth > 4:
        return
    table = start + struct.unpack_from(order + "I", buf, end - 4)[0]
    if table + 2 > end:
        return
    count = struct.unpack_from(order + "H", buf, table)[0]
    for entry in range(table + 2, min(table + 2 + 10 * count, end - 10 + 1), 10):
        tag, size, offset = struct.unpack_from(order + "HII", buf, entry)
        if tag & 0xC000 == 0x4000:                        # value stored in the record itself
            yield tag & 0x3FFF, bytes(buf[entry + 2:entry + 10])
            continue
        data_start, data_end = start + offset, start + offset + size
        if data_end > end:
            continue
        if tag & 0x3800 in (0x2800, 0x3000):              # a sub-heap
            yield from _ciff_records(buf, order, data_start, data_end, depth + 1)
        else:
            yield tag & 0x3FFF, bytes(buf[data_start:data_end])


def _canon_ev(value: int) -> float:
    """Canon's EV encoding: 1/32 steps, where fractions 0x0c and 0x14 mean thirds (exiftool's CanonEv)."""
    sign, value = (-1, -value) if value < 0 else (1, value)
    fraction = value & 0x1F
    value -= fraction
    fraction = {0x0C: 32 / 3, 0x14: 64 / 3}.get(fraction, fraction)
    return sign * (value + fraction) / 32
