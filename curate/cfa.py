"""The sensor's colour filter array, the one place capture, curate and train learn it from.

Names: a Bayer pattern by its 2x2 tile's letters row by row (RGGB, GRBG, GBRG, BGGR); any 6x6 tile
is 'XTRANS'. Kinds: Bayer packs into 4 channels (R, Gr, B, Gb; Gr the green in red's row) at half
size, X-Trans into 9 channels at a third of the size exactly as SID's Fuji code (train_Fuji.py)
does. Packing starts at the mosaic's packing origin: (0, 0) for Bayer, for X-Trans the first row
and column from which the tile follows XTRANS_LAYOUT. Black levels come per position of the 2x2
tile, row-major (one value: every position).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common.errors import SidkitError

XTRANS = "XTRANS"
BAYER_PATTERNS = ("RGGB", "GRBG", "GBRG", "BGGR")
CFAS = BAYER_PATTERNS + (XTRANS,)
COLOUR_INDEX = {"R": 0, "G": 1, "B": 2}       # the colour indices of a DNG's CFAPattern and rawpy

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


@dataclass(frozen=True)
class Kind:
    """One kind of colour filter: its tile, its packed channels and how the output scales."""
    name: str                       # 'bayer' | 'xtrans': a checkpoint's cfa_kind
    label: str                      # for people
    tile: int                       # side of the repeating tile
    scale: int                      # output pixels per packed pixel along each axis
    channel_names: tuple[str, ...]  # packed channels, in packing order
    pattern: str                    # a pattern of this kind whose packing is the canonical order

    @property
    def channels(self) -> int:
        return len(self.channel_names)


BAYER = Kind("bayer", "Bayer", 2, 2, ("R", "Gr", "B", "Gb"), "RGGB")
XTRANS_KIND = Kind("xtrans", "X-Trans", 6, 3, tuple(f"X{c}" for c in range(9)), XTRANS)
KINDS = {k.name: k for k in (BAYER, XTRANS_KIND)}
TILE_SIDES = tuple(k.tile for k in KINDS.values())


def kind_of(cfa: str) -> Kind | None:
    """The kind of a pattern name (RGGB..., XTRANS); None for anything else."""
    if cfa == XTRANS:
        return XTRANS_KIND
    return BAYER if isinstance(cfa, str) and len(cfa) == 4 and sorted(cfa) == ["B", "G", "G", "R"] else None


def kind(cfa: str, fix: str = "fix the manifest's cfa column or re-scan") -> Kind:
    """``kind_of``, or a SidkitError naming the pattern, the ones supported and ``fix``."""
    found = kind_of(cfa)
    if found is None:
        raise SidkitError(f"unsupported CFA pattern {cfa!r}: expected {', '.join(CFAS)}; {fix}")
    return found


def kind_of_channels(channels: int) -> Kind | None:
    """The kind whose packing has ``channels`` channels (4 Bayer, 9 X-Trans); None for any other count."""
    return next((k for k in KINDS.values() if k.channels == channels), None)


def tile_size(cfa: str) -> int:
    """2 for Bayer, 6 for X-Trans; SidkitError for anything else."""
    return kind(cfa).tile


def scale(cfa: str) -> int:
    """Output pixels per packed pixel along each axis: 2 for Bayer, 3 for X-Trans."""
    return kind(cfa).scale


def channel_names(cfa: str) -> tuple[str, ...]:
    """The packed channels in order: R, Gr, B, Gb for Bayer; X0..X8 for X-Trans."""
    return kind(cfa).channel_names


# --- naming a tile ---------------------------------------------------------------------------------
def tile_name(letters: str) -> str:
    """The name of a tile given as its letters row by row: a 2x2 tile's own letters, 'XTRANS' for 36."""
    return XTRANS if len(letters) == 36 else letters


def pattern_name(pattern, desc: str) -> str:
    """The name of a tile of colour indices into ``desc`` (rawpy's raw_pattern and color_desc): 'XTRANS'
    for any 6x6 tile, else its top-left 2x2 letters row by row."""
    pattern = np.asarray(pattern)
    return XTRANS if pattern.shape == (6, 6) else "".join(desc[c] for c in pattern[:2, :2].ravel())


def corrupt_tile(pattern, desc: str) -> str | None:
    """Why a tile of colour indices into ``desc`` (rawpy's raw_pattern, color_desc) is no colour filter
    that can be named (no 2x2 or 6x6 tile, or an index beyond ``desc``), or None when it is one."""
    pattern = np.asarray(pattern)
    if pattern.shape in ((t, t) for t in TILE_SIDES) and int(pattern.max()) < len(desc):
        return None
    return f"its CFA pattern {pattern.tolist()} (colours {desc}) is no 2x2 Bayer or 6x6 X-Trans tile: a corrupt CFAPattern"


def colour_tile(cfa: str) -> np.ndarray:
    """The colour index (R 0, G 1, B 2) of each position of the tile: 2x2 for a Bayer name, 6x6 for 36
    letters row by row or 'XTRANS' (XTRANS_LAYOUT); SidkitError for anything else."""
    letters = XTRANS_LAYOUT if cfa == XTRANS else cfa
    if letters in BAYER_PATTERNS or (len(letters) == 36 and [letters.count(c) for c in "RGB"] == [8, 20, 8]):
        return np.array([COLOUR_INDEX[c] for c in letters], np.uint8).reshape((2, 2) if len(letters) == 4 else (6, 6))
    raise SidkitError(f"CFA pattern {cfa!r} is not one of {', '.join(BAYER_PATTERNS)}, {XTRANS} "
                      "or the 36 letters of a 6x6 X-Trans tile row by row (8 R, 20 G, 8 B)")


# --- packing -------------------------------------------------------------------------------------
def bayer_positions(cfa: str) -> list[int]:
    """For each canonical Bayer channel (R, Gr, B, Gb), its position (0..3, row-major) in the 2x2 tile."""
    if kind(cfa) is not BAYER:
        raise SidkitError(f"CFA {cfa!r} has no 2x2 tile positions; it is no Bayer pattern")
    r, b = cfa.index("R"), cfa.index("B")
    other = lambda pos: (pos // 2) * 2 + (1 - pos % 2)     # the other pixel of the same row
    return [r, other(r), b, other(b)]


def pack(mosaic: np.ndarray, cfa: str) -> np.ndarray:
    """The mosaic (from its packing origin) gathered into its packed channels, whole tiles only:
    (C, h, w) of the mosaic's dtype."""
    t = tile_size(cfa)
    m = mosaic[: mosaic.shape[0] // t * t, : mosaic.shape[1] // t * t]
    if t == 2:
        return np.stack([m[p // 2::2, p % 2::2] for p in bayer_positions(cfa)])
    out = np.empty((9, m.shape[0] // 3, m.shape[1] // 3), dtype=m.dtype)
    for channel, offsets in enumerate(XTRANS_OFFSETS):
        for block, (dy, dx) in enumerate(offsets):
            out[channel, block // 2::2, block % 2::2] = m[dy::6, dx::6]
    return out


def unpack(packed: np.ndarray, cfa: str, mosaic: np.ndarray) -> np.ndarray:
    """The inverse of ``pack``: ``packed`` (C, h, w) written into ``mosaic`` in place (the rows and
    columns outside whole tiles are left as they are); returns ``mosaic``."""
    if tile_size(cfa) == 2:
        for channel, p in enumerate(bayer_positions(cfa)):
            mosaic[p // 2: packed.shape[1] * 2: 2, p % 2: packed.shape[2] * 2: 2] = packed[channel]
        return mosaic
    for channel, offsets in enumerate(XTRANS_OFFSETS):
        for block, (dy, dx) in enumerate(offsets):
            mosaic[dy: packed.shape[1] * 3: 6, dx: packed.shape[2] * 3: 6] = packed[channel, block // 2::2, block % 2::2]
    return mosaic


def row_planes(shape: tuple[int, int], cfa: str) -> tuple[np.ndarray, int]:
    """For each value that ``pack`` makes of a mosaic of ``shape``, the mosaic row it came from
    (C, h, w), and the number of whole-tile rows."""
    t = tile_size(cfa)
    height, width = shape[0] // t * t, shape[1] // t * t
    return pack(np.broadcast_to(np.arange(height)[:, None], (height, width)), cfa), height


# --- black levels ----------------------------------------------------------------------------------
def position_black(per_colour, pattern) -> list:
    """Black per position of the 2x2 tile, row-major, from LibRaw's per-colour levels and the tile of
    colour indices (rawpy's black_level_per_channel and raw_pattern)."""
    return [per_colour[c] for c in np.asarray(pattern)[:2, :2].ravel()]


def black_tile(black_level, size: int) -> np.ndarray:
    """Black levels as a ``size`` x ``size`` tile (float) from 1 value, 4 (per position of the 2x2
    tile, row-major, repeated over a 6x6 tile) or size x size values; SidkitError for other counts."""
    levels = np.atleast_1d(np.asarray(black_level, dtype=np.float64)).ravel()
    if levels.size == 1 or (levels.size == 4 and size % 2 == 0):
        n = int(round(levels.size ** 0.5))
        return np.tile(levels.reshape(n, n), (size // n, size // n))
    if levels.size == size * size:
        return levels.reshape(size, size)
    raise SidkitError(f"{levels.size} black levels do not fit a {size}x{size} CFA tile: give 1, 4 "
                      f"(per 2x2 position) or {size * size}")


def black_packed(cfa: str, black, dtype=np.float32) -> np.ndarray:
    """The black level of each packed channel (C,) from levels per 2x2 tile position (1 value: all).

    X-Trans uses their mean (Fuji bodies report one level)."""
    black = [float(v) for v in black]
    black = black * 4 if len(black) == 1 else black
    if tile_size(cfa) == 6:
        return np.full(9, np.mean(black), dtype=dtype)
    return np.array([black[p] for p in bayer_positions(cfa)], dtype=dtype)


def mosaic_black(black, raw) -> np.ndarray:
    """The black level under each photosite of an open rawpy raw's visible image (float32, broadcastable
    to it) from levels per 2x2 position: tiled over a Bayer mosaic; their mean (one level) for X-Trans,
    whose bodies report one, and for a demosaiced raw."""
    counts, pattern = raw.raw_image_visible, raw.raw_pattern
    if counts.ndim == 2 and pattern is not None and np.shape(pattern) != (6, 6) and len(black) == 4:
        h, w = counts.shape
        return np.tile(np.asarray(black, np.float32).reshape(2, 2), (h // 2 + 1, w // 2 + 1))[:h, :w]
    return np.float32(np.mean(black))


# --- where packing starts --------------------------------------------------------------------------
def xtrans_origin(tile: str) -> tuple[int, int] | None:
    """The first (row, column) of a 6x6 tile (36 letters, row by row, as the file's top-left corner
    shows it) from which its colours follow XTRANS_LAYOUT; None if they never do."""
    for dy in range(6):
        for dx in range(6):
            if all(tile[(y + dy) % 6 * 6 + (x + dx) % 6] == XTRANS_LAYOUT[y * 6 + x] for y in range(6) for x in range(6)):
                return dy, dx
    return None


def raw_origin(raw, path) -> tuple[int, int]:
    """Where packing starts in an open rawpy raw's visible mosaic: (0, 0) unless its pattern is 6x6;
    for X-Trans the phase of XTRANS_LAYOUT (``xtrans_origin``); SidkitError naming ``path`` if none."""
    if raw.raw_pattern is None or raw.raw_pattern.shape != (6, 6):
        return 0, 0
    desc = raw.color_desc.decode()
    origin = xtrans_origin("".join(desc[c] for c in raw.raw_colors_visible[:6, :6].ravel()))
    if origin is None:
        raise SidkitError(f"{path}: its 6x6 colour filter is no X-Trans layout (SID's Fuji packing, "
                          f"{XTRANS_LAYOUT} in any phase); this camera is not supported")
    return origin
