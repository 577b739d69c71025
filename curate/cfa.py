"""The Fuji X-Trans layout that SID's Fuji code packs: one table for capture (the simulated body),
curate (noise profiles per packed channel) and train (packing)."""
from __future__ import annotations

XTRANS = "XTRANS"
# Channel -> the 6x6-tile offset read for each of its four 3x3 blocks (top-left, top-right,
# bottom-left, bottom-right), which become a 2x2 block of the packed image (SID's train_Fuji.py).
XTRANS_OFFSETS = (
    ((0, 0), (0, 4), (3, 1), (3, 3)),
    ((0, 2), (0, 5), (3, 2), (3, 5)),
    ((0, 1), (0, 3), (3, 0), (3, 4)),
    ((1, 2), (2, 5), (5, 2), (4, 5)),
    ((2, 2), (1, 5), (4, 2), (5, 5)),
    ((1, 0), (1, 3), (4, 0), (4, 3)),
    ((1, 1), (1, 4), (4, 1), (4, 4)),
    ((2, 0), (2, 3), (5, 0), (5, 3)),
    ((2, 1), (2, 4), (5, 1), (5, 4)),
)
XTRANS_CHANNEL_COLOURS = "RGBRBGGGG"   # SID's train_Fuji.py: 0 R, 1 G, 2 B, 3 R, 4 B, 5-8 G
# The 6x6 tile those offsets read, row by row: a file whose tile sits in another phase (other Fuji
# bodies, other crops) is packed from the first row and column where this layout starts.
XTRANS_LAYOUT = "".join(XTRANS_CHANNEL_COLOURS[next(ch for ch, offs in enumerate(XTRANS_OFFSETS) if (y, x) in offs)]
                        for y in range(6) for x in range(6))


def xtrans_origin(tile: str) -> tuple[int, int] | None:
    """The first (row, column) of a 6x6 tile (36 letters, row by row, as the file's top-left corner
    shows it) from which its colours follow XTRANS_LAYOUT; None if they never do."""
    for dy in range(6):
        for dx in range(6):
            if all(tile[(y + dy) % 6 * 6 + (x + dx) % 6] == XTRANS_LAYOUT[y * 6 + x] for y in range(6) for x in range(6)):
                return dy, dx
    return None


def packing_origin(raw) -> tuple[int, int] | None:
    """Where SID's packing starts in an open rawpy raw's visible mosaic: (0, 0) unless its pattern is
    6x6; for X-Trans the phase of XTRANS_LAYOUT (xtrans_origin), None when its tile has none."""
    if raw.raw_pattern is None or raw.raw_pattern.shape != (6, 6):
        return 0, 0
    desc = raw.color_desc.decode()
    return xtrans_origin("".join(desc[c] for c in raw.raw_colors_visible[:6, :6].ravel()))
