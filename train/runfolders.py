"""Run folders as `train report` reads them: metrics.csv, the evaluation (eval.json, else report.md,
or a sweep's eval/ folder) with the epoch it scored, and whether that evaluation is stale (its
checkpoint has trained on since), with the `train eval` command that refreshes it.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from curate.common.errors import SidkitError
from curate.common.html import as_float


@dataclass
class Run:
    """What one run folder holds (any part may be missing)."""
    folder: Path
    name: str
    config: dict = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    summary: list[dict] = field(default_factory=list)   # split, environment, images, psnr, ssim, baseline_*
    images: list[dict] = field(default_factory=list)    # per image: pair_id, psnr, ssim, baseline_*
    sheets: list[Path] = field(default_factory=list)
    eval_note: str = ""
    setting: str = ""                                   # the sweep setting it ran, if any
    evaluation: dict = field(default_factory=dict)      # what was evaluated: evaluation_facts
    eval_epoch: int | None = None                       # the epoch the evaluation scored
    eval_of: str = ""                                   # the checkpoint's name, e.g. last.pt
    checkpoint_epoch: int | None = None                 # the epoch that checkpoint holds now
    epochs_done: int | None = None                      # the last epoch in metrics.csv
    stale: str = ""                                     # why the evaluation is out of date, if it is
    refresh: str = ""                                   # the `train eval` command that redoes it


def run_folders(paths: list[str | os.PathLike]) -> list[Path]:
    """Run folders from the arguments: a run folder itself, or a sweep folder holding run folders."""
    out = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise SidkitError(f"{path}: no such run folder; give runs/<name> as `train run --out` wrote it")
        if _is_run(path):
            out.append(path)
            continue
        inner = sorted(p for p in path.iterdir() if p.is_dir() and _is_run(p))
        if not inner:
            raise SidkitError(f"{path}: not a run folder (no metrics.csv, config.toml or report.md) and holds "
                              "none; give runs/<name> as `train run --out` or `train sweep --out` wrote it")
        out += inner
    return out


def _is_run(path: Path) -> bool:
    return any((path / name).is_file() for name in ("metrics.csv", "config.toml", "report.md"))


def markdown_tables(text: str) -> list[list[dict]]:
    """Every pipe table of a markdown text as a list of row dicts keyed by the header cells."""
    tables, header, rows = [], None, []
    for line in text.splitlines() + [""]:
        line = line.strip()
        if line.startswith("|") and line.endswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line[1:-1])]   # '\|' is text
            if header is None:
                header = cells
            elif not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(dict(zip(header, cells)))
            continue
        if header is not None:
            tables.append(rows)
        header, rows = None, []
    return tables


def _scores(row: dict) -> dict:
    """A table row (report.md headers or eval.json keys) in eval.json's keys."""
    names = {"PSNR": "psnr", "SSIM": "ssim", "baseline PSNR": "baseline_psnr", "baseline SSIM": "baseline_ssim"}
    out = {names.get(k, k): v for k, v in row.items()}
    for key in ("psnr", "ssim", "baseline_psnr", "baseline_ssim", "images"):
        out[key] = as_float(out.get(key))
    out["pair_id"] = out.get("pair_id", out.get("pair", ""))
    return out


def evaluation_folder(run: Path) -> Path:
    """Where a run's evaluation lies: the run folder (`train eval`), else its eval/ (`train sweep`)."""
    for folder in (run, run / "eval"):
        if (folder / "eval.json").is_file() or (folder / "report.md").is_file():
            return folder
    return run


def read_evaluation(folder: Path) -> tuple[list[dict], list[dict], str]:
    """(summary rows, per-image rows, note) from ``folder``'s eval.json (as `train eval --format json`
    prints it) or else its report.md (as `train eval` writes it)."""
    return _read_evaluation(folder)[:3]


def _read_evaluation(folder: Path) -> tuple[list[dict], list[dict], str, dict]:
    """read_evaluation's three, and evaluation_facts of the file they came from ({} without one)."""
    for candidate in (folder / "eval.json",):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
                return ([_scores(r) for r in data["summary"]], [_scores(r) for r in data.get("images", [])],
                        f"from {candidate.name}, split {data.get('split', '?')}, epoch {data.get('epoch', '?')}",
                        evaluation_facts(candidate, data))
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                pass   # not eval's JSON: fall back to report.md
    report = folder / "report.md"
    if not report.is_file():
        return [], [], "no evaluation yet: run `train eval <run>/checkpoints/last.pt MANIFEST`", {}
    text = report.read_text(encoding="utf-8", errors="replace")
    summary, images = [], []
    for table in markdown_tables(text):
        if table and {"split", "environment", "images", "PSNR"} <= set(table[0]) and "pair" not in table[0]:
            summary = [_scores(r) for r in table]
        elif table and {"pair", "PSNR"} <= set(table[0]):
            images = [_scores(r) for r in table]
    found = re.search(r"split `([^`]*)`, checkpoint epoch (\d+)", text)
    note = f"from report.md, split {found.group(1)}, epoch {found.group(2)}" if found else "from report.md"
    return summary, images, note, evaluation_facts(report, text)


def evaluation_facts(source: Path, content: dict | str) -> dict:
    """What an evaluation scored, from eval.json's dict or report.md's text: source (the file),
    checkpoint and manifest (as `train eval` was given them), split, protocol and epoch (None where
    the file does not say)."""
    facts = {"source": source, "checkpoint": None, "manifest": None, "split": None, "protocol": "sidkit",
             "epoch": None}
    if isinstance(content, dict):
        for key in ("checkpoint", "manifest", "split", "protocol"):
            if isinstance(content.get(key), str):
                facts[key] = content[key]
        epoch = content.get("epoch")
    else:
        heading = re.search(r"^# Evaluation of (.+)$", content, re.M)
        manifest = re.search(r"^Manifest `(.*)`, split `([^`]*)`, checkpoint epoch (\d+)", content, re.M)
        protocol = re.search(r"Protocol `([a-z]+)`", content)
        facts["checkpoint"] = heading.group(1).strip() if heading else None
        if manifest:
            facts["manifest"], facts["split"] = manifest.group(1), manifest.group(2)
        facts["protocol"] = protocol.group(1) if protocol else "sidkit"
        epoch = manifest.group(3) if manifest else None
    try:
        facts["epoch"] = int(epoch) if epoch is not None else None
    except (TypeError, ValueError):
        pass
    return facts


def checkpoint_epoch(path: Path) -> int | None:
    """The epoch a checkpoint holds now; None when it is missing or unreadable. Reads the pickle
    alone (the tensors are memory-mapped, never read), so a page of many runs stays quick."""
    if not path.is_file():
        return None
    try:
        import torch

        from .checkpoint_checks import check_archive

        check_archive(path)
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])
    except Exception:     # not a checkpoint, or a broken one: the page cannot say, and says nothing
        return None


def check_fresh(run: Run, evaluated: Path) -> None:
    """Set run.stale and run.refresh when the evaluation in ``evaluated`` scored another epoch than
    its checkpoint holds now (or, the checkpoint gone, than the run trained to)."""
    facts = run.evaluation
    if not facts or facts.get("epoch") is None:
        return
    run.eval_epoch = facts["epoch"]
    recorded = Path(facts["checkpoint"]) if facts.get("checkpoint") else None
    own = run.folder / "checkpoints" / (recorded.name if recorded else "last.pt")
    checkpoint = own if own.is_file() else recorded if recorded is not None and recorded.is_file() else None
    run.eval_of = (recorded or own).name
    now = run.checkpoint_epoch = checkpoint_epoch(checkpoint) if checkpoint is not None else None
    if now is not None:
        if now == run.eval_epoch:
            return
        run.stale = (f"evaluation of epoch {run.eval_epoch}, but {run.eval_of} now holds epoch {now}"
                     f"{' (the run trained on since)' if now > run.eval_epoch else ''}")
    elif run.epochs_done is not None and run.epochs_done != run.eval_epoch:
        checkpoint = own if own.is_file() else run.folder / "checkpoints" / "last.pt"
        run.stale = (f"evaluation of epoch {run.eval_epoch} ({run.eval_of}, gone or unreadable now), but the run "
                     f"trained to epoch {run.epochs_done}")
    else:
        return
    run.refresh = refresh_command(run, checkpoint or own, evaluated)


def refresh_command(run: Run, checkpoint: Path, evaluated: Path) -> str:
    """The `train eval` line that evaluates ``checkpoint`` again as before: the same manifest, split,
    protocol and folder, and eval.json rewritten when the page read it from there."""
    facts = run.evaluation
    manifest = facts.get("manifest") or ""
    trained_on = str(run.config.get("manifest") or "")
    if not (manifest and Path(manifest).is_file()) and trained_on and Path(trained_on).is_file():
        manifest = trained_on        # the recorded path was relative to another folder
    words = ["train", "eval", str(checkpoint), manifest or "MANIFEST"]
    if facts.get("split") and facts["split"] != "test":
        words += ["--split", facts["split"]]
    if facts.get("protocol") and facts["protocol"] != "sidkit":
        words += ["--protocol", facts["protocol"]]
    default_out = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    if os.path.realpath(evaluated) != os.path.realpath(default_out):
        words += ["--out", str(evaluated)]
    line = shlex.join(words)
    if Path(facts["source"]).name == "eval.json":
        line += f" --format json > {shlex.quote(str(facts['source']))}"
    return line


def read_run(folder: Path, name: str | None = None) -> Run:
    """Everything the page shows of one run folder; unreadable parts are left empty, never fatal."""
    run = Run(folder, name or folder.name)
    try:
        run.config = tomllib.loads((folder / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        pass
    try:
        run.metrics = pd.read_csv(folder / "metrics.csv")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        pass
    if "epoch" in run.metrics and len(run.metrics):
        done = pd.to_numeric(run.metrics["epoch"], errors="coerce").dropna()
        run.epochs_done = int(done.iloc[-1]) if len(done) else None
    evaluated = evaluation_folder(folder)
    run.summary, run.images, run.eval_note, run.evaluation = _read_evaluation(evaluated)
    check_fresh(run, evaluated)
    run.sheets = sorted((evaluated / "outputs").glob("*-sheet.png"))
    try:   # a sweep's run: its setting's name
        run.setting = str(json.loads((folder / "result.json").read_text())["setting"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        pass
    return run


def metric_columns(metrics: pd.DataFrame) -> dict[str, str]:
    """Plot title -> metrics.csv column: the training loss, then PSNR and SSIM of each evaluated split."""
    out = {}
    for column in metrics.columns:
        if column in ("train_loss", "loss"):
            out["training loss (L1)"] = column
    for suffix, label in (("_psnr", "PSNR (dB)"), ("_ssim", "SSIM")):
        for column in metrics.columns:
            if column.endswith(suffix) and not column.startswith("baseline"):
                out[f"{column[: -len(suffix)]} {label}"] = column
    return out
