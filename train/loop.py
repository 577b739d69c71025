"""`train run`: the training loop, read top to bottom.

manifest -> raw cache -> sampler (train.rundata) -> network -> Adam + L1 + step schedule -> epochs -> periodic
full-image evaluation on val (else test) -> metrics.csv, TensorBoard, checkpoints. SIGINT/SIGTERM
(or ``stop_after_steps``) save checkpoints/last.pt after the current step; ``resume=True`` picks up
from there exactly: weights, optimiser, RNG states and the place inside the epoch.
Under torchrun (LOCAL_RANK set) the network is wrapped in DistributedDataParallel; each rank takes
its share of every epoch's scenes and only rank 0 logs and writes.
"""
from __future__ import annotations

import gc
import math
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape

from curate.common.clitools import progress_bar
from curate.common.errors import SidkitError

from .checkpoint import CheckpointSaver, unwrap
from .config import RunConfig, lr_at
from .dataset import Batch
from .evalinputs import SyntheticLoader
from .evaluate import score_model
from .networks import Spec, build_model, preset
from .progresslog import EpochLog
from .runlog import RunLog
from .rundata import RunData
from .world import World, restarted



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
    data = RunData.read(config)
    config, place = data.config, World.from_env(data.config.device)
    console = Console(stderr=True, quiet=not (progress and place.main), soft_wrap=True)   # a log keeps lines whole
    resume = should_resume(Path(config.out), resume, place, console)
    data = prepared(data, place, console, progress)
    evaluation = Evaluation(data, place.device, console)
    run = Run(data, place, resume, console)
    stop, lr, shown = StopFlag(), config.lr, progress and place.main
    epoch_lines = EpochLog(config.epochs, run.state.epoch, run.state.step, enabled=shown)   # lines in a log
    try:
        with stop, progress_bar(config.epochs, "epoch", shown, run.state.epoch, plain=False) as advance:
            while run.state.epoch < config.epochs:
                lr = run.start_epoch()
                for scenes in run.remaining_batches():
                    run.step(scenes, lr)
                    if stop.requested(place.size, place.device, run.state.step, config.log_every) \
                            or run.state.step == stop_after_steps:
                        run.save("last.pt")
                        run.close()
                        raise TrainingStopped.at(run.state, config)
                run.end_epoch(lr, evaluation, advance, epoch_lines)
    except Diverged as diverged:      # nothing saved: the checkpoints keep the last finite weights
        run.close()
        raise SidkitError(diverged.explain(config, lr)) from None
    run.close()
    return Path(config.out)


def should_resume(out: Path, resume: bool, place: World, console: Console) -> bool:
    """``resume``, or True for a worker torchrun restarted (--max-restarts) over a run's last.pt; a
    SidkitError for a new run into a folder that holds one."""
    last = out / "checkpoints" / "last.pt"
    if not resume and last.exists() and not restarted():
        raise SidkitError(f"{out} already holds a run; continue it with --resume, or give another --out")
    if not resume and place.restarts and last.exists():
        console.print(f"torchrun restart {place.restarts}: resuming from {last}", highlight=False)
        return True
    return resume


def prepared(data: RunData, place: World, console: Console, progress: bool) -> RunData:
    """``data`` prepared (the cache filled, the batches ready), its warnings shown first (global rank 0)."""
    for line in data.warnings():
        console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    data = data.prepare(place, progress)
    note = data.patch_note()
    if note:
        console.print(note, highlight=False)
    return data


class Run:
    """One process's run: the network, its optimiser, checkpoints and log, and where it stands
    (LoopState), restored from last.pt on ``resume``."""

    def __init__(self, data: RunData, place: World, resume: bool, console: Console):
        c = self.config = data.config
        self.data, self.place, self.console = data, place, console
        torch.manual_seed(c.seed)
        np.random.seed(c.seed)
        spec = network_spec(c, data.description)
        self.model = build_model(spec).to(place.device, memory_format=memory_format(c))
        self.optimizer = make_optimizer(self.model, c.lr)
        self.generator = torch.Generator().manual_seed(c.seed * 1_000_003 + place.rank)
        meta = {"schedule": {"lr": c.lr, "lr_steps": [list(s) for s in c.lr_steps]},
                "spec": spec.to_dict(), "data": data.description, "config": c.to_dict()}
        out = Path(c.out)
        self.saver = CheckpointSaver(out / "checkpoints", self.model, self.optimizer, self.generator, meta,
                                     place.rank, place.size)
        self.state = LoopState(**self.saver.restore()) if resume else LoopState()
        if resume:
            self.resumed(out)
        self.net = wrap(self.model, c, place.size, place.device)
        self.log = RunLog(out, c, self.state.step) if place.main else None
        self.began = time.perf_counter()
        self.model.train()

    def resumed(self, out: Path) -> None:
        """A line when the world size changed (the same share of the epoch goes on) or nothing is left."""
        state, world, was, c = self.state, self.place.size, self.saver.world_was, self.config
        if was != world:
            state.position = state.position * was // world
            self.console.print(f"resuming on {world} process(es), the run was on {was}: the effective batch is "
                               f"now {world} x {c.batch} = {world * c.batch} crops a step (was {was * c.batch}), "
                               "the learning rate is unchanged", highlight=False)
        if state.epoch >= c.epochs:
            self.console.print(f"{out}: already finished at epoch {state.epoch} of {c.epochs}; nothing to train "
                               f"(give --epochs above {state.epoch} to train longer)", highlight=False)

    def start_epoch(self) -> float:
        """The epoch's learning rate, set."""
        return set_lr(self.optimizer, lr_at(self.state.epoch, self.config.lr, self.config.lr_steps))

    def remaining_batches(self) -> Iterator[list[int]]:
        """This rank's batches of scenes left in the current epoch (a resume starts inside one)."""
        c, state = self.config, self.state
        batches = epoch_scenes(len(self.data.pairs), c.batch, state.epoch, c.seed, self.place.rank, self.place.size)
        while state.position < len(batches):
            yield batches[state.position]

    def step(self, scenes: list[int], lr: float) -> None:
        """One optimiser step; the loss read back (a wait for the device) every log_every steps only."""
        state = self.state
        x, y = to_network(self.data.batch(scenes, self.generator, self.place.device), self.config)
        loss = train_step(self.net, self.optimizer, x, y, self.config)
        state.record(loss)
        if self.log and state.step % self.config.log_every == 0:
            state.shown = float(loss)
            self.log.scalars(state.step, {"train/loss": state.shown, "train/lr": lr})
            if self.place.size == 1 and not math.isfinite(state.shown):    # under DDP: at the next save
                raise Diverged("the loss", state.step)

    def end_epoch(self, lr: float, evaluation: Evaluation, advance, epoch_lines: EpochLog) -> None:
        """The epoch counted and shown; evaluation, best.pt and last.pt at their intervals."""
        state, c, place = self.state, self.config, self.place
        state.epoch, state.position = state.epoch + 1, 0
        advance(status=f"lr {lr:.1e}" + (f"  loss {state.shown:.4f}" if state.shown == state.shown else ""))
        epoch_lines(state.epoch, state.step, state.mean_loss, lr)   # the loss read back only for a line
        if state.epoch % c.eval_every == 0 or state.epoch == c.epochs:
            scores, improved = evaluation.run(self.model, state.best, place.rank, place.size, place.device)
            if improved:
                state.best = scores["psnr"]
                self.save("best.pt")
            if self.log:
                self.log.metrics(state, lr, scores, evaluation.split, state.progress(self.began)["seconds"],
                                 self.console)
            state.shown, state.loss_sum, state.loss_count = state.mean_loss(), 0.0, 0
        if state.epoch % c.save_every == 0 or state.epoch == c.epochs:
            self.save("last.pt")

    def save(self, name: str) -> None:
        save_finite(self.saver, name, self.state, self.began)

    def close(self) -> None:
        """The DDP wrapper dropped first, then the log closed and the process group ended (``finish``)."""
        self.net = None
        finish(self.log, self.place.size)


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
    uint16 (N, H, W, 3) counts scaled to [0, 1] here, both laid out as the network runs
    (``memory_format``: channels_last or NCHW), so the loss never mixes layouts. A transform of the batch on the device (synthetic shorts
    from the long exposure) belongs here."""
    layout = memory_format(config)
    x = batch.input.contiguous(memory_format=layout)
    return x, batch.target.permute(0, 3, 1, 2).float().div_(65535).contiguous(memory_format=layout)


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

    def __init__(self, data: RunData, device: str, console: Console):
        df = data.manifest.rows
        self.split = next((s for s in ("val", "test") if (df["split"] == s).any()), None)
        self.manifest, self.rows = data.manifest, df[df["split"] == self.split]
        self.config, self.device = data.config, device
        self.load = data.evaluation_loader() if self.split is not None else None
        if isinstance(self.load, SyntheticLoader):
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
        return score_model(model, self.manifest, self.rows, c.ratio_policy, device=self.device, amp=c.amp,
                           channels_last=c.channels_last, load=self.load)


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
