"""curate.cfa: the one definition of the colour filter that capture, curate and train share."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from curate import cfa
from curate.common.errors import SidkitError

ROOT = Path(__file__).resolve().parents[1]


def test_kinds_tiles_channels_and_scales():
    for name in cfa.BAYER_PATTERNS:
        kind = cfa.kind(name)
        assert (kind.name, kind.tile, kind.scale, kind.channels) == ("bayer", 2, 2, 4)
        assert cfa.channel_names(name) == ("R", "Gr", "B", "Gb")
    kind = cfa.kind("XTRANS")
    assert (kind.name, kind.label, kind.tile, kind.scale, kind.channels) == ("xtrans", "X-Trans", 6, 3, 9)
    assert cfa.channel_names("XTRANS") == tuple(f"X{c}" for c in range(9))
    assert cfa.CFAS == ("RGGB", "GRBG", "GBRG", "BGGR", "XTRANS")
    assert [cfa.kind_of_channels(n) for n in (4, 9, 3)] == [cfa.BAYER, cfa.XTRANS_KIND, None]
    assert [(cfa.tile_size(c), cfa.scale(c)) for c in ("BGGR", "XTRANS")] == [(2, 2), (6, 3)]


@pytest.mark.parametrize("name", ["RRRR", "RGBW", "rggb", "", "X-TRANS"])
def test_an_unknown_pattern_is_a_one_line_error_with_the_fix(name):
    assert cfa.kind_of(name) is None
    with pytest.raises(SidkitError, match=f"unsupported CFA pattern {re.escape(repr(name))}: expected RGGB, GRBG, "
                                          "GBRG, BGGR, XTRANS; fix the manifest's cfa column or re-scan") as error:
        cfa.tile_size(name)
    assert "\n" not in str(error.value)


def test_naming_a_tile():
    assert [cfa.tile_name(t) for t in ("RGGB", "GBRG", cfa.XTRANS_LAYOUT, "XTRANS")] == ["RGGB", "GBRG", "XTRANS", "XTRANS"]
    desc = "RGBG"
    assert cfa.pattern_name(np.array([[0, 1], [3, 2]]), desc) == "RGGB"
    assert cfa.pattern_name(np.array([[1, 2], [0, 3]]), desc) == "GBRG"
    assert cfa.pattern_name(np.zeros((6, 6), int), desc) == "XTRANS"
    assert cfa.corrupt_tile(np.array([[0, 1], [3, 2]]), desc) is None
    assert cfa.corrupt_tile(np.array([[0, 1], [3, 7]]), desc).endswith("is no 2x2 Bayer or 6x6 X-Trans tile: a corrupt CFAPattern")
    assert "no 2x2 Bayer" in cfa.corrupt_tile(np.zeros((3, 3), int), desc)


def test_colour_tiles():
    assert cfa.colour_tile("GRBG").tolist() == [[1, 0], [2, 1]]
    xt = cfa.colour_tile("XTRANS")
    assert xt.shape == (6, 6) and np.bincount(xt.ravel()).tolist() == [8, 20, 8]
    assert cfa.XTRANS_LAYOUT == "RBGBRGGGRGGBGGBGGRBRGRBGGGBGGRGGRGGB"
    with pytest.raises(SidkitError, match="'RGBW' is not one of RGGB, GRBG, GBRG, BGGR, XTRANS"):
        cfa.colour_tile("RGBW")


def _mosaic(name: str, h: int, w: int) -> np.ndarray:
    """A mosaic whose every photosite holds 100 + its colour index (R 100, G 101, B 102)."""
    tile = cfa.colour_tile(name)
    return (100 + np.tile(tile, (h // tile.shape[0] + 1, w // tile.shape[0] + 1))[:h, :w]).astype(np.uint16)


@pytest.mark.parametrize("name, positions", [("RGGB", [0, 1, 3, 2]), ("GRBG", [1, 0, 2, 3]),
                                             ("GBRG", [2, 3, 1, 0]), ("BGGR", [3, 2, 0, 1])])
def test_bayer_packs_r_gr_b_gb_at_half_size(name, positions):
    """Gr is the green in red's row, Gb the one in blue's, whatever the pattern."""
    assert cfa.bayer_positions(name) == positions
    mosaic = _mosaic(name, 9, 13)                       # an odd row and column past whole tiles
    packed = cfa.pack(mosaic, name)
    assert packed.shape == (4, 4, 6) and packed.dtype == np.uint16
    assert [np.unique(c).tolist() for c in packed] == [[100], [101], [102], [101]]
    with pytest.raises(SidkitError, match="no Bayer pattern"):
        cfa.bayer_positions("XTRANS")


def test_x_trans_packs_sids_nine_channels_at_a_third_of_the_size():
    packed = cfa.pack(_mosaic("XTRANS", 14, 20), "XTRANS")
    assert packed.shape == (9, 4, 6)
    assert [np.unique(c).tolist() for c in packed] == [[100 + "RGB".index(c)] for c in cfa.XTRANS_CHANNEL_COLOURS]


@pytest.mark.parametrize("name", cfa.CFAS)
def test_unpack_inverts_pack_and_leaves_the_edges(name):
    mosaic = np.random.default_rng(1).integers(0, 4000, (40, 62)).astype(np.uint16)
    t = cfa.tile_size(name)
    back = cfa.unpack(cfa.pack(mosaic, name), name, np.full_like(mosaic, 7))
    rows, cols = 40 // t * t, 62 // t * t
    assert np.array_equal(back[:rows, :cols], mosaic[:rows, :cols])
    assert (back[rows:] == 7).all() and (back[:, cols:] == 7).all()


@pytest.mark.parametrize("name", ["GRBG", "XTRANS"])
def test_row_planes_give_each_packed_value_its_mosaic_row(name):
    rows, height = cfa.row_planes((14, 20), name)
    assert height == (12 if name == "XTRANS" else 14)
    mosaic = np.repeat(np.arange(14)[:, None], 20, axis=1)
    assert np.array_equal(rows, cfa.pack(mosaic, name))
    if name == "GRBG":                               # R and Gr in even rows, B and Gb in odd ones
        assert [np.unique(r % 2).tolist() for r in rows] == [[0], [0], [1], [1]]


def test_black_levels_per_packed_channel_and_per_tile():
    black = [500, 510, 520, 530]                     # per 2x2 position, row-major
    assert cfa.black_packed("GBRG", black).tolist() == [520, 530, 510, 500]
    assert cfa.black_packed("RGGB", [64]).tolist() == [64] * 4
    assert cfa.black_packed("XTRANS", black).tolist() == [515] * 9          # Fuji reports one level: the mean
    assert cfa.black_packed("RGGB", black).dtype == np.float32
    assert cfa.black_packed("RGGB", black, np.float64).dtype == np.float64
    assert cfa.black_tile(black, 6).tolist() == np.tile([[500, 510], [520, 530]], (3, 3)).tolist()
    assert cfa.black_tile([9], 2).tolist() == [[9, 9], [9, 9]]
    assert cfa.black_tile(range(36), 6)[5, 5] == 35
    with pytest.raises(SidkitError, match="3 black levels do not fit a 2x2 CFA tile: give 1, 4"):
        cfa.black_tile([1, 2, 3], 2)
    assert cfa.position_black([10, 11, 12, 13], np.array([[2, 1], [3, 0]])) == [12, 11, 13, 10]


@pytest.mark.parametrize("phase", [(0, 0), (1, 2), (5, 3)])
def test_x_trans_origin_is_where_sids_layout_starts(phase):
    layout = np.array(list(cfa.XTRANS_LAYOUT)).reshape(6, 6)
    seen = "".join(np.roll(layout, phase, axis=(0, 1)).ravel())     # a crop that starts earlier in the tile
    dy, dx = cfa.xtrans_origin(seen)
    assert (dy % 3, dx % 3) == (phase[0] % 3, phase[1] % 3)      # the layout repeats itself shifted by (3, 3)
    assert "".join(np.roll(layout, phase, axis=(0, 1))[dy:dy + 3, dx:dx + 3].ravel()) == "".join(layout[:3, :3].ravel())
    assert cfa.xtrans_origin("R" * 8 + "G" * 20 + "B" * 8) is None


def test_no_other_module_spells_out_the_sensor():
    """The tile geometry and the Bayer/X-Trans decision live in curate/cfa.py alone."""
    spelled = re.compile(r'"XTRANS"|"xtrans"|"bayer"|shape == \(6, 6\)|\(6, 6\)\)|XTRANS_OFFSETS|"R", "Gr", "B", "Gb"'
                         r'|"RGGB", "GRBG"|\{4: "RGGB"')
    offenders = [f"{path.relative_to(ROOT)}:{n}" for folder in ("capture", "curate", "train")
                 for path in sorted((ROOT / folder).rglob("*.py")) if path.name != "cfa.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1) if spelled.search(line)]
    assert offenders == []
