"""The SID U-Net, built from a spec so that ablations are configs, not code edits.

Level ``i`` (0 = outermost) runs ``encoder_convs[i]`` 3x3 convs at ``widths[i]`` channels, keeps the
result as the skip and max-pools 2x2; the bottleneck runs ``bottleneck_convs`` convs at
``widths[-1]``. Going up, a 2x2 transposed conv to ``widths[i]`` channels is concatenated with skip
``i`` and followed by ``decoder_convs[i]`` convs. A level with 0 convs passes its input through.
A final 1x1 conv gives ``out_channels * upscale**2`` channels, pixel-shuffled by ``upscale``.
Inputs of any size work: forward pads to a multiple of 2**levels (edge replication) and crops back.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .spec import BadSpec, Family, Spec, brief, pad_for, shuffle_to, whole, wholes

MAX_WIDTH = 4096               # channels of one level (the paper's widest is 512)
MAX_LEVELS = 8                 # poolings (the paper's U-Net has 4)
MAX_CONVS = 16                 # convs in one block (the paper's have 2)
MAX_SLOPE = 1.0                # LeakyReLU negative slope: 0 to 1 (the paper's 0.2)


@dataclass(frozen=True)
class UNetSpec(Spec):
    family: ClassVar[str] = "unet"
    in_channels: int = 4
    out_channels: int = 3
    widths: tuple[int, ...] = (32, 64, 128, 256, 512)
    encoder_convs: tuple[int, ...] = (2, 2, 2, 2)
    decoder_convs: tuple[int, ...] = (2, 2, 2, 2)
    bottleneck_convs: int = 2
    slope: float = 0.2
    upscale: int = 2                # 2 for Bayer input, 3 for X-Trans (9 channels)

    def __post_init__(self):
        levels = len(self.widths) - 1
        for name in ("encoder_convs", "decoder_convs"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != levels or min(value, default=0) < 0:
                raise ValueError(f"UNetSpec.{name} needs {levels} non-negative counts, got {value}")
        object.__setattr__(self, "widths", tuple(self.widths))

    @property
    def levels(self) -> int:
        return len(self.widths) - 1


def _drop(convs: tuple[int, ...], levels) -> tuple[int, ...]:
    return tuple(0 if i in levels else n for i, n in enumerate(convs))


def _ablation(levels) -> UNetSpec:
    d = UNetSpec()
    return replace(d, encoder_convs=_drop(d.encoder_convs, levels), decoder_convs=_drop(d.decoder_convs, levels))


PRESETS: dict[str, UNetSpec] = {
    "sid": UNetSpec(),
    **{f"outside-in-{k}": _ablation(range(k)) for k in range(1, 5)},
    **{f"inside-out-{k}": _ablation(range(4 - k, 4)) for k in range(1, 5)},
    "no-middle": replace(UNetSpec(), bottleneck_convs=0),
    "extra-conv": UNetSpec(encoder_convs=(3, 3, 3, 3), decoder_convs=(3, 3, 3, 3), bottleneck_convs=3),
    "single-layer": UNetSpec(encoder_convs=(1, 1, 1, 1), decoder_convs=(1, 1, 1, 1), bottleneck_convs=1),
}
PRESET_HELP: dict[str, str] = {
    "sid": "the paper's U-Net: 2 convs per level, widths 32-512, 7,760,748 parameters",
    **{f"outside-in-{k}": f"conv pairs of the {k} outermost level(s) removed (encoder and decoder)"
       for k in range(1, 5)},
    **{f"inside-out-{k}": f"conv pairs of the {k} innermost level(s) above the bottleneck removed "
       "(encoder and decoder)" for k in range(1, 5)},
    "no-middle": "the bottleneck pair (g_conv5) removed",
    "extra-conv": "one more conv in every pair (3 per level and in the bottleneck)",
    "single-layer": "one conv per level and in the bottleneck instead of a pair",
}


def _convs(count: int, in_ch: int, out_ch: int, slope: float) -> tuple[nn.Sequential, int]:
    layers = []
    for _ in range(count):
        layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.LeakyReLU(slope)]
        in_ch = out_ch
    return nn.Sequential(*layers), in_ch


class UNet(nn.Module):
    """SID U-Net; see the module docstring for how a UNetSpec maps to layers."""

    def __init__(self, spec: UNetSpec):
        super().__init__()
        self.spec = spec
        self.encoders, self.ups, self.decoders = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        skips, ch = [], spec.in_channels
        for count, width in zip(spec.encoder_convs, spec.widths):
            block, ch = _convs(count, ch, width, spec.slope)
            self.encoders.append(block)
            skips.append(ch)
        self.bottleneck, ch = _convs(spec.bottleneck_convs, ch, spec.widths[-1], spec.slope)
        for i in reversed(range(spec.levels)):
            self.ups.append(nn.ConvTranspose2d(ch, spec.widths[i], 2, stride=2))
            block, ch = _convs(spec.decoder_convs[i], spec.widths[i] + skips[i], spec.widths[i], spec.slope)
            self.decoders.append(block)
        self.head = nn.Conv2d(ch, spec.out_channels * spec.upscale ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x, skips = pad_for(x, self.spec.levels), []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(torch.cat([up(x), skip], dim=1))
        return shuffle_to(self.head(x), self.spec.upscale, size)


def check(data: dict) -> None:
    """BadSpec unless the U-Net's own fields are whole numbers (slope a number) within sane bounds."""
    widths = wholes("widths", data["widths"], 1, MAX_WIDTH)
    if not 1 <= len(widths) <= MAX_LEVELS + 1:
        raise BadSpec(f"spec widths has {len(widths)} levels; 1 to {MAX_LEVELS + 1} are sane")
    for name in ("encoder_convs", "decoder_convs"):
        if len(wholes(name, data[name], 0, MAX_CONVS)) != len(widths) - 1:
            raise BadSpec(f"spec {name} needs one count per level ({len(widths) - 1}), got {len(data[name])}")
    whole("bottleneck_convs", data["bottleneck_convs"], 0, MAX_CONVS)
    slope = data["slope"]
    if not isinstance(slope, (int, float)) or isinstance(slope, bool) or not 0 <= slope <= MAX_SLOPE:
        raise BadSpec(f"spec slope (LeakyReLU's) must be a number from 0 to {MAX_SLOPE:g}, not {brief(slope)}")


FAMILY = Family("unet", UNetSpec, UNet, check, {name: (spec, PRESET_HELP[name]) for name, spec in PRESETS.items()},
                "the SID U-Net (Chen et al., CVPR 2018) and its ablations")
