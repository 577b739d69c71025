"""Exposure arithmetic: shutter labels as exact fractions, ratio rules, choosing a pair from a ladder.

Cameras speak in labels ('1/250', '0.3', '30', '10/13', '0.0040s', '10s', '60m', '1"3', 'Bulb').
Labels are rounded powers of two: '10' s is 2**(10/3) s and '1/25' is 2**(-14/3) s, so a
nominal ratio of 250 is truly 256 (8 stops). Both are recorded.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from .common.errors import SidkitError

RATIO_MIN = 100
RATIO_MAX = 300

# One-third-stop and half-stop marked speeds of a modern body, longest first.
STANDARD_SPEEDS = [Fraction(s) for s in (
    "30 25 20 15 13 10 8 6 5 4 3.2 3 2.5 2 1.6 1.5 1.3 1 0.8 0.7 0.6 0.5 0.4 0.3 "
    "1/4 1/5 1/6 1/8 1/10 1/13 1/15 1/20 1/25 1/30 1/40 1/45 1/50 1/60 1/80 1/90 1/100 "
    "1/125 1/160 1/180 1/200 1/250 1/320 1/350 1/400 1/500 1/640 1/750 1/800 1/1000 1/1250 "
    "1/1500 1/1600 1/2000 1/2500 1/3000 1/3200 1/4000 1/5000 1/6000 1/6400 1/8000 1/10000 "
    "1/12800 1/16000 1/20000 1/25600 1/32000"
).split()]

BULB_WORDS = {"bulb", "b", "time", "t"}
_UNIT = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "ms": Fraction(1, 1000)}
_LABEL = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)(?:\s*/\s*(?P<den>\d+(?:\.\d+)?))?\s*(?P<unit>s|sec|ms|min|m)?\s*$",
                    re.IGNORECASE)


def parse_shutter(label: str | float | int | Fraction) -> Fraction | None:
    """A shutter label as an exact Fraction of a second; None for bulb/time. ValueError if unknown."""
    if isinstance(label, Fraction):
        return label
    if isinstance(label, (int, float)):
        if label <= 0 or not math.isfinite(label):
            raise ValueError(f"not an exposure time: {label!r}")
        return snap_exposure(float(label)) if isinstance(label, float) else Fraction(label)
    text = str(label).strip()
    if text.lower() in BULB_WORDS:
        return None
    text = re.sub(r'^(\d+)[",](\d+)', r"\1.\2", text)  # Canon 1"3 = 1.3 s; localised 30,0000s
    m = _LABEL.match(text)
    if not m:
        raise ValueError(f"unknown shutter label {label!r}")
    value = Fraction(m["num"])
    if m["den"] is not None:
        if Fraction(m["den"]) == 0:
            raise ValueError(f"not an exposure time: {label!r}")
        value /= Fraction(m["den"])
    value *= _UNIT[(m["unit"] or "").lower()]
    if value <= 0:
        raise ValueError(f"not an exposure time: {label!r}")
    return value


def snap_exposure(seconds: float, tolerance: float = 0.03) -> Fraction:
    """A float exposure (e.g. LibRaw's 0.0666667) snapped to the nearest marked speed within 3%."""
    if seconds <= 0 or not math.isfinite(seconds):
        raise ValueError(f"not an exposure time: {seconds!r}")
    best = min(STANDARD_SPEEDS, key=lambda s: abs(math.log(seconds / s)))
    if abs(seconds / best - 1) <= tolerance:
        return best
    if seconds >= 1 and abs(seconds - round(seconds)) <= tolerance * seconds:
        return Fraction(round(seconds))
    if seconds < 1 and abs(1 / seconds - round(1 / seconds)) * seconds <= tolerance:
        return Fraction(1, round(1 / seconds))
    return Fraction(seconds).limit_denominator(100000)


def format_exposure(value: Fraction | float | None) -> str:
    """'1/250', '0.3', '10', 'bulb': how people write shutter speeds."""
    if value is None:
        return "bulb"
    value = Fraction(value).limit_denominator(1_000_000)
    if value.denominator == 1:
        return str(value.numerator)
    if value < Fraction(3, 10) or value.numerator == 1:
        return f"1/{round(1 / value)}" if (1 / value).denominator == 1 else f"{float(value):.6g}"
    return f"{float(value):.6g}"


def file_label(value: Fraction | float) -> str:
    """A file-name-safe exposure: '10s', '1-250s', '0.3s'."""
    return format_exposure(value).replace("/", "-") + "s"


def true_exposure(nominal: Fraction | float) -> float:
    """The power-of-two time a marked speed stands for (nearest third or half stop)."""
    t = math.log2(float(nominal))
    third, half = round(3 * t) / 3, round(2 * t) / 2
    stop = third if abs(third - t) <= abs(half - t) else half
    return 2.0 ** stop if abs(stop - t) < 0.1 else float(nominal)


def ratio_in_range(ratio: float, lo: float = RATIO_MIN, hi: float = RATIO_MAX) -> bool:
    return lo * 0.995 <= ratio <= hi * 1.005


@dataclass(frozen=True)
class ExposurePair:
    long_label: str
    short_label: str
    long_s: Fraction
    short_s: Fraction
    bulb_long: bool = False

    @property
    def nominal_ratio(self) -> float:
        return float(self.long_s / self.short_s)

    @property
    def true_ratio(self) -> float:
        long_true = float(self.long_s) if self.bulb_long else true_exposure(self.long_s)
        return long_true / true_exposure(self.short_s)


def parse_ladder(labels) -> dict[str, Fraction]:
    """label -> exact seconds for every timed label of a camera; bulb and unknown labels dropped."""
    ladder = {}
    for label in labels:
        try:
            value = parse_shutter(label)
        except ValueError:
            continue
        if value is not None:
            ladder[str(label)] = value
    return ladder


def reachable_pairs(labels, long: Fraction, lo: float = RATIO_MIN, hi: float = RATIO_MAX,
                    bulb: bool = False) -> list[ExposurePair]:
    """Every short of the ladder that gives a ratio inside [lo, hi] with this long exposure."""
    ladder = parse_ladder(labels)
    long_label = _label_for(ladder, long)
    bulb_long = long_label is None
    if bulb_long and not bulb:
        raise SidkitError(f"long exposure {format_exposure(long)} s is not on this camera's shutter "
                          f"list and it offers no bulb mode; choose one of: {_some(ladder)}")
    pairs = [ExposurePair(long_label or "bulb", label, Fraction(long), s, bulb_long)
             for label, s in ladder.items() if s < long]
    return sorted((p for p in pairs if ratio_in_range(p.nominal_ratio, lo, hi)),
                  key=lambda p: p.nominal_ratio)


def choose_pair(labels, ratio: float, *, long: Fraction | None = None, short: Fraction | None = None,
                bulb: bool = False, allow_any_ratio: bool = False,
                lo: float = RATIO_MIN, hi: float = RATIO_MAX) -> ExposurePair:
    """The ladder pair whose ratio is nearest ``ratio``, for a fixed long or short exposure.

    A requested ratio outside [lo, hi] raises SidkitError listing the ratios reachable at that
    exposure, unless ``allow_any_ratio``.
    """
    if not ratio > 0:
        raise SidkitError(f"ratio {ratio:g}: give a positive long/short exposure ratio, e.g. 250")
    ladder = parse_ladder(labels)
    if not ladder:
        raise SidkitError("the camera reported no usable shutter speeds")
    if long is None and short is None:
        long = min((s for s in ladder.values() if s <= 30), key=lambda s: abs(math.log(float(s) / 10)))
    if long is not None:
        long = Fraction(long)
        options = reachable_pairs(labels, long, 0, math.inf, bulb)
    else:
        short = Fraction(short)
        short_label = _label_for(ladder, short)
        if short_label is None:
            raise SidkitError(f"short exposure {format_exposure(short)} s is not on this camera's "
                              f"shutter list; choose one of: {_some(ladder)}")
        options = [ExposurePair(label, short_label, s, short) for label, s in ladder.items() if s > short]
        if bulb:
            options.append(ExposurePair("bulb", short_label, short * Fraction(ratio).limit_denominator(1000),
                                        short, True))
    if not options:
        raise SidkitError("no exposure pair is possible with these settings")
    if not allow_any_ratio:
        if not ratio_in_range(ratio, lo, hi):
            raise SidkitError(f"ratio {ratio:g} is outside {lo:g}-{hi:g}; {_reachable_text(options, lo, hi)}"
                              " (--allow-any-ratio to override)")
        options = [p for p in options if ratio_in_range(p.nominal_ratio, lo, hi)]
        if not options:
            raise SidkitError(f"no pair on this camera's shutter list reaches {lo:g}-{hi:g}x at "
                              f"that exposure; choose another --long or --short")
    return min(options, key=lambda p: (abs(math.log(p.nominal_ratio / ratio)), -float(p.short_s)))


def _reachable_text(options, lo, hi) -> str:
    good = [p for p in options if ratio_in_range(p.nominal_ratio, lo, hi)]
    if not good:
        return "this camera reaches no ratio in range at that exposure"
    return "this camera reaches " + ", ".join(
        f"{p.nominal_ratio:g}x ({p.long_label} / {p.short_label})" for p in sorted(good, key=lambda p: p.nominal_ratio))


def _label_for(ladder: dict[str, Fraction], value) -> str | None:
    for label, s in ladder.items():
        if s == value:
            return label
    return None


def _some(ladder: dict[str, Fraction]) -> str:
    labels = list(ladder)
    return ", ".join(labels if len(labels) <= 12 else labels[:6] + ["..."] + labels[-5:])


# --- exposures written in file names (the SID dataset: 00001_00_0.1s.ARW) -------------------------
_NAME_EXPOSURE = re.compile(r"(?:^|[_\-])(\d+(?:\.\d+)?(?:-\d+)?)s(?=[._\-]|$)")


def exposure_from_name(name: str) -> str | None:
    """The exposure text a file name carries ('0.1' from '00001_00_0.1s.ARW', '1/25' from '..._1-25s'), or None."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    matches = _NAME_EXPOSURE.findall(stem)
    return matches[-1].replace("-", "/") if matches else None


def name_agrees(name_value: str, exif_seconds: float) -> bool:
    """True when a written exposure equals EXIF up to the rounding it was written with.

    '0.033' agrees with 1/30 s; '0.1' does not.
    """
    written = float(parse_shutter(name_value))
    if abs(written - exif_seconds) <= 0.05 * exif_seconds:
        return True
    if "." in name_value and "/" not in name_value:
        decimals = len(name_value.split(".")[1])
        return round(exif_seconds, decimals) == round(written, decimals)
    return False
