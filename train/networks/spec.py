"""What every network family shares: its registration record (Family), the base of its spec
dataclass (a plain-types round trip that names the family), and the checks of a spec read from a
checkpoint or a config, made before anything is built.

A spec has ``in_channels``, ``out_channels``, ``upscale`` (2 Bayer, 3 X-Trans) and ``levels``
(the network pads its input to a multiple of 2**levels; tiled evaluation cuts on that grid).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

MAX_IO_CHANNELS = 64           # network input channels (4 Bayer, 9 X-Trans) and output
MAX_UPSCALE = 8


class BadSpec(ValueError):
    """One reason a spec dict does not describe a network this sidkit builds ('spec ...')."""


class Spec:
    """Base of a family's frozen spec dataclass."""

    family: ClassVar[str]

    def to_dict(self) -> dict:
        """'family' and the fields as plain types (lists, ints, floats): safe in a weights_only checkpoint."""
        return {"family": self.family, **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: dict):
        """The spec of ``data`` (lists as tuples; 'family', when present, must be this one)."""
        data = dict(data)
        family = data.pop("family", cls.family)
        if family != cls.family:
            raise ValueError(f"spec family {family!r} is not {cls.family!r}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True)
class Family:
    """One network family as the registry (train/networks/__init__.py) knows it."""

    name: str                                    # the spec's 'family'
    spec: type                                   # its frozen Spec dataclass
    network: Callable[[Any], nn.Module]          # spec -> module
    check: Callable[[dict], None]                # its own fields' types and bounds, BadSpec if wrong
    presets: dict[str, tuple[Any, str]]          # `--arch` name -> (spec, one line of help)
    description: str                             # one line: what it is and what it follows


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def brief(value) -> str:
    """``value`` shown in at most 40 characters (a tensor as its shape)."""
    text = repr(value) if not isinstance(value, torch.Tensor) else f"a tensor of shape {list(value.shape)}"
    return text if len(text) <= 40 else text[:37] + "..."


def whole(name: str, value, low: int, high: int) -> int:
    if not is_int(value) or not low <= value <= high:
        raise BadSpec(f"spec {name} must be a whole number from {low} to {high}, not {brief(value)}")
    return value


def wholes(name: str, value, low: int, high: int) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(is_int(v) for v in value):
        raise BadSpec(f"spec {name} must be a list of whole numbers, not {brief(value)}")
    if any(not low <= v <= high for v in value):
        raise BadSpec(f"spec {name} {list(value)} outside {low}-{high}")
    return list(value)


def check_shared(data: dict) -> None:
    """The fields every family has: channels in and out, and the pixel-shuffle factor."""
    whole("in_channels", data["in_channels"], 1, MAX_IO_CHANNELS)
    whole("out_channels", data["out_channels"], 1, MAX_IO_CHANNELS)
    whole("upscale", data["upscale"], 1, MAX_UPSCALE)


def pad_for(x: torch.Tensor, levels: int) -> torch.Tensor:
    """``x`` padded at the bottom and right (edge replication) to a multiple of 2**levels."""
    m = 2 ** levels
    pad_h, pad_w = -x.shape[-2] % m, -x.shape[-1] % m
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x


def shuffle_to(x: torch.Tensor, upscale: int, size: tuple[int, int]) -> torch.Tensor:
    """``x`` pixel-shuffled by ``upscale`` and cropped to ``size`` (the input's h, w) times ``upscale``."""
    h, w = size
    return F.pixel_shuffle(x, upscale)[..., : h * upscale, : w * upscale]
