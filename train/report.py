"""`train report`: one HTML page of one or more run folders (a sweep overlays its curves).

From each run folder: metrics.csv (loss, PSNR and SSIM against epoch, as the loop writes them),
the evaluation's summary per split and environment beside the baseline (eval.json when the run has
one, else report.md), and the labelled comparison sheets outputs/*-sheet.png. Curves are drawn
with matplotlib (Agg) and embedded as PNG; the page needs no server and no network.

An evaluation of an epoch other than the one its checkpoint holds now (the run resumed and trained
on after `train eval`) is stale: the page marks it beside its numbers and names the `train eval`
command that refreshes it, and build_report returns it under "stale" for the command to print.
"""
from __future__ import annotations

import html
import io
import math
import os
from pathlib import Path

import pandas as pd

from curate.common.atomic import atomic_write
from curate.common.errors import SidkitError
from curate.common.html import data_uri, page

from .runfolders import Run, metric_columns, read_run, run_folders

SHEETS_PER_RUN = 12
SHEET_BYTES = 600_000      # a sheet PNG larger than this is embedded as a JPEG (quality 90)
SHEET_WIDTH = 1600


def curves_png(runs: list[Run]) -> bytes | None:
    """One row of plots against epoch (loss, PSNR, SSIM), every run's line overlaid; None without data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    titles = []
    for run in runs:
        for title in metric_columns(run.metrics):
            if title not in titles:
                titles.append(title)
    if not titles:
        return None
    fig, axes = plt.subplots(1, len(titles), figsize=(4.6 * len(titles), 3.4), squeeze=False)
    for ax, title in zip(axes[0], titles):
        for run in runs:
            column = metric_columns(run.metrics).get(title)
            if column and "epoch" in run.metrics:
                data = run.metrics[["epoch", column]].apply(pd.to_numeric, errors="coerce").dropna()
                ax.plot(data["epoch"], data[column], marker="o", markersize=3, label=run.name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if "loss" in title:
            ax.set_yscale("log")
    axes[0][-1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    return buffer.getvalue()


def sheet_uri(path: Path) -> str:
    """A sheet as a data URI: the PNG itself, or a JPEG of at most SHEET_WIDTH when the PNG is large."""
    data = path.read_bytes()
    if len(data) <= SHEET_BYTES:
        return data_uri(data, "image/png")
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((SHEET_WIDTH, SHEET_WIDTH), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
    return data_uri(buffer.getvalue())


def _fmt(value: float, digits: int) -> str:
    return "inf" if value == math.inf else ("" if math.isnan(value) else f"{value:.{digits}f}")


def _summary_table(run: Run) -> str:
    if not run.summary:
        return f'<p class="note">{html.escape(run.eval_note)}</p>'
    head = ("split", "environment", "images", "PSNR", "SSIM", "baseline PSNR", "baseline SSIM", "PSNR gain")
    rows = []
    for r in run.summary:
        key = f'{r["split"]}:{r["environment"]}'
        gain = r["psnr"] - r["baseline_psnr"]
        cells = [html.escape(str(r["split"])), html.escape(str(r["environment"])), _fmt(r["images"], 0)]
        values = [("psnr", r["psnr"], 2), ("ssim", r["ssim"], 4), ("baseline_psnr", r["baseline_psnr"], 2),
                  ("baseline_ssim", r["baseline_ssim"], 4), ("gain", gain, 2)]
        numbers = [f'<td data-run="{html.escape(run.name)}" data-key="{html.escape(key)}:{k}">{_fmt(v, d)}</td>'
                   for k, v, d in values]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "".join(numbers) + "</tr>")
    return (f'<table class="eval">{_stale_caption(run)}<thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table><p class="note">{html.escape(run.eval_note)}</p>')


def _stale_caption(run: Run) -> str:
    """The eval table's caption when the evaluation is out of date: why, and the command that refreshes it."""
    if not run.stale:
        return ""
    return (f'<caption class="stale" data-stale="{html.escape(run.name)}">&#9888; Stale {html.escape(run.stale)}: '
            f'these numbers and sheets are out of date. Refresh them with '
            f'<code class="refresh">{html.escape(run.refresh)}</code>, then build this page again.</caption>')


def _eval_mark(run: Run) -> str:
    """What stands beside the overview's eval PSNR: a stale mark, else which checkpoint epoch it scored
    when that is not the last epoch trained (a best.pt from earlier)."""
    if run.stale:
        now = (f"{html.escape(run.eval_of)} now {run.checkpoint_epoch}" if run.checkpoint_epoch is not None
               else f"trained to {run.epochs_done}")
        return (f'<br><span class="stale" title="refresh: {html.escape(run.refresh)}">&#9888; stale: epoch '
                f'{run.eval_epoch}, {now}</span>')
    if run.eval_epoch is not None and run.epochs_done is not None and run.eval_epoch != run.epochs_done:
        return f'<br><span class="of">{html.escape(run.eval_of)}, epoch {run.eval_epoch}</span>'
    return ""


def _sheets(run: Run, limit: int) -> str:
    if not run.sheets:
        return '<p class="note">no comparison sheets (outputs/*-sheet.png): run `train eval` without --no-images</p>'
    scores = sheet_scores(run.images)
    def worst_first(path: Path):
        score = scores.get(path.name, {}).get("psnr", math.inf)
        return (math.inf if math.isnan(score) else score, path.name)
    chosen = sorted(run.sheets, key=worst_first)[: limit or None]
    figures = []
    for path in chosen:
        r = scores.get(path.name)
        pair = str(r["pair_id"]) if r else path.name.removesuffix("-sheet.png")
        caption = html.escape(pair) + (f": network {_fmt(r['psnr'], 2)} dB, baseline {_fmt(r['baseline_psnr'], 2)} dB"
                                       if r else "")
        figures.append(f'<figure class="sheet"><img src="{sheet_uri(path)}" alt="comparison sheet of '
                       f'{html.escape(pair)}"><figcaption>{caption}</figcaption></figure>')
    more = (f'<p class="note">{len(chosen)} of {len(run.sheets)} sheets, lowest PSNR first '
            f'(--sheets 0 shows all)</p>' if len(chosen) < len(run.sheets) else "")
    return more + "".join(figures)


def sheet_scores(images: list[dict]) -> dict[str, dict]:
    """sheet file name -> its image's row: by the sheet each row names (`train eval` records it, since
    pair ids such as 'a/b' and 'a_b' share no file name), else (older evaluations) <pair_id>-sheet.png."""
    named = {Path(str(r["sheet"])).name: r for r in images if r.get("sheet")}
    return named or {f'{r["pair_id"]}-sheet.png': r for r in images}


def _config(run: Run) -> str:
    path = run.folder / "config.toml"
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return f'<details><summary>config.toml</summary><pre>{html.escape(text)}</pre></details>'


def _overview(runs: list[Run]) -> str:
    """One row per run: its settings that differ, last and best evaluation, and its test score."""
    keys = sorted({k for run in runs for k, v in run.config.items() if not isinstance(v, (dict, list))})
    varying = [k for k in keys if len({repr(run.config.get(k)) for run in runs}) > 1 and k not in ("out",)]
    shown = varying or [k for k in ("epochs", "lr", "patch", "arch", "ratio_policy") if k in keys]
    settings = any(run.setting for run in runs)
    head = ["run"] + (["setting"] if settings else []) + shown + ["epochs done", "last eval PSNR", "best eval PSNR", "eval PSNR", "baseline PSNR",
                              "eval split"]
    rows = []
    for run in runs:
        psnr_cols = [c for c in run.metrics.columns if c.endswith("_psnr")]
        values = pd.to_numeric(run.metrics[psnr_cols[0]], errors="coerce") if psnr_cols else pd.Series(dtype=float)
        epochs = run.metrics["epoch"].iloc[-1] if "epoch" in run.metrics and len(run.metrics) else ""
        overall = [r for r in run.summary if r["environment"] == "all"]
        tests = [r for r in overall if r["split"] == "test"]
        last = (tests or overall or [{}])[-1]      # the test split when it was scored
        cells = [html.escape(run.name)] + ([html.escape(run.setting)] if settings else []) + [
            html.escape(str(run.config.get(k, ""))) for k in shown] + [
            html.escape(str(epochs)), _fmt(values.iloc[-1] if len(values) else math.nan, 2),
            _fmt(values.max() if len(values) else math.nan, 2),
            _fmt(last.get("psnr", math.nan), 2) + (_eval_mark(run) if last else ""),
            _fmt(last.get("baseline_psnr", math.nan), 2),
            html.escape(str(last.get("split", "")))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<table class="overview"><thead><tr>{"".join(f"<th>{html.escape(h)}</th>" for h in head)}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def build_report(paths: list[str | os.PathLike], out: str | os.PathLike, sheets: int = SHEETS_PER_RUN) -> dict:
    """Write the HTML page of the run folders ``paths`` (sweep folders expand to their runs) to ``out``."""
    if sheets < 0:
        raise SidkitError(f"--sheets {sheets}: give a number of sheets per run, 0 for all")
    folders = run_folders(paths)
    names = [f.name for f in folders]
    runs = [read_run(f, f.name if names.count(f.name) == 1 else str(f)) for f in folders]
    curves = curves_png(runs)
    parts = [f'<header><h1>{len(runs)} run{"s" if len(runs) != 1 else ""}</h1>'
             f'<p><span data-count="runs">{len(runs)}</span> run folders: '
             f'{", ".join(html.escape(str(f)) for f in folders)}</p></header>', _overview(runs)]
    parts.append(f'<h2>Training curves</h2><img class="curves" src="{data_uri(curves, "image/png")}" '
                 'alt="training curves">' if curves else '<p class="note">no metrics.csv rows yet</p>')
    for run in runs:
        parts.append(f'<section class="run" data-run="{html.escape(run.name)}"><h2>{html.escape(run.name)}</h2>'
                     f'<h3>Evaluation beside the baseline (amplified short, same rendering)</h3>{_summary_table(run)}'
                     f'<h3>Comparison sheets</h3>{_sheets(run, sheets)}{_config(run)}</section>')
    body = f"<style>{STYLE}</style>" + "".join(parts)
    text = page(f"sidkit runs: {', '.join(r.name for r in runs)}", body, SCRIPT)
    with atomic_write(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    return {"path": Path(out), "runs": [r.name for r in runs],
            "sheets": sum(min(len(r.sheets), sheets or len(r.sheets)) for r in runs),
            "stale": [{"run": r.name, "why": r.stale, "refresh": r.refresh} for r in runs if r.stale]}


STYLE = """
.curves{max-width:100%;background:#fff;border:1px solid #ddd}
.run{margin-top:18px;border-top:2px solid #ccc} h2{font-size:17px;margin:14px 0 6px} h3{font-size:14px;margin:10px 0 4px}
table.eval td[data-run],table.overview td{text-align:right} table.overview td:first-child{text-align:left}
.note{color:#555;font-size:12px;margin:4px 0}
table.eval caption.stale{caption-side:top;text-align:left;padding:6px 8px;margin-bottom:4px;background:#fff3cd;
  border:1px solid #e0a800;color:#7a4b00;font-weight:600} .stale code{font-weight:normal;user-select:all}
span.stale{color:#b35900;font-weight:600;font-size:12px} span.of{color:#555;font-size:11px}
figure.sheet{margin:8px 0} figure.sheet img{max-width:min(100%,1400px);display:block;border:1px solid #ddd}
figure.sheet figcaption{font-size:12px;color:#444}
"""

SCRIPT = """
window.addEventListener('load', function(){
  var imgs = document.querySelectorAll('img');
  var ok = Array.prototype.filter.call(imgs, function(i){ return i.complete && i.naturalWidth > 0; });
  document.body.dataset.imagesShown = imgs.length;
  document.body.dataset.imagesRendered = ok.length;
});
"""
