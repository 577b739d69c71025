"""Training pairs from a filled RawCache: random crops, flips and transposes, as the original SID.

An epoch is one pass over the split's scenes with a random short exposure per scene. Patch sizes
are in packed-input pixels (512 packed = 1024 output pixels for Bayer) and are clamped to the
image. ``PairDataset`` cuts from memmaps on the CPU; ``DevicePairs`` holds every array on the
device (when they fit) and cuts there with torch. Both draw their random numbers through the same
``plan`` from one torch.Generator, so a given generator state gives the same batch on either, and
both make the input with `rawpack.network_input`. Targets stay uint16 until the device.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from curate import cfa as sensor
from curate.common.errors import SidkitError
from curate.manifest import Manifest, black_levels

from . import rawpack
from .cache import RawCache


@dataclass(frozen=True)
class Crop:
    """One training patch: which pair, where (packed pixels), and how it is flipped."""
    scene: int
    short: int
    y: int
    x: int
    size: int
    flip_h: bool = False
    flip_v: bool = False
    transpose: bool = False


@dataclass
class Pair:
    packed: np.ndarray        # uint16 (C, h, w) raw counts, a memmap
    truth: np.ndarray         # uint16 (h*s, w*s, 3), a memmap
    black: np.ndarray         # float32 (C,)
    white: float
    amplification: float
    scale: int                # output pixels per packed pixel


class PairDataset:
    """The pairs of one manifest split, grouped by scene."""

    def __init__(self, manifest: Manifest, cache: RawCache, split: str = "train", policy: str = "cap:300",
                 patch: int = 512, patch_choices: list[int] | None = None):
        rows = manifest.rows[manifest.rows["split"] == split]
        if rows.empty:
            raise SidkitError(f"{manifest.name}: no pairs in split {split!r}; "
                              "assign splits with `curate split`")
        self.patch, self.patch_choices = patch, list(patch_choices or [])
        self.scene_ids = sorted(rows["scene_id"].unique())
        self.scenes: list[list[Pair]] = []
        truths: dict[str, np.ndarray] = {}   # one memmap per long exposure, shared by its shorts
        for scene_id in self.scene_ids:
            pairs = []
            for row in rows[rows["scene_id"] == scene_id].sort_values("pair_id").itertuples(index=False):
                black, white = black_levels(row.black_level), float(row.white_level)
                packed = cache.packed(manifest.resolve(row.short_path), row.short_sha256, row.cfa, black, white)
                if row.long_sha256 not in truths:
                    truths[row.long_sha256] = cache.truth(manifest.resolve(row.long_path), row.long_sha256)
                truth = truths[row.long_sha256]
                s = sensor.scale(row.cfa)
                if truth.shape[:2] != (packed.shape[1] * s, packed.shape[2] * s):
                    raise SidkitError(f"{row.long_path}: ground truth {truth.shape[1]}x{truth.shape[0]} does not "
                                      f"match the short's packed size x{s}; short and long must share a camera")
                pairs.append(Pair(packed, truth, sensor.black_packed(row.cfa, black), white,
                                  rawpack.amplification(row.ratio, policy), s))
            self.scenes.append(pairs)

    def __len__(self) -> int:
        return len(self.scenes)

    @property
    def smallest_side(self) -> int:
        """The shortest side (packed pixels) of any short: no crop is larger."""
        return min(min(p.packed.shape[1:]) for pairs in self.scenes for p in pairs)

    @property
    def nbytes(self) -> int:
        arrays = {id(a): a for pairs in self.scenes for p in pairs for a in (p.packed, p.truth)}
        return sum(a.nbytes for a in arrays.values())

    # --- random numbers: one place, shared by both cutters ------------------------------------
    def plan(self, scenes, patch: int | None, draw) -> list[Crop]:
        """Crops for ``scenes`` (a random short each); ``draw(n)`` returns an int in [0, n)."""
        patch = self._patch(patch, draw)
        shorts = [draw(len(self.scenes[s])) for s in scenes]
        pairs = [self.scenes[s][k] for s, k in zip(scenes, shorts)]
        size = min([patch] + [min(p.packed.shape[1:]) for p in pairs])
        crops = []
        for s, k, p in zip(scenes, shorts, pairs):
            h, w = p.packed.shape[1:]
            y, x = draw(h - size + 1), draw(w - size + 1)
            crops.append(Crop(s, k, y, x, size, bool(draw(2)), bool(draw(2)), bool(draw(2))))
        return crops

    def _patch(self, patch, draw) -> int:
        if patch is None and self.patch_choices:
            return self.patch_choices[draw(len(self.patch_choices))]
        return int(patch or self.patch)

    # --- CPU cutting from memmaps --------------------------------------------------------------
    def cut(self, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
        """One crop: (input (C,n,n) float32, target (sn,sn,3) uint16)."""
        inp, pixels = cut_pair(self.scenes[crop.scene][crop.short], crop)
        return inp, _rgb(_stack([pixels]))[0]

    def batch(self, scenes: list[int], patch: int | None, generator: torch.Generator, device="cpu") -> Batch:
        """One crop of each of ``scenes`` (a random short each), stacked and moved to ``device``."""
        crops = self.plan(scenes, patch, _torch_draw(generator))
        inputs, pixels = zip(*(cut_pair(self.scenes[c.scene][c.short], c) for c in crops))
        gains = [self.scenes[c.scene][c.short].amplification for c in crops]
        return Batch(*(torch.from_numpy(a).to(device) for a in (_stack(inputs), _rgb(_stack(pixels)))),
                     torch.tensor(gains, dtype=torch.float32).to(device))


class Batch(NamedTuple):
    """A training batch on the device: what `loop.to_network` turns into the network's (input, target)."""
    input: torch.Tensor     # float32 (N, C, n, n): `rawpack.network_input` of the short crops
    target: torch.Tensor    # uint16 (N, sn, sn, 3): the ground truth as stored, made float on the device
    gain: torch.Tensor      # float32 (N,): each crop's amplification


def cut_pair(p: Pair, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """(input (C,n,n) float32, from `rawpack.network_input`; target (sn,sn) 6-byte RGB pixels, a view).

    Flips and the transpose are views of the memmap; the input's float conversion is its one copy
    and the target is copied once, when the batch is stacked, as whole uint16 RGB pixels in their
    stored order (measured ~5x faster than gathering colour planes, 1.6x than uint16 triples)."""
    y, x, n, s = crop.y, crop.x, crop.size, p.scale
    counts = _augment(p.packed[:, y:y + n, x:x + n], crop)
    pixels = p.truth.view(_PIXEL)[y * s:(y + n) * s, x * s:(x + n) * s, 0]   # 6-byte RGB pixels move whole
    target = _augment(pixels, crop)
    return rawpack.network_input(counts, p.black, p.white, p.amplification), target


class DevicePairs:
    """The whole cached split on one device; crops, normalises and augments there with torch, so
    that a step never waits on the host (no copies from it, no synchronisation)."""

    def __init__(self, dataset: PairDataset, device, budget_bytes: int | None = None):
        self.dataset, self.device = dataset, torch.device(device)
        budget = default_budget(self.device) if budget_bytes is None else budget_bytes
        if not self.fits(dataset, budget):
            raise SidkitError(f"the cached split needs {dataset.nbytes / 2**30:.2f} GiB, more than the "
                              f"{budget / 2**30:.2f} GiB budget on {self.device}; use the memmap loader")
        on_device: dict[int, torch.Tensor] = {}   # one copy per array (a long is shared by its shorts)

        def put(array) -> torch.Tensor:
            if id(array) not in on_device:
                on_device[id(array)] = torch.from_numpy(np.array(array)).to(self.device)
            return on_device[id(array)]

        self.packed = [[put(p.packed) for p in pairs] for pairs in dataset.scenes]
        self.truth = [[put(p.truth) for p in pairs] for pairs in dataset.scenes]
        self.black = [[torch.from_numpy(p.black).to(self.device) for p in pairs] for pairs in dataset.scenes]
        self.gain = [[torch.tensor(p.amplification, dtype=torch.float32, device=self.device) for p in pairs]
                     for pairs in dataset.scenes]

    @staticmethod
    def fits(dataset: PairDataset, budget_bytes: int) -> bool:
        return dataset.nbytes <= budget_bytes

    def __len__(self) -> int:
        return len(self.dataset)

    def cut(self, crop: Crop) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.dataset.scenes[crop.scene][crop.short]
        y, x, n, s = crop.y, crop.x, crop.size, p.scale
        counts = _augment(self.packed[crop.scene][crop.short][:, y:y + n, x:x + n], crop)
        target = self.truth[crop.scene][crop.short][y * s:(y + n) * s, x * s:(x + n) * s]
        inp = rawpack.network_input(counts, self.black[crop.scene][crop.short], p.white, p.amplification)
        return inp, _augment(target, crop, rows=-3)

    def batch(self, scenes: list[int], patch: int | None, generator: torch.Generator, device=None) -> Batch:
        crops = self.dataset.plan(scenes, patch, _torch_draw(generator))
        inputs, targets = zip(*(self.cut(c) for c in crops))
        return Batch(torch.stack(inputs), torch.stack(targets),
                     torch.stack([self.gain[c.scene][c.short] for c in crops]))


def sampler(pairs: PairDataset, device) -> PairDataset | DevicePairs:
    """The split on ``device`` when it fits in half its free memory, else the memmaps on the host."""
    budget = default_budget(torch.device(device))
    return DevicePairs(pairs, device, budget) if DevicePairs.fits(pairs, budget) else pairs


def default_budget(device: torch.device) -> int:
    """Half the free memory of a CUDA device; 0 elsewhere (the memmaps already are in host memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return 0


_PIXEL = np.dtype((np.void, 6))   # one uint16 RGB pixel


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """Contiguous 6-byte pixels (..., w) as uint16 (..., w, 3), no copy."""
    return pixels.view(np.uint16).reshape(pixels.shape + (3,))


def _torch_draw(generator: torch.Generator):
    return lambda n: int(torch.randint(n, (1,), generator=generator))


def _stack(arrays) -> np.ndarray:
    """One contiguous writable (N, ...) array; a single such array is not copied again."""
    if len(arrays) == 1 and arrays[0].flags.c_contiguous and arrays[0].flags.writeable:
        return arrays[0][None]
    out = np.empty((len(arrays),) + arrays[0].shape, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def _augment(a, crop: Crop, rows: int = -2):
    """Flips and transpose of the axes ``rows`` and ``rows + 1`` (columns): views in numpy; torch,
    which has no negative strides, copies once (uint16 flips run on the int16 view of the bits)."""
    cols = rows + 1
    if isinstance(a, np.ndarray):
        index = [slice(None)] * a.ndim
        index[rows] = slice(None, None, -1 if crop.flip_v else 1)
        index[cols] = slice(None, None, -1 if crop.flip_h else 1)
        a = a[tuple(index)]
        return a.swapaxes(rows, cols) if crop.transpose else a
    bits = a.view(torch.int16) if a.dtype == torch.uint16 else a
    dims = [d for d, flip in ((cols, crop.flip_h), (rows, crop.flip_v)) if flip]
    if dims:
        bits = bits.flip(dims)
    a = bits.view(a.dtype)
    return a.transpose(rows, cols) if crop.transpose else a
