"""Regenerate docs/experiments/ratio-study.md: how a dataset's exposure ratio affects SID training.

The simulated camera shoots the same scenes at ratios 10, 30, 100 and 250 (the long exposure is the
same 10 s; only the short changes). A network is trained on each dataset with two amplification
policies (the EXIF ratio, and a fixed 100) and scored on its own test scenes and on the test scenes
of the ratio-250 dataset: a network is meant for really dark shots, whatever ratio it was trained on.

    .venv/bin/python scripts/ratio_study.py                 # about 20 minutes on 2 CPU cores
    .venv/bin/python scripts/ratio_study.py --epochs 20     # a quick look
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from capture.simulate import simulate_dataset
from curate.common.atomic import atomic_write
from curate.manifest import write_manifest
from curate.scan import scan_dataset
from train.config import parse_lr_steps
from train.evaluate import evaluate
from train.sweep import Sweep, SweepRun, run_sweep, scored_checkpoint

RATIOS = (10, 30, 100, 250)
POLICIES = {"EXIF ratio": "exif", "fixed 100": "fixed:100"}
REFERENCE = 250


def prepare(out: Path, ratio: int, scenes: int, size: tuple[int, int]) -> Path:
    """The simulated dataset and its manifest for one ratio (same scenes and split for every ratio)."""
    dataset, manifest = out / "data" / f"ratio{ratio}", out / "manifests" / f"ratio{ratio}.csv"
    if not manifest.exists():
        if not dataset.exists():
            simulate_dataset(dataset, scenes=scenes, ratio=ratio, defects=False, size=size, seed=0,
                             allow_any_ratio=True)
        df, _ = scan_dataset(dataset, manifest.parent, test=0.25, val=0)
        write_manifest(df, manifest)
    return manifest


def interval(epochs: int) -> int:
    """Epochs between evaluations and between checkpoint writes: five of each per run."""
    return max(1, epochs // 5)


def study(out: Path, epochs: int, scenes: int, size: tuple[int, int], patch: int, lr: float,
          lr_steps: list[tuple[int, float]], ratios=RATIOS) -> list[dict]:
    manifests = {r: prepare(out, r, scenes, size) for r in sorted({*ratios, REFERENCE})}
    base = {"epochs": epochs, "patch": patch, "lr": lr, "lr_steps": [list(s) for s in lr_steps],
            "eval_every": interval(epochs), "save_every": interval(epochs), "device": "cpu", "seed": 0}
    sweep = Sweep("ratio study", [SweepRun(name, {**base, "ratio_policy": p}) for name, p in POLICIES.items()])
    rows = []
    for ratio in ratios:
        manifest = manifests[ratio]
        results = run_sweep(sweep, manifest, out / "runs" / f"ratio{ratio}")
        for run, result in zip(sweep.runs, results.itertuples()):
            folder = out / "runs" / f"ratio{ratio}" / run.slug
            cross = cross_evaluate(folder, manifests[REFERENCE])
            seconds = pd.read_csv(folder / "metrics.csv")["seconds"].iloc[-1]
            rows.append({"ratio": ratio, "policy": run.name, "psnr": result.psnr, "ssim": result.ssim,
                         "baseline_psnr": result.baseline_psnr, "ref_psnr": cross["psnr"],
                         "ref_ssim": cross["ssim"], "ref_baseline_psnr": cross["baseline_psnr"],
                         "train_seconds": float(seconds)})
    return rows


def cross_evaluate(folder: Path, manifest: Path) -> dict:
    """The run's last.pt on the reference dataset's test scenes (kept in cross.json once done)."""
    saved = folder / f"eval-on-ratio{REFERENCE}" / "cross.json"
    if not saved.exists():
        result = evaluate(scored_checkpoint(folder, has_val=False), manifest, split="test", images=False,
                          out=saved.parent)
        with atomic_write(saved) as handle:
            json.dump({k: result[k] for k in ("psnr", "ssim", "baseline_psnr")}, handle)
    return json.loads(saved.read_text())


def findings(rows: list[dict]) -> list[str]:
    """Sentences computed from the table, so that the page never says what its numbers do not."""
    by = {(r["ratio"], r["policy"]): r for r in rows}
    exif = sorted((r for r in rows if r["policy"] == "EXIF ratio"), key=lambda r: r["ref_psnr"])
    lines = []
    if exif:
        ends = exif[:1] if len(exif) == 1 else [exif[0], exif[-1]]
        scores = " to ".join(f"{r['ref_psnr']:.2f} dB (trained at ratio {r['ratio']})" for r in ends)
        lines.append(f"- Amplified by their EXIF ratio, the networks score {scores} on the ratio-{REFERENCE} "
                     f"test scenes, against {exif[0]['ref_baseline_psnr']:.2f} dB for the amplified short alone.")
    for r in (r for r in rows if r["policy"] == "EXIF ratio"):
        fixed = by.get((r["ratio"], "fixed 100"))
        if fixed is None or r["ratio"] == 100:
            continue
        gain = fixed["ref_psnr"] - r["ref_psnr"]
        effect = f"{'helps' if gain > 0 else 'hurts'} by {abs(gain):.2f} dB" if round(gain, 2) else "changes nothing"
        lines.append(f"- Training ratio {r['ratio']}: a fixed amplification of 100 instead of the EXIF ratio "
                     f"{effect} on the ratio-{REFERENCE} test scenes ({r['ref_psnr']:.2f} -> {fixed['ref_psnr']:.2f}).")
    spread = exif[-1]["ref_psnr"] - exif[0]["ref_psnr"] if exif else 0.0
    if spread >= 2:
        lines.append(f"- With the EXIF ratio, the training ratio moves that score by {spread:.2f} dB.")
    elif len(exif) > 1:
        lines.append(f"- With the EXIF ratio, the training ratio moves that score by {spread:.2f} dB only: at "
                     "this training length the networks mostly learn the rendering, so the study shows the cost "
                     "of a wrong amplification more than the denoising a low-ratio dataset fails to teach.")
    weaker = [r for r in rows if r["policy"] == "EXIF ratio" and r["psnr"] < r["baseline_psnr"]]
    if weaker:
        margins = ", ".join(f"{r['baseline_psnr'] - r['psnr']:.2f} dB at ratio {r['ratio']}" for r in weaker)
        lines.append(f"- On their own test scenes the amplified short beats the network ({margins}): the "
                     "brighter the short, the less noise there is to remove, and the network's imperfect "
                     "rendering costs more than its denoising gains.")
    return lines


def markdown(rows: list[dict], args) -> str:
    steps = parse_lr_steps(args.lr_steps)
    schedule = f"{args.lr:g}" + "".join(f", {v:g} from epoch {e}" for e, v in steps)
    lr_steps_toml = "[" + ", ".join(f"[{e}, {v:g}]" for e, v in steps) + "]"
    ratios = sorted({r["ratio"] for r in rows} | {REFERENCE})
    every = interval(args.epochs)
    lines = [
        "# Ratio study on simulated data",
        "",
        "Generated by `scripts/ratio_study.py` (do not edit by hand); regenerate with",
        "",
        "```",
        f".venv/bin/python scripts/ratio_study.py --epochs {args.epochs} --scenes {args.scenes} "
        f"--size {args.size} --patch {args.patch} --lr {args.lr:g} --lr-steps '{args.lr_steps}'",
        "```",
        "",
        "or, step by step with the command-line tools, for one ratio:",
        "",
        "```",
        f"capture simulate runs/ratio-study/data/ratio10 --ratio 10 --allow-any-ratio --no-defects --scenes {args.scenes} --size {args.size}",
        "curate scan runs/ratio-study/data/ratio10 -o runs/ratio-study/manifests/ratio10.csv --test 0.25 --val 0",
        "train sweep docs/experiments/ratio-policy.toml runs/ratio-study/manifests/ratio10.csv \\",
        f"    --out runs/ratio-study/runs/ratio10 --set epochs={args.epochs} --set patch={args.patch} \\",
        f"    --set lr={args.lr:g} --set lr_steps='{lr_steps_toml}' --set eval_every={every} --set save_every={every} \\",
        "    --set device=cpu --set seed=0",
        "train eval runs/ratio-study/runs/ratio10/fixed_100/checkpoints/last.pt runs/ratio-study/manifests/ratio250.csv",
        "```",
        "",
        "## Set-up",
        "",
        f"- {args.scenes} simulated scenes (half indoor, half outdoor; two bodies: a 14-bit RGGB and a "
        f"12-bit BGGR), {args.size} raw pixels, shot at ratios {', '.join(map(str, ratios))} with the same "
        "10 s long exposure and the same noise seeds; the split (25% of the scenes for test, by scene) is the "
        "same for every ratio.",
        f"- The SID U-Net (7.76 M parameters), {args.epochs} epochs (one random short per training scene per "
        f"epoch), patch {args.patch} packed pixels, Adam at {schedule}, L1 loss, CPU.",
        "- This is a scale that finishes in minutes on two CPU cores, far from the paper's 4000 epochs at "
        "patch 512: compare the rows with each other, not with published numbers.",
        "- PSNR (dB, data range 1, mean of per-image values) and SSIM (Gaussian window, sigma 1.5) against "
        "the long exposure rendered by rawpy (camera white balance, no auto brightness).",
        "",
        "## Results",
        "",
        "| training ratio | amplification | PSNR own test | SSIM own test | baseline own test "
        f"| PSNR on ratio-{REFERENCE} test | SSIM on ratio-{REFERENCE} test | baseline ratio-{REFERENCE} |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['ratio']} | {r['policy']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['baseline_psnr']:.2f} "
                     f"| {r['ref_psnr']:.2f} | {r['ref_ssim']:.3f} | {r['ref_baseline_psnr']:.2f} |")
    lines += ["", "The baseline is the short exposure multiplied by the same amplification and rendered like "
              "the ground truth.", "", "## What it shows", "", *findings(rows), "",
              "The simulated EXIF ratios are right, so a fixed amplification has nothing to correct here: "
              "it only moves the training inputs away from the brightness the test inputs have. Where "
              "recorded ratios are wrong (exposures typed into file names), a fixed value can be the better "
              "guess: the reproduction study's finding that a fixed 100 helped is about such data, which this "
              "simulation does not model.", "",
              f"Training time: {sum(r['train_seconds'] for r in rows) / 60:.1f} minutes for the "
              f"{len(rows)} runs (metrics.csv), on this machine's CPU.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ratio-study"))
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", default="512x384")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--lr-steps", default="200:1e-5", help="EPOCH:LR,... as for `train run`")
    parser.add_argument("--ratios", default=",".join(map(str, RATIOS)), help="training ratios to run")
    parser.add_argument("--write", type=Path, default=Path("docs/experiments/ratio-study.md"))
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    rows = study(args.out, args.epochs, args.scenes, size, args.patch, args.lr, parse_lr_steps(args.lr_steps),
                 tuple(int(r) for r in args.ratios.split(",")))
    with atomic_write(args.out / "results.json") as handle:
        json.dump(rows, handle, indent=2)
    text = markdown(rows, args)
    with atomic_write(args.write) as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
