"""`train sweep`: a list or grid of `train run` settings, resumable, summarised as the study's tables.

A sweep file (TOML):

    title = "Learning rate"
    [base]                      # settings every run shares (any `train run` setting)
    epochs = 4000
    [[runs]]                    # a list of runs: `name` plus settings ...
    name = "1e-4, 1e-5 after 2000"
    lr = 1e-4
    lr_steps = "2000:1e-5"
    [grid]                      # ... and/or a grid: every combination of these lists
    seed = [0, 1]

Each run trains into `<out>/<slug of its name>/`; a run whose `result.json` exists is skipped, a run
with `checkpoints/last.pt` resumes.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from curate.common.atomic import atomic_write
from curate.common.errors import SidkitError
from curate.manifest import read_manifest

from .config import FIELDS, RunConfig, changed_settings, load_config, parse_lr_steps

RESULT = "result.json"
EPOCH_KEYS = ("epochs", "eval_every", "save_every")


@dataclass
class SweepRun:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9.+-]+", "_", self.name).strip("_") or "run"


@dataclass
class Sweep:
    title: str
    runs: list[SweepRun]


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and expand a sweep file; unknown settings are a one-line error naming the run."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SidkitError(f"{path}: no such sweep file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SidkitError(f"{path}: not valid TOML ({exc})") from None
    unknown = set(data) - {"title", "base", "runs", "grid"}
    if unknown:
        raise SidkitError(f"{path}: unknown table {sorted(unknown)[0]!r}; use title, base, runs, grid")
    base, grid = data.get("base", {}), data.get("grid", {})
    if "runs" not in data and not grid:
        raise SidkitError(f"{path}: no runs; add [[runs]] entries (name = ... plus settings) or a [grid]")
    listed = data.get("runs", [{"name": ""}])
    unnamed = [i for i, entry in enumerate(listed, 1) if not str(entry.get("name", "")).strip()]
    if "runs" in data and unnamed:
        raise SidkitError(f"{path}: [[runs]] entry {unnamed[0]} has no name; add name = \"...\" (the table's row label)")
    if not all(isinstance(v, list) and v for v in grid.values()):
        raise SidkitError(f"{path}: every [grid] entry must be a non-empty list")
    runs = []
    for entry in listed:
        entry = dict(entry)
        name = str(entry.pop("name", "") or "")
        for combo in itertools.product(*grid.values()) if grid else [()]:
            extra = dict(zip(grid, combo))
            label = ", ".join([name] * bool(name) + [f"{k}={_show(v)}" for k, v in extra.items()])
            settings = {**base, **entry, **extra}
            for key in settings:
                if key not in FIELDS or key in ("manifest", "out"):
                    raise SidkitError(f"{path}: run {label or 'base'!r}: {key!r} is not a train run setting")
            runs.append(SweepRun(label or "base", settings))
    slugs = [r.slug for r in runs]
    dup = next((s for s in slugs if slugs.count(s) > 1), None)
    if dup:
        raise SidkitError(f"{path}: two runs share the folder name {dup!r}; give them distinct names")
    return Sweep(str(data.get("title", path.stem)), runs)


def _show(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def scale_epochs(settings: dict, scale: float) -> dict:
    """Shrink a run to ``scale`` of its epochs, learning-rate steps included (for CPU-sized sweeps)."""
    if scale == 1:
        return settings
    out, default = dict(settings), RunConfig()
    out["epochs"] = max(1, round(out.get("epochs", default.epochs) * scale))
    steps = parse_lr_steps(out.get("lr_steps", default.lr_steps))
    out["lr_steps"] = [[max(1, round(e * scale)), v] for e, v in steps]
    for key in ("eval_every", "save_every"):
        if key in out:
            out[key] = max(1, round(out[key] * scale))
    return out


MIN_EVALUATIONS = 5       # a sweep's curves need points, whatever --scale does to the epochs


def evaluated_often(settings: dict) -> dict:
    """``settings`` with eval_every lowered so that a run evaluates at least MIN_EVALUATIONS times
    (every epoch when it has fewer epochs than that)."""
    default = RunConfig()
    epochs = int(settings.get("epochs", default.epochs))
    every = int(settings.get("eval_every", default.eval_every))
    return {**settings, "eval_every": max(1, min(every, epochs // MIN_EVALUATIONS))}


def run_config(run: SweepRun, manifest, out_dir: Path, overrides: dict, scale: float):
    """The resolved config of one run (every value checked), evaluated at least MIN_EVALUATIONS times."""
    if not scale > 0:
        raise SidkitError(f"--scale {scale:g}: give a positive factor, e.g. 0.01")
    settings = evaluated_often(scale_epochs({**run.settings, **overrides}, scale))
    return load_config(None, **settings, manifest=str(manifest), out=str(out_dir / run.slug)).resolved()


def check_unchanged(config, folder: Path, name: str) -> None:
    """A run folder made with other settings is an error: its results would be reported as these."""
    saved_path = folder / "config.toml"
    if not saved_path.exists():
        return
    saved = tomllib.loads(saved_path.read_text(encoding="utf-8"))
    now = config.to_dict()
    changed = changed_settings(saved, now)
    if changed:
        key = changed[0]
        value = saved.get(key)
        why = " (amp's default follows the hardware: bf16 on CUDA and on CPUs with native bf16)" if key == "amp" else ""
        keep = (f", or pass --set {key}={value} to go on as it was made"
                if isinstance(value, (int, float, str)) and not isinstance(value, bool) else "")
        raise SidkitError(f"{folder}: run {name!r} was made with {key} = {value!r}, the sweep now says "
                          f"{now.get(key)!r}{why}; delete that folder to re-run it, give another --out{keep}")


def check_split(manifest, split: str) -> bool:
    """Refuses a split with no pairs; True when the manifest has a val split to choose best.pt on."""
    df = read_manifest(manifest).rows
    if split != "all" and not (df["split"] == split).any():
        raise SidkitError(f"{manifest}: no pairs in split {split!r} to score the sweep on; "
                          f"the manifest has {', '.join(sorted(set(df['split']) - {''})) or 'no splits'}")
    return bool((df["split"] == "val").any())


def scored_checkpoint(run_dir, has_val: bool) -> Path:
    """best.pt when it was chosen on val scenes; otherwise last.pt (best.pt was chosen on test)."""
    checkpoints = Path(run_dir) / "checkpoints"
    best = checkpoints / "best.pt"
    return best if has_val and best.exists() else checkpoints / "last.pt"


def run_sweep(sweep: Sweep, manifest, out_dir, *, overrides: dict | None = None, scale: float = 1.0,
              split: str = "test", train: Callable | None = None, evaluate: Callable | None = None,
              log: Callable = print) -> pd.DataFrame:
    """Train and evaluate every run not finished yet; returns the results table.

    Every run's settings are checked before the first trains; a stopped run (Ctrl-C) raises
    TrainingStopped and ends the sweep, and the same call later resumes it.
    """
    from .evaluate import evaluate as evaluate_checkpoint
    from .loop import train_run

    train, evaluate = train or train_run, evaluate or evaluate_checkpoint
    out_dir = Path(out_dir)
    has_val = check_split(manifest, split)
    configs = [run_config(run, manifest, out_dir, overrides or {}, scale) for run in sweep.runs]
    for run, config in zip(sweep.runs, configs):
        check_unchanged(config, Path(config.out), run.name)
    for index, (run, config) in enumerate(zip(sweep.runs, configs), 1):
        folder = Path(config.out)
        if (folder / RESULT).exists():
            log(f"[{index}/{len(sweep.runs)}] {run.name}: done, skipped")
            continue
        resume = (folder / "checkpoints" / "last.pt").exists()
        log(f"[{index}/{len(sweep.runs)}] {run.name}: {'resuming' if resume else 'training'} in {folder}")
        train(config, resume=resume)
        checkpoint = scored_checkpoint(folder, has_val)
        result = evaluate(checkpoint, manifest, split=split, out=folder / "eval")
        summary = {"setting": run.name, "psnr": result["psnr"], "ssim": result["ssim"], "split": split,
                   "baseline_psnr": result.get("baseline_psnr"), "baseline_ssim": result.get("baseline_ssim"),
                   "run": run.slug, "checkpoint": checkpoint.name}
        with atomic_write(folder / RESULT) as handle:
            json.dump(summary, handle, indent=2)
    return collect_results(sweep, out_dir)


def collect_results(sweep: Sweep, out_dir) -> pd.DataFrame:
    rows = []
    for run in sweep.runs:
        path = Path(out_dir) / run.slug / RESULT
        if path.exists():
            rows.append(json.loads(path.read_text()))
    return pd.DataFrame(rows, columns=["setting", "psnr", "ssim", "split", "baseline_psnr", "baseline_ssim", "run",
                                       "checkpoint"])


def results_markdown(sweep: Sweep, results: pd.DataFrame) -> str:
    """The study's table format, | setting | PSNR | SSIM |, then the amplified-short baseline's scores
    on the same split (one baseline for every run of a ratio policy, so it shows which runs beat it)."""
    lines = [f"## {sweep.title}", "", "| setting | PSNR | SSIM | baseline PSNR | baseline SSIM |",
             "| --- | --- | --- | --- | --- |"]
    for row in results.itertuples():
        lines.append(f"| {row.setting} | {row.psnr:.2f} | {row.ssim:.3f} | {_score(row.baseline_psnr, '.2f')} | "
                     f"{_score(row.baseline_ssim, '.3f')} |")
    return "\n".join(lines) + "\n"


def _score(value, fmt: str) -> str:
    """A number, or '-' where a result.json from before the baseline column has none."""
    return "-" if value is None or pd.isna(value) else format(float(value), fmt)


def write_outputs(sweep: Sweep, results: pd.DataFrame, out_dir) -> dict[str, Path]:
    """results.md, results.csv and psnr.png (PSNR against epoch of every run) in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {"markdown": out_dir / "results.md", "csv": out_dir / "results.csv", "plot": out_dir / "psnr.png"}
    with atomic_write(paths["markdown"]) as handle:
        handle.write(results_markdown(sweep, results))
    with atomic_write(paths["csv"], newline="") as handle:
        results.to_csv(handle, index=False)
    plot_psnr(sweep, out_dir, paths["plot"])
    return paths


def plot_psnr(sweep: Sweep, out_dir, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    splits = set()
    for run in sweep.runs:
        metrics = Path(out_dir) / run.slug / "metrics.csv"
        if metrics.exists():
            df = pd.read_csv(metrics)
            column = next((c for c in ("val_psnr", "test_psnr") if c in df and df[c].notna().any()), None)
            if column:
                splits.add(column.split("_")[0])
                ax.plot(df["epoch"], df[column], marker="o", markersize=3, label=run.name)
    ax.set(xlabel="epoch", ylabel=f"{' / '.join(sorted(splits)) or 'eval'} PSNR (dB)", title=sweep.title)
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize="small")
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
