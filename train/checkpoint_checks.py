"""What a checkpoint must hold before eval, predict or `--resume` use it, checked before anything is
allocated: format version, keys and their types, the network spec within its family's bounds
(train/networks), its parameter count and weight and optimiser shapes from a build on the meta
device, RNG states that restore; every tensor dense and holding data, every number finite and in
range, the zip's declared sizes within the file.

Each failure is a one-line SidkitError naming the file; ``check_payload`` is what load_checkpoint runs.
"""
from __future__ import annotations

import math
import os
import random
import zipfile
from typing import Any

import numpy as np
import torch

from curate import cfa as sensor
from curate.common.errors import SidkitError

from .networks import BadSpec, meta_shapes, parameter_count, spec_from_dict
from .networks.spec import brief as _brief
from .networks.spec import is_int as _is_int

FORMAT_VERSION = 1
MAX_PARAMETERS = 200_000_000   # 25x the paper's 7.76 M (each family bounds its own fields: train/networks)
MAX_COUNT = 10 ** 12           # epochs, steps and batches (the paper's run is ~650,000 steps)
MAX_FILE_BYTES = 4 * 8 * MAX_PARAMETERS + 2 ** 26    # weights + 3 Adam moments in float64, and the rest
CFA_CHANNELS = {k.name: (k.channels, k.scale) for k in sensor.KINDS.values()}   # cfa_kind -> (channels, upscale)
PROGRESS = {"position": int, "loss_sum": float, "loss_count": int, "seconds": float}   # the loop's place
KEYS = {"format": int, "model": dict, "optimizer": dict, "schedule": dict, "rng": dict, "epoch": int,
        "step": int, "best": (float, type(None)), "spec": dict, "data": dict, "config": dict, "progress": dict}


class BadCheckpoint(Exception):
    """One reason a payload is not a usable checkpoint (caught and named by ``check_payload``)."""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_spec(spec: dict):
    """The spec that ``spec`` describes, after its family's checks of types and bounds and a build on
    the meta device (nothing allocated) that counts at most MAX_PARAMETERS parameters."""
    try:
        result = spec_from_dict(spec)
    except BadSpec as exc:
        raise BadCheckpoint(str(exc)) from None
    count = parameter_count(result)
    if count > MAX_PARAMETERS:
        raise BadCheckpoint(f"spec declares {count:,} parameters (a {result.family} network), over the "
                            f"{MAX_PARAMETERS:,} this sidkit builds")
    return result


def check_data(data: dict, spec) -> None:
    """The data config eval and predict read: CFA kind, channels and ratio policy, matching the spec."""
    from .rawpack import amplification

    for key in ("cfa_kind", "channels", "upscale", "ratio_policy"):
        if key not in data:
            raise BadCheckpoint(f"data lacks {key!r}")
    if data["cfa_kind"] not in CFA_CHANNELS:
        raise BadCheckpoint(f"data cfa_kind {_brief(data['cfa_kind'])} is not {' or '.join(sensor.KINDS)}")
    channels, upscale = CFA_CHANNELS[data["cfa_kind"]]
    if data["channels"] != channels or data["upscale"] != upscale or isinstance(data["channels"], bool):
        raise BadCheckpoint(f"data says {data['cfa_kind']} with {_brief(data['channels'])} channels and upscale "
                            f"{_brief(data['upscale'])}; {data['cfa_kind']} is {channels} and {upscale}")
    if (spec.in_channels, spec.upscale, spec.out_channels) != (channels, upscale, 3):
        raise BadCheckpoint(f"spec takes {spec.in_channels} channels, upscales {spec.upscale}x to "
                            f"{spec.out_channels}, but {data['cfa_kind']} raws need {channels}, {upscale}x to 3 (RGB)")
    if not isinstance(data["ratio_policy"], str):
        raise BadCheckpoint(f"data ratio_policy {_brief(data['ratio_policy'])} is not text")
    try:
        amplification(100.0, data["ratio_policy"])
    except SidkitError:
        raise BadCheckpoint(f"data ratio_policy {_brief(data['ratio_policy'])} is not exif, cap:N or fixed:N") from None
    if "input_level" in data:     # optional: checkpoints from before `predict --ratio auto` lack it
        from .autoratio import check_stored
        try:
            check_stored(data["input_level"])
        except (ValueError, TypeError, KeyError) as exc:
            raise BadCheckpoint(f"data input_level {_brief(data['input_level'])} {exc}") from None


def check_weights(weights: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """The state_dict has exactly the network's keys, each a finite float tensor of its shape."""
    missing = [k for k in shapes if k not in weights]
    unknown = [k for k in weights if k not in shapes]
    if missing or unknown:
        what = f"lack {missing[0]!r} of" if missing else f"have {str(unknown[0])[:40]!r}, not in"
        raise BadCheckpoint(f"weights {what} the network the spec describes "
                            f"({len(missing)} missing, {len(unknown)} unexpected)")
    for key, shape in shapes.items():
        tensor = weights[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise BadCheckpoint(f"weight {key!r} is {_brief(tensor)}, not a float tensor")
        if tuple(tensor.shape) != shape:
            raise BadCheckpoint(f"weight {key!r} has shape {list(tensor.shape)}, the spec's network "
                                f"needs {list(shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise BadCheckpoint(f"weight {key!r} holds NaN or inf (a diverged run?)")


def check_optimizer(state: dict, shapes: list[tuple[int, ...]]) -> None:
    """Adam's state_dict: one parameter group over every weight, moments of each weight's shape."""
    groups, per_param = state.get("param_groups"), state.get("state")
    if not isinstance(groups, list) or len(groups) != 1 or not isinstance(groups[0], dict):
        raise BadCheckpoint("optimizer param_groups must be a list of one group (sidkit trains with one)")
    group = groups[0]
    params = group.get("params")
    if not isinstance(params, list) or not all(_is_int(p) for p in params) or \
            sorted(params) != list(range(len(shapes))):
        raise BadCheckpoint(f"optimizer group holds {_brief(params)}, not the network's {len(shapes)} parameters")
    for key in ("lr", "eps", "weight_decay"):
        if key in group and not (_is_number(group[key]) and math.isfinite(group[key]) and group[key] >= 0):
            raise BadCheckpoint(f"optimizer {key} {_brief(group[key])} is not a finite number >= 0")
    betas = group.get("betas", (0.9, 0.999))
    if not isinstance(betas, (list, tuple)) or len(betas) != 2 or \
            not all(_is_number(b) and 0 <= b < 1 for b in betas):
        raise BadCheckpoint(f"optimizer betas {_brief(betas)} are not two numbers in [0, 1)")
    if not isinstance(per_param, dict):
        raise BadCheckpoint(f"optimizer state is {_brief(per_param)}, not a dict")
    for index, moments in per_param.items():
        if not _is_int(index) or not 0 <= index < len(shapes) or not isinstance(moments, dict):
            raise BadCheckpoint(f"optimizer state entry {_brief(index)} is not one of the network's parameters")
        for name in ("exp_avg", "exp_avg_sq", "step"):
            if name not in moments:
                raise BadCheckpoint(f"optimizer state of parameter {index} lacks {name!r}")
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            value = moments.get(name)
            if name not in moments:
                continue
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shapes[index] or \
                    not value.is_floating_point():
                raise BadCheckpoint(f"optimizer {name} of parameter {index} is {_brief(value)}, "
                                    f"the weight is a float tensor of shape {list(shapes[index])}")
            if not bool(torch.isfinite(value).all()):
                raise BadCheckpoint(f"optimizer {name} of parameter {index} holds NaN or inf (a diverged run?)")
            if name != "exp_avg" and bool((value < 0).any()):
                raise BadCheckpoint(f"optimizer {name} of parameter {index} is negative somewhere "
                                    "(a mean of squares never is)")
        step = moments["step"]
        if isinstance(step, torch.Tensor) and step.numel() == 1:
            step = step.item()
        if not (_is_number(step) and 0 <= step <= MAX_COUNT):
            raise BadCheckpoint(f"optimizer step of parameter {index} is {_brief(step)}, "
                                f"not a count from 0 to {MAX_COUNT:,}")


def check_rng(rng: dict) -> None:
    """Every saved random state restores, tried on throwaway generators (the global ones untouched)."""
    for key in ("python", "numpy", "torch", "cuda"):
        if key not in rng:
            raise BadCheckpoint(f"rng lacks {key!r}")
    try:
        version, internal, gauss = rng["python"]
        random.Random().setstate((version, tuple(internal), gauss))
        kind, keys, pos, has_gauss, cached = rng["numpy"]
        np.random.RandomState().set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.Generator().set_state(rng["torch"])
    except Exception as exc:   # ValueError, TypeError, RuntimeError, OverflowError: all one answer
        raise BadCheckpoint(f"rng states do not restore ({type(exc).__name__})") from None
    if not isinstance(rng["cuda"], list) or not all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                                     for t in rng["cuda"]):
        raise BadCheckpoint("rng cuda must be a list of byte tensors")
    samplers = rng.get("samplers") or ([rng["sampler"]] if "sampler" in rng else None)
    if not isinstance(samplers, list) or not samplers:
        raise BadCheckpoint("rng lacks the sampler's state ('sampler' or 'samplers')")
    for state in samplers:
        try:
            torch.Generator().set_state(state)
        except Exception as exc:
            raise BadCheckpoint(f"rng sampler state does not restore ({type(exc).__name__})") from None


def check_counters(payload: dict) -> None:
    """epoch and step counts from 0 to MAX_COUNT; best finite; progress a dict of counts and finite
    numbers >= 0; schedule as the loop writes it."""
    for key in ("epoch", "step"):
        if not 0 <= payload[key] <= MAX_COUNT:
            raise BadCheckpoint(f"{key} {payload[key]} is not a count from 0 to {MAX_COUNT:,}")
    if payload["best"] is not None and not math.isfinite(payload["best"]):
        raise BadCheckpoint(f"best {payload['best']} is not a finite PSNR")
    progress = payload["progress"]
    for key, value in progress.items():
        kind = PROGRESS.get(key)
        if kind is None:
            raise BadCheckpoint(f"progress has {str(key)[:30]!r}, not one of {', '.join(PROGRESS)}")
        if not (_is_int(value) and 0 <= value <= MAX_COUNT if kind is int
                else _is_number(value) and 0 <= value < math.inf):
            raise BadCheckpoint(f"progress {key} = {_brief(value)} is not a "
                                f"{'count' if kind is int else 'finite number >= 0'}")
    schedule = payload["schedule"]
    if "lr" in schedule and not (_is_number(schedule["lr"]) and math.isfinite(schedule["lr"])):
        raise BadCheckpoint(f"schedule lr {_brief(schedule['lr'])} is not a number")


def check_tensors(payload: dict) -> None:
    """Every tensor anywhere in the payload dense (strided) and holding data (not on the meta device)."""
    todo, seen = [("", payload)], set()
    while todo:
        where, value = todo.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            if value.layout != torch.strided:
                raise BadCheckpoint(f"{where} is a {str(value.layout).removeprefix('torch.')} tensor; "
                                    "sidkit saves dense ones")
            if value.device.type == "meta":
                raise BadCheckpoint(f"{where} is a meta tensor (a shape without data)")
        elif isinstance(value, dict):
            todo += [(f"{where}.{key}".lstrip("."), item) for key, item in value.items()]
        elif isinstance(value, (list, tuple)):
            todo += [(f"{where}.{i}", item) for i, item in enumerate(value)]


def check_archive(path: str | os.PathLike) -> None:
    """The file is a zip (torch.save's format) whose members' declared sizes, checked before anything
    is inflated, fit in the file (torch stores them uncompressed) and in MAX_FILE_BYTES."""
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise BadCheckpoint(f"its {size:,} bytes are over the {MAX_FILE_BYTES:,} of the largest network "
                            "sidkit builds")
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise BadCheckpoint("not a zip archive as torch.save writes") from None
    if declared > size:
        raise BadCheckpoint(f"its members declare {declared:,} bytes in a {size:,}-byte file (torch stores "
                            "them uncompressed: a compressed or forged file)")


def check_payload(payload: Any) -> None:
    """BadCheckpoint with the first reason ``payload`` (from torch.load) is not a usable checkpoint."""
    if not isinstance(payload, dict) or "format" not in payload:
        raise BadCheckpoint("not a sidkit checkpoint (no 'format' key)")
    version = payload["format"]
    if not _is_int(version) or version < 1:
        raise BadCheckpoint(f"format {_brief(version)} is not a sidkit checkpoint version")
    if version > FORMAT_VERSION:
        raise BadCheckpoint(f"checkpoint format {version} is newer than this sidkit reads ({FORMAT_VERSION}); "
                            "upgrade sidkit")
    for key, kind in KEYS.items():
        if key not in payload:
            raise BadCheckpoint(f"no {key!r} key")
        if not isinstance(payload[key], kind) or (kind is int and isinstance(payload[key], bool)):
            raise BadCheckpoint(f"{key!r} is {_brief(payload[key])}, not the expected "
                                f"{getattr(kind, '__name__', 'number or None')}")
    check_tensors(payload)
    spec = check_spec(payload["spec"])
    check_data(payload["data"], spec)
    weights, parameters = meta_shapes(spec)
    check_weights(payload["model"], weights)
    check_optimizer(payload["optimizer"], parameters)
    check_rng(payload["rng"])
    check_counters(payload)
