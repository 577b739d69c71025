"""NAFNet raw-to-RGB: Chen, Chu, Zhang and Sun, "Simple Baselines for Image Restoration" (ECCV 2022),
following the authors' NAFNet_arch.py (github.com/megvii-research/NAFNet), packed raw in, RGB out.

A 3x3 conv takes the packed raw to ``width`` channels. Level ``i`` (0 = outermost) runs
``encoder_blocks[i]`` NAF blocks, keeps the result as the skip and halves the size with a 2x2
stride-2 conv that doubles the channels; ``middle_blocks`` run at the bottom. Going up, a 1x1 conv
and a 2x pixel shuffle halve the channels, skip ``i`` is added (not concatenated) and
``decoder_blocks[i]`` blocks follow. A NAF block has no activation function: LayerNorm, 1x1 conv to
2c, 3x3 depthwise conv, SimpleGate (the two halves multiplied), simplified channel attention, 1x1
conv, added back with a learnt per-channel scale that starts at 0; then LayerNorm, 1x1 conv to 2c,
SimpleGate, 1x1 conv, added back likewise. The defaults are the paper's SIDD NAFNet (width 32,
blocks 2, 2, 4, 8 / 12 / 2, 2, 2, 2).
For raw input, as the SID U-Net: no global residual (the paper adds its RGB input to the output);
the last 3x3 conv gives ``out_channels * upscale**2`` channels, pixel-shuffled by ``upscale``.
Dropout (0 in the paper) is left out. Inputs of any size: padded to a multiple of 2**levels
(edge replication) and cropped back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .spec import BadSpec, Family, Spec, pad_for, shuffle_to, whole, wholes

MAX_WIDTH = 512                # channels of level 0 (doubled per level; the paper's is 32 or 64)
MAX_LEVELS = 8
MAX_BLOCKS = 64                # NAF blocks at one level (the paper's GoPro model has 28)
MAX_TOTAL_BLOCKS = 256         # in the whole network (the paper's models have 36)


@dataclass(frozen=True)
class NAFNetSpec(Spec):
    family: ClassVar[str] = "nafnet"
    in_channels: int = 4
    out_channels: int = 3
    width: int = 32
    encoder_blocks: tuple[int, ...] = (2, 2, 4, 8)
    middle_blocks: int = 12
    decoder_blocks: tuple[int, ...] = (2, 2, 2, 2)
    upscale: int = 2                # 2 for Bayer input, 3 for X-Trans (9 channels)

    def __post_init__(self):
        for name in ("encoder_blocks", "decoder_blocks"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.encoder_blocks) != len(self.decoder_blocks) or min(
                self.encoder_blocks + self.decoder_blocks, default=0) < 0:
            raise ValueError(f"NAFNetSpec.encoder_blocks {self.encoder_blocks} and decoder_blocks "
                             f"{self.decoder_blocks} need one non-negative count per level each")

    @property
    def levels(self) -> int:
        return len(self.encoder_blocks)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel (the paper's), computed in float32."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float().permute(0, 2, 3, 1), x.shape[1:2], self.weight.float(), self.bias.float(), self.eps)
        return y.permute(0, 3, 1, 2).to(x.dtype)


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(c), LayerNorm2d(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.sca = nn.Conv2d(c, c, 1)                  # simplified channel attention: pool, 1x1 conv, multiply
        self.conv3 = nn.Conv2d(c, c, 1)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = simple_gate(self.conv2(self.conv1(self.norm1(x))))
        y = self.conv3(y * self.sca(F.adaptive_avg_pool2d(y, 1)))
        x = x + y * self.beta
        y = self.conv5(simple_gate(self.conv4(self.norm2(x))))
        return x + y * self.gamma


def _blocks(count: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels) for _ in range(count)))


class NAFNet(nn.Module):
    """NAFNet for packed raw input; see the module docstring for how a NAFNetSpec maps to layers."""

    def __init__(self, spec: NAFNetSpec):
        super().__init__()
        self.spec = spec
        ch = spec.width
        self.intro = nn.Conv2d(spec.in_channels, ch, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        for count in spec.encoder_blocks:
            self.encoders.append(_blocks(count, ch))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle = _blocks(spec.middle_blocks, ch)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for count in reversed(spec.decoder_blocks):
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(_blocks(count, ch))
        self.ending = nn.Conv2d(ch, spec.out_channels * spec.upscale ** 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.intro(pad_for(x, self.spec.levels))
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = decoder(up(x) + skip)
        return shuffle_to(self.ending(x), self.spec.upscale, size)


def check(data: dict) -> None:
    """BadSpec unless NAFNet's own fields are whole numbers within sane bounds."""
    whole("width", data["width"], 1, MAX_WIDTH)
    encoder = wholes("encoder_blocks", data["encoder_blocks"], 0, MAX_BLOCKS)
    if len(encoder) > MAX_LEVELS:
        raise BadSpec(f"spec encoder_blocks has {len(encoder)} levels; 0 to {MAX_LEVELS} are sane")
    if len(wholes("decoder_blocks", data["decoder_blocks"], 0, MAX_BLOCKS)) != len(encoder):
        raise BadSpec(f"spec decoder_blocks needs one count per level ({len(encoder)}), "
                      f"got {len(data['decoder_blocks'])}")
    total = sum(encoder) + sum(data["decoder_blocks"]) + whole("middle_blocks", data["middle_blocks"], 0, MAX_BLOCKS)
    if total > MAX_TOTAL_BLOCKS:
        raise BadSpec(f"spec has {total} NAF blocks in all; at most {MAX_TOTAL_BLOCKS} are sane")


PRESETS = {
    "nafnet": (NAFNetSpec(), "NAFNet as the paper's SIDD model (width 32, blocks 2-2-4-8 / 12 / 2-2-2-2)"),
    "nafnet-sid": (NAFNetSpec(encoder_blocks=(2, 2, 2, 2), middle_blocks=2),
                   "NAFNet at the SID U-Net's depth (width 32, 2 blocks per level and in the middle)"),
    "nafnet-small": (NAFNetSpec(width=16, encoder_blocks=(1, 1, 1, 1), middle_blocks=1, decoder_blocks=(1, 1, 1, 1)),
                     "a small NAFNet for CPUs (width 16, 1 block per level and in the middle)"),
}
FAMILY = Family("nafnet", NAFNetSpec, NAFNet, check, PRESETS,
                "NAFNet (Chen et al., ECCV 2022, 'Simple Baselines for Image Restoration'), packed raw in, RGB out")
