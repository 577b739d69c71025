"""`train run`: the training loop, read top to bottom.

manifest -> raw cache -> sampler -> network -> Adam + L1 + step schedule -> epochs -> periodic
full-image evaluation on val (else test) -> metrics.csv, TensorBoard, checkpoints. SIGINT/SIGTERM
(or ``stop_after_steps``) save checkpoints/last.pt after the current step; ``resume=True`` picks up
from there exactly: weights, optimiser, RNG states and the place inside the epoch.
Under torchrun (LOCAL_RANK set) the network is wrapped in DistributedDataParallel; each rank takes
its share of every epoch's scenes and only rank 0 logs and writes.
"""
from __future__ import annotations

import csv
import io
import math
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from curate.atomic import atomic_write
from curate.errors import SidkitError
from curate.manifest import black_levels, read_manifest, resolve
from curate.validate import row_findings

from . import rawpack
from .cache import RawCache
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import RunConfig, lr_at
from .dataset import DevicePairs, PairDataset, default_budget
from .evaluate import data_config, score_model
from .model import PRESETS, UNetSpec, build_model

METRICS_COLUMNS = ("epoch", "step", "train_loss", "lr", "val_psnr", "val_ssim", "seconds")


class TrainingStopped(Exception):
    """SIGINT, SIGTERM or ``stop_after_steps`` stopped a run after saving checkpoints/last.pt."""

    def __init__(self, out: Path, message: str):
        super().__init__(message)
        self.out = out


def train_run(config: RunConfig, progress: bool = True, resume: bool = False,
              stop_after_steps: int | None = None) -> Path:
    """Train as ``config`` says; returns the run folder.

    A stop (SIGINT, SIGTERM, or ``stop_after_steps`` steps) saves checkpoints/last.pt and raises
    TrainingStopped, so that callers (a sweep) do not take a stopped run for a finished one.
    """
    config = config.resolved()
    if not resume and (Path(config.out) / "checkpoints" / "last.pt").exists():
        raise SidkitError(f"{config.out} already holds a run; continue it with --resume, or give another --out")
    rank, world, device = setup_distributed(config.device)
    is_main = rank == 0
    console = Console(stderr=True, quiet=not (progress and is_main))
    out = Path(config.out)
    checkpoints = out / "checkpoints"

    # The data: manifest -> decoded once into the cache -> a sampler of random crops.
    df = read_manifest(config.manifest)
    if is_main:
        warn_about_bad_pairs(df, config.manifest, console)
    cache = RawCache(config.cache_dir)
    if is_main:
        fill_cache(cache, df, config.num_workers or os.cpu_count() or 1, console)
    if world > 1:
        dist.barrier()
    pairs = PairDataset(df, cache, "train", config.ratio_policy, config.patch, config.patch_choices)
    sampler = DevicePairs(pairs, device) if DevicePairs.fits(pairs, default_budget(torch.device(device))) else pairs
    data = data_config(df, config.ratio_policy, config.manifest)
    eval_split = next((s for s in ("val", "test") if (df["split"] == s).any()), None)
    eval_rows = df[df["split"] == eval_split] if eval_split else df.iloc[:0]

    # The network, its optimiser and the learning-rate schedule.
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    spec = network_spec(config, data)
    model = build_model(spec).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + rank)
    start = {"epoch": 0, "step": 0, "best": None, "position": 0, "loss_sum": 0.0, "loss_count": 0,
             "seconds": 0.0}
    if resume:
        start.update(restore(checkpoints / "last.pt", model, optimizer, generator, rank))
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if device != "cpu" else None)
    if config.compile:
        net = torch.compile(net)

    # Outputs: the resolved config, metrics.csv (kept up to the checkpoint's step), TensorBoard.
    writer = None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        config.save(out / "config.toml")
        trim_metrics(out / "metrics.csv", start["step"])
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir=str(out), purge_step=start["step"] or None)
    if eval_split is None:
        console.print("[yellow]no val or test pairs: training without evaluation[/]")
    elif eval_split == "test":
        console.print("[yellow]no val split: best.pt is chosen on the test scenes, so report test scores of "
                      "last.pt (or `curate split --val 0.1` for a val split)[/]")

    def save(name: str, epoch: int, position: int) -> None:
        """Every rank's sampler state goes into the file; only rank 0 writes it."""
        rng = rng_state(generator)
        if world > 1:
            states = [None] * world
            dist.all_gather_object(states, generator.get_state())
            rng["samplers"] = states
        if is_main:
            save_checkpoint(checkpoints / name, model=model, optimizer=optimizer,
                            schedule={"lr": config.lr, "lr_steps": [list(s) for s in config.lr_steps]},
                            epoch=epoch, step=step, best=best, spec=spec.to_dict(), data=data,
                            config=config.to_dict(), rng=rng,
                            progress={"position": position, "loss_sum": loss_sum, "loss_count": loss_count,
                                      "seconds": seconds()})

    # The epochs.
    epoch, step, best = start["epoch"], start["step"], start["best"]
    loss_sum, loss_count = start["loss_sum"], start["loss_count"]
    began = time.perf_counter() - start["seconds"]
    seconds = lambda: time.perf_counter() - began
    stop = StopFlag()
    bar = Progress(TextColumn("epoch"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[status]}"),
                   TimeRemainingColumn(), console=console, disable=not (progress and is_main))
    model.train()
    with stop, bar:
        task = bar.add_task("train", total=config.epochs, completed=epoch, status="")
        position = start["position"]
        while epoch < config.epochs:
            lr = lr_at(epoch, config.lr, config.lr_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batches = epoch_scenes(len(pairs), config.batch, epoch, config.seed, rank, world)
            tick, patches = time.perf_counter(), 0
            while position < len(batches):
                x, y = sampler.batch(len(batches[position]), None, generator, device, scenes=batches[position])
                loss = train_step(net, optimizer, x, y, config)
                position, step, patches = position + 1, step + 1, patches + len(x)
                loss_sum, loss_count = loss_sum + loss, loss_count + 1
                if writer is not None:
                    writer.add_scalar("train/loss", loss, step)
                    writer.add_scalar("train/lr", lr, step)
                if stop.requested(world, device) or step == stop_after_steps:
                    save("last.pt", epoch, position)
                    finish(writer, world)
                    raise TrainingStopped(out, f"stopped in epoch {epoch + 1} at step {step}; saved "
                                               f"{checkpoints / 'last.pt'}; continue with `train run "
                                               f"{config.manifest} --out {out} --resume`")
            epoch, position = epoch + 1, 0
            rate = patches * world / max(time.perf_counter() - tick, 1e-9)
            bar.update(task, completed=epoch,
                       status=f"loss {loss_sum / max(loss_count, 1):.4f}  lr {lr:.1e}  {rate:.1f} patches/s")
            if epoch % config.eval_every == 0 or epoch == config.epochs:
                scores = {"psnr": math.nan, "ssim": math.nan}
                if is_main and eval_split is not None:
                    scores = score_model(model, df, eval_rows, config.ratio_policy, device=device, amp=config.amp,
                                         channels_last=config.channels_last, load=cache_loader(cache))
                improved = agree(is_main and eval_split is not None and (best is None or scores["psnr"] > best),
                                 world, device)
                if improved:
                    best = scores["psnr"]
                    save("best.pt", epoch, 0)
                if is_main:
                    row = {"epoch": epoch, "step": step, "train_loss": loss_sum / max(loss_count, 1), "lr": lr,
                           "val_psnr": scores["psnr"], "val_ssim": scores["ssim"], "seconds": round(seconds(), 3)}
                    append_metrics(out / "metrics.csv", row)
                    writer.add_scalar(f"{eval_split or 'val'}/psnr", scores["psnr"], step)
                    writer.add_scalar(f"{eval_split or 'val'}/ssim", scores["ssim"], step)
                    console.print(f"epoch {epoch}: loss {row['train_loss']:.4f}, {eval_split or 'no eval'} "
                                  f"PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}")
                loss_sum, loss_count = 0.0, 0
            if epoch % config.save_every == 0 or epoch == config.epochs:
                save("last.pt", epoch, 0)
    finish(writer, world)
    return out


def warn_about_bad_pairs(df, manifest, console: Console) -> None:
    """One warning line when rows have errors that `curate validate --fast` reports (bad ratios...)."""
    errors = [f for row in df.itertuples() for f in row_findings(row) if f.severity == "error"]
    if errors:
        console.print(f"[yellow]warning:[/] {len(errors)} pair(s) of {manifest} have errors (first: {errors[0].code} "
                      f"in {errors[0].pair_id}); `curate validate {manifest} --clean CLEAN.csv` leaves them out",
                      highlight=False)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               config: RunConfig) -> float:
    """One Adam step on the L1 loss; the forward pass under bf16 autocast when amp says so."""
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=config.amp == "bf16"):
        pred = net(x)
    loss = F.l1_loss(pred.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def network_spec(config: RunConfig, data: dict) -> UNetSpec:
    """The preset, with the config's spec overrides (checked by RunConfig.resolved), fitted to the
    data's channels and upscale."""
    return UNetSpec.from_dict({**PRESETS[config.arch].to_dict(), **config.spec,
                               "in_channels": data["channels"], "upscale": data["upscale"]})


def epoch_scenes(scenes: int, batch: int, epoch: int, seed: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's batches of scene indices for ``epoch``: a permutation that depends on (seed, epoch)
    only, so that every rank agrees and a resumed run replays it; ranks take equal shares."""
    order = torch.randperm(scenes, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
    per_rank = math.ceil(scenes / world)
    mine = (order * world)[: per_rank * world][rank::world]
    return [mine[i: i + batch] for i in range(0, len(mine), batch)]


def restore(path: Path, model, optimizer, generator, rank: int) -> dict:
    """Load last.pt into the model, optimiser and RNGs; the loop's counters to continue from."""
    if not path.is_file():
        raise SidkitError(f"{path}: nothing to resume; start the run without --resume")
    payload = load_checkpoint(path)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise SidkitError(f"{path}: the checkpoint's network differs from this config's "
                          f"({payload['spec']}); resume with the run's own config.toml") from None
    optimizer.load_state_dict(payload["optimizer"])
    set_rng_state(payload["rng"])
    samplers = payload["rng"].get("samplers")
    generator.set_state(samplers[rank] if samplers else payload["rng"]["sampler"])
    progress = payload["progress"]
    return {"epoch": payload["epoch"], "step": payload["step"], "best": payload["best"],
            "position": progress.get("position", 0), "loss_sum": progress.get("loss_sum", 0.0),
            "loss_count": progress.get("loss_count", 0), "seconds": progress.get("seconds", 0.0)}


def fill_cache(cache: RawCache, df, workers: int, console: Console) -> None:
    """Decode every raw of the manifest once, ``workers`` at a time (rawpy releases the GIL)."""
    jobs = {}
    for row in df.itertuples():
        black, white = black_levels(row.black_level), float(row.white_level)
        short, long = resolve(df, row.short_path), resolve(df, row.long_path)
        jobs[cache.packed_key(row.short_sha256, row.cfa, black, white)] = \
            partial(cache.packed, short, row.short_sha256, row.cfa, black, white)
        jobs[cache.truth_key(row.long_sha256)] = partial(cache.truth, long, row.long_sha256)
    todo = [job for key, job in jobs.items() if not key.is_file()]
    with ThreadPoolExecutor(workers) as pool, Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"decoding {len(todo)} raws ({len(jobs) - len(todo)} cached)", total=len(todo))
        for future in as_completed([pool.submit(job) for job in todo]):
            future.result()
            bar.advance(task)


def cache_loader(cache: RawCache):
    """An evaluate.Loader reading the cache instead of decoding raws again."""
    def load(df, row, policy):
        black = black_levels(row.black_level)
        counts = cache.packed(resolve(df, row.short_path), row.short_sha256, row.cfa, black, float(row.white_level))
        gain = rawpack.amplification(row.ratio, policy)
        x = rawpack.normalise(counts, rawpack.black_packed(row.cfa, black), float(row.white_level))
        truth = cache.truth(resolve(df, row.long_path), row.long_sha256)
        return np.minimum(x * np.float32(gain), 1.0), truth.astype(np.float32) / 65535.0, gain
    return load


def setup_distributed(device: str) -> tuple[int, int, str]:
    """(rank, world size, device); under torchrun, joins the process group (nccl on CUDA, gloo on CPU)."""
    if "LOCAL_RANK" not in os.environ:
        return 0, 1, device
    local = int(os.environ["LOCAL_RANK"])
    if device == "cuda":
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def finish(writer, world: int) -> None:
    if writer is not None:
        writer.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


class StopFlag:
    """SIGINT/SIGTERM set a flag the loop checks after each step (handlers restored on exit)."""

    def __init__(self):
        self.flag, self.previous = False, {}

    def __enter__(self):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._set)
        except ValueError:  # not the main thread: no handlers, the run cannot be interrupted cleanly
            self.previous = {}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _set(self, signum, frame):
        self.flag = True

    def requested(self, world: int, device: str) -> bool:
        """True when any rank was signalled (agreed under DDP, so that all ranks stop together)."""
        return agree(self.flag, world, device, any_rank=True)


def agree(value: bool, world: int, device: str, any_rank: bool = False) -> bool:
    """Under DDP, rank 0's ``value`` (or, with ``any_rank``, whether any rank's is true) on every rank."""
    if world == 1:
        return bool(value)
    flag = torch.tensor([int(value)], device=device)
    if any_rank:
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    else:
        dist.broadcast(flag, src=0)
    return bool(flag.item())


def trim_metrics(path: Path, step: int) -> None:
    """Drop metrics rows past ``step`` (written after the checkpoint a resume starts from)."""
    if not path.is_file():
        return
    rows = [r for r in csv.DictReader(io.StringIO(path.read_text())) if int(r["step"]) <= step]
    write_metrics(path, rows)


def append_metrics(path: Path, row: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(path.read_text()))) if path.is_file() else []
    write_metrics(path, rows + [row])


def write_metrics(path: Path, rows: list[dict]) -> None:
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRICS_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
