"""`train eval`: rebuild the network from a checkpoint, run it on full images, score it against the
ground truth beside the plain baseline (the short exposure scaled by the amplification and rendered
like the ground truth), write 8-bit PNGs, side-by-side sheets and report.md.
"""
from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from curate.common.atomic import atomic_write
from curate.common.clitools import progress_bar
from curate.common.errors import SidkitError
from curate.manifest import Manifest, black_levels, read_manifest
from curate.rawfile import escape_controls

from . import sidprotocol
from .checkpoint import model_from_checkpoint
from .config import default_amp, pick_device
from .evalinputs import Loader, baseline_image, load_from_raw, synthetic_inputs
from .metrics import mean_metrics, psnr, ssim
from .rundata import check_fits
from .sheets import labelled_sheet

FULL_IMAGE_PIXELS = 2 ** 22     # packed pixels run in one piece; larger images are tiled
FALLBACK_TILE = 512             # tile side (packed pixels) when a full image runs out of memory
SPLIT_ORDER = ("train", "val", "test")


@torch.no_grad()
def run_network(model: torch.nn.Module, x: np.ndarray, *, device: str = "cpu", amp: str = "off",
                channels_last: bool = False, tile: int | None = None, overlap: int = 32) -> np.ndarray:
    """The network's output for a packed input (C, h, w): float32 H x W x 3 clipped to [0, 1].

    Images over FULL_IMAGE_PIXELS, or a full image that runs out of GPU memory, run in square
    tiles of ``tile`` packed pixels overlapping by ``overlap`` (both rounded to multiples of
    2**levels, the input padded to one); each tile keeps only its centre.
    """
    h, w = x.shape[-2:]
    if tile is None and h * w > FULL_IMAGE_PIXELS:
        tile = FALLBACK_TILE * 2
    if tile is None:
        try:
            return _forward(model, x, device, amp, channels_last)
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            tile = FALLBACK_TILE
    m, upscale = 2 ** model.spec.levels, model.spec.upscale
    tile = max(m, tile // m * m)
    overlap = min(overlap // m * m, (tile - m) // 2 // m * m)
    x = np.pad(x, ((0, 0), (0, -h % m), (0, -w % m)), mode="edge")  # tiles on the pooling grid
    ph, pw = x.shape[-2:]
    out = np.empty((ph * upscale, pw * upscale, 3), dtype=np.float32)
    for top in _starts(ph, tile, overlap):
        for left in _starts(pw, tile, overlap):
            piece = _forward(model, x[:, top: top + tile, left: left + tile], device, amp, channels_last)
            y0 = 0 if top == 0 else top + overlap
            x0 = 0 if left == 0 else left + overlap
            y1, x1 = min(ph, top + tile), min(pw, left + tile)
            out[y0 * upscale: y1 * upscale, x0 * upscale: x1 * upscale] = \
                piece[(y0 - top) * upscale: (y1 - top) * upscale, (x0 - left) * upscale: (x1 - left) * upscale]
    return out[: h * upscale, : w * upscale]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis: a stride of tile - 2*overlap, the last tile flush with the edge."""
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - 2 * overlap))
    return starts + [size - tile]


def _forward(model, x: np.ndarray, device: str, amp: str, channels_last: bool) -> np.ndarray:
    batch = torch.from_numpy(np.ascontiguousarray(x))[None].to(device)
    if channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=amp == "bf16"):
        y = model(batch)
    return y[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()


def score(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"psnr": psnr(pred, truth), "ssim": ssim(pred, truth)}


# --protocol: how one image is scored. sidkit: float images, PSNR on data range 1, SSIM per channel
# (train.metrics); sid: as the SID paper's MATLAB code, 8-bit images, peak 255, 3-D-volume SSIM.
PROTOCOLS = {"sidkit": score, "sid": sidprotocol.scores}
PROTOCOL_NOTES = {
    "sidkit": "PSNR in dB (data range 1, mean of per-image values), SSIM (Gaussian sigma 1.5, per channel), "
              "on float outputs before 8-bit rounding",
    "sid": "the SID paper's protocol: outputs and ground truth rounded to 8 bits, PSNR in dB on 0-255 "
           "(mean of per-image values), SSIM as MATLAB's ssim with default parameters (the RGB image as "
           "one 3-D volume); compare these with the paper's tables",
}


def scorer(protocol: str) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """The per-image scoring of a protocol ('sidkit' or 'sid')."""
    if protocol not in PROTOCOLS:
        raise SidkitError(f"--protocol {protocol}: not one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def score_model(model: torch.nn.Module, manifest: Manifest, rows: pd.DataFrame, policy: str, *,
                device: str = "cpu", amp: str = "off", channels_last: bool = False,
                load: Loader = load_from_raw) -> dict[str, float]:
    """Mean PSNR/SSIM of the network over ``rows`` (of ``manifest``) on full images (the loop's periodic evaluation)."""
    was_training = model.training
    model.eval()
    scores = []
    for row in rows.itertuples():
        x, truth, _ = load(manifest, row, policy)
        scores.append(score(run_network(model, x, device=device, amp=amp, channels_last=channels_last), truth))
    model.train(was_training)
    return mean_metrics(scores) if scores else {"psnr": math.nan, "ssim": math.nan}


def evaluate(checkpoint: str | os.PathLike, manifest: str | os.PathLike, split: str = "test",
             out: str | os.PathLike | None = None, tile: int | None = None, device: str | None = None,
             images: bool = True, protocol: str = "sidkit", amp: str | None = None,
             synthetic: str | os.PathLike | None = None, progress: bool = False) -> dict:
    """Score a checkpoint on a manifest's ``split`` ('train', 'val', 'test' or 'all'), every image
    (network and baseline) as ``protocol`` says ('sidkit' or 'sid', see PROTOCOL_NOTES), the network
    run under ``amp`` ('off' or 'bf16'; None: the device's default, as in training). A manifest of
    long exposures only is scored on synthetic shorts (SyntheticLoader) made with the noise profile
    ``synthetic``, else the one the checkpoint's run trained with; real pairs ignore ``synthetic``.

    Writes ``out``/report.md and, with ``images``, ``out``/outputs/<pair>.png and <pair>-sheet.png
    (amplified short | output | ground truth). ``out`` defaults to the checkpoint's run folder (as
    ``checkpoint`` names it: a relative checkpoint gives relative paths). With ``progress``, one step
    per pair on stderr (curate.common.clitools.progress_bar: a bar on a terminal, plain lines in a log).
    Returns per-image rows and per split/environment means, baseline beside.
    """
    checkpoint = Path(checkpoint)
    scores_of = scorer(protocol)
    device = pick_device(device)
    model, payload = model_from_checkpoint(checkpoint, device)
    data = payload["data"]
    loaded = read_manifest(manifest)
    df = loaded.rows
    rows = df if split == "all" else df[df["split"] == split]
    if rows.empty:
        present = ", ".join(sorted(set(df["split"]) - {""})) or "none"
        raise SidkitError(f"{manifest}: no pairs in split {split!r} (splits present: {present}); "
                          "pass --split with one of those")
    check_fits(data, rows, checkpoint, manifest)
    shorts = synthetic_inputs(df, payload.get("config") or {}, synthetic, manifest, checkpoint)
    out = Path(out) if out is not None else _run_folder(checkpoint)
    amp = amp or default_amp(device)
    results, findings = [], []
    names = output_names(rows["pair_id"].astype(str).tolist())
    with progress_bar(len(rows), f"eval {split}", enabled=progress) as advance:
        for row in rows.itertuples():
            started = time.perf_counter()
            try:      # a file that cannot be read is a finding for its pair; the others are still scored
                if shorts is None:
                    x, truth, gain = load_from_raw(loaded, row, data["ratio_policy"])
                    base = baseline_image(loaded.resolve(row.short_path), black_levels(row.black_level),
                                          float(row.white_level), gain)
                else:
                    x, truth, gain, counts = shorts.load(loaded, row, data["ratio_policy"])
                    base = baseline_image(loaded.resolve(row.long_path), black_levels(row.black_level),
                                          float(row.white_level), gain, packed=counts, cfa=row.cfa)
            except Exception as exc:
                findings.append(read_finding(row, exc))
                advance(status=f"{escape_controls(str(row.pair_id))}: unreadable")
                continue
            pred = run_network(model, x, device=device, amp=amp, tile=tile)
            ours, theirs = scores_of(pred, truth), scores_of(base, truth)
            result = {"pair_id": row.pair_id, "scene_id": row.scene_id, "split": row.split,
                      "environment": row.environment, "ratio": float(row.ratio) if shorts is None else shorts.ratio,
                      "amplification": gain,
                      "psnr": ours["psnr"], "ssim": ours["ssim"],
                      "baseline_psnr": theirs["psnr"], "baseline_ssim": theirs["ssim"]}
            if images:
                name = names[str(row.pair_id)]
                result["output"] = str(save_png(out / "outputs" / f"{name}.png", pred))
                sheet = labelled_sheet([(base, "amplified input", theirs), (pred, "network", ours),
                                        (truth, "ground truth", None)])
                result["sheet"] = str(save_png(out / "outputs" / f"{name}-sheet.png", sheet))
            result["seconds"] = time.perf_counter() - started
            results.append(result)
            advance(status=f"{escape_controls(str(row.pair_id))}: {ours['psnr']:.2f} dB")
    if not results:
        raise SidkitError(f"{manifest}: no pair of split {split!r} could be read; first: {findings[0]['message']}")
    summary = summarise(results)
    means = {k: float(np.mean([r[k] for r in results])) for k in ("psnr", "ssim", "baseline_psnr", "baseline_ssim")}
    report = {"checkpoint": str(checkpoint), "manifest": str(manifest), "split": split, "protocol": protocol,
              "amp": amp, "epoch": payload["epoch"], "step": payload["step"],
              "inputs": {"kind": "real"} if shorts is None else shorts.describe(),
              **means, "images": results, "summary": summary, "findings": findings}
    report["report"] = str(write_report(report, out / "report.md"))
    return report


NAME_CHARS = 100        # of a pair id in its outputs' file names (a file name holds 255 bytes)


def output_names(pair_ids: list[str]) -> dict[str, str]:
    """pair id -> the stem of its outputs/<stem>.png and <stem>-sheet.png, one per pair id.

    The id with each run of characters other than letters, digits, '.', '_' and '-' (and a leading
    '.') as '_', cut to NAME_CHARS. Ids that are their own stem keep it; where another id's stem
    would clash with a name taken (ignoring case, as some disks do, and counting each <stem>-sheet),
    it gets the first free suffix -2, -3, ... (`a/b` and `a:b` beside `a_b`: a_b-2, a_b-3)."""
    base = {pid: re.sub(r"[^A-Za-z0-9._-]+|^\.", "_", pid)[:NAME_CHARS] for pid in pair_ids}
    taken: set[str] = set()
    names: dict[str, str] = {}
    for pid in sorted(pair_ids, key=lambda p: base[p] != p):      # stable: own stems first, then row order
        stem, n = base[pid], 1
        while stem.casefold() in taken or f"{stem}-sheet".casefold() in taken:
            n += 1
            stem = f"{base[pid]}-{n}"
        names[pid] = stem
        taken |= {stem.casefold(), f"{stem}-sheet".casefold()}
    return names


def read_finding(row, exc: Exception) -> dict:
    """An `unreadable` finding (validate's format) for a pair whose files could not be read."""
    text = " ".join(str(exc).split())
    message = text if isinstance(exc, SidkitError) else f"reading it failed ({type(exc).__name__}: {text[:200]})"
    return {"pair_id": row.pair_id, "path": row.short_path, "code": "unreadable", "severity": "error",
            "message": f"{message}; pair left out of the scores"}


def _run_folder(checkpoint: Path) -> Path:
    """The run folder of ``checkpoint`` (the folder above checkpoints/, else its own folder), named as
    the checkpoint was: runs/a/checkpoints/last.pt gives runs/a, an absolute path an absolute folder,
    and last.pt given from inside checkpoints/ gives '..' (no absolute path the user never typed)."""
    folder = checkpoint.parent
    if folder.name == "checkpoints":
        return folder.parent
    real = folder.resolve()
    if real.name != "checkpoints":
        return folder
    return real.parent if checkpoint.is_absolute() else Path(os.path.relpath(real.parent))


def summarise(results: list[dict]) -> list[dict]:
    """Mean metrics per split and environment, plus an 'all' row per split."""
    keys = ("psnr", "ssim", "baseline_psnr", "baseline_ssim")
    table = pd.DataFrame(results)
    rows = []
    for split in sorted(table["split"].unique(), key=lambda s: (SPLIT_ORDER + (s,)).index(s)):
        part = table[table["split"] == split]
        groups = [(env, part[part["environment"] == env]) for env in sorted(part["environment"].unique())]
        for environment, group in groups + [("all", part)]:
            rows.append({"split": split, "environment": environment, "images": len(group),
                         **{k: float(group[k].mean()) for k in keys}})
    return rows


def write_report(report: dict, path: Path) -> Path:
    """report.md: the summary table, then one row per image."""
    lines = [f"# Evaluation of {report['checkpoint']}", "",
             f"Manifest `{report['manifest']}`, split `{report['split']}`, checkpoint epoch "
             f"{report['epoch']} (step {report['step']}), network run in "
             f"{'bf16' if report.get('amp') == 'bf16' else 'float32'}. Protocol `{report.get('protocol', 'sidkit')}`: "
             f"{PROTOCOL_NOTES[report.get('protocol', 'sidkit')]}. Baseline: the short exposure scaled by "
             "the same amplification and rendered like the ground truth.", *inputs_note(report.get("inputs")), "",
             "| split | environment | images | PSNR | SSIM | baseline PSNR | baseline SSIM |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in report["summary"]:
        lines.append(f"| {r['split']} | {r['environment']} | {r['images']} | {r['psnr']:.2f} | "
                     f"{r['ssim']:.4f} | {r['baseline_psnr']:.2f} | {r['baseline_ssim']:.4f} |")
    lines += ["", "## Per image", "",
              "| pair | split | environment | ratio | gain | PSNR | SSIM | baseline PSNR | baseline SSIM | sheet |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in report["images"]:
        sheet = Path(r["sheet"]).name if r.get("sheet") else ""
        lines.append(f"| {_cell(r['pair_id'])} | {r['split']} | {r['environment']} | {r['ratio']:.4g} | "
                     f"{r['amplification']:.4g} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['baseline_psnr']:.2f} | {r['baseline_ssim']:.4f} | {sheet} |")
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def _cell(text) -> str:
    """Text for a markdown table cell: '|' escaped, control characters as escapes (one line)."""
    return escape_controls(str(text)).replace("|", "\\|")


def inputs_note(inputs: dict | None) -> list[str]:
    """report.md's line on synthetic inputs (none for real pairs)."""
    if not inputs or inputs.get("kind") != "synthetic":
        return []
    return ["", f"Inputs: synthetic shorts (the manifest holds long exposures only), one per image, synthesised "
                f"from the long with noise profile `{inputs['profile']}` at ratio {inputs['ratio']:.1f} and "
                f"K {inputs['k']:.3g} DN per electron (the geometric middles of the run's ratio range and of the "
                "profile's K range), draws seeded from the long's checksum; the baseline amplifies that short."]


def save_png(path: Path, image: np.ndarray) -> Path:
    """An H x W x 3 float image in [0, 1] as an 8-bit PNG (rounded as the SID protocol scores it),
    written atomically."""
    from PIL import Image

    pixels = sidprotocol.to_8bit(image)
    with atomic_write(path, "wb") as handle:
        Image.fromarray(pixels).save(handle, format="PNG")
    return path
