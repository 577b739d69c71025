"""Synthesis cost: a synthetic short (train.synthetic.synthesise) against the training step it feeds.

Both run on the same device in the same process, alternating, on crops of one size: the step is
`loop.train_step` of the SID U-Net (7.76 M parameters, batch 1, the run's defaults); the synthesis
is everything `SyntheticShorts.batch` adds on the device (gain draw, Poisson, Tukey-lambda read
noise, row noise, rounding, clip, normalise). Medians; `synthesis / step` must stay under 10%.

    python bench/bench_synthetic.py [--patch 256] [--steps 5] [--device cpu]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from curate.noiseprofile import IsoNoise, NoiseProfile, cross_iso_fit
from train.config import RunConfig
from train.loop import make_optimizer, memory_format, train_step
from train.networks import PRESETS, build_model
from train.synthetic import NoiseModel, synthesise


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def profile() -> NoiseProfile:
    isos = [IsoNoise(iso=i, k_dn_per_e=k, read_noise_dn=r, row_noise_dn=w, tukey_lambda=0.1, black_level=[512.0] * 4)
            for i, k, r, w in ((100, 0.25, 1.6, 0.5), (1600, 4.0, 9.0, 2.2), (6400, 16.0, 30.0, 6.0))]
    return NoiseProfile("bench", "RGGB", 16383.0, isos, cross_iso_fit(isos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=256, help="crop side in packed pixels")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device, n = args.device, args.patch
    config = RunConfig(manifest="m.csv", device=device).resolved()
    model = build_model(PRESETS["sid"]).to(device, memory_format=memory_format(config))
    optimizer = make_optimizer(model, 1e-4)
    noise = NoiseModel.from_profile(profile())
    generator = torch.Generator(device=device).manual_seed(0)
    long = torch.rand(1, 4, n, n, device=device)
    y = torch.rand(1, 3, 2 * n, 2 * n, device=device)
    black, white = torch.full((1, 4), 512.0, device=device), torch.full((1,), 16383.0, device=device)
    ratio, gain = torch.full((1,), 200.0, device=device), torch.full((1,), 200.0, device=device)
    steps, syntheses = [], []
    for i in range(args.steps + 1):
        sync(device)
        t0 = time.perf_counter()
        x = synthesise(long, black, white, ratio, noise, generator, amplification=gain)
        sync(device)
        t1 = time.perf_counter()
        loss = train_step(model, optimizer, x.contiguous(memory_format=memory_format(config)), y, config)
        float(loss)
        t2 = time.perf_counter()
        if i:                      # the first round warms up
            syntheses.append(t1 - t0)
            steps.append(t2 - t1)
    s, t = statistics.median(syntheses), statistics.median(steps)
    print(f"device {device}, patch {n} packed ({2 * n} px), batch 1, {args.steps} rounds (medians)")
    print(f"synthesis  {s * 1000:9.2f} ms")
    print(f"train step {t * 1000:9.2f} ms")
    print(f"synthesis / step  {s / t:.3%}  ({'under' if s / t < 0.1 else 'OVER'} the 10% budget)")
    assert math.isfinite(s / t)


if __name__ == "__main__":
    main()
