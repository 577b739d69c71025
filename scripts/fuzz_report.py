"""Run the fuzz corpus of tests/fuzzcorpus.py and print its counts (variants, findings, correct
reads, tracebacks, hangs, peak memory).

    .venv/bin/python scripts/fuzz_report.py            # quick corpus (what tests/test_fuzz.py runs)
    .venv/bin/python scripts/fuzz_report.py --full     # every sample raw, more bit flips
"""
from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import fuzzcorpus  # noqa: E402

SAMPLES = (REPO.parent / "shared" / "raw-samples", Path("/work/shared/raw-samples"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="every sample raw and more bit flips")
    parser.add_argument("--samples", type=Path, help="folder of sample raws (default: ../shared/raw-samples)")
    args = parser.parse_args()
    samples = args.samples or next((s for s in SAMPLES if s.is_dir()), None)
    with tempfile.TemporaryDirectory() as tmp:
        report = fuzzcorpus.run(Path(tmp) / "corpus", samples, full=args.full)
    print(f"fuzz corpus ({'full' if args.full else 'quick'}; samples: {samples or 'absent'})")
    for name, value in report.counts().items():
        print(f"  {name:30} {value}")
    by_kind = collections.Counter((r["kind"], r["outcome"]) for r in report.results)
    print("  by kind: " + ", ".join(f"{k}/{o} {n}" for (k, o), n in sorted(by_kind.items())))
    for r in report.results:
        if r["outcome"] == "traceback":
            print(f"  TRACEBACK {r['origin']} {r['name']}: {r['error']}")
        elif r["outcome"] == "changed":
            print(f"  changed read {r['origin']} {r['name']}: {r.get('values')}")
    for hang in report.hangs:
        print(f"  HANG {hang['origin']} {hang['name']}: {hang['why']}")
    return 1 if report.hangs or any(r["outcome"] == "traceback" for r in report.results) else 0


if __name__ == "__main__":
    sys.exit(main())
