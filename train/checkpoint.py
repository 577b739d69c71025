"""Checkpoints: plain types and tensors only, so `torch.load(..., weights_only=True)` reads them.

A checkpoint carries the weights, the optimiser, the learning-rate schedule, every RNG state
(python, numpy, torch CPU, CUDA, the sampler's generator), the epoch and step reached, the best
metric, and the model spec + data config that `evaluate` and `predict` rebuild the network from.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from curate.common.atomic import atomic_write
from curate.common.errors import SidkitError

from .checkpoint_checks import FORMAT_VERSION, BadCheckpoint, check_archive, check_payload


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every random state a run draws from, as tensors and lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["sampler"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Restore what `rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "sampler" in state:
        generator.set_state(state["sampler"])


def save_checkpoint(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: dict, epoch: int, step: int, best: float | None, spec: dict, data: dict,
                    config: dict, rng: dict, progress: dict | None = None) -> Path:
    """Write atomically (temp file + rename); ``epoch`` is the number of epochs completed and
    ``progress`` the loop's place inside the next one (batches done, running loss, seconds)."""
    payload = {
        "format": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "schedule": schedule,
        "rng": rng,
        "epoch": int(epoch),
        "step": int(step),
        "best": None if best is None else float(best),
        "spec": spec,
        "data": data,
        "config": config,
        "progress": progress or {},
    }
    writer = _WriteErrors()
    try:
        with atomic_write(path, "wb") as handle:
            torch.save(payload, writer.wrap(handle))
    except (OSError, RuntimeError) as exc:   # torch reports a failed write (ENOSPC) as RuntimeError
        exc = writer.error or exc
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
        kept = "the previous file is intact" if Path(path).exists() else "nothing was written"
        raise SidkitError(f"{path}: could not write the checkpoint ({reason}); {kept}; free disk space "
                          "or choose another --out, then resume") from None
    return Path(path)


class _WriteErrors:
    """A file wrapper that keeps the first OSError of a write, which torch.save hides in a
    RuntimeError ('unexpected pos ...')."""

    def __init__(self):
        self.error: OSError | None = None

    def wrap(self, handle):
        outer = self

        class Recording:
            def write(self, data):
                try:
                    return handle.write(data)
                except OSError as exc:
                    outer.error = outer.error or exc
                    raise

            def flush(self):
                handle.flush()

        return Recording()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint's dict, read with weights_only=True once the zip's declared sizes fit the file,
    and checked (checkpoint_checks) before any use; SidkitError naming the file and the first thing
    wrong when it is not a usable checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise SidkitError(f"{path}: no such checkpoint; train one with `train run MANIFEST`")
    try:
        check_archive(path)    # before torch.load inflates anything
    except BadCheckpoint as exc:
        raise SidkitError(f"{path}: not a readable checkpoint: {exc}; "
                          "point at runs/NAME/checkpoints/best.pt or last.pt") from None
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise SidkitError(f"{path}: not a readable checkpoint ({type(exc).__name__}); "
                          "point at runs/NAME/checkpoints/best.pt or last.pt") from None
    try:
        check_payload(payload)
    except BadCheckpoint as exc:
        fix = "" if "upgrade sidkit" in str(exc) else \
            "; point at runs/NAME/checkpoints/best.pt or last.pt as `train run` wrote it"
        raise SidkitError(f"{path}: not a usable checkpoint: {exc}{fix}") from None
    return payload


def model_from_checkpoint(path_or_payload: str | os.PathLike | dict,
                          device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network rebuilt from the checkpoint alone, in eval mode, and the checkpoint's dict."""
    from .networks import build_model, spec_from_dict

    if isinstance(path_or_payload, dict):
        payload = path_or_payload
        try:
            check_payload(payload)
        except BadCheckpoint as exc:
            raise SidkitError(f"checkpoint: not usable: {exc}") from None
    else:
        payload = load_checkpoint(path_or_payload)
    model = build_model(spec_from_dict(payload["spec"]))      # its family's ('unet' when it names none)
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), payload


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


class CheckpointSaver:
    """Writes a run's checkpoints/last.pt and best.pt and reads last.pt back (timm's CheckpointSaver).

    ``meta`` (schedule, spec, data, config) goes into every file unchanged; ``save`` adds the weights,
    the optimiser, every RNG state and the loop's ``progress`` dict. Under DDP every rank calls
    ``save`` (each rank's sampler state is gathered) and rank 0 alone writes.
    """

    def __init__(self, folder: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator, meta: dict, rank: int = 0, world: int = 1):
        self.folder, self.model, self.optimizer, self.generator = Path(folder), model, optimizer, generator
        self.meta, self.rank, self.world = meta, rank, world
        self.world_was = world           # the world size of the run restored (restore sets it)

    def save(self, name: str, *, epoch: int, step: int, best: float | None, progress: dict) -> None:
        rng = rng_state(self.generator)
        if self.world > 1:
            import torch.distributed as dist

            states = [None] * self.world
            dist.all_gather_object(states, self.generator.get_state())
            rng["samplers"] = states
        if self.rank == 0:
            save_checkpoint(self.folder / name, model=self.model, optimizer=self.optimizer, epoch=epoch,
                            step=step, best=best, rng=rng, progress=progress, **self.meta)

    def restore(self, name: str = "last.pt") -> dict:
        """Load ``name`` into the model, optimiser and RNGs (this rank's sampler state); returns
        {'epoch', 'step', 'best', **progress} to continue from."""
        path = self.folder / name
        if not path.is_file():
            raise SidkitError(f"{path}: nothing to resume; start the run without --resume")
        payload = load_checkpoint(path)
        try:
            self.model.load_state_dict(payload["model"])
        except RuntimeError:
            raise SidkitError(f"{path}: the checkpoint's network differs from this config's "
                              f"({payload['spec']}); resume with the run's own config.toml") from None
        self.optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])
        samplers = payload["rng"].get("samplers") or [payload["rng"]["sampler"]]
        self.world_was = len(samplers)
        if self.rank < len(samplers):
            self.generator.set_state(samplers[self.rank])
        else:                            # more ranks than the run had: a new stream of its own for this one
            self.generator.set_state(samplers[0])
            self.generator.manual_seed(int(torch.randint(2 ** 62, (1,), generator=self.generator)) + self.rank)
        return {"epoch": payload["epoch"], "step": payload["step"], "best": payload["best"], **payload["progress"]}
