"""A camera's noise profile (ELD's physics model): the model, its checks and its file (TOML or JSON).

Per ISO and CFA channel: black level, system gain K in DN per electron, read noise in DN and its
Tukey-lambda shape, row noise in DN (curate.noisefit measures them from dark and flat frames). Across
ISOs, ELD's log-linear fits (log sigma against log K, log K against log ISO) give the noise at any
ISO. numpy only: curate never imports torch.
"""
from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .cfa import BAYER_PATTERNS, Kind, kind_of
from .common.errors import SidkitError

FORMAT_VERSION = 1

@dataclass
class IsoNoise:
    """The measured noise at one ISO; per-channel values in packed order (curate.cfa.channel_names)."""
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
        channels = profile_kind(profile.cfa).channels
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


def profile_table(profile: NoiseProfile):
    """The profile as a rich table, one row per ISO."""
    from rich.table import Table

    table = Table(title=f"{profile.camera} ({profile.cfa})")
    for column in ("ISO", "K (DN/e-)", "read noise (DN)", "row noise (DN)", "Tukey lambda", "black level",
                   "darks", "flat pairs"):
        table.add_column(column)
    for i in profile.isos:
        table.add_row(f"{i.iso:g}", f"{i.k_dn_per_e:.4g}", f"{i.read_noise_dn:.3f}", f"{i.row_noise_dn:.3f}",
                      f"{i.tukey_lambda:.3f}", " ".join(f"{v:.1f}" for v in i.black_level), str(i.darks),
                      str(i.flat_pairs))
    return table


def profile_kind(cfa: str) -> Kind:
    """curate.cfa's kind of ``cfa``; a SidkitError for a pattern noise profiles cannot measure."""
    found = kind_of(cfa)
    if found is None:
        raise SidkitError(f"CFA {cfa!r}: noise profiles support Bayer ({', '.join(BAYER_PATTERNS)}) and X-Trans "
                          "sensors only")
    return found


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
    """Write atomically (curate.common.atomic)."""
    from .common.atomic import atomic_write

    with atomic_write(path, encoding="utf-8") as handle:
        handle.write(profile.to_json() + "\n" if fmt == "json" else profile.to_toml())
    return Path(path)


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



def fit_line(x, y) -> tuple[float, float]:
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return float(slope), float(intercept)

