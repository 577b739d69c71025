"""Training speed of the SID U-Net: steps/s (1 / median step time) of `train.loop.train_step`
(Adam, L1, batch 1, synthetic tensors: the network step alone, no data loading).

CPU: patch 64, 128 and 256 (packed pixels), each against patch 64 measured in the same run.
CUDA (when present): patch 512 with bf16 autocast + channels_last against fp32 in the same run,
and the projected wall time of the study's set-up: 10 training scenes x 4000 epochs = 40,000
steps at patch 512, batch 1 (network steps only; the loop's periodic evaluation comes on top).

    python bench/bench_train.py [--steps 5] [--cpu-only]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from train.config import RunConfig
from train.loop import train_step
from train.model import PRESETS, build_model

STUDY_STEPS = 10 * 4000


def steps_per_second(device: str, patch: int, steps: int, amp: str, channels_last: bool, warmup: int = 3) -> float:
    torch.manual_seed(0)
    model = build_model(PRESETS["sid"]).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    config = RunConfig(manifest="bench", device=device, amp=amp, channels_last=channels_last)
    x = torch.rand(1, 4, patch, patch, device=device)
    y = torch.rand(1, 3, 2 * patch, 2 * patch, device=device)
    for _ in range(warmup):
        train_step(model, optimizer, x, y, config)   # float() of the loss synchronises the device
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        train_step(model, optimizer, x, y, config)
        times.append(time.perf_counter() - started)
    return 1 / statistics.median(times)   # the median step resists other work on a shared machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting (after warm-up)")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()

    print(f"CPU, sid preset, batch 1, {torch.get_num_threads()} threads, {args.steps} steps each "
          f"(load average before: {os.getloadavg()[0]:.1f}; other work on the machine slows every row)")
    base = None
    for patch in (64, 128, 256):
        rate = steps_per_second("cpu", patch, args.steps, "off", False)
        base = base or rate
        print(f"  patch {patch:4d}: {rate:7.2f} steps/s  ({rate * patch * patch / 1e6:6.3f} M packed px/s, "
              f"{rate / base:.3f}x patch 64's steps/s)")

    if args.cpu_only or not torch.cuda.is_available():
        print("CUDA: not available" if not args.cpu_only else "CUDA: skipped (--cpu-only)")
        return
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name()
    steps = max(args.steps, 50)
    fp32 = steps_per_second("cuda", 512, steps, "off", False, warmup=10)
    fast = steps_per_second("cuda", 512, steps, "bf16", True, warmup=10)
    print(f"CUDA {name}, patch 512, batch 1, {steps} steps each")
    print(f"  fp32:                 {fp32:7.2f} steps/s")
    print(f"  bf16 + channels_last: {fast:7.2f} steps/s  ({fast / fp32:.2f}x fp32)")
    for label, rate in (("fp32", fp32), ("bf16 + channels_last", fast)):
        minutes = STUDY_STEPS / rate / 60
        print(f"  study set-up ({STUDY_STEPS:,} steps), {label}: {minutes:.1f} min of network steps "
              "(goal on one H100: under 3 min)")


if __name__ == "__main__":
    main()
