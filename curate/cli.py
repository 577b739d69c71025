"""`curate`: folders of raws into manifests, splits, statistics and validation."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import findings as findings_mod
from .common.clitools import CONTEXT, fail, progress_bar, reports_errors, stderr, stdout
from .common.errors import SidkitError
from .exposure import RATIO_MAX, RATIO_MIN
from .common.atomic import file_lock
from .manifest import is_longs_only, read_manifest, write_manifest
from .rawfile import shown
from .inspection import file_dict, meta_table
from .rawmeta import inspect_file
from .carddump import SCENE_GAP_S, scenes_table, shot_dict
from .scan import read_labels, scan_dataset, scan_scenes
from .sidimport import import_sid
from .split import assign_splits
from .stats import manifest_stats, stats_table
from .validate import validate_manifest, without_error_pairs

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                      show_default=True, help="How findings are printed (json: a list on stdout).")


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="sidkit", message="%(prog)s (sidkit) %(version)s")
def main():
    """Turn folders of raw files into manifests and tell what is wrong before any GPU time is spent.

    \b
    curate scan datasets/canon90d -o manifests/canon90d.csv
    curate split manifests/canon90d.csv --test 0.5
    curate stats manifests/canon90d.csv
    curate validate manifests/canon90d.csv
    """


def report(findings, fmt: str, title: str) -> None:
    """Findings to stdout (table or JSON); exit 1 if any is an error."""
    if fmt == "json":
        click.echo(findings_mod.findings_to_json(findings))
    elif findings:
        stdout.print(findings_mod.findings_table(findings, title))
    errors = sum(f.severity == "error" for f in findings)
    if fmt != "json":
        stderr.print(f"{len(findings)} finding(s), {errors} error(s)")
    if errors:
        sys.exit(1)


@main.command(context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest to write (CSV); required unless --show-scenes.")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with scene_id,environment that overrides environments.")
@click.option("--scene-gap", type=click.FloatRange(min=0), default=SCENE_GAP_S, show_default=True,
              help="Card dumps: a pause longer than this many seconds (from the end of one exposure to the "
                   "next shot) starts a new scene.")
@click.option("--show-scenes", is_flag=True,
              help="Print every shot with its scene and role (long, short, bracket, unpaired); write nothing.")
@click.option("--longs-only", is_flag=True,
              help="One row per long exposure, standing as its own short (ratio 1), one-shot card scenes "
                   "included: a manifest for `train run --synthetic PROFILE`.")
@click.option("--test", type=float, default=0.2, show_default=True, help="Default split: test scenes.")
@click.option("--val", type=float, default=0.1, show_default=True, help="Default split: val scenes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Default split: seed.")
@click.option("--resplit", is_flag=True,
              help="Give every scene the default split, even those OUTPUT already splits (kept by default).")
@FORMAT
@reports_errors
def scan(dataset, output, labels, scene_gap, show_scenes, longs_only, test, val, seed, resplit, fmt):
    """Read every raw of DATASET into a manifest (EXIF, raw levels, checksums).

    Pairs come from DATASET/captures.jsonl when present, else from short/ and long/ folders (scene
    id = file name up to the first underscore; indoor/ and outdoor/ folders give the environment),
    else DATASET is a card dump (IMG_0001.CR3 ...): shots in EXIF capture-time order, a scene is a run
    from one body at one ISO and aperture with no gap over --scene-gap, its longest exposure the long
    and every shot 2x shorter a short. Check that grouping with --show-scenes first. Unreadable files
    are findings, not fatal; no pair at all writes nothing and exits 1.

    --longs-only writes every long exposure (each card scene's longest, one-shot scenes included) as
    a row whose short is its long: shorts are then synthesised from a noise profile in training.

    Scanning again into an existing manifest (after shooting more scenes) keeps the split of every
    scene it holds (your `curate split`); only new scenes get the default split (--resplit: all).

    \b
    curate scan datasets/canon90d -o manifests/canon90d.csv
    curate scan /media/card/DCIM --show-scenes
    curate scan /media/card/DCIM -o manifests/card.csv --scene-gap 30 --labels scenes.csv
    curate scan ~/sid/Sony -o manifests/sony.csv --labels scenes.csv --format json
    curate scan ~/photos/2026 -o manifests/longs.csv --longs-only --scene-gap 0
    train run manifests/longs.csv --synthetic profiles/eos90d.toml
    """
    if show_scenes:
        shots, found = scan_scenes(dataset, scene_gap, longs_only)
        stderr.print(f"{len(shots)} shot(s), {len({s.scene for s in shots})} scene(s); nothing written")
        if fmt == "json":
            click.echo(json.dumps({"shots": [shot_dict(s, dataset) for s in shots],
                                   "findings": [f.to_dict() for f in found]}, indent=2))
            sys.exit(1 if findings_mod.has_errors(found) else 0)
        stdout.print(scenes_table(shots, dataset, f"scenes of {shown(dataset)}"))
        report(found, fmt, f"scan {shown(dataset)}")
        return
    if output is None:
        fail("give -o MANIFEST.csv to write the manifest, or --show-scenes to only look at the grouping")
    label_map = read_labels(labels) if labels else None
    with file_lock(output):       # a second scan to the same -o waits or refuses
        with progress_bar(0, "scanning") as advance:
            df, found = scan_dataset(dataset, output.parent, label_map, advance, test=test, val=val, seed=seed,
                                     scene_gap=scene_gap, longs_only=longs_only)
        if len(df) and output.exists() and not resplit:
            df = splits_kept(df, output)
        write_found(df, output)
    report(found, fmt, f"scan {shown(dataset)}")


def splits_kept(df, output: Path):
    """``df`` with the splits of the scenes ``output`` already holds (one line says so); ``df`` as it
    is when ``output`` cannot be read as a manifest (a warning line)."""
    from .split import keep_splits

    try:
        previous = read_manifest(output).rows
    except SidkitError as exc:
        stderr.print(f"warning: {exc}; its splits are not kept", highlight=False)
        return df
    df, kept, new = keep_splits(df, previous)
    if kept:
        stderr.print(f"kept the splits of {kept} scene(s) already in {shown(output)}; {new} new scene(s) got the "
                     "default split (`curate split` redoes them all, `--resplit` skips this)", highlight=False)
    return df


def write_found(df, output: Path) -> None:
    """Write the manifest unless it would be empty (a `no-pairs` finding explains why)."""
    if len(df):
        write_manifest(df, output)
        what = "long exposures, each its own short" if is_longs_only(df) else "pairs"
        stderr.print(f"wrote {output}: {len(df)} {what}, {df['scene_id'].nunique()} scenes")
    else:
        stderr.print(f"no pairs: {output} not written" + (" (the existing file is left as it was)"
                                                          if output.exists() else ""))


@main.command("import-sid", context_settings=CONTEXT)
@click.argument("lists", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder that the list's ./Sony/... paths start from.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV with scene_id,environment.")
@click.option("--exclude-misaligned", is_flag=True,
              help="Leave out the Sony scenes 10034, 10045, 10172 (misaligned; SID's README leaves them out of "
                   "scores). Without it they are kept, with `excluded` warnings.")
@click.option("--paper-test-set", is_flag=True,
              help="Keep only burst 00 of each test scene (the shorts SID's test_Sony.py scores); train and "
                   "val stay whole.")
@FORMAT
@reports_errors
def import_sid_cmd(lists, root, output, labels, exclude_misaligned, paper_test_set, fmt):
    """Import the original SID list files; exposures from EXIF, names only checked.

    Unreadable files are findings, not fatal; no readable pair at all writes nothing and exits 1.

    \b
    curate import-sid Sony_train_list.txt Sony_val_list.txt Sony_test_list.txt \\
        --root ~/datasets/SID -o manifests/sony.csv
    curate import-sid Sony_test_list.txt --root ~/datasets/SID -o manifests/sony-paper-test.csv \\
        --paper-test-set --exclude-misaligned
    """
    label_map = read_labels(labels) if labels else None
    with file_lock(output):
        with progress_bar(0, "importing") as advance:
            df, found = import_sid(lists, root, output.parent, label_map, advance,
                                   exclude_misaligned=exclude_misaligned, paper_test_set=paper_test_set)
        write_found(df, output)
    report(found, fmt, "import-sid")


@main.command(context_settings=CONTEXT)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="json: one object per file, good or bad, each with its findings.")
@reports_errors
def inspect(files, fmt):
    """Show what sidkit reads from raw FILES: EXIF, levels, CFA, size, where each value came from,
    and whether the pixel data is there (decoded, so a stripped copy shows).

    Every file is reported: a bad one (unreadable, pixel data missing) as a finding, and the exit
    status is 1 if any file has an error.

    \b
    curate inspect datasets/canon90d/kitchen/kitchen_long_10s.CR3
    curate inspect short.ARW long.ARW --format json
    curate inspect card/DCIM/100CANON/*.CR3
    """
    reports = [inspect_file(path) for path in files]
    found = [f for _, findings in reports for f in findings]
    if fmt == "json":
        click.echo(json.dumps([file_dict(path, meta, findings) for path, (meta, findings) in zip(files, reports)],
                              indent=2, default=str))
    else:
        for meta, _ in reports:
            if meta is not None:
                stdout.print(meta_table(meta))     # disagreements and problems are in the findings table
        if found:
            stdout.print(findings_mod.findings_table(found, "inspect"))
        errors = sum(f.severity == "error" for f in found)
        stderr.print(f"{len(files)} file(s), {len(files) - len({f.path for f in found})} without findings, "
                     f"{errors} error(s)")
    if any(f.severity == "error" for f in found):
        sys.exit(1)


@main.command(context_settings=CONTEXT)
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--test", type=float, required=True,
              help="Test scenes: a fraction (0.5) or a count (10), split evenly by environment.")
@click.option("--val", type=float, default=0.0, show_default=True, help="Val scenes: fraction or count.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here instead of rewriting MANIFEST.")
@reports_errors
def split(manifest, test, val, seed, output):
    """Assign scenes to train/val/test, stratified by indoor/outdoor, stable when scenes are added.

    \b
    curate split manifests/canon90d.csv --test 0.5          # the study: 10 train, 10 test scenes
    curate split manifests/canon90d.csv --test 10 --val 2 --seed 1
    """
    loaded = read_manifest(manifest)
    df = assign_splits(loaded.rows, test=test, val=val, seed=seed)
    write_manifest(loaded.with_rows(df), output or manifest)       # refused if another command rewrote it since
    counts = df.drop_duplicates("scene_id").groupby(["split", "environment"]).size()
    stderr.print(f"wrote {output or manifest}: " + ", ".join(f"{s}/{e} {n}" for (s, e), n in counts.items()))


@main.command(context_settings=CONTEXT)
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@reports_errors
def stats(manifest, fmt):
    """Scenes, pairs, ratio and ISO ranges per split, environment and camera.

    \b
    curate stats manifests/canon90d.csv
    """
    table = manifest_stats(read_manifest(manifest).rows)
    if fmt == "json":
        click.echo(table.to_json(orient="records", indent=2))
    elif fmt == "csv":
        click.echo(table.to_csv(index=False), nl=False)
    else:
        stdout.print(stats_table(table, str(manifest)))


@main.command(context_settings=CONTEXT)
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fast", is_flag=True, help="Skip the pixel checks (ratio, shift, clipping, darkness).")
@click.option("--min-ratio", type=float, default=RATIO_MIN, show_default=True)
@click.option("--max-ratio", type=float, default=RATIO_MAX, show_default=True)
@click.option("--workers", type=int, default=0, help="Processes for pixel checks (default: all cores from 16 pairs on, else 1).")
@click.option("--clean", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a manifest without the pairs that have errors or an `excluded` finding.")
@FORMAT
@reports_errors
def validate(manifest, fast, min_ratio, max_ratio, workers, clean, fmt):
    """Flag bad ratios, moved cameras, changed light, clipping, dark shorts, missing or changed files.

    Exit status 1 when any error is found.

    \b
    curate validate manifests/canon90d.csv
    curate validate manifests/canon90d.csv --fast --format json
    curate validate manifests/canon90d.csv --clean manifests/canon90d-clean.csv
    """
    if min_ratio > max_ratio:
        raise SidkitError(f"--min-ratio {min_ratio:g} is above --max-ratio {max_ratio:g}")
    if workers < 0:
        raise SidkitError(f"--workers {workers}: give 0 (all cores) or a positive number")
    if clean and clean.resolve() == manifest.resolve():
        raise SidkitError(f"--clean {clean}: write the cleaned manifest beside {manifest}, not over it")
    loaded = read_manifest(manifest)
    df = loaded.rows
    steps = len(df) * (1 if fast else 2)
    with progress_bar(steps, "validating") as advance:
        found = validate_manifest(loaded, fast, min_ratio, max_ratio, workers, advance)
    if clean:
        kept = without_error_pairs(df, found)
        write_manifest(kept, clean)
        stderr.print(f"wrote {clean}: {len(kept)} of {len(df)} pairs (pairs with errors or `excluded` left out)")
    report(found, fmt, f"validate {manifest}")


@main.command("report", context_settings=CONTEXT)
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HTML page to write (self-contained: thumbnails embedded).")
@click.option("--findings", "findings_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Findings JSON from `curate validate --format json` (default: run the fast checks).")
@click.option("--page-size", type=int, default=50, show_default=True, help="Pairs per page.")
@click.option("--no-cache", is_flag=True, help="Render every thumbnail again (default: cached by checksum "
              "in $SIDKIT_CACHE/thumbs or ~/.cache/sidkit/thumbs).")
@click.option("--workers", type=int, default=0, help="Processes rendering thumbnails (default: all cores from "
              "16 renders on, else 1).")
@reports_errors
def report_cmd(manifest, output, findings_file, page_size, no_cache, workers):
    """Write one HTML page of MANIFEST: every pair's long and amplified short, badges, counts, filters.

    Open it in any browser; no server, no network. A file that cannot be rendered shows why.

    \b
    curate report manifests/canon90d.csv -o canon90d.html
    curate validate manifests/canon90d.csv --format json > findings.json
    curate report manifests/canon90d.csv -o canon90d.html --findings findings.json
    """
    from .report import build_report, load_findings

    if workers < 0:
        raise SidkitError(f"--workers {workers}: give 0 (all cores) or a positive number")
    found = load_findings(findings_file) if findings_file else None
    df = read_manifest(manifest).rows
    with progress_bar(len(df) * (1 if is_longs_only(df) else 2), "thumbnails") as advance:
        done = build_report(manifest, output, found, page_size=page_size, cache=not no_cache, workers=workers,
                            progress=advance)
    stderr.print(f"wrote {output}: {done['pairs']} pairs, {done['thumbnails']} thumbnails, "
                 f"{len(done['findings'])} finding codes", highlight=False)


@main.command("noise-profile", context_settings=CONTEXT)
@click.argument("cal", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Profile to write (TOML; JSON when the name ends in .json); the plot goes beside it.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="What is printed on stdout (json: the profile).")
@click.option("--camera", help="Fit this body's frames (default: the body that shot most of them).")
@click.option("--check", "check_manifest", type=click.Path(dir_okay=False, path_type=Path),
              help="Compare synthetic shorts with this manifest's real shorts (table and NAME-check.png).")
@click.option("--check-pairs", type=int, default=8, show_default=True, help="Pairs per ISO the check uses.")
@reports_errors
def noise_profile(cal, output, fmt, camera, check_manifest, check_pairs):
    """Fit a camera's noise profile (gain K, read and row noise, Tukey-lambda shape) from dark and flat frames.

    CAL is a folder written by `capture calibrate` (roles dark/flat in its captures.jsonl) or a
    folder with dark/ and flat/ subfolders of any raws (ISO and exposure from EXIF). Writes the
    profile and a photon-transfer plot (NAME-ptc.png) beside it; nothing when a finding is an error.
    --check compares synthetic shorts with a manifest's real ones per ISO, channel and signal level,
    prints a verdict (pass: every variance ratio within 0.9-1.1) and exits 1 on a fail.

    \b
    curate noise-profile cal -o profiles/sim-dslr14.toml
    curate noise-profile ~/calibration/eos90d -o profiles/eos90d.toml --format json
    curate noise-profile cal -o profiles/sim.toml --check manifests/sim.csv
    """
    from .noisecheck import check_profile, check_summary, check_table, write_check_plot
    from .noisefit import write_noise_profile
    from .noiseprofile import profile_table

    manifest = read_manifest(check_manifest) if check_manifest else None
    profile, plot, found = write_noise_profile(cal, output, camera)
    if found:
        stderr.print(findings_mod.findings_table(found, f"noise-profile {cal}"))
    if profile is None:
        raise SidkitError(f"{cal}: no profile written ({sum(f.severity == 'error' for f in found)} error(s) "
                          "above); shoot the frames named there again")
    check = check_profile(profile, manifest, pairs=check_pairs) if manifest is not None else None
    if check:
        write_check_plot(check, output.with_name(output.stem + "-check.png"))
    if fmt == "json":
        click.echo(json.dumps({**profile.to_dict(), **({"check": check} if check else {})}, indent=2))
    else:
        stdout.print(profile_table(profile))
        if check:
            stdout.print(check_table(check))
    stderr.print(f"wrote {output} and {plot}")
    if check:
        stderr.print(f"check against {check_manifest}: {check_summary(check)}", highlight=False)
        if check["verdict"] != "pass":
            raise SystemExit(1)


if __name__ == "__main__":
    main()
