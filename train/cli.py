"""`train`: train the SID U-Net on a manifest, evaluate checkpoints, brighten single raws."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from curate.common.clitools import CONTEXT, reports_errors, stderr, stdout
from curate.common.errors import SidkitError

from .config import AMP_MODES, DEVICES, default_text, load_config, resume_config
from .world import main_process


# train eval and train predict: the precision the network runs in
amp_option = click.option("--amp", type=click.Choice(AMP_MODES),
                          help=f"Run the network in bf16 or float32 (off).  {default_text('amp')}")


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="sidkit", message="%(prog)s (sidkit) %(version)s")
def main():
    """Train, evaluate and apply "Learning to See in the Dark" networks.

    \b
    train run manifests/canon90d.csv --epochs 4000 --patch 512
    train run manifests/canon90d.csv --config run.toml --out runs/lr1e-4 --resume
    train eval runs/canon90d/checkpoints/best.pt manifests/canon90d.csv --split test
    train predict runs/canon90d/checkpoints/best.pt dark.CR3 --ratio 100 -o bright.png
    train presets
    """


@main.command(context_settings=CONTEXT)
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML file of settings (keys as in config.toml); flags override it.")
@click.option("--epochs", type=int, help=f"Passes over the training scenes.  {default_text('epochs')}")
@click.option("--lr", type=float, help=f"Adam learning rate.  {default_text('lr')}")
@click.option("--lr-steps", help=f"EPOCH:LR,... where the rate changes.  {default_text('lr_steps')}")
@click.option("--patch", type=int, help=f"Crop side in packed pixels.  {default_text('patch')}")
@click.option("--patch-choices", help="Comma-separated crop sides, one drawn per step (replaces --patch).")
@click.option("--batch", type=int, help=f"Scenes per step.  {default_text('batch')}")
@click.option("--arch", help=f"Network preset of any family, e.g. sid or nafnet-sid (see `train presets`).  {default_text('arch')}")
@click.option("--ratio-policy", help=f"Input amplification: exif, cap:N or fixed:N.  {default_text('ratio_policy')}")
@click.option("--device", type=click.Choice(DEVICES), help=default_text("device"))
@click.option("--amp", type=click.Choice(AMP_MODES), help=f"Mixed precision.  {default_text('amp')}")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the network.")
@click.option("--out", help=f"Run folder.  {default_text('out')}")
@click.option("--seed", type=int, help=default_text("seed"))
@click.option("--eval-every", type=int, help=f"Epochs between evaluations.  {default_text('eval_every')}")
@click.option("--save-every", type=int, help=f"Epochs between checkpoints/last.pt writes.  {default_text('save_every')}")
@click.option("--log-every", type=int, help=f"Steps between TensorBoard loss points.  {default_text('log_every')}")
@click.option("--cache-dir", help=f"Decoded-raw cache.  {default_text('cache_dir')}")
@click.option("--synthetic", help="Noise profile (curate noise-profile): also train on shorts synthesised from the longs.")
@click.option("--synthetic-fraction", type=float,
              help="Share of steps with synthetic shorts.  [default: 1.0 for a manifest of longs only, else 0.5]")
@click.option("--synthetic-ratio", help="Ratios of synthetic shorts, LOW:HIGH.  [default: the manifest's pairs' "
              "range; long exposures only: 100:300]")
@click.option("--synthetic-iso", help="ISOs whose noise synthetic shorts carry, LOW:HIGH (e.g. 100:1600).  [default: "
              "the manifest's shorts' range; long exposures only: the profile's ISOs nearest the longs']")
@click.option("--resume", is_flag=True,
              help="Continue from <out>/checkpoints/last.pt with the run's own config.toml; flags given override it.")
@reports_errors
def run(manifest, config_file, resume, compile_, **flags):
    """Train on MANIFEST's train split, evaluating on val (else test); writes a run folder.

    The run folder holds config.toml, checkpoints/last.pt and best.pt, metrics.csv and TensorBoard
    events. Ctrl-C (or SIGTERM) saves checkpoints/last.pt; --resume continues exactly, with the
    settings saved in the run folder (flags given with it override them, e.g. --epochs to extend).

    \b
    train run manifests/canon90d.csv
    train run manifests/canon90d.csv --epochs 100 --patch-choices 64,128,256 --device cpu
    train run manifests/canon90d.csv --config run.toml --lr-steps 2000:1e-5 --out runs/a
    train run manifests/canon90d.csv --out runs/a --resume
    train run manifests/canon90d.csv --out runs/a --resume --epochs 8000
    train run manifests/canon90d.csv --synthetic profiles/eos90d.toml --synthetic-ratio 100:300
    train run manifests/longs.csv --synthetic profiles/eos90d.toml --synthetic-iso 100:1600
    torchrun --nproc-per-node 2 -m train run manifests/canon90d.csv
    """
    from .loop import TrainingStopped, train_run

    if flags["patch"] is not None and flags["patch_choices"] is not None:
        raise SidkitError("--patch and --patch-choices exclude each other; give one")
    if resume:
        config, changed = resume_config(config_file, manifest=str(manifest), compile=compile_, **flags)
        if changed:
            stderr.print(f"resuming with changed settings: {'; '.join(changed)}", markup=False, highlight=False)
    else:
        config = load_config(config_file, manifest=str(manifest), compile=compile_, **flags)
    try:
        out = train_run(config, progress=True, resume=resume)
    except TrainingStopped as stopped:
        stderr.print(str(stopped), highlight=False)
        sys.exit(130)  # interrupted: `train run ... && train eval ...` does not go on
    if main_process():                      # under torchrun, rank 0 alone prints
        click.echo(str(out))


@main.command("eval", context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True, help="train, val, test or all.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Summary table, or every number as JSON on stdout.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.md and outputs/.  [default: the checkpoint's run folder]")
@click.option("--tile", type=int, help="Run the network in tiles of this many packed pixels.")
@click.option("--device", type=click.Choice(DEVICES), help="[default: cuda when available]")
@click.option("--no-images", is_flag=True, help="Skip the PNGs and comparison sheets.")
@amp_option
@click.option("--protocol", type=click.Choice(["sidkit", "sid"]), default="sidkit", show_default=True,
              help="sidkit: float images, per-channel SSIM. sid: the SID paper's (8-bit, MATLAB ssim); "
                   "use it to compare with the paper's tables.")
@click.option("--synthetic", type=click.Path(dir_okay=False, path_type=Path),
              help="Noise profile for a manifest of long exposures only: each long is scored on a fixed synthetic "
                   "short.  [default: the profile the checkpoint trained with]")
@reports_errors
def eval_(checkpoint, manifest, split, fmt, out, tile, device, no_images, amp, protocol, synthetic):
    """Score CHECKPOINT on MANIFEST's split beside the amplified-short baseline.

    Writes report.md, outputs/<pair>.png and outputs/<pair>-sheet.png (amplified short | output |
    ground truth).

    \b
    train eval runs/canon90d/checkpoints/best.pt manifests/canon90d.csv
    train eval runs/a/checkpoints/best.pt manifests/sony.csv --split all --format json --out eval/
    train eval runs/sony/checkpoints/last.pt manifests/sony.csv --protocol sid --out eval-sid/
    train eval runs/longs/checkpoints/best.pt manifests/longs.csv --synthetic profiles/eos90d.toml
    """
    from .evaluate import evaluate

    result = evaluate(checkpoint, manifest, split=split, out=out, tile=tile, device=device,
                      images=not no_images, protocol=protocol, amp=amp, synthetic=synthetic, progress=True)
    for finding in result["findings"]:
        stderr.print(f"[bold red]error:[/] {escape(finding['message'])}", highlight=False, soft_wrap=True)
    if fmt == "json":
        click.echo(json.dumps(_finite(result), indent=2))
        sys.exit(1 if result["findings"] else 0)
    inputs = result["inputs"]
    shown = "" if inputs["kind"] != "synthetic" else f", synthetic shorts: ratio {inputs['ratio']:.1f}, K {inputs['k']:.3g}"
    table = Table(title=f"{checkpoint} on {manifest} ({split}, protocol {protocol}{shown})")
    for column in ("split", "environment", "images", "PSNR", "SSIM", "baseline PSNR", "baseline SSIM"):
        table.add_column(column, justify="left" if column in ("split", "environment") else "right")
    for r in result["summary"]:
        table.add_row(r["split"], r["environment"], str(r["images"]), f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                      f"{r['baseline_psnr']:.2f}", f"{r['baseline_ssim']:.4f}")
    stdout.print(table)
    stderr.print(wrote_line(result), markup=False, highlight=False)
    if result["findings"]:
        sys.exit(1)     # the scores above leave out the pairs that could not be read


def wrote_line(result: dict) -> str:
    """`train eval`'s last line: the files written, with paths as the user named them (relative stays relative)."""
    sheets = [r["sheet"] for r in result["images"] if r.get("sheet")]
    if not sheets:
        return f"wrote {result['report']}"
    pairs = f"{len(sheets)} pair{'s' if len(sheets) != 1 else ''}"
    return f"wrote {result['report']} and {Path(sheets[0]).parent}/ ({pairs}: output PNG and sheet each)"


def _finite(value):
    """JSON has no inf or NaN (a perfect PSNR is inf): they become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("rawfile", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--ratio", help="Amplification (long/short exposure ratio), or auto: chosen so that the image's "
              "99th percentile meets the training inputs' level. Needed unless the network was trained "
              "with a fixed:N policy.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("out.png"),
              show_default=True, help="PNG to write.")
@click.option("--tile", type=int, help="Run the network in tiles of this many packed pixels.")
@click.option("--device", type=click.Choice(DEVICES), help="[default: cuda when available]")
@amp_option
@reports_errors
def predict(checkpoint, rawfile, ratio, output, tile, device, amp):
    """Brighten one dark RAWFILE with CHECKPOINT's network into an 8-bit PNG.

    \b
    train predict runs/canon90d/checkpoints/best.pt dark.CR3 --ratio 100 -o bright.png
    train predict runs/canon90d/checkpoints/best.pt dark.CR3 --ratio auto -o bright.png
    """
    from .predict import predict as predict_file

    log = lambda line: stderr.print(line, markup=False, highlight=False)  # noqa: E731
    click.echo(str(predict_file(checkpoint, rawfile, ratio=ratio, out=output, device=device, tile=tile,
                                    amp=amp, log=log)))


@main.command("report", context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HTML page to write (self-contained: plots and sheets embedded).")
@click.option("--sheets", type=int, default=12, show_default=True,
              help="Comparison sheets per run, lowest PSNR first (0: all).")
@reports_errors
def report_cmd(runs, output, sheets):
    """Write one HTML page of RUNS: curves against epoch (overlaid), eval tables beside the baseline, sheets.

    A RUN is a run folder (runs/<name>) or a sweep folder, which stands for every run in it. An
    evaluation older than its checkpoint (the run trained on after `train eval`) is marked stale on
    the page and here, with the `train eval` command that refreshes it.

    \b
    train report runs/canon90d -o canon90d.html
    train report runs/learning-rate -o sweep.html --sheets 4
    train report runs/a runs/b -o a-vs-b.html
    """
    from .report import build_report

    done = build_report(list(runs), output, sheets=sheets)
    stderr.print(f"wrote {output}: {len(done['runs'])} run(s), {done['sheets']} sheet(s)", highlight=False)
    for stale in done["stale"]:     # an evaluation of an older epoch than its checkpoint holds: say so here too
        stderr.print(f"[bold yellow]warning:[/] {escape(stale['run'])}: stale {escape(stale['why'])}; refresh it with: "
                     f"{escape(stale['refresh'])}", highlight=False, soft_wrap=True)


@main.command("cache", context_settings=CONTEXT)
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The cache folder.  [default: $SIDKIT_CACHE/raw, else $XDG_CACHE_HOME/sidkit/raw, "
                   "else ~/.cache/sidkit/raw]")
@click.option("--clear", is_flag=True, help="Delete the decoded raws (the next `train run` decodes again).")
@reports_errors
def cache_cmd(cache_dir, clear):
    """Show where the decoded-raw cache is and its size; --clear empties it.

    \b
    train cache
    train cache --clear
    train cache --cache-dir /scratch/sidkit-raw --clear
    """
    from .cache import cache_usage, clear_cache

    usage = clear_cache(cache_dir) if clear else cache_usage(cache_dir)
    size = f"{usage['files']} files, {usage['bytes'] / 1e6:.1f} MB"
    click.echo(f"removed {size} from {usage['folder']}" if clear else f"{usage['folder']}: {size}")


@main.command(context_settings=CONTEXT)
def presets():
    """List the network presets (`--arch`) of every family with their parameter counts.

    \b
    train presets
    """
    from .networks import FAMILIES, PRESET_HELP, PRESETS, parameter_count

    table = Table(title="network presets (Bayer input)")
    table.add_column("preset")
    table.add_column("family")
    table.add_column("parameters", justify="right")
    table.add_column("what it is")
    for name, spec in PRESETS.items():
        table.add_row(name, spec.family, f"{parameter_count(spec):,}", PRESET_HELP[name])
    stdout.print(table)
    for family in FAMILIES.values():
        stdout.print(f"{family.name}: {family.description}", highlight=False)


@main.command(context_settings=CONTEXT)
@click.argument("sweep_file", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Sweep folder, one run folder per setting.  [default: runs/<sweep name>]")
@click.option("--dry-run", is_flag=True, help="List the runs and their settings; train nothing.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of every run (a TOML value, else text), e.g. --set device=cpu.")
@click.option("--scale", type=float, default=1.0, show_default=True,
              help="Multiply epochs and lr-step epochs by this (0.01: a CPU-sized version).")
@click.option("--split", default="test", show_default=True, help="Split the results table is scored on.")
@reports_errors
def sweep(sweep_file, manifest, out, dry_run, sets, scale, split):
    """Run every setting of SWEEP_FILE on MANIFEST, then write the study's table and a PSNR plot.

    Finished runs are skipped, an interrupted one resumes. Writes results.md (| setting | PSNR |
    SSIM |), results.csv and psnr.png (PSNR against epoch of every run) into the sweep folder.

    \b
    train sweep docs/experiments/learning-rate.toml manifests/canon90d.csv --dry-run
    train sweep docs/experiments/patch-size.toml manifests/canon90d.csv --out runs/patch
    train sweep docs/experiments/ablation.toml manifests/sim.csv --scale 0.01 --set device=cpu
    """
    from .config import parse_set
    from .loop import TrainingStopped
    from .sweep import check_split, load_sweep, run_config, run_sweep, write_outputs

    plan = load_sweep(sweep_file)
    overrides = dict(parse_set(item) for item in sets)
    out = out or Path("runs") / sweep_file.stem
    if dry_run:
        table = Table(title=f"{plan.title}: {len(plan.runs)} runs into {out}")
        for column in ("run folder", "setting", "epochs", "lr", "lr steps", "patch", "arch", "ratio policy"):
            table.add_column(column)
        check_split(manifest, split)
        for run in plan.runs:
            c = run_config(run, manifest, out, overrides, scale)
            steps = ",".join(f"{e}:{v:g}" for e, v in c.lr_steps) or "-"
            patch = ",".join(map(str, c.patch_choices)) if c.patch_choices else str(c.patch)
            table.add_row(run.slug, run.name, str(c.epochs), f"{c.lr:g}", steps, patch, c.arch, c.ratio_policy)
        stdout.print(table)
        return
    try:
        results = run_sweep(plan, manifest, out, overrides=overrides, scale=scale, split=split,
                            log=stderr.print)
    except TrainingStopped as stopped:
        stderr.print(f"{stopped}\nsweep stopped; run the same command again to resume it", highlight=False)
        sys.exit(130)
    paths = write_outputs(plan, results, out)
    click.echo(paths["markdown"].read_text(), nl=False)
    stderr.print(f"wrote {paths['markdown']}, {paths['csv']} and {paths['plot']}")
