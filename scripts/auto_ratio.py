"""How `train predict --ratio auto` compares with the true (EXIF) ratio on a manifest's pairs.

For each pair of --split: the EXIF ratio, the ratio auto chooses from the short exposure alone, and
the network's PSNR against the long exposure with each amplification (sidkit's protocol).

    .venv/bin/python scripts/auto_ratio.py demo-out/runs/demo/checkpoints/last.pt \
        demo-out/manifests/demo-clean.csv --split test
"""
from __future__ import annotations

import argparse
import math
import statistics

from curate.manifest import black_levels, read_manifest, verify_checksum
from train import autoratio, rawpack
from train.checkpoint import model_from_checkpoint
from train.evalinputs import read_truth
from train.evaluate import run_network, score


def compare(checkpoint, manifest, split: str = "test") -> list[dict]:
    """One dict per pair: pair_id, true_ratio, auto_ratio, gain (true, auto), PSNR with each."""
    model, payload = model_from_checkpoint(checkpoint, "cpu")
    data, rows = payload["data"], []
    stored, policy = data["input_level"], data["ratio_policy"]
    loaded = read_manifest(manifest)
    df = loaded.rows
    for row in df[df["split"] == split].itertuples():
        frame = rawpack.read_raw(verify_checksum(loaded.resolve(row.short_path), row.short_sha256), row.cfa,
                                 black_levels(row.black_level), float(row.white_level))
        counts = rawpack.pack_raw_counts(frame)
        level = autoratio.image_level(counts, rawpack.black_packed(frame.cfa, frame.black), frame.white,
                                      stored["percentile"])
        auto = autoratio.auto_ratio(level, stored)
        truth = read_truth(loaded, row)
        result = {"pair_id": row.pair_id, "environment": row.environment, "true_ratio": float(row.ratio),
                  "auto_ratio": auto}
        for name, ratio in (("true", float(row.ratio)), ("auto", auto)):
            gain = rawpack.amplification(ratio, policy)
            result[f"{name}_gain"] = gain
            result[f"{name}_psnr"] = score(run_network(model, rawpack.pack(frame, gain)), truth)["psnr"]
        rows.append(result)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("manifest")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    rows = compare(args.checkpoint, args.manifest, args.split)
    print("| pair | environment | EXIF ratio | auto ratio | auto / EXIF | PSNR, EXIF gain | PSNR, auto gain |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['pair_id']} | {r['environment']} | {r['true_ratio']:.0f} | {r['auto_ratio']:.1f} | "
              f"{r['auto_ratio'] / r['true_ratio']:.2f} | {r['true_psnr']:.2f} | {r['auto_psnr']:.2f} |")
    errors = [abs(math.log(r["auto_ratio"] / r["true_ratio"])) for r in rows]
    print(f"\n{len(rows)} pairs: median |auto/EXIF - 1| about {math.expm1(statistics.median(errors)):.0%}; "
          f"mean PSNR {statistics.mean(r['true_psnr'] for r in rows):.2f} dB with the EXIF ratio, "
          f"{statistics.mean(r['auto_psnr'] for r in rows):.2f} dB with auto")


if __name__ == "__main__":
    main()
