"""Regenerate docs/experiments/architecture-study.md: the SID U-Net against a NAFNet (the second
network family, train/networks/nafnet.py) on the same simulated data at equal steps.

One simulated Bayer dataset (ISO 100-1600, ratios 100-300); each network trains ``--steps`` steps
per seed and is scored on the same held-out test pairs (PSNR, SSIM). Parameters and FLOPs come from
builds on the meta device (torch.utils.flop_counter.FlopCounterMode, forward + backward of one
512x512 packed crop); CPU step times from training steps timed apart from the runs.

    .venv/bin/python scripts/architecture_study.py        # about 30 minutes on 2 shared CPU cores
    .venv/bin/python scripts/architecture_study.py --seeds 2 --steps 40 --scenes 3 --out /tmp/arch --page /tmp/arch.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from capture.simulate import simulate_dataset
from curate.common.atomic import atomic_write
from curate.manifest import write_manifest
from curate.scan import scan_dataset
from train.config import cpu_description, default_amp, load_config
from train.evaluate import evaluate
from train.loop import train_run
from train.networks import PRESETS, build_model, parameter_count, preset

BODY = "sim-dslr14"
ISOS = (100, 200, 400, 800, 1600)
RATIOS = (100, 150, 200, 250, 300)
TEST_SCENES = 6
# (preset, overrides): two networks of one size class for a CPU (about 75 GFLOP a 512x512 step each)
ARMS = {"SID U-Net": ("sid", {"widths": [16, 32, 64, 128, 256]}), "NAFNet": ("nafnet-small", {})}
FULL = ("sid", "nafnet-sid", "nafnet")            # the presets at full size: counted, timed, not trained
PAGE = Path(__file__).resolve().parents[1] / "docs" / "experiments" / "architecture-study.md"


def dataset(out: Path, size: tuple[int, int], scenes: int) -> Path:
    """The simulated dataset and its manifest: ``scenes`` training scenes and TEST_SCENES test scenes."""
    data, manifest = out / "data", out / "manifests" / "study.csv"
    if not manifest.exists():
        simulate_dataset(data, scenes=scenes + TEST_SCENES, profiles=(BODY,), shorts_per_scene=1, size=size,
                         defects=False, seed=0, isos=ISOS, ratios=RATIOS)
        df, _ = scan_dataset(data, manifest.parent)
        test = sorted(df["scene_id"].unique())[-TEST_SCENES:]
        df["split"] = df["scene_id"].map(lambda s: "test" if s in test else "train")
        write_manifest(df, manifest)
    return manifest


def flops_per_step(spec, side: int = 512) -> int:
    """FLOPs of one training step's forward and backward on a side x side packed crop (batch 1), as
    FlopCounterMode counts them (convolutions and matrix products), on the meta device."""
    with torch.device("meta"):
        model = build_model(spec)
        with FlopCounterMode(display=False) as counter:
            model(torch.empty(1, spec.in_channels, side, side)).abs().mean().backward()
    return counter.get_total_flops()


def step_seconds(spec, patch: int, steps: int) -> float:
    """Seconds of the fastest of ``steps`` CPU training steps (after one warm-up; on shared cores the
    others are slowed by other work) as `train run` takes them:
    channels_last, the CPU's default amp, Adam, L1 loss, batch 1 of a patch x patch crop."""
    torch.manual_seed(0)
    model = build_model(spec).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(1, spec.in_channels, patch, patch).contiguous(memory_format=torch.channels_last)
    y = torch.rand(1, spec.out_channels, patch * spec.upscale, patch * spec.upscale)
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=default_amp("cpu") == "bf16"):
            out = model(x)
        (out.float() - y).abs().mean().backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return min(times[1:])


def train_arm(out: Path, manifest: Path, arm: str, seed: int, args) -> dict:
    """Train one network for about ``args.steps`` steps and score its last checkpoint on the test pairs."""
    arch, overrides = ARMS[arm]
    folder = out / "runs" / f"{arch}-seed{seed}-{args.steps}steps-p{args.patch}"
    epochs = max(1, round(args.steps / args.scenes))
    config = load_config(None, manifest=str(manifest), out=str(folder), epochs=epochs, patch=args.patch, lr=args.lr,
                         lr_steps=[[max(1, int(epochs * 0.8)), args.lr / 10]], arch=arch, spec=overrides,
                         eval_every=epochs, save_every=epochs, device="cpu", seed=seed)
    started = time.perf_counter()
    if not (folder / "checkpoints" / "last.pt").exists():
        train_run(config, progress=False)
    seconds = time.perf_counter() - started
    scores = evaluate(folder / "checkpoints" / "last.pt", manifest, split="test", images=False)
    return {"arm": arm, "seed": seed, "steps": epochs * args.scenes, "psnr": scores["psnr"], "ssim": scores["ssim"],
            "baseline_psnr": scores["baseline_psnr"], "seconds": seconds}


def spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


COLLAPSE_DB = 3.0     # a run this far below the amplified short learnt nothing (its output fell flat)


def collapsed(r: dict) -> bool:
    return r["psnr"] < r["baseline_psnr"] - COLLAPSE_DB


def lead(results: list[dict], key: str) -> tuple[dict[str, tuple[float, float]], str, str, bool]:
    """({arm: (mean, sd)}, leader, other, resolved) on ``key`` over the runs given: resolved when the
    gap of the means is over twice the larger seed spread."""
    stats = {arm: spread([r[key] for r in results if r["arm"] == arm]) for arm in ARMS}
    (a, (ma, sa)), (b, (mb, sb)) = sorted(stats.items(), key=lambda t: -t[1][0])
    return stats, a, b, ma - mb > 2 * max(sa, sb)


def verdict(results: list[dict]) -> list[str]:
    """Which network scores higher on test PSNR and on SSIM, whether the seeds resolve it, and the
    collapsed runs (the comparison is made without them when every network keeps a run)."""
    down = [r for r in results if collapsed(r)]
    healthy = [r for r in results if not collapsed(r)]
    used = healthy if down and {r["arm"] for r in healthy} == set(ARMS) else results
    lines = []
    if down:
        lines += ["Collapsed runs (over 3 dB below the amplified short: the output fell flat and stayed there): "
                  + "; ".join(f"{r['arm']} seed {r['seed']}: {r['psnr']:.2f} dB" for r in down)
                  + (". The comparison below leaves them out." if used is healthy else "."), ""]
    said = []
    for key, unit, digits in (("psnr", " dB", 2), ("ssim", "", 4)):
        stats, a, b, resolved = lead(used, key)
        said.append((a, resolved))
        means = ", ".join(f"{arm} {m:.{digits}f} ± {sd:.{digits}f}{unit}" for arm, (m, sd) in stats.items())
        lines.append(f"- Test {key.upper()} ({means}): {a} is {stats[a][0] - stats[b][0]:.{digits}f}{unit} above {b}, "
                     + ("more than twice the larger seed spread (resolved)." if resolved
                        else f"within twice the larger seed spread ({len({r['seed'] for r in used})} seeds do not "
                             "resolve it)."))
    (psnr_lead, psnr_ok), (ssim_lead, ssim_ok) = said
    if psnr_ok and ssim_ok and psnr_lead == ssim_lead:
        head = f"**{psnr_lead} wins at this scale** on both PSNR and SSIM."
    elif psnr_ok and ssim_ok:
        head = f"**No single winner at this scale**: {psnr_lead} leads on PSNR, {ssim_lead} on SSIM."
    elif psnr_ok or ssim_ok:
        head = (f"**{psnr_lead if psnr_ok else ssim_lead} leads at this scale** on "
                f"{'PSNR' if psnr_ok else 'SSIM'} only; the other metric is not resolved.")
    else:
        head = "**Neither wins at this scale**: the seeds resolve neither metric."
    if down:
        head += " Runs that collapsed: " + ", ".join(
            f"{arm} {sum(r['arm'] == arm for r in down)} of {sum(r['arm'] == arm for r in results)}" for arm in ARMS) + "."
    return lines + ["", head]


def page(results: list[dict], costs: dict, full: dict, args) -> str:
    seeds = sorted({r["seed"] for r in results})
    steps = results[0]["steps"]
    lines = ["# Architecture study: the SID U-Net and NAFNet on the same data", "",
             "Generated by `scripts/architecture_study.py` "
             f"(`--seeds {len(seeds)} --steps {args.steps} --scenes {args.scenes} --patch {args.patch} "
             f"--lr {args.lr:g} --size {args.size[0]}x{args.size[1]} --threads {args.threads}`); do not edit by hand.",
             "",
             "The second network family is NAFNet (Chen, Chu, Zhang and Sun, \"Simple Baselines for Image "
             "Restoration\", ECCV 2022; train/networks/nafnet.py follows the authors' NAFNet_arch.py) with the "
             "packed raw in and a pixel-shuffled RGB out, as the SID U-Net (Chen et al., CVPR 2018).", "",
             "## What was trained", "",
             f"One simulated dataset of `{BODY}` (Bayer, {args.size[0]}x{args.size[1]}, one short per scene, ISO "
             f"{ISOS[0]}-{ISOS[-1]}, ratios {RATIOS[0]}-{RATIOS[-1]}): {args.scenes} training scenes and "
             f"{TEST_SCENES} held-out test scenes, the same for every network. Each network trains {steps} steps "
             f"at patch {args.patch} (packed pixels), batch 1, Adam {args.lr:g} (a tenth for the last fifth), L1 "
             f"loss, the CPU's default amp ({default_amp('cpu')}), {len(seeds)} seeds (network init and sampling). "
             "Both networks are small versions of their presets, chosen for a CPU and for about equal FLOPs a "
             f"step: the SID U-Net with widths {ARMS['SID U-Net'][1]['widths']} (`--arch sid` with "
             "`[spec] widths = [16, 32, 64, 128, 256]`: half the paper's widths) and `--arch nafnet-small` "
             "(width 16, one NAF block per level and in the middle). The full presets are counted and timed "
             "below, not trained: the study is sized to run in about half an hour on 2 shared CPU cores.", "",
             "## Results", "",
             f"Test PSNR and SSIM: mean ± standard deviation over {len(seeds)} seeds; the amplified short scores "
             f"{results[0]['baseline_psnr']:.2f} dB. FLOPs: one training step (forward + backward) on a 512x512 "
             "packed crop, as `torch.utils.flop_counter.FlopCounterMode` counts them (convolutions and matrix "
             "products; normalisation and elementwise operations are not counted). CPU step: the fastest of "
             f"{args.time_steps} training steps at patch {args.patch}, timed apart from the runs.", "",
             "| network | preset | parameters | GFLOP / 512x512 step | CPU ms / step | test PSNR (dB) | test SSIM | "
             "PSNR per seed |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for arm, (arch, overrides) in ARMS.items():
        runs = [r for r in results if r["arm"] == arm]
        c = costs[arm]
        shown = f"`{arch}`" + "".join(f", {k} {'-'.join(map(str, v[::len(v) - 1]))}" for k, v in overrides.items())
        lines.append(f"| {arm} | {shown} | {c['parameters']:,} | {c['flops'] / 1e9:.1f} | {c['seconds'] * 1e3:.0f} | "
                     + "{:.2f} ± {:.2f}".format(*spread([r["psnr"] for r in runs])) + " | "
                     + "{:.4f} ± {:.4f}".format(*spread([r["ssim"] for r in runs])) + " | "
                     + ", ".join(f"{r['psnr']:.2f}" for r in runs) + " |")
    lines += ["", *verdict(results), ""]
    u, n = costs["SID U-Net"], costs["NAFNet"]
    lines += [f"NAFNet's step takes {n['seconds'] / u['seconds']:.1f}x the U-Net's CPU time at "
              f"{n['flops'] / u['flops']:.2f}x its counted FLOPs (its layer norms, gates and channel attention are "
              "elementwise work the count leaves out). At equal steps the U-Net trained in "
              f"{spread([r['seconds'] for r in results if r['arm'] == 'SID U-Net'])[0]:.0f} s a run, NAFNet in "
              f"{spread([r['seconds'] for r in results if r['arm'] == 'NAFNet'])[0]:.0f} s (training and its one "
              "evaluation; wall time beside other work).", "",
              "## The presets at full size", "",
              "Not trained here. Parameters and FLOPs as above; CPU step: the fastest of "
              f"{args.time_steps} steps at patch {args.full_patch}.", "",
              "| preset | family | parameters | GFLOP / 512x512 step | CPU ms / step at patch "
              f"{args.full_patch} |", "| --- | --- | ---: | ---: | ---: |"]
    for name, c in full.items():
        lines.append(f"| `{name}` | {PRESETS[name].family} | {c['parameters']:,} | {c['flops'] / 1e9:.1f} | "
                     f"{c['seconds'] * 1e3:.0f} |")
    lines += ["", "What this does not show: NAFNet's paper trains its networks far longer, with AdamW and a "
              "cosine schedule, on real data; this study trains "
              f"{steps} steps with the SID recipe (Adam, step schedule) on simulated pairs, small networks "
              "only. Run the presets on your own data (`train run MANIFEST --arch nafnet-sid`) before "
              "choosing.", "",
              f"CPU: {cpu_description()}; {torch.get_num_threads()} torch thread(s) (`--threads`) on 2 cores "
              "shared with other work while this ran, so the step times carry that noise (with 2 threads on the "
              "loaded cores a step took several times longer: the threads wait on each other). Training and "
              f"scoring the {len(results)} networks took {sum(r['seconds'] for r in results) / 60:.0f} minutes "
              "(the runs' own times).", ""]
    return "\n".join(lines)


def costs_of(spec, patch: int, steps: int) -> dict:
    return {"parameters": parameter_count(spec), "flops": flops_per_step(spec),
            "seconds": step_seconds(spec, patch, steps)}


def train_and_time(args, manifest: Path, done: list[dict], saved: Path) -> tuple[list[dict], dict, dict]:
    """Every (seed, network) run not in ``done``, then the step timings; all saved to ``saved`` as they come."""
    results, steps = [], max(1, round(args.steps / args.scenes)) * args.scenes
    for seed in range(args.seeds):
        for arm in ARMS:
            old = [r for r in done if (r["arm"], r["seed"], r["steps"]) == (arm, seed, steps)]
            results.append(old[0] if old else train_arm(args.out, manifest, arm, seed, args))
            r = results[-1]
            print(f"seed {seed} {arm}: {r['psnr']:.2f} dB, SSIM {r['ssim']:.4f} ({r['seconds']:.0f} s)", flush=True)
            saved.write_text(json.dumps({"runs": results}, indent=2))
    costs = {arm: costs_of(preset(arch, overrides), args.patch, args.time_steps) for arm, (arch, overrides) in ARMS.items()}
    print("costs: " + "; ".join(f"{a} {c['seconds'] * 1e3:.0f} ms/step" for a, c in costs.items()), flush=True)
    full = {name: costs_of(PRESETS[name], args.full_patch, args.time_steps) for name in FULL}
    print("full presets: " + "; ".join(f"{a} {c['seconds'] * 1e3:.0f} ms/step" for a, c in full.items()), flush=True)
    saved.write_text(json.dumps({"runs": results, "costs": costs, "full": full}, indent=2))
    return results, costs, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("study-architecture"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--scenes", type=int, default=16, help="training scenes")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--size", type=lambda text: tuple(map(int, text.split("x"))), default=(384, 256),
                        help="WIDTHxHEIGHT of the simulated raws")
    parser.add_argument("--time-steps", type=int, default=5, help="steps timed per network")
    parser.add_argument("--full-patch", type=int, default=128, help="patch of the full presets' timed steps")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (on 2 cores shared with other jobs, 2 threads wait on each other)")
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--page-only", action="store_true",
                        help="write the page from OUT/results.json (runs and timings) without training or timing; "
                        "give the settings of the run that wrote it")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    manifest = dataset(args.out, args.size, args.scenes)
    print(f"dataset: {manifest} ({(time.perf_counter() - started) / 60:.1f} min)", flush=True)
    saved = args.out / "results.json"
    stored = json.loads(saved.read_text()) if saved.exists() else {"runs": []}
    if args.page_only:
        results, costs, full = stored["runs"], stored["costs"], stored["full"]
    else:
        results, costs, full = train_and_time(args, manifest, stored["runs"], saved)
    with atomic_write(args.page) as handle:
        handle.write(page(results, costs, full, args))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
