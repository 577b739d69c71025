"""A simulated raw camera: sensor profiles, procedural scenes and a physical exposure model.

Exposure model (per pixel of the mosaic): electrons = radiance x channel sensitivity x light x
(t / 10 s) x (8 / N)^2 x REFERENCE_FILL x full well, so a radiance of 1 fills 95% of the well in
10 s at f/8; Poisson shot noise; clip at the full well; DN = electrons / gain(ISO) with
gain(ISO) = gain at base ISO x base ISO / ISO; read noise before the amplifier (electrons) and
after it (DN); one Gaussian offset per row; black level per tile position; rounding; clip at white.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from skimage import draw
from skimage.transform import resize

from curate.cfa import XTRANS_LAYOUT, black_tile, colour_tile, tile_name
from curate.common.errors import SidkitError

from .dng import XYZ_TO_SRGB

REFERENCE_EXPOSURE_S = 10.0
REFERENCE_FNUMBER = 8.0
REFERENCE_FILL = 0.95

# A modern body's shutter ladder in 1/3 stops, as the camera labels it, longest first.
THIRD_STOP_LABELS = tuple(
    "30 25 20 15 13 10 8 6 5 4 3.2 2.5 2 1.6 1.3 1 0.8 0.6 0.5 0.4 0.3 1/4 1/5 1/6 1/8 1/10 1/13 "
    "1/15 1/20 1/25 1/30 1/40 1/50 1/60 1/80 1/100 1/125 1/160 1/200 1/250 1/320 1/400 1/500 "
    "1/640 1/800 1/1000 1/1250 1/1600 1/2000 1/2500 1/3200 1/4000 1/5000 1/6400 1/8000".split())
THIRD_STOP_ISOS = (100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1250, 1600, 2000, 2500,
                   3200, 4000, 5000, 6400, 12800, 25600)


@dataclass(frozen=True)
class SensorProfile:
    """One simulated body: identity, raw format, noise and the settings it offers."""
    name: str
    make: str
    model: str
    serial: str
    bits: int
    black_level: tuple[int, int, int, int]      # per position of the 2x2 tile, row-major (any CFA)
    white_level: int
    cfa: str                                    # RGGB, GRBG, GBRG, BGGR or a 6x6 X-Trans tile's 36 letters
    gain_e_per_dn: float                        # at base ISO
    base_iso: int
    read_noise_e: float                         # before the amplifier, electrons
    read_noise_dn: float                        # after the amplifier, DN
    row_noise_dn: float                         # one offset per row, DN
    sensitivity: tuple[float, float, float]     # relative response of the r, g, b filters
    full_well_e: float
    width: int = 512
    height: int = 384
    shutter_labels: tuple[str, ...] = THIRD_STOP_LABELS
    isos: tuple[int, ...] = THIRD_STOP_ISOS
    fnumbers: tuple[float, ...] = (2.8, 4.0, 5.6, 8.0, 11.0, 16.0)

    @property
    def camera(self) -> str:
        return f"{self.make} {self.model} {self.serial}"

    @property
    def tile(self) -> int:
        """The CFA tile's side: 2 for Bayer, 6 for X-Trans."""
        return colour_tile(self.cfa).shape[0]

    @property
    def cfa_name(self) -> str:
        """The pattern as curate names it: the Bayer name, or 'XTRANS'."""
        return tile_name(self.cfa)

    def gain(self, iso: float) -> float:
        """Electrons per DN at ``iso``."""
        return self.gain_e_per_dn * self.base_iso / iso

    def color_matrix(self) -> np.ndarray:
        """XYZ -> camera for sRGB primaries seen through this sensor's filter sensitivities."""
        return np.diag(self.sensitivity) @ np.asarray(XYZ_TO_SRGB)


PROFILES: dict[str, SensorProfile] = {p.name: p for p in (
    SensorProfile("sim-dslr14", "Sidkit", "SIM-DSLR14", "SD14-0001", 14, (2046, 2048, 2049, 2047), 16383,
                  "RGGB", gain_e_per_dn=4.2, base_iso=100, read_noise_e=3.0, read_noise_dn=2.0,
                  row_noise_dn=0.6, sensitivity=(0.52, 1.0, 0.68), full_well_e=60000,
                  fnumbers=(1.8, 2.8, 4.0, 5.6, 8.0, 11.0, 16.0, 22.0)),
    SensorProfile("sim-mirrorless12", "Sidkit", "SIM-ML12", "ML12-0001", 12, (255, 256, 257, 256), 4095,
                  "BGGR", gain_e_per_dn=7.8, base_iso=100, read_noise_e=2.5, read_noise_dn=0.6,
                  row_noise_dn=0.25, sensitivity=(0.6, 1.0, 0.78), full_well_e=30000),
    SensorProfile("sim-phone10", "Sidkit", "SIM-PHONE10", "PH10-0001", 10, (64, 64, 64, 64), 1023,
                  "GRBG", gain_e_per_dn=6.3, base_iso=100, read_noise_e=1.8, read_noise_dn=0.35,
                  row_noise_dn=0.15, sensitivity=(0.55, 1.0, 0.7), full_well_e=6000,
                  isos=THIRD_STOP_ISOS[:16], fnumbers=(1.8,)),
    # A Fuji-like X-Trans body (the SID paper's second camera is an X-T2): one black level, 6x6 tile.
    SensorProfile("sim-xtrans14", "Sidkit", "SIM-XT14", "XT14-0001", 14, (1024,) * 4, 16383,
                  XTRANS_LAYOUT, gain_e_per_dn=3.3, base_iso=100, read_noise_e=2.8, read_noise_dn=1.2,
                  row_noise_dn=0.4, sensitivity=(0.5, 1.0, 0.65), full_well_e=50700, width=768, height=516,
                  isos=THIRD_STOP_ISOS[:19]),
)}


def get_profile(name: str) -> SensorProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise SidkitError(f"unknown sensor profile {name!r}; choose one of {', '.join(PROFILES)}") from None


def scene_rng(scene_id: str, seed: int = 0) -> np.random.Generator:
    """A generator that depends only on the scene id and the seed (not on Python's hash salt)."""
    digest = int.from_bytes(hashlib.sha256(scene_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


# --- scenes ------------------------------------------------------------------------------------
_PALETTES = {
    "indoor": dict(
        backdrop=[(0.55, 0.45, 0.35), (0.50, 0.50, 0.46), (0.42, 0.36, 0.30), (0.40, 0.44, 0.42)],
        floor=[(0.35, 0.22, 0.12), (0.30, 0.28, 0.26), (0.45, 0.30, 0.18)],
        objects=[(0.70, 0.15, 0.12), (0.15, 0.25, 0.55), (0.80, 0.75, 0.65), (0.25, 0.45, 0.20),
                 (0.60, 0.45, 0.15), (0.12, 0.12, 0.14), (0.85, 0.82, 0.78), (0.50, 0.20, 0.40)],
        lights=[(1.0, 0.80, 0.55), (1.0, 0.90, 0.75)]),
    "outdoor": dict(
        backdrop=[(0.08, 0.12, 0.32), (0.14, 0.20, 0.45), (0.20, 0.18, 0.38)],
        floor=[(0.20, 0.26, 0.14), (0.30, 0.29, 0.27), (0.28, 0.24, 0.18)],
        objects=[(0.40, 0.40, 0.42), (0.55, 0.50, 0.45), (0.20, 0.30, 0.15), (0.60, 0.12, 0.10),
                 (0.15, 0.20, 0.35), (0.75, 0.70, 0.60), (0.30, 0.22, 0.15), (0.10, 0.10, 0.12)],
        lights=[(1.0, 0.75, 0.45), (0.85, 0.90, 1.0), (1.0, 0.95, 0.80)]),
}


def render_scene(scene_id: str, width: int = 512, height: int = 384, seed: int = 0, *,
                 environment: str | None = None) -> np.ndarray:
    """Linear radiance, float32 H x W x 3 in [0, 1], deterministic from ``scene_id`` and ``seed``.

    A lit backdrop over a floor or ground, textured shapes, fine lines and a few bright lights;
    indoor scenes are warm rooms, outdoor scenes a night sky over ground (chosen from the id when
    ``environment`` is None).
    """
    if scene_id in CALIBRATION_SCENES:          # `capture calibrate`: the lens cap, a grey card
        return calibration_scene(scene_id, width, height, seed)
    rng = scene_rng(scene_id, seed)
    coin = rng.random()                         # drawn either way: the id gives the same scene in both cases
    env = environment or ("indoor" if coin < 0.5 else "outdoor")
    if env not in _PALETTES:
        raise SidkitError(f"scene {scene_id}: environment {env!r} is not indoor or outdoor")
    palette = _PALETTES[env]
    h, w = height, width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)

    def pick(name: str) -> np.ndarray:
        return np.asarray(palette[name][rng.integers(len(palette[name]))], np.float32)

    # backdrop and floor: gradients with low-frequency variation
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(angle) + yy * math.sin(angle))
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    top, bottom = pick("backdrop"), pick("backdrop") * rng.uniform(0.6, 1.2)
    img = top * (1 - ramp[..., None]) + bottom * ramp[..., None]
    img *= (0.75 + 0.5 * _smooth_noise(rng, h, w, 4))[..., None]
    horizon = int(h * rng.uniform(0.55, 0.8) if env == "indoor" else h * rng.uniform(0.45, 0.65))
    floor = pick("floor") * _texture(rng, h - horizon, w, fine=env == "indoor")[..., None]
    img[horizon:] = floor * (0.6 + 0.6 * yy[horizon:, :, None] / yy.max())

    # shapes: rectangles, ellipses and triangles, each shaded and textured
    for _ in range(rng.integers(7, 13)):
        rr, cc = _shape(rng, h, w)
        if rr.size == 0:
            continue
        shade = 0.6 + 0.8 * _smooth_noise(rng, h, w, 2)[rr, cc]
        colour = pick("objects") * rng.uniform(0.7, 1.3, 3).astype(np.float32)
        img[rr, cc] = colour * (shade * _texture(rng, h, w, fine=True)[rr, cc])[:, None]

    # fine detail: a sign with rows of short dark strokes
    y0, x0 = rng.integers(0, max(1, h - h // 4)), rng.integers(0, max(1, w - w // 3))
    sign = img[y0:y0 + h // 5, x0:x0 + w // 4]
    sign[:] = pick("objects") * 0.3 + 0.55
    for row in range(3, sign.shape[0] - 2, 5):
        for col in range(3, sign.shape[1] - 4, 7):
            if rng.random() < 0.8:
                sign[row:row + 2, col:col + rng.integers(2, 6)] *= 0.25

    # illumination: a broad pool of light, then normalise to a dim-room median
    cy, cx = rng.uniform(0.1, 0.6) * h / max(h, w), rng.uniform(0.2, 0.8) * w / max(h, w)
    pool = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(0.25, 0.5) ** 2))
    img *= (0.45 + 0.8 * pool)[..., None]
    luminance = img @ np.float32([0.2126, 0.7152, 0.0722])
    img *= rng.uniform(0.25, 0.29) / max(float(np.median(luminance)), 1e-6)
    img = 0.8 * np.tanh(img / 0.8)

    # lights: small bright sources near the top of the range
    for _ in range(rng.integers(2, 5)):
        ly, lx = rng.uniform(0, h), rng.uniform(0, w)
        sigma = rng.uniform(1.0, 4.0) * max(h, w) / 512
        glow = np.exp(-((yy * max(h, w) - ly) ** 2 + (xx * max(h, w) - lx) ** 2) / (2 * sigma ** 2))
        img += rng.uniform(0.9, 1.0) * pick("lights") * glow[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid upsampled with cubic interpolation."""
    grid = rng.random((cells + 1, cells + 1))
    return np.clip(resize(grid, (h, w), order=3, mode="reflect", anti_aliasing=False), 0, 1).astype(np.float32)


def _texture(rng: np.random.Generator, h: int, w: int, fine: bool) -> np.ndarray:
    """A multiplicative texture around 1: plain, stripes, checks or grain."""
    kind = rng.integers(4) if fine else 0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 1:
        angle, freq = rng.uniform(0, math.pi), rng.uniform(0.04, 0.3)
        return 1 + 0.35 * np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)))
    if kind == 2:
        size = rng.integers(2, 9)
        return np.where((xx // size + yy // size) % 2 == 0, 1.25, 0.75).astype(np.float32)
    if kind == 3:
        return (0.7 + 0.6 * rng.random((h, w))).astype(np.float32)
    return 0.9 + 0.2 * _smooth_noise(rng, h, w, 8)


def _shape(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of a random rectangle, ellipse or triangle."""
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(0.05, 0.25) * h, rng.uniform(0.05, 0.25) * w
    kind = rng.integers(3)
    if kind == 1:
        return draw.ellipse(cy, cx, ry, rx, shape=(h, w), rotation=rng.uniform(0, math.pi))
    if kind == 2:
        angles = np.sort(rng.uniform(0, 2 * math.pi, 3))
        return draw.polygon(cy + ry * np.sin(angles), cx + rx * np.cos(angles), shape=(h, w))
    return draw.polygon([cy - ry, cy - ry, cy + ry, cy + ry], [cx - rx, cx + rx, cx + rx, cx - rx], shape=(h, w))


# --- calibration scenes and the true noise (what `capture calibrate` shoots, `curate noise-profile` fits)
LENS_CAP, GREY_CARD = "lens-cap", "grey-card"
CALIBRATION_SCENES = (LENS_CAP, GREY_CARD)
GREY_CARD_RADIANCE = 0.5
VIGNETTING = 0.3            # radiance falls by this fraction from the centre to the corners
PRNU = 0.01                 # pixel response non-uniformity, relative standard deviation


def calibration_scene(scene_id: str, width: int, height: int, seed: int = 0) -> np.ndarray:
    """Radiance H x W x 3 of the lens cap (zeros) or an evenly lit grey card seen through a
    vignetting lens by pixels of slightly unequal response (a fixed pattern for a given seed)."""
    if scene_id == LENS_CAP:
        return np.zeros((height, width, 3), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r2 = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) / ((height / 2) ** 2 + (width / 2) ** 2)
    pattern = np.random.default_rng([seed, text_seed(GREY_CARD)]).standard_normal((height, width))
    card = GREY_CARD_RADIANCE * (1 - VIGNETTING * r2) * (1 + PRNU * pattern)
    return np.repeat(card[..., None], 3, axis=2).astype(np.float32)


def text_seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def true_noise(profile: SensorProfile, iso: float) -> dict:
    """The simulated body's noise at ``iso`` in the noise profile's terms: K (DN per electron),
    read noise (DN, pre- and post-amplifier together) and row noise (DN)."""
    gain = profile.gain(iso)
    return {"k_dn_per_e": 1.0 / gain, "read_noise_dn": math.hypot(profile.read_noise_e / gain, profile.read_noise_dn),
            "row_noise_dn": profile.row_noise_dn, "black_level": list(profile.black_level)}


# --- exposure ----------------------------------------------------------------------------------
def expose(profile: SensorProfile, radiance: np.ndarray, *, exposure_s: float, iso: float,
           fnumber: float, light: float = 1.0, shift: tuple[int, int] = (0, 0), seed: int = 0) -> np.ndarray:
    """A uint16 H x W raw mosaic of ``radiance`` (H x W x 3, linear), deterministic by ``seed``.

    The profile's CFA tile (2x2 Bayer or 6x6 X-Trans) repeats from the top-left pixel; H and W are
    even (a DNG of an X-Trans body also needs multiples of 6: see capture.dng.write_dng).

    ``shift=(dy, dx)`` moves the scene down and right by whole pixels (a nudged camera); the
    uncovered border repeats the scene mirrored.
    """
    radiance = np.asarray(radiance, dtype=np.float64)
    h, w = radiance.shape[:2]
    if radiance.ndim != 3 or radiance.shape[2] != 3 or h % 2 or w % 2:
        raise SidkitError(f"{profile.name}: radiance must be H x W x 3 with even H and W, got {radiance.shape}")
    rng = np.random.default_rng(seed)
    radiance = _shifted(radiance, *shift)
    scale = (light * float(exposure_s) / REFERENCE_EXPOSURE_S * (REFERENCE_FNUMBER / float(fnumber)) ** 2
             * REFERENCE_FILL * profile.full_well_e)
    # The CFA tile (2x2 Bayer or 6x6 X-Trans) repeated over the sensor; a partial tile at the edge
    # is cut off, as on real sensors whose size is no multiple of the tile.
    tile = colour_tile(profile.cfa)
    t, reps = tile.shape[0], (-(-h // tile.shape[0]), -(-w // tile.shape[0]))
    colour = np.tile(tile, reps)[:h, :w]
    black = np.tile(black_tile(profile.black_level, t), reps)[:h, :w]
    chosen = np.take_along_axis(radiance, colour[..., None].astype(np.intp), axis=2)[..., 0]
    mean_e = chosen * np.asarray(profile.sensitivity, dtype=np.float64)[colour] * scale
    electrons = np.minimum(rng.poisson(mean_e), profile.full_well_e)
    gain = profile.gain(iso)
    read_sigma = math.hypot(profile.read_noise_e / gain, profile.read_noise_dn)
    dn = (electrons / gain + rng.normal(0.0, read_sigma, (h, w))
          + rng.normal(0.0, profile.row_noise_dn, (h, 1)) + black)
    return np.clip(np.rint(dn), 0, profile.white_level).astype(np.uint16)


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved by (dy, dx) pixels: out[y, x] = image[y - dy, x - dx], borders mirrored."""
    dy, dx = int(dy), int(dx)
    if dy == 0 and dx == 0:
        return image
    h, w = image.shape[:2]
    if abs(dy) >= h or abs(dx) >= w:
        raise SidkitError(f"shift {(dy, dx)} is larger than the {w}x{h} image")
    padded = np.pad(image, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="reflect")
    return padded[abs(dy) - dy:abs(dy) - dy + h, abs(dx) - dx:abs(dx) - dx + w]
