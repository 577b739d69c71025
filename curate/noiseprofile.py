"""A camera's noise profile from dark and flat frames (ELD's physics model), as TOML or JSON.

Per ISO and CFA channel: black level (mean of the darks); system gain K in DN per electron (the
slope of the photon-transfer line: half the variance of a flat-pair difference, which cancels
pixel non-uniformity and vignetting, against the pair's mean signal); read noise in DN (darks with
each row's mean removed, the 1/12 DN^2 of rounding taken out) and its Tukey-lambda shape (PPCC fit);
row noise in DN (the spread of whole-row means of the darks less the pixel noise averaged into
them). Across ISOs, ELD's log-linear fits (log sigma against log K, log K against log ISO) give
the noise at any ISO. numpy/scipy only: curate never imports torch.
"""
from __future__ import annotations

import json
import math
import os
import tomllib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .cfa import XTRANS_OFFSETS, packing_origin
from .errors import SidkitError
from .findings import Finding

FORMAT_VERSION = 1
QUANTISATION_VAR = 1.0 / 12.0          # rounding to whole DN
SATURATED_FRACTION = 0.001             # a flat with more pixels than this at white is saturated
CLIP_LEVEL = 0.85                      # ... or a mean above this fraction of (white - black)
DARK_LEVEL = 0.005                     # a flat below this fraction of (white - black) is too dark
LEAK_DN = 2.0                          # darks brighter than black by more than max(this, read noise)
PPCC_SAMPLES = 8000
CHANNELS = ("R", "Gr", "B", "Gb")      # Bayer's canonical order, as train.rawpack packs them
XTRANS_CHANNELS = tuple(f"X{c}" for c in range(9))   # X-Trans: the 9 packed channels of train.rawpack


@dataclass
class CalFrame:
    """One calibration raw: its settings and levels, and the mosaic (an array or a loader)."""
    path: str
    role: str                          # dark | flat
    iso: float
    exposure_s: float
    camera: str
    cfa: str
    black_level: list[float]           # declared, per 2x2 position, row-major
    white_level: float
    mosaic: np.ndarray | Callable[[], np.ndarray] = field(repr=False, default=None)

    def pixels(self) -> np.ndarray:
        m = self.mosaic() if callable(self.mosaic) else self.mosaic
        return np.asarray(m, dtype=np.float64)


@dataclass
class IsoNoise:
    """The measured noise at one ISO; per-channel values in packed order (channel_names)."""
    iso: float
    k_dn_per_e: float
    read_noise_dn: float
    row_noise_dn: float
    tukey_lambda: float
    black_level: list[float]           # per packed channel: Bayer R, Gr, B, Gb; X-Trans 9
    quantisation_dn: float = 1.0
    channels: dict = field(default_factory=dict)   # name -> {k_dn_per_e, read_noise_dn, tukey_lambda}
    flat_points: list = field(default_factory=list)  # [[channel, mean_dn, variance_dn2], ...]
    darks: int = 0
    flat_pairs: int = 0


@dataclass
class NoiseProfile:
    camera: str
    cfa: str
    white_level: float
    isos: list[IsoNoise]
    fit: dict
    format_version: int = FORMAT_VERSION

    def of_camera(self, camera) -> bool:
        """Whether a manifest's ``camera`` (make and model) names the body this profile was fitted on
        (the profile's camera adds the serial)."""
        return self.camera.startswith(str(camera))

    # --- noise at any gain (ELD's log-linear model) ------------------------------------------
    def k_range(self) -> tuple[float, float]:
        ks = [i.k_dn_per_e for i in self.isos]
        return min(ks), max(ks)

    def sigmas(self, k):
        """Read noise, row noise (DN) and Tukey lambda at system gain ``k`` (a number or an array): the
        measured ISOs' own values; between them read noise as ``read_noise_at`` (variance linear in K^2)
        and row noise in log-log; beyond them ELD's fitted slope continued from the nearest measured
        ISO, so the noise never jumps at the ends of the measured range."""
        f = self.fit
        log_k, table = np.log(np.asarray(k, dtype=np.float64)), self.log_table()
        read = read_noise_at(log_k, table[0], table[1], f["read_slope"])
        row = log_linear(log_k, table[0], table[2], f["row_slope"])
        if read.ndim == 0:
            read, row = float(read), float(row)
        return {"read_noise_dn": read, "row_noise_dn": row, "tukey_lambda": float(f["tukey_lambda"])}

    def log_table(self) -> tuple[list[float], list[float], list[float]]:
        """log K, log read noise, log row noise of the measured ISOs, in order of K."""
        isos = sorted(self.isos, key=lambda i: i.k_dn_per_e)
        return ([math.log(i.k_dn_per_e) for i in isos], [math.log(max(i.read_noise_dn, 1e-6)) for i in isos],
                [math.log(max(i.row_noise_dn, 1e-6)) for i in isos])

    def k_at_iso(self, iso: float) -> float:
        """System gain at ``iso``: a measured ISO's own K, log-log interpolation between them, ELD's
        fitted slope beyond them."""
        isos = sorted(self.isos, key=lambda i: i.iso)
        return float(log_linear(math.log(iso), [math.log(i.iso) for i in isos],
                                [math.log(i.k_dn_per_e) for i in isos], self.fit["k_slope"]))

    def noise_at_iso(self, iso: float) -> dict:
        """K, read and row noise and Tukey lambda at ``iso``: what one ISO's synthetic shorts are drawn with."""
        k = self.k_at_iso(iso)
        return {"k_dn_per_e": k, **self.sigmas(k)}

    def to_dict(self) -> dict:
        return {"format_version": self.format_version, "camera": self.camera, "cfa": self.cfa,
                "white_level": self.white_level, "isos": [asdict(i) for i in self.isos], "fit": dict(self.fit)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def log_linear(x, xs: list[float], ys: list[float], slope: float):
    """exp of y at ``x`` on the polyline (xs, ys) (xs increasing), continued with ``slope`` beyond its
    ends: in log-log, the measured points themselves, straight lines between them, ELD's fit outside."""
    x = np.asarray(x, dtype=np.float64)
    y = np.interp(x, xs, ys)
    y = np.where(x < xs[0], ys[0] + slope * (x - xs[0]), y)
    return np.exp(np.where(x > xs[-1], ys[-1] + slope * (x - xs[-1]), y))


PROFILE_MAX_BYTES = 4 << 20        # a profile of 20 ISOs with every flat pair is a few hundred KB
FIT_KEYS = ("k_slope", "k_intercept", "read_slope", "read_intercept", "row_slope", "row_intercept", "tukey_lambda")


def read_noise_at(log_k, xs: list[float], ys: list[float], slope: float):
    """Read noise (DN) at log K. Between measured gains the variance is linear in K^2, exact for read
    noise made before and after the amplifier (sigma^2 = (sigma_e K)^2 + sigma_out^2), which a power law
    in K is not (a log-log line through ISO 100 and 400 overstates ISO 200's variance by ~20% on a
    sensor whose two parts are alike); beyond them ``log_linear`` (ELD's slope)."""
    x = np.asarray(log_k, dtype=np.float64)
    ks2, var = np.exp(2 * np.asarray(xs)), np.exp(2 * np.asarray(ys))
    inside = np.sqrt(np.interp(np.exp(2 * x), ks2, var))
    return np.where((x >= xs[0]) & (x <= xs[-1]), inside, log_linear(x, xs, ys, slope))


def profile_from_dict(data: dict, source: str = "profile") -> NoiseProfile:
    """A NoiseProfile from parsed TOML/JSON, every value checked: a SidkitError naming the key and
    the fix for the first value that cannot be a camera's noise (training would draw nonsense)."""
    fix = "write the profile again with `curate noise-profile`"
    try:
        isos = [IsoNoise(**i) for i in data["isos"]]
        profile = NoiseProfile(data["camera"], data["cfa"], float(data["white_level"]), isos, dict(data["fit"]),
                               int(data.get("format_version", FORMAT_VERSION)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SidkitError(f"{source}: not a sidkit noise profile ({type(exc).__name__}: {exc}); "
                          "write one with `curate noise-profile`") from None
    problem = profile_problem(profile)
    if problem:
        raise SidkitError(f"{source}: {problem}; {fix}")
    return profile


def profile_problem(profile: NoiseProfile) -> str | None:
    """The first value of ``profile`` that cannot be true ('isos[1].k_dn_per_e = 0 must be ...'), or None."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if profile.format_version != FORMAT_VERSION:
        return f"format_version {profile.format_version} is not {FORMAT_VERSION}, the one this sidkit reads"
    if not isinstance(profile.camera, str) or not isinstance(profile.cfa, str):
        return "camera and cfa must be text"
    try:
        channels = len(channel_names(profile.cfa))
    except SidkitError as exc:
        return f"cfa: {exc}"
    if not (number(profile.white_level) and profile.white_level > 0):
        return f"white_level = {profile.white_level!r} must be a finite number above 0"
    if not profile.isos:
        return "the noise profile lists no ISO; calibrate again"
    for n, i in enumerate(profile.isos):
        where = f"isos[{n}]"
        checks = (("iso", i.iso, lambda v: v > 0, "a finite number above 0"),
                  ("k_dn_per_e", i.k_dn_per_e, lambda v: v > 0, "a finite gain above 0 (DN per electron)"),
                  ("read_noise_dn", i.read_noise_dn, lambda v: v >= 0, "a finite number >= 0"),
                  ("row_noise_dn", i.row_noise_dn, lambda v: v >= 0, "a finite number >= 0"),
                  ("tukey_lambda", i.tukey_lambda, lambda v: -0.5 < v <= 1, "a finite shape in (-0.5, 1]"))
        for key, value, ok, what in checks:
            if not (number(value) and ok(value)):
                return f"{where}.{key} = {value!r} must be {what}"
        black = i.black_level
        if not isinstance(black, list) or len(black) != channels:
            return f"{where}.black_level has {len(black) if isinstance(black, list) else 'no'} values; a {profile.cfa} " \
                   f"profile has {channels} (one per packed channel)"
        if not all(number(b) and 0 <= b < profile.white_level for b in black):
            return f"{where}.black_level {black!r} must be finite numbers from 0 to below white_level {profile.white_level:g}"
    for key in FIT_KEYS:
        if not number(profile.fit.get(key)):
            return f"fit.{key} = {profile.fit.get(key)!r} must be a finite number"
    if not -0.5 < profile.fit["tukey_lambda"] <= 1:
        return f"fit.tukey_lambda = {profile.fit['tukey_lambda']!r} must be a finite shape in (-0.5, 1]"
    return None


def read_profile(path: str | os.PathLike) -> NoiseProfile:
    """A profile written by `write_profile` (TOML, or JSON when the name ends in .json): a regular
    file of at most PROFILE_MAX_BYTES, every value checked (``profile_from_dict``)."""
    from .files import file_problem

    path = Path(path)
    problem = file_problem(path)
    if problem is not None and problem.code == "missing-file":
        raise SidkitError(f"{path}: no such noise profile; write one with `curate noise-profile`")
    if problem is not None:
        raise SidkitError(f"{path}: {problem.message.split(';')[0]}; give the profile `curate noise-profile` wrote")
    if path.stat().st_size > PROFILE_MAX_BYTES:
        raise SidkitError(f"{path}: {path.stat().st_size:,} bytes is no noise profile (those are under "
                          f"{PROFILE_MAX_BYTES >> 20} MiB); give the profile `curate noise-profile` wrote")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise SidkitError(f"{path}: no such noise profile; write one with `curate noise-profile`") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SidkitError(f"{path}: cannot parse the noise profile ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:200]}); write it again with `curate noise-profile`") from None
    if not isinstance(data, dict):
        raise SidkitError(f"{path}: not a sidkit noise profile (a {type(data).__name__}); write one with "
                          "`curate noise-profile`")
    return profile_from_dict(data, str(path))


def write_profile(profile: NoiseProfile, path: str | Path, fmt: str = "toml") -> Path:
    """Write atomically (curate.atomic)."""
    from .atomic import atomic_write

    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(profile.to_json() + "\n" if fmt == "json" else profile.to_toml())
    return Path(path)


# --- planes ------------------------------------------------------------------------------------
def channel_names(cfa: str) -> tuple[str, ...]:
    """The packed channels a profile measures: CHANNELS for Bayer, XTRANS_CHANNELS for X-Trans."""
    return XTRANS_CHANNELS if tile_size(cfa) == 6 else CHANNELS


def tile_size(cfa: str) -> int:
    """2 for Bayer, 6 for X-Trans; a SidkitError for anything else."""
    if cfa == "XTRANS":
        return 6
    if len(cfa) != 4 or sorted(cfa) != ["B", "G", "G", "R"]:
        raise SidkitError(f"CFA {cfa!r}: noise profiles support Bayer (RGGB, BGGR, GRBG, GBRG) and X-Trans "
                          "sensors only")
    return 2


def channel_positions(cfa: str) -> list[int]:
    """For each canonical Bayer channel (R, Gr, B, Gb), its position (0..3, row-major) in the 2x2 tile."""
    if tile_size(cfa) != 2:
        raise SidkitError(f"CFA {cfa!r} has no 2x2 tile positions; it is no Bayer pattern")
    r, b = cfa.index("R"), cfa.index("B")
    other = lambda pos: (pos // 2) * 2 + (1 - pos % 2)     # the other pixel of the same row
    return [r, other(r), b, other(b)]


def planes(mosaic: np.ndarray, cfa: str) -> list[np.ndarray]:
    """The mosaic's packed channels, as train.rawpack packs them (whole tiles only): Bayer's four
    colour planes in canonical order, X-Trans's 9 channels at a third of the size."""
    t = tile_size(cfa)
    m = mosaic[: mosaic.shape[0] // t * t, : mosaic.shape[1] // t * t]
    if t == 2:
        return [m[p // 2::2, p % 2::2] for p in channel_positions(cfa)]
    h, w = m.shape[0] // 3, m.shape[1] // 3
    out = []
    for offsets in XTRANS_OFFSETS:
        plane = np.empty((h, w), dtype=m.dtype)
        for block, (dy, dx) in enumerate(offsets):
            plane[block // 2::2, block % 2::2] = m[dy::6, dx::6]
        out.append(plane)
    return out


def row_planes(shape: tuple[int, int], cfa: str) -> tuple[list[np.ndarray], int]:
    """For each pixel of ``planes`` of a mosaic of ``shape``, the mosaic row it came from (the row
    numbers packed alike), and the number of whole-tile rows."""
    t = tile_size(cfa)
    height, width = shape[0] // t * t, shape[1] // t * t
    rows = np.broadcast_to(np.arange(height)[:, None], (height, width))
    return planes(rows, cfa), height


def black_tile(black_level, cfa: str) -> np.ndarray:
    """Declared black per packed channel (X-Trans: the mean, as train.rawpack.black_packed)."""
    black = [float(v) for v in black_level]
    black = black * 4 if len(black) == 1 else black
    if tile_size(cfa) == 6:
        return np.full(9, np.mean(black))
    return np.array([black[p] for p in channel_positions(cfa)])


# --- the measurements --------------------------------------------------------------------------
def dark_stats(mosaic: np.ndarray, cfa: str, black: np.ndarray) -> dict:
    """Per channel: mean, pixel variance with each mosaic row's mean (over the channel's pixels in
    that row) removed, residual sample; whole-row noise from the rows of the mosaic."""
    out = {"mean": [], "var": [], "residual": []}
    rows_of, height = row_planes(mosaic.shape, cfa)
    row_sum = np.zeros(height)
    for plane, rows in zip(planes(mosaic, cfa), rows_of):
        values, rows = plane.ravel(), rows.ravel()
        count = np.bincount(rows, minlength=height)
        row_means = np.bincount(rows, weights=values, minlength=height) / np.maximum(count, 1)
        residual = values - row_means[rows]
        out["mean"].append(float(values.mean()))
        out["var"].append(float(residual @ residual) / (values.size - np.count_nonzero(count)))
        out["residual"].append(residual)
        row_sum += np.bincount(rows, weights=values - values.mean(), minlength=height)
    width = sum(r.size for r in rows_of) / height
    pixel_var = float(np.mean(out["var"]))
    out["row_var"] = float((row_sum / width).var(ddof=1)) - pixel_var / width
    return out


def tukey_lambda_fit(sample: np.ndarray, rng: np.random.Generator) -> float:
    """The Tukey-lambda shape that best straightens the probability plot (PPCC maximum, as ELD)."""
    from scipy import stats

    sample = np.asarray(sample, dtype=np.float64).ravel()
    if sample.size > PPCC_SAMPLES:
        sample = rng.choice(sample, PPCC_SAMPLES, replace=False)
    sample = sample + rng.uniform(-0.5, 0.5, sample.size)    # undo the ties of whole DN
    lam = float(stats.ppcc_max(sample, brack=(-0.2, 0.2), dist="tukeylambda"))
    return float(np.clip(lam, -0.45, 1.0))                  # finite variance needs lambda > -0.5


def photon_transfer(a: np.ndarray, b: np.ndarray, cfa: str, black: np.ndarray) -> tuple[list[float], list[float]]:
    """Per channel: mean signal above black and half the variance of the pair's difference."""
    means, variances = [], []
    for c, (pa, pb) in enumerate(zip(planes(a, cfa), planes(b, cfa))):
        means.append(float((pa.mean() + pb.mean()) / 2 - black[c]))
        variances.append(float((pa - pb).var()) / 2)
    return means, variances


def fit_line(x, y) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)


# --- the fit -----------------------------------------------------------------------------------
def fit_profile(frames: list[CalFrame], camera: str | None = None, seed: int = 0
                ) -> tuple[NoiseProfile | None, list[Finding]]:
    """Fit every ISO that has darks and two or more usable flat levels; findings for the rest."""
    findings: list[Finding] = []
    if not frames:
        raise SidkitError("no calibration frames: shoot them with `capture calibrate`, or put raws in "
                          "dark/ and flat/ folders")
    camera = camera or Counter(f.camera for f in frames).most_common(1)[0][0]
    kept = []
    for f in frames:
        if f.camera != camera:
            findings.append(Finding("", f.path, "camera-mismatch", f"shot by {f.camera}, the calibration is of "
                                    f"{camera}; remove the file or calibrate each body on its own"))
        else:
            kept.append(f)
    cfas = {f.cfa for f in kept}
    if len(cfas) != 1:
        raise SidkitError(f"calibration frames of {camera} have CFA patterns {sorted(cfas)}; re-shoot them")
    cfa = cfas.pop()
    tile_size(cfa)
    white = float(max(f.white_level for f in kept))
    rng = np.random.default_rng(seed)
    by_iso = defaultdict(list)
    for f in kept:
        by_iso[float(f.iso)].append(f)
    results = []
    for iso in sorted(by_iso):
        result = fit_iso(iso, by_iso[iso], cfa, rng, findings)
        if result is not None:
            results.append(result)
    if not results:
        return None, findings
    return NoiseProfile(camera, cfa, white, results, cross_iso_fit(results)), findings


def fit_iso(iso: float, frames: list[CalFrame], cfa: str, rng: np.random.Generator,
            findings: list[Finding]) -> IsoNoise | None:
    """One ISO's measurements (None, with findings, when its frames cannot give them)."""
    darks = [f for f in frames if f.role == "dark"]
    flats = [f for f in frames if f.role == "flat"]
    where = f"ISO {iso:g}"
    if not darks:
        findings.append(Finding("", where, "missing-calibration",
                                f"{where}: no dark frames; shoot them with the lens cap on"))
        return None
    declared = black_tile(darks[0].black_level, cfa)
    stats = [dark_stats(d.pixels(), cfa, declared) for d in darks]
    black = np.mean([s["mean"] for s in stats], axis=0)
    total_var = np.mean([s["var"] for s in stats], axis=0)
    read = np.sqrt(np.maximum(total_var - QUANTISATION_VAR, 0.0))
    leak = [d.path for d, s in zip(darks, stats)
            if np.max(np.asarray(s["mean"]) - declared) > max(LEAK_DN, float(read.max()))]
    if leak:
        findings.append(Finding("", leak[0], "dark-light-leak",
                                f"{where}: {len(leak)} of {len(darks)} dark frames are brighter than the "
                                f"black level {declared.mean():g} by more than {max(LEAK_DN, float(read.max())):.1f} "
                                "DN; cover the lens and the eyepiece, darken the room and shoot them again"))
        return None
    row_var = max(float(np.mean([s["row_var"] for s in stats])), 0.0)
    names = channel_names(cfa)
    lambdas = [tukey_lambda_fit(np.concatenate([s["residual"][c].ravel() for s in stats[:3]]), rng)
               for c in range(len(names))]

    span = white_span(flats or darks, black)
    points = defaultdict(list)                       # channel -> [(mean, var)]
    levels, pairs = set(), 0
    for exposure, group in sorted(group_flats(flats).items()):
        for a, b in zip(group[0::2], group[1::2]):
            ma, mb = a.pixels(), b.pixels()
            if min(a.white_level, b.white_level) <= np.max(black):
                continue
            white = min(a.white_level, b.white_level)
            saturated = max(float((ma >= white).mean()), float((mb >= white).mean()))
            means, variances = photon_transfer(ma, mb, cfa, black)
            level = max(means) / span
            if saturated > SATURATED_FRACTION or level > CLIP_LEVEL:
                findings.append(Finding("", a.path, "flat-saturated",
                                        f"{where}, {exposure:g} s: {level:.0%} of white, {saturated:.2%} of "
                                        "pixels at white; left out (shoot flats up to about 70% of white)"))
                continue
            if level < DARK_LEVEL:
                findings.append(Finding("", a.path, "flat-too-dark",
                                        f"{where}, {exposure:g} s: {level:.2%} of white; left out (light the "
                                        "card more or expose longer: from about 2% of white)"))
                continue
            for c in range(len(names)):
                points[c].append((means[c], variances[c]))
            levels.add(exposure)
            pairs += 1
    if len(levels) < 2:
        findings.append(Finding("", where, "too-few-flat-levels",
                                f"{where}: {len(levels)} usable flat level(s) (pairs at one exposure time); "
                                "the gain needs pairs at two or more exposure times, 2-70% of white"))
        return None
    ks = [fit_line(*zip(*points[c]))[0] for c in range(len(names))]
    if min(ks) <= 0:
        findings.append(Finding("", where, "too-few-flat-levels",
                                f"{where}: flat variance does not grow with signal (gain {min(ks):.3g}); "
                                "light the card evenly, keep it still and shoot the flats again"))
        return None
    channels = {name: {"k_dn_per_e": ks[c], "read_noise_dn": float(read[c]), "tukey_lambda": lambdas[c]}
                for c, name in enumerate(names)}
    flat_points = [[name, m, v] for c, name in enumerate(names) for m, v in points[c]]
    return IsoNoise(iso=iso, k_dn_per_e=float(np.mean(ks)), read_noise_dn=float(np.sqrt(np.mean(read ** 2))),
                    row_noise_dn=math.sqrt(row_var), tukey_lambda=float(np.median(lambdas)),
                    black_level=[float(v) for v in black], channels=channels, flat_points=flat_points,
                    darks=len(darks), flat_pairs=pairs)


def white_span(frames: list[CalFrame], black: np.ndarray) -> float:
    return float(min(f.white_level for f in frames) - np.max(black))


def group_flats(flats: list[CalFrame]) -> dict[float, list[CalFrame]]:
    groups = defaultdict(list)
    for f in flats:
        groups[round(float(f.exposure_s), 9)].append(f)
    return groups


def cross_iso_fit(results: list[IsoNoise]) -> dict:
    """ELD's log-linear fits: log K on log ISO, log read and log row noise on log K; mean lambda."""
    log_iso = np.log([r.iso for r in results])
    log_k = np.log([r.k_dn_per_e for r in results])
    log_read = np.log([max(r.read_noise_dn, 1e-6) for r in results])
    log_row = np.log([max(r.row_noise_dn, 1e-6) for r in results])

    def line(x, y):
        if len(x) < 2:
            return 0.0, float(y[0]), 0.0
        slope, intercept = fit_line(x, y)
        residual = float(np.std(y - (slope * x + intercept), ddof=0))
        return slope, intercept, residual

    k_slope, k_intercept, _ = line(log_iso, log_k)
    if len(results) < 2:
        k_slope, k_intercept = 1.0, float(log_k[0] - log_iso[0])      # K proportional to ISO
    read_slope, read_intercept, read_sd = line(log_k, log_read)
    row_slope, row_intercept, row_sd = line(log_k, log_row)
    return {"k_slope": k_slope, "k_intercept": k_intercept, "read_slope": read_slope,
            "read_intercept": read_intercept, "read_residual": read_sd, "row_slope": row_slope,
            "row_intercept": row_intercept, "row_residual": row_sd,
            "tukey_lambda": float(np.mean([r.tukey_lambda for r in results])),
            "k_min": float(np.exp(log_k.min())), "k_max": float(np.exp(log_k.max()))}


# --- reading calibration frames from disk ------------------------------------------------------
def calibration_files(cal: Path) -> list[tuple[Path, str]]:
    """(path, role) of every dark and flat: the capture log's roles, else dark/ and flat/ folders."""
    from .capturelog import read_log

    cal = Path(cal)
    if not cal.is_dir():
        raise SidkitError(f"{cal}: no such folder; give the folder `capture calibrate --dataset` wrote")
    from .scan import is_raw_name

    records = [r for r in read_log(cal) if r.role in ("dark", "flat")]
    if records:
        return [(cal / r.path, r.role) for r in records if is_raw_name(Path(r.path))]
    out = []
    for role in ("dark", "flat"):
        folder = cal / role
        if folder.is_dir():
            out += [(p, role) for p in sorted(folder.rglob("*")) if p.is_file() and is_raw_name(p)]
    if not out:
        raise SidkitError(f"{cal}: no calibration frames (no dark/flat roles in captures.jsonl, no dark/ or "
                          "flat/ folder); shoot them with `capture calibrate --dataset "
                          f"{cal}` or put raws in {cal}/dark and {cal}/flat")
    return out


def load_frames(cal: Path) -> tuple[list[CalFrame], list[Finding]]:
    """CalFrames (ISO and exposure from EXIF, levels and CFA from the raw) and findings for bad files."""
    from .rawmeta import UnreadableRaw, read_metadata

    frames, findings = [], []
    for path, role in calibration_files(cal):
        try:
            meta = read_metadata(path)
        except (UnreadableRaw, SidkitError, OSError) as exc:
            findings.append(Finding("", str(path), "unreadable", f"{exc}; remove it or copy it again"))
            continue
        if not meta.cfa or meta.black_level is None or meta.white_level is None or meta.iso is None:
            findings.append(Finding("", str(path), "unreadable", "no CFA, levels or ISO in the file; calibration "
                                    "needs the camera's raw files"))
            continue
        camera = f"{meta.camera} {meta.serial}".strip()
        frames.append(CalFrame(str(path), role, float(meta.iso), float(meta.exposure_s or 0), camera, meta.cfa,
                               [float(v) for v in meta.black_level], float(meta.white_level),
                               mosaic=lambda p=path: read_mosaic(p)))
    return frames, findings


def read_mosaic(path: Path) -> np.ndarray:
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            mosaic, origin = raw.raw_image_visible.copy(), packing_origin(raw)
    except (rawpy.LibRawError, OSError) as exc:
        raise SidkitError(f"{path}: rawpy cannot read its pixels ({exc}); remove it or copy it again") from None
    if origin is None:
        raise SidkitError(f"{path}: its 6x6 colour filter is no X-Trans layout (SID's Fuji packing, any phase); "
                          "this camera is not supported")
    return mosaic[origin[0]:, origin[1]:]      # X-Trans from where train's packing starts


# --- the photon-transfer plot ------------------------------------------------------------------
def plot_path(profile_path: Path) -> Path:
    return Path(profile_path).with_name(Path(profile_path).stem + "-ptc.png")


def write_plot(profile: NoiseProfile, path: Path) -> Path:
    """Variance against mean signal of every flat pair, per ISO, with the fitted lines (log axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .atomic import atomic_write

    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(profile.isos)))
    for colour, iso in zip(colours, profile.isos):
        pts = np.array([(m, v) for _, m, v in iso.flat_points], float)
        ax.scatter(pts[:, 0], pts[:, 1], s=10, color=colour, label=f"ISO {iso.iso:g}: K {iso.k_dn_per_e:.3g} DN/e-")
        x = np.geomspace(max(pts[:, 0].min(), 1e-3), pts[:, 0].max(), 50)
        slope, intercept = fit_line(pts[:, 0], pts[:, 1])
        ax.plot(x, slope * x + intercept, color=colour, lw=1)
    ax.set(xscale="log", yscale="log", xlabel="mean signal above black (DN)", ylabel="variance (DN²)",
           title=f"Photon transfer: {profile.camera}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return Path(path)
