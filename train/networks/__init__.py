"""The network families, by name, and what everyone else calls: build a network from its spec, read
a spec from a checkpoint's or config's dict (checked), resolve an `--arch` preset with overrides,
count parameters and shapes on the meta device (nothing allocated).

A family is one module (its spec dataclass, its nn.Module, its checks and presets, as ``FAMILY``)
plus its line in FAMILIES below; presets of every family share one namespace (`train presets`).
"""
from __future__ import annotations

from dataclasses import fields
from functools import lru_cache

import torch
from torch import nn

from . import nafnet, unet
from .spec import BadSpec, Family, Spec, brief, check_shared

FAMILIES: dict[str, Family] = {family.name: family for family in (unet.FAMILY, nafnet.FAMILY)}
DEFAULT_FAMILY = "unet"        # a spec without 'family' (checkpoints from before families) is a U-Net
DEFAULT_ARCH = "sid"
PRESETS: dict[str, Spec] = {name: spec for family in FAMILIES.values() for name, (spec, _) in family.presets.items()}
PRESET_HELP: dict[str, str] = {name: text for family in FAMILIES.values()
                               for name, (_, text) in family.presets.items()}
if len(PRESETS) != sum(len(family.presets) for family in FAMILIES.values()):
    raise RuntimeError("two network families register the same preset name")

__all__ = ["BadSpec", "DEFAULT_ARCH", "FAMILIES", "PRESETS", "PRESET_HELP", "Spec", "build_model",
           "count_parameters", "meta_shapes", "parameter_count", "preset", "spec_from_dict"]


def build_model(spec: Spec) -> nn.Module:
    """The network ``spec`` describes, built by its family."""
    return FAMILIES[spec.family].network(spec)


def spec_from_dict(data: dict) -> Spec:
    """The spec ``data`` describes (a checkpoint's 'spec'), checked before anything is built: a known
    family ('unet' when it names none), exactly its fields, each of its type within bounds; BadSpec
    ('spec ...') naming the first thing wrong."""
    name = data.get("family", DEFAULT_FAMILY)
    if not isinstance(name, str) or name not in FAMILIES:
        raise BadSpec(f"spec family {brief(name)} is not one of {', '.join(FAMILIES)}")
    family = FAMILIES[name]
    names = [f.name for f in fields(family.spec)]
    unknown = sorted(set(map(str, data)) - set(names) - {"family"})
    missing = [n for n in names if n not in data]
    if unknown or missing:
        raise BadSpec(f"spec has unknown key {unknown[0]!r}" if unknown else f"spec lacks {missing[0]!r}")
    check_shared(data)
    family.check(data)
    try:
        return family.spec.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise BadSpec(f"spec does not make a {name} network ({exc})") from None


def preset(arch: str, overrides: dict | None = None, **fitted) -> Spec:
    """The spec of preset ``arch`` with ``overrides`` (a config's [spec] table) and ``fitted``
    (in_channels, upscale of the data) over it; KeyError for an unknown preset, TypeError or
    ValueError when the overrides do not make a network of its family (bounds unchecked)."""
    base = PRESETS[arch]
    merged = {**base.to_dict(), **(overrides or {}), **fitted}
    if merged["family"] != base.family:
        raise ValueError(f"arch {arch!r} is a {base.family} network, not {brief(merged['family'])}; "
                         "choose a preset of that family instead")
    return type(base).from_dict(merged)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@lru_cache(maxsize=64)
def _on_meta(spec: Spec) -> tuple[int, tuple[tuple[str, tuple[int, ...]], ...], tuple[tuple[int, ...], ...]]:
    with torch.device("meta"):
        model = build_model(spec)
    return (count_parameters(model), tuple((k, tuple(v.shape)) for k, v in model.state_dict().items()),
            tuple(tuple(p.shape) for p in model.parameters()))


def parameter_count(spec: Spec) -> int:
    """The parameters of the network ``spec`` describes, built on the meta device (no memory)."""
    return _on_meta(spec)[0]


def meta_shapes(spec: Spec) -> tuple[dict[str, tuple[int, ...]], list[tuple[int, ...]]]:
    """The network ``spec`` describes, on the meta device: state_dict key -> shape, and the shapes of
    its parameters in optimiser order."""
    _, state, parameters = _on_meta(spec)
    return dict(state), list(parameters)
