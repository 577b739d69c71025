"""Fitting a noise profile to dark and flat frames (ELD's method).

Per ISO and packed channel (curate.cfa): black level (mean of the darks); system gain K in DN per
electron (the slope of the photon-transfer line: half the variance of a flat-pair difference, which
cancels pixel non-uniformity and vignetting, against the pair's mean signal); read noise in DN (darks
with each row's mean removed, the 1/12 DN^2 of rounding taken out) and its Tukey-lambda shape (PPCC
fit); row noise in DN (the spread of whole-row means of the darks less the pixel noise averaged into
them). Also the photon-transfer plot. numpy/scipy only.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from . import cfa as sensor
from .calframes import CalFrame, load_frames
from .common.errors import SidkitError
from .findings import Finding, has_errors
from .noiseprofile import IsoNoise, NoiseProfile, cross_iso_fit, fit_line, profile_kind, write_profile

QUANTISATION_VAR = 1.0 / 12.0          # rounding to whole DN
SATURATED_FRACTION = 0.001             # a flat with more pixels than this at white is saturated
CLIP_LEVEL = 0.85                      # ... or a mean above this fraction of (white - black)
DARK_LEVEL = 0.005                     # a flat below this fraction of (white - black) is too dark
LEAK_DN = 2.0                          # darks brighter than black by more than max(this, read noise)
PPCC_SAMPLES = 8000


# --- the measurements --------------------------------------------------------------------------
def dark_stats(mosaic: np.ndarray, cfa: str, black: np.ndarray) -> dict:
    """Per channel: mean, pixel variance with each mosaic row's mean (over the channel's pixels in
    that row) removed, residual sample; whole-row noise from the rows of the mosaic."""
    out = {"mean": [], "var": [], "residual": []}
    rows_of, height = sensor.row_planes(mosaic.shape, cfa)
    row_sum = np.zeros(height)
    for plane, rows in zip(sensor.pack(mosaic, cfa), rows_of):
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
    for c, (pa, pb) in enumerate(zip(sensor.pack(a, cfa), sensor.pack(b, cfa))):
        means.append(float((pa.mean() + pb.mean()) / 2 - black[c]))
        variances.append(float((pa - pb).var()) / 2)
    return means, variances


# --- the fit -----------------------------------------------------------------------------------
def write_noise_profile(cal: Path, output: Path, camera: str | None = None
                        ) -> tuple[NoiseProfile | None, Path | None, list[Finding]]:
    """Fit the calibration frames of folder ``cal`` (curate.calframes) and write the profile to ``output``
    (JSON when its name ends in .json, else TOML) and its photon-transfer plot beside it: (profile, plot,
    findings); (None, None, findings) and nothing written when no ISO could be fitted or a finding is an error."""
    frames, found = load_frames(cal)
    profile, more = fit_profile(frames, camera=camera) if frames else (None, [])
    found += more
    if profile is None or has_errors(found):
        return None, None, found
    write_profile(profile, output, "json" if Path(output).suffix == ".json" else "toml")
    return profile, write_plot(profile, plot_path(output)), found


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
    profile_kind(cfa)
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
    declared = sensor.black_packed(cfa, darks[0].black_level, np.float64)
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
    names = sensor.channel_names(cfa)
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


# --- the photon-transfer plot ------------------------------------------------------------------
def plot_path(profile_path: Path) -> Path:
    return Path(profile_path).with_name(Path(profile_path).stem + "-ptc.png")


def write_plot(profile: NoiseProfile, path: Path) -> Path:
    """Variance against mean signal of every flat pair, per ISO, with the fitted lines (log axes)."""
    from matplotlib import colormaps

    from .common.plotfile import png_axes

    with png_axes(path) as ax:
        for colour, iso in zip(colormaps["viridis"](np.linspace(0, 0.9, len(profile.isos))), profile.isos):
            pts = np.array([(m, v) for _, m, v in iso.flat_points], float)
            ax.scatter(pts[:, 0], pts[:, 1], s=10, color=colour, label=f"ISO {iso.iso:g}: K {iso.k_dn_per_e:.3g} DN/e-")
            x = np.geomspace(max(pts[:, 0].min(), 1e-3), pts[:, 0].max(), 50)
            slope, intercept = fit_line(pts[:, 0], pts[:, 1])
            ax.plot(x, slope * x + intercept, color=colour, lw=1)
        ax.set(xscale="log", yscale="log", xlabel="mean signal above black (DN)", ylabel="variance (DN²)",
               title=f"Photon transfer: {profile.camera}")
        ax.legend(fontsize=8)
    return Path(path)

