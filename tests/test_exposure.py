from fractions import Fraction

import pytest

from curate.common.errors import SidkitError
from curate.exposure import (choose_pair, exposure_from_name, file_label, format_exposure, name_agrees,
                             parse_shutter, reachable_pairs, snap_exposure, true_exposure)

# Shutter lists as the bodies report them through libgphoto2 (abridged to the part that matters).
CANON = ["bulb", "30", "25", "20", "15", "13", "10", "8", "6", "5", "4", "3.2", "2.5", "2", "1.6", "1.3",
         "1", "0.8", "0.6", "0.5", "0.4", "0.3", "1/4", "1/5", "1/6", "1/8", "1/10", "1/13", "1/15",
         "1/20", "1/25", "1/30", "1/40", "1/50", "1/60", "1/80", "1/100", "1/125", "1/160", "1/200",
         "1/250", "1/320", "1/400", "1/500", "1/640", "1/800", "1/1000", "1/1250", "1/1600", "1/2000",
         "1/2500", "1/3200", "1/4000", "1/5000", "1/6400", "1/8000"]
NIKON = ["1/4000", "1/3200", "1/2500", "1/2000", "1/1600", "1/1250", "1/1000", "1/800", "1/640", "1/500",
         "1/400", "1/320", "1/250", "1/200", "1/160", "1/125", "1/100", "1/80", "1/60", "1/50", "1/40",
         "1/30", "1/25", "1/20", "1/15", "1/13", "1/10", "1/8", "1/6", "1/5", "1/4", "1/3", "10/25",
         "1/2", "10/16", "10/13", "1", "13/10", "16/10", "2", "25/10", "3", "4", "5", "6", "8", "10",
         "13", "15", "20", "25", "30", "Bulb"]
SONY = ["30/1", "25/1", "20/1", "15/1", "13/1", "10/1", "8/1", "6/1", "5/1", "4/1", "32/10", "25/10",
        "2/1", "16/10", "13/10", "1/1", "8/10", "6/10", "5/10", "4/10", "1/3", "1/4", "1/5", "1/6",
        "1/8", "1/10", "1/13", "1/15", "1/20", "1/25", "1/30", "1/40", "1/50", "1/60", "1/80",
        "1/100", "1/125", "1/160", "1/200", "1/250", "1/320", "1/400", "1/500", "1/640", "1/800",
        "1/1000", "Bulb"]
FUJI = ["60m", "30m", "15m", "4m", "2m", "60s", "30s", "25s", "20s", "15s", "13s", "10s", "8s", "6s",
        "5s", "4s", "3s", "2s", "1s", "1/2s", "1/4s", "1/8s", "1/10s", "1/13s", "1/15s", "1/20s",
        "1/25s", "1/30s", "1/40s", "1/50s", "1/60s", "1/125s", "1/250s", "1/500s", "1/1000s"]
GENERIC_PTP = ["1.0000s", "0.5000s", "0.2500s", "0.1000s", "0.0400s", "0.0200s", "0.0040s", "0.0010s"]


@pytest.mark.parametrize("label, seconds", [
    ("1/250", Fraction(1, 250)), ("0.3", Fraction(3, 10)), ("30", Fraction(30)), ("10/13", Fraction(10, 13)),
    ("0.0040s", Fraction(1, 250)), ("10s", Fraction(10)), ("60m", Fraction(3600)), ("32/10", Fraction(16, 5)),
    ('1"3', Fraction(13, 10)), ("1/25s", Fraction(1, 25)), ("30,0000s", Fraction(30)), ("0,5", Fraction(1, 2)),
])
def test_parse_shutter_labels(label, seconds):
    assert parse_shutter(label) == seconds


@pytest.mark.parametrize("label", ["bulb", "Bulb", "BULB", "Time"])
def test_bulb_labels_are_none(label):
    assert parse_shutter(label) is None


@pytest.mark.parametrize("label", ["auto", "", "1/0", "-5", "x 1/200"])
def test_unknown_labels_raise(label):
    with pytest.raises(ValueError):
        parse_shutter(label)


def test_snap_float_exposures():
    assert snap_exposure(0.0666667) == Fraction(1, 15)
    assert snap_exposure(0.000179986) == Fraction(1, 5556)
    assert snap_exposure(0.0333) == Fraction(1, 30)
    assert snap_exposure(10.0) == Fraction(10)
    assert snap_exposure(61.0) == Fraction(61)


def test_format_and_file_label():
    assert format_exposure(Fraction(1, 250)) == "1/250"
    assert format_exposure(Fraction(3, 10)) == "0.3"
    assert format_exposure(Fraction(10)) == "10"
    assert file_label(Fraction(1, 25)) == "1-25s"


def test_true_ratio_of_rounded_labels_is_a_power_of_two():
    pair = choose_pair(CANON, 250, long=10)
    assert (pair.long_label, pair.short_label) == ("10", "1/25")
    assert pair.nominal_ratio == 250
    assert pair.true_ratio == pytest.approx(256)
    assert true_exposure(Fraction(1, 8)) == 0.125


@pytest.mark.parametrize("ladder, long, expected_short", [
    (CANON, 10, "1/25"), (NIKON, 10, "1/25"), (SONY, Fraction(10), "1/25"), (FUJI, 10, "1/25s"),
    (CANON, 30, "1/8"), (NIKON, 1, "1/250"), (GENERIC_PTP, 1, "0.0040s"),
])
def test_choose_short_for_a_long_on_real_ladders(ladder, long, expected_short):
    pair = choose_pair(ladder, 250, long=Fraction(long))
    assert pair.short_label == expected_short
    assert 100 <= pair.nominal_ratio <= 300


def test_choose_long_for_a_short():
    pair = choose_pair(CANON, 100, short=Fraction(1, 10))
    assert pair.long_label == "10" and pair.nominal_ratio == 100


def test_out_of_range_ratio_is_refused_with_alternatives():
    with pytest.raises(SidkitError) as err:
        choose_pair(CANON, 20, long=10)
    message = str(err.value)
    assert "outside 100-300" in message and "250x (10 / 1/25)" in message and "--allow-any-ratio" in message
    assert choose_pair(CANON, 20, long=10, allow_any_ratio=True).short_label == "0.5"


def test_bulb_long_beyond_the_ladder():
    with pytest.raises(SidkitError, match="no bulb"):
        reachable_pairs(CANON[1:], Fraction(60))
    pair = choose_pair(CANON, 250, long=Fraction(60), bulb=True)
    assert pair.bulb_long and pair.long_label == "bulb" and pair.short_label == "1/4"
    assert pair.true_ratio == pytest.approx(60 / 0.25)


def test_reachable_pairs_are_all_in_range():
    ratios = [p.nominal_ratio for p in reachable_pairs(CANON, Fraction(10))]
    assert ratios == sorted(ratios) and ratios[0] >= 100 and ratios[-1] <= 300 and 250 in ratios


def test_exposure_in_file_names():
    assert exposure_from_name("./Sony/short/00001_00_0.1s.ARW") == "0.1"
    assert exposure_from_name("00001_00_10s.ARW") == "10"
    assert exposure_from_name("kitchen_short_1-25s_00.dng") == "1/25"   # capture's own names
    assert exposure_from_name("IMG_0001.CR3") is None
    assert name_agrees("0.033", 1 / 30) and name_agrees("0.04", 1 / 25) and name_agrees("10", 10)
    assert name_agrees("1/25", 0.04) and not name_agrees("1/25", 0.1)
    assert not name_agrees("0.1", 1 / 30)
