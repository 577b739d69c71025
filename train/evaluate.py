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

from curate.atomic import atomic_write
from curate.clitools import progress_bar
from curate.errors import SidkitError
from curate.manifest import black_levels, is_longs_only, read_manifest, resolve, verify_checksum
from curate.rawfile import escape_controls

from . import rawpack, sidprotocol
from .checkpoint import model_from_checkpoint
from .config import default_amp, pick_device
from .metrics import mean_metrics, psnr, ssim
from .sheets import labelled_sheet

FULL_IMAGE_PIXELS = 2 ** 22     # packed pixels run in one piece; larger images are tiled
FALLBACK_TILE = 512             # tile side (packed pixels) when a full image runs out of memory
SPLIT_ORDER = ("train", "val", "test")


def cfa_kind(cfa: str) -> str:
    return "xtrans" if cfa == rawpack.XTRANS else "bayer"


def data_config(df: pd.DataFrame, ratio_policy: str, source: str) -> dict:
    """What a network was trained on, as stored in its checkpoint; one CFA kind per manifest."""
    kinds = sorted({cfa_kind(c) for c in df["cfa"]})
    if len(kinds) != 1:
        raise SidkitError(f"{source}: mixes Bayer and X-Trans raws; train one network per CFA kind "
                          "(split the manifest by camera)")
    channels = 9 if kinds[0] == "xtrans" else 4
    return {"cfa_kind": kinds[0], "channels": channels, "upscale": 3 if channels == 9 else 2,
            "ratio_policy": ratio_policy, "input_clip": 1.0,
            "ground_truth": "rawpy postprocess: camera WB, no auto bright, 16 bit, user_flip 0"}


def check_fits(data: dict, df: pd.DataFrame, checkpoint, manifest) -> None:
    """SidkitError when the manifest's raws are not what the checkpoint's network takes."""
    if df.empty:
        return
    theirs = data_config(df, data["ratio_policy"], str(manifest))
    if (theirs["cfa_kind"], theirs["channels"]) != (data["cfa_kind"], data["channels"]):
        name = {"xtrans": "X-Trans", "bayer": "Bayer"}
        raise SidkitError(f"{manifest}: {name[theirs['cfa_kind']]} raws ({theirs['channels']} channels) do not "
                          f"fit {checkpoint}, trained on {name[data['cfa_kind']]} ({data['channels']} "
                          "channels); use a checkpoint trained on this camera's data")


def read_input(df: pd.DataFrame, row, policy: str) -> tuple[np.ndarray, float]:
    """The network input of a pair: the packed short exposure times its amplification, clipped to 1."""
    frame = rawpack.read_raw(verify_checksum(resolve(df, row.short_path), row.short_sha256), row.cfa,
                             black_levels(row.black_level), float(row.white_level))
    gain = rawpack.amplification(row.ratio, policy)
    return rawpack.pack(frame, gain), gain


def read_truth(df: pd.DataFrame, row) -> np.ndarray:
    """The long exposure's rendering, uint16 H x W x 3 as rawpy gives it (train.metrics scores it as
    value / 65535: no full-size float copy of a 32.5 MP frame)."""
    return rawpack.ground_truth(verify_checksum(resolve(df, row.long_path), row.long_sha256))


def baseline_image(path: str | os.PathLike, black: list[float], white: float, gain: float, *,
                   packed: np.ndarray | None = None, cfa: str | None = None) -> np.ndarray:
    """The short exposure with its counts above black scaled by ``gain``, rendered like the truth
    (uint16 H x W x 3).

    ``packed``: raw counts as rawpack.pack_raw_counts gathers them (of CFA ``cfa``), e.g. a synthetic
    short, put in place of the counts of ``path`` (the file whose mosaic and colours render them)."""
    with rawpack.open_cfa_raw(path) as raw:
        counts = raw.raw_image_visible
        h, w = counts.shape
        t = 6 if raw.raw_pattern.shape == (6, 6) else 2
        oy, ox = rawpack.raw_origin(raw, path)
        if t == 6 or len(black) == 1:
            level = np.float32(np.mean(black))
        else:
            level = np.tile(np.asarray(black, dtype=np.float32).reshape(2, 2), (h // 2 + 1, w // 2 + 1))[:h, :w]
        source = counts.astype(np.float32)
        if packed is not None:
            source[...] = level          # the edge rows and columns that packing leaves out: black
            rawpack.unpack_raw_counts(packed, cfa, source, (oy, ox))
        scaled = level + np.maximum(source - level, 0) * np.float32(gain)
        counts[...] = np.clip(scaled, 0, white).astype(np.uint16)
        rgb = raw.postprocess(**rawpack.postprocess_settings(raw))
    return np.ascontiguousarray(rgb[oy: oy + (h - oy) // t * t, ox: ox + (w - ox) // t * t])


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


Loader = Callable[[pd.DataFrame, object, str], tuple[np.ndarray, np.ndarray, float]]


def load_from_raw(df: pd.DataFrame, row, policy: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(input, truth, gain) of a pair, decoded from its raw files."""
    x, gain = read_input(df, row, policy)
    return x, read_truth(df, row), gain


def cache_loader(cache) -> Loader:
    """A Loader reading a filled train.cache.RawCache instead of decoding the raws again."""
    def load(df: pd.DataFrame, row, policy: str) -> tuple[np.ndarray, np.ndarray, float]:
        black, white = black_levels(row.black_level), float(row.white_level)
        counts = cache.packed(resolve(df, row.short_path), row.short_sha256, row.cfa, black, white)
        gain = rawpack.amplification(row.ratio, policy)
        truth = cache.truth(resolve(df, row.long_path), row.long_sha256)
        x = rawpack.network_input(counts, rawpack.black_packed(row.cfa, black), white, gain)
        return x, truth, gain
    return load


class SyntheticLoader:
    """A Loader for a manifest of long exposures only: each long is scored on a synthetic short of it
    (train.synthetic.synthetic_counts, the training's noise model) at one fixed point, the geometric
    middles of the ratio range and of the profile's K range, amplified by the run's policy. The draws
    come from a generator seeded from the long's checksum, on the CPU: the same short for that image
    at every evaluation, in a resumed run and in `train eval`. Reads the long from ``cache`` (a
    filled train.cache.RawCache), else decodes its raw."""

    def __init__(self, profile: str | os.PathLike, ratio: str | None, cache=None, iso: str | None = None):
        from .synthetic import DEFAULT_RATIO, NoiseModel, evaluation_point

        self.profile, self.cache = str(profile), cache
        self.model = NoiseModel.from_profile(self.profile, iso)
        ratio = ratio or DEFAULT_RATIO
        self.ratio, self.k = evaluation_point(self.model, ratio)

    def describe(self) -> dict:
        return {"kind": "synthetic", "profile": self.profile, "ratio": self.ratio, "k": self.k}

    def short_counts(self, df: pd.DataFrame, row) -> tuple[np.ndarray, np.ndarray]:
        """(the synthetic short's packed raw counts, float32 (C, h, w); the long's truth, uint16 H x W x 3)."""
        from .synthetic import row_generator, synthetic_counts

        black, white = black_levels(row.black_level), float(row.white_level)
        path = resolve(df, row.long_path)
        if self.cache is not None:
            counts = self.cache.packed(path, row.long_sha256, row.cfa, black, white)
            truth = self.cache.truth(path, row.long_sha256)
        else:
            counts = rawpack.pack_raw_counts(rawpack.read_raw(verify_checksum(path, row.long_sha256), row.cfa,
                                                              black, white))
            truth = read_truth(df, row)
        level = rawpack.black_packed(row.cfa, black)
        long = torch.from_numpy(rawpack.network_input(counts, level, white))[None]
        short = synthetic_counts(long, torch.from_numpy(level), white, torch.tensor([self.ratio]), self.model,
                                 row_generator(row.long_sha256 or row.long_path), k=torch.tensor([self.k]))
        return short[0].numpy(), truth

    def load(self, df: pd.DataFrame, row, policy: str) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """(input, truth, gain) as a Loader gives them, and the short's packed raw counts."""
        counts, truth = self.short_counts(df, row)
        gain = rawpack.amplification(self.ratio, policy)
        level = rawpack.black_packed(row.cfa, black_levels(row.black_level))
        return rawpack.network_input(counts, level, float(row.white_level), gain), truth, gain, counts

    def __call__(self, df: pd.DataFrame, row, policy: str) -> tuple[np.ndarray, np.ndarray, float]:
        return self.load(df, row, policy)[:3]


def synthetic_inputs(df: pd.DataFrame, config: dict, profile, manifest, checkpoint) -> SyntheticLoader | None:
    """`train eval`'s loader for a manifest of long exposures only (None for real pairs): ``profile``,
    else the one recorded in the checkpoint's config, at the run's synthetic ratio range."""

    if not is_longs_only(df):
        return None
    fix = "pass --synthetic PROFILE (a noise profile of the camera, made by `curate noise-profile`)"
    recorded = config.get("synthetic")
    if not (profile or recorded):
        raise SidkitError(f"{manifest}: every row's short is its long (long exposures only) and {checkpoint} "
                          f"records no noise profile to synthesise shorts with; {fix}")
    try:
        return SyntheticLoader(profile or recorded, config.get("synthetic_ratio"), iso=config.get("synthetic_iso"))
    except SidkitError as exc:
        if profile:
            raise
        raise SidkitError(f"{manifest}: long exposures only, and the noise profile {checkpoint} records does not "
                          f"read ({exc}); {fix}") from None


def score_model(model: torch.nn.Module, df: pd.DataFrame, rows: pd.DataFrame, policy: str, *,
                device: str = "cpu", amp: str = "off", channels_last: bool = False,
                load: Loader = load_from_raw) -> dict[str, float]:
    """Mean PSNR/SSIM of the network over ``rows`` on full images (the loop's periodic evaluation)."""
    was_training = model.training
    model.eval()
    scores = []
    for row in rows.itertuples():
        x, truth, _ = load(df, row, policy)
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
    per pair on stderr (curate.clitools.progress_bar: a bar on a terminal, plain lines in a log).
    Returns per-image rows and per split/environment means, baseline beside.
    """
    checkpoint = Path(checkpoint)
    scores_of = scorer(protocol)
    device = pick_device(device)
    model, payload = model_from_checkpoint(checkpoint, device)
    data = payload["data"]
    df = read_manifest(manifest)
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
                    x, truth, gain = load_from_raw(df, row, data["ratio_policy"])
                    base = baseline_image(resolve(df, row.short_path), black_levels(row.black_level),
                                          float(row.white_level), gain)
                else:
                    x, truth, gain, counts = shorts.load(df, row, data["ratio_policy"])
                    base = baseline_image(resolve(df, row.long_path), black_levels(row.black_level),
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
