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
import gc
import io
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape

from curate.atomic import atomic_write
from curate.clitools import progress_bar
from curate.errors import SidkitError
from curate.manifest import is_longs_only, read_manifest
from curate.validate import row_findings

from .autoratio import training_level
from .cache import RawCache
from .checkpoint import CheckpointSaver, unwrap
from .config import RunConfig, lr_at
from .dataset import Batch, PairDataset, sampler
from .evaluate import SyntheticLoader, cache_loader, data_config, score_model
from .networks import Spec, build_model, preset
from .progresslog import EpochLog
from .synthetic import SyntheticShorts, check_synthetic_data
from .world import World, restarted



def metrics_columns(split: str | None) -> tuple[str, ...]:
    """metrics.csv's columns: the scores named after the split evaluated (val_psnr, or test_psnr when
    there is no val split; none without either), as the TensorBoard tags (val/psnr, test/psnr)."""
    scores = (f"{split}_psnr", f"{split}_ssim") if split else ()
    return ("epoch", "step", "train_loss", "lr", *scores, "seconds")


class TrainingStopped(Exception):
    """SIGINT, SIGTERM or ``stop_after_steps`` stopped a run after saving checkpoints/last.pt."""

    def __init__(self, out: Path, message: str):
        super().__init__(message)
        self.out = out

    @classmethod
    def at(cls, state: LoopState, config: RunConfig) -> TrainingStopped:
        out = Path(config.out)
        return cls(out, f"stopped in epoch {state.epoch + 1} at step {state.step}; saved {out / 'checkpoints' / 'last.pt'}; "
                        f"continue with `train run {config.manifest} --out {out} --resume`")


class Diverged(Exception):
    """A NaN or inf loss or weight (``what``) found at ``step``, before it reached a checkpoint."""

    def __init__(self, what: str, step: int):
        super().__init__(what)
        self.what, self.step = what, step

    def explain(self, config: RunConfig, lr: float) -> str:
        """The run's one-line error: where, the likely cause, what was kept and how to go on."""
        out, manifest = Path(config.out), config.manifest
        last = out / "checkpoints" / "last.pt"
        go_on = (f"{last} keeps the last finite weights; go on with `train run {manifest} --out {out} --resume "
                 f"--lr {lr / 10:g}`" if last.is_file() else
                 f"nothing was saved; start again with `train run {manifest} --out {out} --lr {lr / 10:g}`")
        return (f"{out}: training diverged: {self.what} is NaN or inf at step {self.step}; the learning rate "
                f"({lr:g}) is likely too high, or the data is bad (`curate validate {manifest}`); {go_on}")


@dataclass
class LoopState:
    """Where a run is; all of it goes into a checkpoint's 'progress' (or its epoch/step/best)."""
    epoch: int = 0              # epochs completed
    step: int = 0               # optimiser steps taken
    position: int = 0           # batches done in the current epoch
    best: float | None = None   # best evaluation PSNR so far
    loss_sum: float | torch.Tensor = 0.0   # since the last evaluation; a device tensor while training
    loss_count: int = 0
    seconds: float = 0.0        # training time before this process started
    shown: float = math.nan     # the loss last read back from the device, for the progress bar (not saved)

    def progress(self, began: float) -> dict:
        return {"position": self.position, "loss_sum": float(self.loss_sum), "loss_count": self.loss_count,
                "seconds": self.seconds + time.perf_counter() - began}

    def checkpoint(self, began: float) -> dict:
        """The keyword arguments of CheckpointSaver.save."""
        return {"epoch": self.epoch, "step": self.step, "best": self.best, "progress": self.progress(began)}

    def record(self, loss: torch.Tensor) -> None:
        """One step done; its loss is added on the device (no wait)."""
        self.position, self.step, self.loss_count = self.position + 1, self.step + 1, self.loss_count + 1
        self.loss_sum = self.loss_sum + loss

    def mean_loss(self) -> float:
        return float(self.loss_sum) / max(self.loss_count, 1)


def train_run(config: RunConfig, progress: bool = True, resume: bool = False,
              stop_after_steps: int | None = None) -> Path:
    """Train as ``config`` says; returns the run folder.

    A stop (SIGINT, SIGTERM, or ``stop_after_steps`` steps) saves checkpoints/last.pt and raises
    TrainingStopped, so that callers (a sweep) do not take a stopped run for a finished one.
    """
    config = config.resolved()
    out = Path(config.out)
    if not resume and (out / "checkpoints" / "last.pt").exists() and not restarted():
        raise SidkitError(f"{out} already holds a run; continue it with --resume, or give another --out")
    place = World.from_env(config.device)
    rank, world, device = place.rank, place.size, place.device
    console = Console(stderr=True, quiet=not (progress and rank == 0), soft_wrap=True)   # a log keeps lines whole
    if not resume and place.restarts and (out / "checkpoints" / "last.pt").exists():
        resume = True                  # torchrun --max-restarts: a restarted worker goes on from last.pt
        console.print(f"torchrun restart {place.restarts}: resuming from {out / 'checkpoints' / 'last.pt'}",
                      highlight=False)

    # The data: manifest -> decoded once into the cache -> random crops (on the device when they fit).
    df, cache = filled_cache(config, place, console, progress)
    pairs = PairDataset(df, cache, "train", config.ratio_policy, config.patch, config.patch_choices)
    crops = sampler(pairs, device)
    largest, side = max(config.patch_choices or [config.patch]), pairs.smallest_side
    if largest > side:
        console.print(f"note: patch {largest} is larger than the smallest training image ({side} packed pixels a "
                      f"side); crops of it are {side} (--patch {side} or less crops every image alike)",
                      highlight=False)
    synthetic = (SyntheticShorts(df, cache, config.synthetic, config.synthetic_fraction, config.synthetic_ratio,
                                 config.ratio_policy, config.patch, config.patch_choices, device,
                                 iso=config.synthetic_iso)
                 if config.synthetic else None)
    data = data_config(df, config.ratio_policy, config.manifest)
    level = training_level(df, cache, config.ratio_policy)   # for `predict --ratio auto`
    if level:
        data["input_level"] = level
    evaluation = Evaluation(df, config, cache, device, console)

    # The network, its optimiser and the checkpoints.
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    spec = network_spec(config, data)
    model = build_model(spec).to(device, memory_format=memory_format(config))
    optimizer = make_optimizer(model, config.lr)
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + rank)
    meta = {"schedule": {"lr": config.lr, "lr_steps": [list(s) for s in config.lr_steps]},
            "spec": spec.to_dict(), "data": data, "config": config.to_dict()}
    saver = CheckpointSaver(out / "checkpoints", model, optimizer, generator, meta, rank, world)
    state = LoopState(**saver.restore()) if resume else LoopState()
    if resume and saver.world_was != world:
        state.position = state.position * saver.world_was // world       # the same share of the epoch
        console.print(f"resuming on {world} process(es), the run was on {saver.world_was}: the effective batch is "
                      f"now {world} x {config.batch} = {world * config.batch} crops a step (was "
                      f"{saver.world_was * config.batch}), the learning rate is unchanged", highlight=False)
    if resume and state.epoch >= config.epochs:
        console.print(f"{out}: already finished at epoch {state.epoch} of {config.epochs}; nothing to train "
                      f"(give --epochs above {state.epoch} to train longer)", highlight=False)
    net = wrap(model, config, world, device)
    log = RunLog(out, config, state.step) if rank == 0 else None
    began, stop = time.perf_counter(), StopFlag()

    # The epochs: a step per batch of scenes, evaluation and last.pt at their intervals.
    model.train()
    epoch_lines = EpochLog(config.epochs, state.epoch, state.step, enabled=progress and rank == 0)  # in a log
    try:
        with stop, progress_bar(config.epochs, "epoch", progress and rank == 0, state.epoch, plain=False) as advance:
            while state.epoch < config.epochs:
                lr = set_lr(optimizer, lr_at(state.epoch, config.lr, config.lr_steps))
                batches = epoch_scenes(len(pairs), config.batch, state.epoch, config.seed, rank, world)
                while state.position < len(batches):
                    scenes = batches[state.position]
                    batch = synthetic.batch(scenes, generator, device) if synthetic else None
                    x, y = to_network(batch or crops.batch(scenes, None, generator, device), config)
                    loss = train_step(net, optimizer, x, y, config)
                    state.record(loss)
                    if log and state.step % config.log_every == 0:
                        state.shown = float(loss)       # waits for the device: every log_every steps only
                        log.scalars(state.step, {"train/loss": state.shown, "train/lr": lr})
                        if world == 1 and not math.isfinite(state.shown):    # under DDP: at the next save
                            raise Diverged("the loss", state.step)
                    if stop.requested(world, device, state.step, config.log_every) or state.step == stop_after_steps:
                        save_finite(saver, "last.pt", state, began)
                        del net
                        finish(log, world)
                        raise TrainingStopped.at(state, config)
                state.epoch, state.position = state.epoch + 1, 0
                advance(status=f"lr {lr:.1e}" + (f"  loss {state.shown:.4f}" if state.shown == state.shown else ""))
                epoch_lines(state.epoch, state.step, state.mean_loss, lr)   # the loss read back only for a line
                if state.epoch % config.eval_every == 0 or state.epoch == config.epochs:
                    scores, improved = evaluation.run(model, state.best, rank, world, device)
                    if improved:
                        state.best = scores["psnr"]
                        save_finite(saver, "best.pt", state, began)
                    if log:
                        log.metrics(state, lr, scores, evaluation.split, state.progress(began)["seconds"], console)
                    state.shown, state.loss_sum, state.loss_count = state.mean_loss(), 0.0, 0
                if state.epoch % config.save_every == 0 or state.epoch == config.epochs:
                    save_finite(saver, "last.pt", state, began)
    except Diverged as diverged:      # nothing saved: the checkpoints keep the last finite weights
        del net
        finish(log, world)
        raise SidkitError(diverged.explain(config, lr)) from None
    del net
    finish(log, world)
    return out


def save_finite(saver: CheckpointSaver, name: str, state: LoopState, began: float) -> None:
    """``saver.save(name)`` when the loss read back and every weight are finite; else Diverged,
    and nothing is written."""
    what = nonfinite(state, saver.model, saver.world)
    if what:
        raise Diverged(what, state.step)
    saver.save(name, **state.checkpoint(began))


def nonfinite(state: LoopState, model: torch.nn.Module, world: int) -> str | None:
    """'the loss' or 'weight NAME' when NaN or inf (one wait for the device), else None; under DDP
    every rank gets the same answer."""
    weights = unwrap(model).state_dict()
    finite = torch.stack([torch.isfinite(t).all() for t in weights.values()]).tolist()
    what = ("the loss" if not math.isfinite(float(state.loss_sum)) else
            next((f"weight {name}" for name, ok in zip(weights, finite) if not ok), None))
    device = next(iter(weights.values())).device
    if agree(what is not None, world, str(device), any_rank=True):
        return what or "a loss or weight on another rank"
    return None


def to_network(batch: Batch, config: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The one place a batch on the device becomes the network's (input, target): the target's
    uint16 (N, H, W, 3) counts scaled to [0, 1] here as an NCHW view in channels_last layout, the
    input laid out as the network wants. A transform of the batch on the device (synthetic shorts
    from the long exposure) belongs here."""
    x = batch.input.contiguous(memory_format=memory_format(config))
    return x, batch.target.permute(0, 3, 1, 2).float().div_(65535)


def train_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               config: RunConfig) -> torch.Tensor:
    """One Adam step on the L1 loss (the forward pass under bf16 autocast when amp says so); the
    loss stays on the device, so that a step never waits for it."""
    with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=config.amp == "bf16"):
        pred = net(x)
    loss = F.l1_loss(pred.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam; fused (one kernel for all tensors) on CPU and CUDA, where it is measured fastest."""
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in model.parameters())
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)


def memory_format(config: RunConfig) -> torch.memory_format:
    return torch.channels_last if config.channels_last else torch.contiguous_format


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def wrap(model: torch.nn.Module, config: RunConfig, world: int, device: str) -> torch.nn.Module:
    """The module the steps call: DistributedDataParallel under torchrun, compiled with --compile."""
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[torch.device(device).index] if device != "cpu" else None)
    return torch.compile(net) if config.compile else net


class Evaluation:
    """The loop's periodic full-image evaluation on val, else test (said so on the console). A
    manifest of long exposures only is scored on fixed synthetic shorts of its longs (SyntheticLoader)."""

    def __init__(self, df, config: RunConfig, cache: RawCache, device: str, console: Console):
        self.split = next((s for s in ("val", "test") if (df["split"] == s).any()), None)
        self.df, self.rows, self.config, self.device = df, df[df["split"] == self.split], config, device
        self.load = cache_loader(cache)
        if self.split is not None and config.synthetic and is_longs_only(df):
            self.load = SyntheticLoader(config.synthetic, config.synthetic_ratio, cache, iso=config.synthetic_iso)
            console.print(f"evaluation on {self.split}: synthetic shorts of its long exposures, one per image "
                          f"(ratio {self.load.ratio:.1f}, K {self.load.k:.3g} DN/e-)", highlight=False)
        if self.split is None:
            console.print("[yellow]no val or test pairs: training without evaluation[/]")
        elif self.split == "test":
            console.print("[yellow]no val split: best.pt is chosen on the test scenes, so report test scores "
                          "of last.pt (or `curate split --val 0.1` for a val split)[/]")

    def run(self, model: torch.nn.Module, best: float | None, rank: int, world: int, device: str) -> tuple[dict, bool]:
        """(scores, whether they beat ``best``): rank 0 scores, every rank learns whether it improved."""
        scores = self.score(model) if rank == 0 else {"psnr": math.nan, "ssim": math.nan}
        return scores, agree(self.split is not None and (best is None or scores["psnr"] > best), world, device)

    def score(self, model: torch.nn.Module) -> dict[str, float]:
        if self.split is None:
            return {"psnr": math.nan, "ssim": math.nan}
        c = self.config
        return score_model(model, self.df, self.rows, c.ratio_policy, device=self.device, amp=c.amp,
                           channels_last=c.channels_last, load=self.load)


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

    def metrics(self, state: LoopState, lr: float, scores: dict, split: str | None, seconds: float,
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


def filled_cache(config: RunConfig, place: World, console: Console, progress: bool):
    """(manifest rows, RawCache) with every raw decoded: global rank 0 warns about bad pairs, each
    node's local rank 0 fills that node's cache (its own disk) while every other rank waits."""
    df, cache = read_manifest(config.manifest), RawCache(config.cache_dir)
    synthetic_warnings = check_synthetic_data(df, config.manifest, config.synthetic, config.synthetic_fraction)
    if place.main:
        for line in synthetic_warnings:
            console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
        warn_about_bad_pairs(df, config.manifest, console)
    if place.node_main:
        cache.fill(df, config.num_workers or None, progress=progress and place.main)
    place.barrier()
    return df, cache


def warn_about_bad_pairs(df, manifest, console: Console) -> None:
    """One warning line when rows have errors that `curate validate --fast` reports (bad ratios...)."""
    only_longs = is_longs_only(df)      # their ratio of 1 is no error: shorts are synthesised
    errors = [f for row in df.itertuples() for f in row_findings(row, longs_only=only_longs) if f.severity == "error"]
    if errors:
        console.print(f"[yellow]warning:[/] {len(errors)} pair(s) of {manifest} have errors (first: {errors[0].code} "
                      f"in {errors[0].pair_id}); `curate validate {manifest} --clean CLEAN.csv` leaves them out",
                      highlight=False)


def network_spec(config: RunConfig, data: dict) -> Spec:
    """The preset (of any family), with the config's spec overrides (checked by RunConfig.resolved),
    fitted to the data's channels and upscale."""
    return preset(config.arch, config.spec, in_channels=data["channels"], upscale=data["upscale"])


def epoch_scenes(scenes: int, batch: int, epoch: int, seed: int, rank: int = 0, world: int = 1) -> list[list[int]]:
    """This rank's batches of scene indices for ``epoch``: a permutation that depends on (seed, epoch)
    only, so that every rank agrees and a resumed run replays it; ranks take equal shares."""
    order = torch.randperm(scenes, generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
    per_rank = math.ceil(scenes / world)
    mine = (order * world)[: per_rank * world][rank::world]
    return [mine[i: i + batch] for i in range(0, len(mine), batch)]


def finish(log: RunLog | None, world: int) -> None:
    """Close the run's log; under torchrun, end the process group once every rank is here. The
    caller has dropped its DistributedDataParallel wrapper first: a wrapper that outlives the group
    keeps gloo's threads to the interpreter's teardown, which then aborts now and then ("terminate
    called without an active exception", SIGABRT after a finished run)."""
    if log is not None:
        log.close()
    if world > 1:
        gc.collect()                 # the wrapper's reference cycles, so that the group is the last holder
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

    def requested(self, world: int, device: str, step: int = 0, every: int = 1) -> bool:
        """True when any rank was signalled. Under DDP the ranks agree (a wait for the device) at
        every ``every``-th step only, so that all of them stop together at the same step."""
        if world > 1 and step % every:
            return False
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
