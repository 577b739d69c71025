"""A run's outputs on rank 0: the resolved config.toml, metrics.csv (one row per evaluation, kept
consistent with the checkpoint a resume starts from) and TensorBoard events."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from rich.console import Console

from curate.common.atomic import atomic_write

from .config import RunConfig


def metrics_columns(split: str | None) -> tuple[str, ...]:
    """metrics.csv's columns: the scores named after the split evaluated (val_psnr, or test_psnr when
    there is no val split; none without either), as the TensorBoard tags (val/psnr, test/psnr)."""
    scores = (f"{split}_psnr", f"{split}_ssim") if split else ()
    return ("epoch", "step", "train_loss", "lr", *scores, "seconds")


class RunLog:
    """Rank 0's outputs: the resolved config.toml, metrics.csv (kept up to the step resumed from)
    and TensorBoard events (the writer made at the first value: a no-op resume leaves no empty file)."""

    def __init__(self, out: Path, config: RunConfig, step: int):
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.toml")
        self.out, self.purge_step, self.writer = out, step or None, None
        self.metrics_path = out / "metrics.csv"
        trim_metrics(self.metrics_path, step)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.out), purge_step=self.purge_step)
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def metrics(self, state, lr: float, scores: dict, split: str | None, seconds: float,
                console: Console) -> None:
        row = {"epoch": state.epoch, "step": state.step, "train_loss": state.mean_loss(), "lr": lr,
               "seconds": round(seconds, 3)}
        if split:
            row.update({f"{split}_psnr": scores["psnr"], f"{split}_ssim": scores["ssim"]})
            self.scalars(state.step, {f"{split}/psnr": scores["psnr"], f"{split}/ssim": scores["ssim"]})
        append_metrics(self.metrics_path, row, metrics_columns(split))
        console.print(f"epoch {state.epoch}: loss {row['train_loss']:.4f}, {split or 'no eval'} "
                      f"PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def trim_metrics(path: Path, step: int) -> None:
    """Drop metrics rows past ``step`` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    reader = csv.DictReader(io.StringIO(path.read_text()))
    rows = [r for r in reader if int(r["step"]) <= step]
    write_metrics(path, rows, tuple(reader.fieldnames or metrics_columns(None)))


def append_metrics(path: Path, row: dict, columns: tuple[str, ...]) -> None:
    """Add a row; the file's columns stay, a new one (another split scored after a resume) is added."""
    reader = csv.DictReader(io.StringIO(path.read_text())) if path.is_file() else None
    rows = list(reader) if reader else []
    before = tuple(reader.fieldnames or ()) if reader else ()
    write_metrics(path, rows + [row], before + tuple(c for c in columns if c not in before))


def write_metrics(path: Path, rows: list[dict], columns: tuple[str, ...]) -> None:
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
