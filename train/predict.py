"""`train predict`: one raw file through a trained network to an 8-bit PNG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


from curate import cfa as sensor
from curate.common.errors import SidkitError
from curate.rawmeta import check_pixels

from . import autoratio, rawpack
from .checkpoint import model_from_checkpoint
from .config import default_amp, pick_device
from .evaluate import run_network, save_png


def predict(checkpoint: str | os.PathLike, rawfile: str | os.PathLike, ratio: float | str | None = None,
            out: str | os.PathLike = "out.png", device: str | None = None, tile: int | None = None,
            log: Callable[[str], None] | None = None, amp: str | None = None) -> Path:
    """Brighten ``rawfile`` with the checkpoint's network; returns the PNG's path.

    A single file has no long exposure to take a ratio from: a network trained with a 'fixed:N'
    policy uses N (``ratio`` overrides it), any other policy needs ``ratio``, the long/short
    exposure ratio wanted, capped as in training under 'cap:N'. ``ratio='auto'`` chooses it from
    the image (train.autoratio); ``log`` is told the ratio used. The network runs under ``amp``
    ('off' or 'bf16'; None: the device's default).
    """
    auto = ratio == "auto"
    if isinstance(ratio, str) and not auto:
        ratio = parse_ratio(ratio)
    if not auto and ratio is not None and not ratio > 0:
        raise SidkitError(f"--ratio {ratio:g}: the amplification must be positive, e.g. --ratio 100")
    if Path(out).suffix.lower() != ".png":
        raise SidkitError(f"-o {out}: predict writes an 8-bit PNG; name the output *.png")
    device = pick_device(device)
    model, payload = model_from_checkpoint(checkpoint, device)
    data = payload["data"]
    policy = data["ratio_policy"]
    fixed = policy.startswith("fixed:")
    if auto and "input_level" not in data:
        raise SidkitError(f"{checkpoint}: trained before sidkit stored its inputs' level, so --ratio auto cannot "
                          "be used with it; retrain it, or pass a number, e.g. --ratio 100")
    if ratio is None and not fixed:
        raise SidkitError(f"{rawfile}: {checkpoint} was trained with ratio policy {policy!r}, so the "
                          "amplification must be given; pass --ratio (e.g. --ratio 100)")
    check_input(rawfile)
    try:
        frame = rawpack.read_raw(rawfile)
    except SidkitError:
        raise
    except Exception as exc:   # LibRawIOError, LibRawFileUnsupportedError, numpy on garbage
        raise SidkitError(f"{rawfile}: cannot be decoded ({_brief(exc)}); predict needs a camera raw file "
                          "that LibRaw reads; nothing written") from None
    if sensor.kind(frame.cfa).name != data["cfa_kind"]:
        raise SidkitError(f"{rawfile}: a {frame.cfa} raw does not fit {checkpoint}, trained on "
                          f"{data['cfa_kind']} raws ({data['channels']} channels); use a matching checkpoint")
    if auto:
        stored = data["input_level"]
        level = autoratio.image_level(rawpack.pack_raw_counts(frame), rawpack.black_packed(frame.cfa, frame.black),
                                      frame.white, stored["percentile"])
        ratio = autoratio.auto_ratio(level, stored)
    gain = float(ratio) if fixed and ratio is not None and not auto else rawpack.amplification(ratio or 1.0, policy)
    if log:
        chosen = (f"ratio auto: {ratio:.1f} (the image's {stored['percentile']:g}th percentile {level:.4g} brought "
                  f"to the training inputs' {stored['level']:.3g})" if auto else f"ratio {ratio or gain:g}")
        log(chosen + (f"; amplification {gain:g} under policy {policy}" if gain != ratio else ""))
    x = rawpack.pack(frame, gain)
    return save_png(Path(out), run_network(model, x, device=device, amp=amp or default_amp(device), tile=tile))


def parse_ratio(text: str) -> float:
    """--ratio: a number, or SidkitError saying what to write."""
    try:
        return float(text)
    except ValueError:
        raise SidkitError(f"--ratio {text}: give a number (the long/short exposure ratio, e.g. --ratio 100) "
                          "or auto") from None


def check_input(rawfile: str | os.PathLike) -> None:
    """SidkitError (one line naming the file) unless ``rawfile`` is a regular file whose pixel data
    is there and decodes: curate's check_pixels, the check `curate validate` uses."""
    path = Path(rawfile)
    if not path.exists():
        raise SidkitError(f"{path}: no such file; give the dark raw file to brighten")
    if not path.is_file():
        raise SidkitError(f"{path}: not a regular file (a folder, FIFO or device); give a raw file")
    try:
        reason = check_pixels(path)
    except SidkitError:
        raise
    except Exception as exc:
        reason = f"cannot be read ({_brief(exc)})"
    if reason:
        raise SidkitError(f"{path}: no usable pixel data ({reason}); predict needs the camera's complete raw "
                          "file, not a stripped or truncated copy; nothing written")


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).strip("b'\"").split())[:150]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
