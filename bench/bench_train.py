"""Training speed: sidkit's whole step against a plain PyTorch SID step, measured in the same run.

sidkit: a batch cut from the decode-once cache (`dataset.sampler`), `loop.to_network`, then
`loop.train_step` with the run's defaults on this CPU (fused Adam; channels_last where the kernels
are AVX-512, NCHW on AVX2: train.config.default_channels_last). Plain: the SID U-Net written
the straightforward way (nn.LeakyReLU, default Adam), float32 inputs and targets held in RAM as
the ports keep them, random crop + flips + transpose copied with numpy: the ports' loop at its
best. Both train the same 7,760,748-parameter network at batch 1 on the same simulated raws; the
two steps alternate so that other work on the machine slows both alike; medians are reported, and
`ratio sidkit/plain` is the plain step's time over sidkit's with `train run`'s defaults on this CPU
(above 1: sidkit is faster). sidkit runs in float32 (`--amp off`) and, on a CPU with native bf16
(AVX512-BF16 or AMX, where bf16 autocast is `train run`'s default), also under `--amp bf16`.

CUDA (when present): sidkit's whole step at patch 512 in fp32 and in bf16 + channels_last, and the
study's set-up in minutes: 10 training scenes x 4000 epochs = 40,000 steps (network and data; the
loop's periodic evaluation comes on top).

Beside the ratio, the arithmetic: the step's FLOPs (torch.utils.flop_counter) over its time, against
this CPU's own matrix-multiply rate measured in the same run, in float32 and bf16: how close a step
is to what the CPU can do at all.

CPU time per step is printed beside the wall time: on a shared machine it moves far less (with
--threads 1 it is the cost of the kernels alone; with more threads it includes their spin-waits).

    python bench/bench_train.py [--patch 256] [--steps 5] [--threads 2] [--cpu-only]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/bench_train.py --cpu-only   # as an AVX2-only CPU
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from capture.simulate import simulate_dataset
from curate.manifest import black_levels, read_manifest, write_manifest
from curate.scan import scan_dataset
from train import rawpack
from train.cache import RawCache
from train.config import RunConfig, cpu_description, default_amp, default_channels_last, native_bf16
from train.dataset import PairDataset, sampler
from train.loop import make_optimizer, memory_format, to_network, train_step
from train.networks import PRESETS, build_model, count_parameters

STUDY_STEPS = 10 * 4000


class PlainSID(nn.Module):
    """The SID U-Net as the ports write it: named convs, nn.LeakyReLU(0.2), depth-to-space at the end."""

    def __init__(self):
        super().__init__()
        def pair(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(o, o, 3, padding=1), nn.LeakyReLU(0.2))
        self.conv1, self.conv2, self.conv3 = pair(4, 32), pair(32, 64), pair(64, 128)
        self.conv4, self.conv5 = pair(128, 256), pair(256, 512)
        self.up6, self.conv6 = nn.ConvTranspose2d(512, 256, 2, stride=2), pair(512, 256)
        self.up7, self.conv7 = nn.ConvTranspose2d(256, 128, 2, stride=2), pair(256, 128)
        self.up8, self.conv8 = nn.ConvTranspose2d(128, 64, 2, stride=2), pair(128, 64)
        self.up9, self.conv9 = nn.ConvTranspose2d(64, 32, 2, stride=2), pair(64, 32)
        self.conv10 = nn.Conv2d(32, 12, 1)

    def forward(self, x):
        c1 = self.conv1(x)
        c2 = self.conv2(F.max_pool2d(c1, 2))
        c3 = self.conv3(F.max_pool2d(c2, 2))
        c4 = self.conv4(F.max_pool2d(c3, 2))
        c5 = self.conv5(F.max_pool2d(c4, 2))
        c6 = self.conv6(torch.cat([self.up6(c5), c4], 1))
        c7 = self.conv7(torch.cat([self.up7(c6), c3], 1))
        c8 = self.conv8(torch.cat([self.up8(c7), c2], 1))
        c9 = self.conv9(torch.cat([self.up9(c8), c1], 1))
        return F.pixel_shuffle(self.conv10(c9), 2)


class PlainLoop:
    """The ports' data and step: whole float32 images in RAM, crops copied, default Adam."""

    def __init__(self, manifest, cache: RawCache, patch: int, seed: int = 0):
        self.inputs, self.targets = [], []
        for row in manifest.rows.itertuples(index=False):
            black, white = black_levels(row.black_level), float(row.white_level)
            counts = cache.packed(manifest.resolve(row.short_path), row.short_sha256, row.cfa, black, white)
            truth = cache.truth(manifest.resolve(row.long_path), row.long_sha256)
            gain = rawpack.amplification(row.ratio, "cap:300")
            self.inputs.append(np.minimum(rawpack.network_input(counts, rawpack.black_packed(row.cfa, black), white)
                                          * gain, 1.0))
            self.targets.append(np.ascontiguousarray(truth.transpose(2, 0, 1), dtype=np.float32) / 65535)
        self.patch, self.rng = patch, np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.model = PlainSID()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)

    def fetch(self) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.rng.integers(len(self.inputs)))
        x, y = self.inputs[i], self.targets[i]
        h, w, n = x.shape[1], x.shape[2], self.patch
        top, left = int(self.rng.integers(h - n + 1)), int(self.rng.integers(w - n + 1))
        x, y = x[:, top:top + n, left:left + n], y[:, 2 * top:2 * (top + n), 2 * left:2 * (left + n)]
        if self.rng.integers(2):
            x, y = np.flip(x, 2), np.flip(y, 2)
        if self.rng.integers(2):
            x, y = np.flip(x, 1), np.flip(y, 1)
        if self.rng.integers(2):
            x, y = x.transpose(0, 2, 1), y.transpose(0, 2, 1)
        return torch.from_numpy(np.ascontiguousarray(x))[None], torch.from_numpy(np.ascontiguousarray(y))[None]

    def step(self, x, y) -> None:
        loss = F.l1_loss(self.model(x), y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        loss.item()   # the ports read the loss every step


class SidkitLoop:
    """sidkit's step with `train run`'s defaults on ``device``."""

    def __init__(self, manifest, cache: RawCache, patch: int, device: str, seed: int = 0, **settings):
        self.config = RunConfig(manifest="bench", device=device, patch=patch, **settings).resolved()
        self.crops = sampler(PairDataset(manifest, cache, "train", self.config.ratio_policy, patch), device)
        self.device, self.generator = device, torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.model = build_model(PRESETS["sid"]).to(device, memory_format=memory_format(self.config))
        self.optimizer = make_optimizer(self.model, self.config.lr)

    def fetch(self):
        scene = int(torch.randint(len(self.crops), (1,), generator=self.generator))
        return self.crops.batch([scene], None, self.generator, self.device)

    def step(self, batch) -> torch.Tensor:
        return train_step(self.model, self.optimizer, *to_network(batch, self.config), self.config)


def simulated(folder: Path, scenes: int, size: tuple[int, int]):
    """A simulated dataset, scanned, all pairs in train, its cache filled: (manifest, cache)."""
    dataset = simulate_dataset(folder / "sim", scenes=scenes, size=size, defects=False)
    rows, _ = scan_dataset(dataset)
    rows["split"] = "train"
    manifest = read_manifest(write_manifest(rows, dataset / "manifest.csv"))
    cache = RawCache(folder / "cache")
    cache.fill(manifest, progress=False)
    return manifest, cache


def timed(function, *args):
    """(result, wall seconds, CPU seconds of this process: less moved by other work on the machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - started, time.process_time() - cpu


def step_flops(patch: int) -> int:
    """Floating-point operations of one SID training step (forward and backward) at ``patch``."""
    model = PlainSID()
    x, y = torch.rand(1, 4, patch, patch), torch.rand(1, 3, 2 * patch, 2 * patch)
    with FlopCounterMode(display=False) as counter:
        F.l1_loss(model(x), y).backward()
    return counter.get_total_flops()


def matmul_rate(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """This CPU's FLOP/s on a large square matrix product in ``dtype`` (best of ``repeats``)."""
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best


def compare_cpu(manifest, cache, patch: int, steps: int, warmup: int = 2) -> None:
    loops = {"plain": PlainLoop(manifest, cache, patch),
             "sidkit --amp off": SidkitLoop(manifest, cache, patch, "cpu", amp="off")}
    if native_bf16():      # bf16 runs natively on this CPU: sidkit's default there, a third line
        loops["sidkit --amp bf16"] = SidkitLoop(manifest, cache, patch, "cpu", amp="bf16")
    assert {count_parameters(loop.model) for loop in loops.values()} == {7_760_748}
    data, total, cpu = ({name: [] for name in loops} for _ in range(3))
    for i in range(warmup + steps):
        for name, loop in loops.items():
            batch, fetch, fetch_cpu = timed(loop.fetch)
            _, step, step_cpu = timed(loop.step, *batch) if name == "plain" else timed(loop.step, batch)
            if i >= warmup:
                data[name].append(fetch)
                total[name].append(fetch + step)
                cpu[name].append(fetch_cpu + step_cpu)
    print(f"CPU, patch {patch} packed ({2 * patch} output) px, batch 1, {torch.get_num_threads()} threads, "
          f"{steps} alternating steps each after {warmup} warm-up (load average before: {os.getloadavg()[0]:.1f}; "
          "other work on the machine slows every row)")
    median = {name: statistics.median(values) for name, values in total.items()}
    cpu = {name: statistics.median(values) for name, values in cpu.items()}
    for name in loops:
        print(f"  {name:17s} {1e3 * median[name]:8.1f} ms/step  (data {1e3 * statistics.median(data[name]):5.2f} ms)"
              f"  {1 / median[name]:.3f} steps/s  plain/this {median['plain'] / median[name]:.2f}x   "
              f"CPU time {1e3 * cpu[name]:8.1f} ms/step, plain/this {cpu['plain'] / cpu[name]:.2f}x")
    default = f"sidkit --amp {default_amp('cpu')}"
    print(f"  data time per step (sidkit): {1e3 * statistics.median(data[default]):.2f} ms")
    flops = step_flops(patch)
    rates = {"float32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    print(f"  arithmetic: {flops / 1e9:.1f} GFLOP a step; this CPU's matrix product: "
          f"{rates['float32'] / 1e9:.0f} GFLOP/s float32, {rates['bf16'] / 1e9:.0f} GFLOP/s bf16")
    for name in loops:
        kind = "bf16" if "bf16" in name else "float32"
        print(f"    {name:17s} {flops / median[name] / 1e9:6.0f} GFLOP/s = {flops / median[name] / rates[kind]:4.0%} "
              f"of the {kind} matrix-product rate")
    layout = "channels_last" if default_channels_last("cpu") else "NCHW"
    print(f"  ratio sidkit/plain: {median['plain'] / median[default]:.2f}x  (train run's defaults on this CPU: "
          f"amp {default_amp('cpu')}, {layout}, fused Adam; CPU: {cpu_description()})")
    if default != "sidkit --amp off":
        print(f"  ratio sidkit/plain, both float32: {median['plain'] / median['sidkit --amp off']:.2f}x")


def cuda_rates(manifest, cache, steps: int) -> None:
    torch.backends.cudnn.benchmark = True
    print(f"CUDA {torch.cuda.get_device_name()}, patch 512, batch 1, sidkit's whole step, {steps} steps each")
    rates = {}
    for label, settings in (("fp32", {"amp": "off", "channels_last": False}),
                            ("bf16 + channels_last", {"amp": "bf16", "channels_last": True})):
        loop = SidkitLoop(manifest, cache, 512, "cuda", **settings)
        for _ in range(10):
            loop.step(loop.fetch())
        torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            loss = loop.step(loop.fetch())
        float(loss)      # one wait for the device, at the end
        rates[label] = steps / (time.perf_counter() - started)
        print(f"  {label:22s} {rates[label]:8.2f} steps/s  "
              f"(study set-up, {STUDY_STEPS:,} steps: {STUDY_STEPS / rates[label] / 60:.1f} min)")
    print(f"  bf16 + channels_last / fp32: {rates['bf16 + channels_last'] / rates['fp32']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=256, help="CPU crop side in packed pixels")
    parser.add_argument("--steps", type=int, default=5, help="timed CPU steps per loop (after warm-up)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, one per core)")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, cache = simulated(Path(tmp), scenes=2, size=(max(1024, 2 * args.patch), max(768, 2 * args.patch)))
        compare_cpu(manifest, cache, args.patch, args.steps)
        if args.cpu_only or not torch.cuda.is_available():
            print("CUDA: not available" if not args.cpu_only else "CUDA: skipped (--cpu-only)")
            return
        manifest, cache = simulated(Path(tmp) / "cuda", scenes=2, size=(2048, 1536))
        cuda_rates(manifest, cache, steps=200)


if __name__ == "__main__":
    main()
