"""Training patches per second: from the decode-once cache against decoding raws in the loop.

Both paths cut the same crops (one plan from one seeded torch.Generator). The baseline decodes the
short (rawpy + pack) and renders the long (rawpy postprocess) for every patch, as a loader without
a cache does; the cached path reads memmaps filled once beforehand (fill time printed apart).
Data: a simulated dataset (capture.simulate) scanned by curate.

    python bench/bench_data.py [--scenes 4] [--width 1536 --height 1024] [--patch 256]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from capture.simulate import simulate_dataset
from curate import cfa
from curate.manifest import read_manifest, write_manifest
from curate.scan import scan_dataset
from train import rawpack
from train.cache import RawCache
from train.dataset import Pair, PairDataset, cut_pair


def decode_pair(manifest, row, policy: str) -> Pair:
    """What a cache-less loader does for one patch: decode the short, render the long."""
    black, white = [float(v) for v in row.black_level.split()], float(row.white_level)
    frame = rawpack.read_raw(manifest.resolve(row.short_path), row.cfa, black, white)
    return Pair(rawpack.pack_raw_counts(frame), rawpack.ground_truth(manifest.resolve(row.long_path)),
                cfa.black_packed(frame.cfa, frame.black), white, rawpack.amplification(row.ratio, policy),
                cfa.scale(row.cfa))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--patch", type=int, default=256, help="packed pixels (output is twice that)")
    parser.add_argument("--baseline-patches", type=int, default=8)
    parser.add_argument("--cached-patches", type=int, default=400)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dataset = simulate_dataset(tmp / "sim", scenes=args.scenes, size=(args.width, args.height),
                                   defects=False)
        rows, _ = scan_dataset(dataset)
        rows["split"] = "train"
        manifest = read_manifest(write_manifest(rows, dataset / "manifest.csv"))
        cache = RawCache(tmp / "cache")
        start = time.perf_counter()
        counts = cache.fill(manifest, progress=False)
        fill_s = time.perf_counter() - start
        data = PairDataset(manifest, cache, patch=args.patch)
        by_pair = {(i, k): row for i, scene in enumerate(data.scene_ids)
                   for k, row in enumerate(manifest.rows[manifest.rows["scene_id"] == scene].sort_values("pair_id")
                                           .itertuples(index=False))}

        def plan(n):
            generator = torch.Generator().manual_seed(0)
            draw = lambda m: int(torch.randint(m, (1,), generator=generator))
            return [c for _ in range(n) for c in data.plan([draw(len(data))], None, draw)]

        crops = plan(args.cached_patches)
        start = time.perf_counter()
        for crop in crops[:args.baseline_patches]:
            cut_pair(decode_pair(manifest, by_pair[crop.scene, crop.short], "cap:300"), crop)
        baseline = args.baseline_patches / (time.perf_counter() - start)
        start = time.perf_counter()
        for crop in crops:
            data.cut(crop)
        cached = len(crops) / (time.perf_counter() - start)

    print(f"dataset: {args.scenes} scenes, {len(manifest.rows)} pairs, {args.width}x{args.height} raws, "
          f"patch {args.patch} packed ({2 * args.patch} output) px")
    print(f"cache fill: {counts['decoded']} files decoded once in {fill_s:.2f} s")
    print(f"decode in the loop: {baseline:8.2f} patches/s ({args.baseline_patches} patches)")
    print(f"from the cache:     {cached:8.2f} patches/s ({len(crops)} patches)")
    print(f"ratio: {cached / baseline:.1f}x")


if __name__ == "__main__":
    main()
