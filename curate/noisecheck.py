"""The realism check of `curate noise-profile --check`: shorts synthesised from a manifest's longs with
a noise profile's numbers, against the manifest's real shorts, per ISO, channel and signal level, with a
pass/fail verdict. numpy/scipy only (train.synthetic draws the same model in torch; a test pins both)."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import cfa as sensor
from .calframes import read_mosaic
from .common.errors import SidkitError
from .manifest import Manifest, black_levels
from .noiseprofile import NoiseProfile


def synthesise_counts(long_dn: np.ndarray, k: float, read: float, row: float, lam: float,
                      rng: np.random.Generator) -> np.ndarray:
    """Short signal in DN above black (planes (C, h, w): 4 Bayer, 9 X-Trans) for expected DN
    ``long_dn``: the model of train.synthetic in numpy (Poisson through K, Tukey-lambda read noise,
    one offset per mosaic row, rounding; the rows laid out as train.synthetic.row_index lays them)."""
    from scipy import stats

    c, h, w = long_dn.shape
    kind = sensor.kind_of_channels(c)
    shot = rng.poisson(np.maximum(long_dn, 0) / k) * k
    draws = stats.tukeylambda.rvs(lam, size=long_dn.shape, random_state=rng)
    read_noise = draws * read / math.sqrt(stats.tukeylambda.var(lam))
    rows_of, height = sensor.row_planes((h * kind.scale, w * kind.scale), kind.pattern)
    t = kind.tile
    index = rows_of % t * (height // t) + rows_of // t      # draw [phase, tile row]
    rows = rng.standard_normal(height)[index] * row
    return np.rint(shot + read_noise + rows)


CHECK_RATIO = (0.9, 1.1)       # synthetic / real variance that passes
CHECK_MIN_PIXELS = 20_000      # pixels a signal bin needs: the variance ratio's sampling error ~1.5%, far inside 10%


def check_profile(profile: NoiseProfile, manifest: Manifest, pairs: int = 8, bins: int = 8, seed: int = 0) -> dict:
    """Synthetic shorts against a manifest's real shorts, per ISO: each real short's long scaled down
    by the ratio measured from the pixels and given the profile's noise at the short's ISO
    (``noise_at_iso``, the numbers training draws with). Per ISO, channel and signal bin the noise
    variance of both; per ISO and channel the distance between the residual histograms (Wasserstein,
    in units of the real residual's spread). Each bin holds at least CHECK_MIN_PIXELS pixels (up to
    ``bins`` bins; an ISO with fewer pixels in all is listed in ``too_few_pixels``, not judged).
    ``verdict`` is "pass" when every bin's variance ratio is within CHECK_RATIO; ``failing`` lists the
    bins outside it."""
    from scipy import stats

    where = manifest.name
    rows = manifest.rows[manifest.rows["camera"].map(profile.of_camera)]
    if rows.empty:
        raise SidkitError(f"{where}: no pairs of {profile.camera}; check the profile against a manifest of the same body")
    others = sorted({str(c) for c in rows["cfa"] if sensor.kind(str(c)) is not sensor.kind(profile.cfa)})
    if others:
        raise SidkitError(f"{where}: pairs of {profile.camera} are {others[0]} "
                          f"raws, the profile was fitted on {profile.cfa} frames; check it against raws of its CFA")
    rows = rows[rows["short_path"] != rows["long_path"]]
    if rows.empty:
        raise SidkitError(f"{where}: long exposures only; the check needs real shorts beside their longs")
    rng = np.random.default_rng(seed)
    table, distances, used, too_few = [], [], 0, set()
    for iso, group in sorted(rows.groupby(rows["short_iso"].astype(float))):
        group = group.sample(min(pairs, len(group)), random_state=seed).sort_values("pair_id")
        noise = profile.noise_at_iso(iso)
        real_res, synth_res = defaultdict(list), defaultdict(list)     # channel -> [(expected, residual)]
        for row in group.itertuples(index=False):
            black = sensor.black_packed(row.cfa, black_levels(row.black_level), np.float64)[:, None, None]
            span = float(row.white_level) - black
            short = sensor.pack(read_mosaic(manifest.resolve(row.short_path)).astype(np.float64), row.cfa) - black
            long = sensor.pack(read_mosaic(manifest.resolve(row.long_path)).astype(np.float64), row.cfa) - black
            usable = (long < 0.9 * span) & (long > 0)
            ratio = float(long[usable].sum() / max(short[usable].sum(), 1e-9))    # measured, not EXIF
            expected = long / ratio
            synthetic = synthesise_counts(expected, noise["k_dn_per_e"], noise["read_noise_dn"],
                                          noise["row_noise_dn"], noise["tukey_lambda"], rng)
            for c in range(len(short)):
                m = usable[c]
                real_res[c].append(np.stack([expected[c][m], short[c][m] - expected[c][m]]))
                synth_res[c].append(np.stack([expected[c][m], synthetic[c][m] - expected[c][m]]))
        used += len(group)
        for c, name in enumerate(sensor.channel_names(profile.cfa)):
            real, synth = np.concatenate(real_res[c], axis=1), np.concatenate(synth_res[c], axis=1)
            if real.shape[1] < CHECK_MIN_PIXELS:
                too_few.add(float(iso))
                continue
            count = min(bins, real.shape[1] // CHECK_MIN_PIXELS)
            edges = np.quantile(real[0], np.linspace(0, 1, count + 1))
            for lo, hi in zip(edges[:-1], edges[1:]):
                r, s = real[1][(real[0] >= lo) & (real[0] <= hi)], synth[1][(synth[0] >= lo) & (synth[0] <= hi)]
                ratio = float(s.var() / max(r.var(), 1e-12))
                table.append({"iso": float(iso), "channel": name, "signal_dn": float((lo + hi) / 2),
                              "pixels": int(len(r)), "real_variance": float(r.var()),
                              "synthetic_variance": float(s.var()), "ratio": ratio,
                              "pass": CHECK_RATIO[0] <= ratio <= CHECK_RATIO[1]})
            distances.append({"iso": float(iso), "channel": name, "distance":
                              float(stats.wasserstein_distance(real[1], synth[1]) / max(real[1].std(), 1e-12))})
    failing = [r for r in table if not r["pass"]]
    return {"pairs": used, "camera": profile.camera, "isos": sorted({r["iso"] for r in table}),
            "verdict": "fail" if failing or not table else "pass", "failing": failing, "variance": table,
            "histogram_distance": distances, "too_few_pixels": sorted(too_few)}


def check_summary(check: dict) -> str:
    """One line: the verdict, and for a fail which ISOs and signal levels miss and what that means."""
    low, high = CHECK_RATIO
    unjudged = (f"; ISO {', '.join(f'{i:g}' for i in check['too_few_pixels'])} not judged (under "
                f"{CHECK_MIN_PIXELS:,} pixels a channel: give more pairs, --check-pairs)" if check["too_few_pixels"] else "")
    if check["verdict"] == "pass":
        return (f"pass: synthetic noise variance within {low:g}-{high:g}x of the real shorts' in every signal bin "
                f"at ISO {', '.join(f'{i:g}' for i in check['isos'])}{unjudged}")
    if not check["variance"]:
        return (f"fail: no ISO had {CHECK_MIN_PIXELS:,} pixels a channel to compare; check against more or larger "
                "pairs (--check-pairs)")
    worst = max(check["failing"], key=lambda r: abs(math.log(r["ratio"])))
    isos = sorted({r["iso"] for r in check["failing"]})
    side = "less" if worst["ratio"] < 1 else "more"
    return (f"fail: {len(check['failing'])} of {len(check['variance'])} signal bins outside {low:g}-{high:g}x "
            f"(ISO {', '.join(f'{i:g}' for i in isos)}; worst ISO {worst['iso']:g} {worst['channel']} at "
            f"{worst['signal_dn']:.1f} DN: {worst['ratio']:.2f}x); synthetic shorts there carry {side} noise than "
            "real ones, so a network trained on them meets other noise than it learnt: calibrate those ISOs again "
            f"(darks and flats of this body, same settings){unjudged}")


def write_check_plot(check: dict, path: Path) -> Path:
    """Real (dots) and synthetic (lines) noise variance against signal, per ISO and channel (log axes)."""
    from matplotlib import colormaps

    from .common.plotfile import png_axes

    curves = sorted({(r["iso"], r["channel"]) for r in check["variance"]})
    with png_axes(path) as ax:
        for colour, (iso, name) in zip(colormaps["viridis"](np.linspace(0, 0.9, max(len(curves), 1))), curves):
            rows = [r for r in check["variance"] if (r["iso"], r["channel"]) == (iso, name)]
            x = [r["signal_dn"] for r in rows]
            ax.plot(x, [r["real_variance"] for r in rows], "o", color=colour, ms=3)
            ax.plot(x, [r["synthetic_variance"] for r in rows], "-", color=colour, lw=1, label=f"ISO {iso:g} {name}")
        ax.set(xscale="log", yscale="log", xlabel="expected short signal (DN above black)", ylabel="variance (DN²)",
               title=f"Synthetic (lines) vs real (dots) shorts: {check['camera']}, {check['verdict']}")
        ax.legend(fontsize=6, ncol=4)
    return Path(path)


def check_table(check: dict):
    """The check as a rich table: each signal bin's variances and their ratio, failing ones marked."""
    from rich.table import Table

    distances = ", ".join(f"ISO {d['iso']:g} {d['channel']} {d['distance']:.3f}" for d in check["histogram_distance"])
    table = Table(title=f"Synthetic vs real shorts, {check['pairs']} pairs: {check['verdict'].upper()} "
                        f"(histogram distance: {distances})")
    for column in ("ISO", "channel", "signal (DN)", "pixels", "real variance", "synthetic variance", "synthetic / real"):
        table.add_column(column)
    for r in check["variance"]:
        mark = "" if r["pass"] else f" [red]outside {CHECK_RATIO[0]:g}-{CHECK_RATIO[1]:g}[/red]"
        table.add_row(f"{r['iso']:g}", r["channel"], f"{r['signal_dn']:.1f}", str(r["pixels"]),
                      f"{r['real_variance']:.2f}", f"{r['synthetic_variance']:.2f}", f"{r['ratio']:.3f}{mark}")
    return table
