"""Training pairs from a filled RawCache: random crops, flips and transposes, as the original SID.

An epoch is one pass over the split's scenes with a random short exposure per scene. Patch sizes
are in packed-input pixels (512 packed = 1024 output pixels for Bayer) and are clamped to the
image. ``PairDataset`` cuts from memmaps on the CPU; ``DevicePairs`` holds every array on the
device (when they fit) and cuts there with torch. Both draw their random numbers through the same
``plan`` from one torch.Generator, so a given generator state gives the same batch on either.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.errors import SidkitError
from curate.manifest import black_levels, resolve

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

    def __init__(self, manifest, cache: RawCache, split: str = "train", policy: str = "cap:300",
                 patch: int = 512, patch_choices: list[int] | None = None):
        rows = manifest[manifest["split"] == split]
        if rows.empty:
            raise SidkitError(f"{manifest.attrs.get('path', 'the manifest')}: no pairs in split {split!r}; "
                              "assign splits with `curate split`")
        self.patch, self.patch_choices = patch, list(patch_choices or [])
        self.scene_ids = sorted(rows["scene_id"].unique())
        self.scenes: list[list[Pair]] = []
        truths: dict[str, np.ndarray] = {}   # one memmap per long exposure, shared by its shorts
        for scene_id in self.scene_ids:
            pairs = []
            for row in rows[rows["scene_id"] == scene_id].sort_values("pair_id").itertuples(index=False):
                black, white = black_levels(row.black_level), float(row.white_level)
                packed = cache.packed(resolve(manifest, row.short_path), row.short_sha256, row.cfa, black, white)
                if row.long_sha256 not in truths:
                    truths[row.long_sha256] = cache.truth(resolve(manifest, row.long_path), row.long_sha256)
                truth = truths[row.long_sha256]
                s = rawpack.scale(row.cfa)
                if truth.shape[:2] != (packed.shape[1] * s, packed.shape[2] * s):
                    raise SidkitError(f"{row.long_path}: ground truth {truth.shape[1]}x{truth.shape[0]} does not "
                                      f"match the short's packed size x{s}; short and long must share a camera")
                pairs.append(Pair(packed, truth, rawpack.black_packed(row.cfa, black), white,
                                  rawpack.amplification(row.ratio, policy), s))
            self.scenes.append(pairs)

    def __len__(self) -> int:
        return len(self.scenes)

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
        return cut_pair(self.scenes[crop.scene][crop.short], crop)

    def sample(self, rng: np.random.Generator, scene: int | None = None, patch: int | None = None):
        """One (input, target) pair of numpy arrays from a random (or given) scene."""
        draw = lambda n: int(rng.integers(n))
        scene = draw(len(self.scenes)) if scene is None else scene
        return self.cut(self.plan([scene], patch, draw)[0])

    def batch(self, batch_size: int, patch: int | None, generator: torch.Generator, device="cpu",
              scenes=None):
        """(x NCHW, y NCHW) float32 on ``device``; scenes drawn at random unless given."""
        draw = _torch_draw(generator)
        if scenes is None:
            scenes = [draw(len(self.scenes)) for _ in range(batch_size)]
        cuts = [self.cut(c) for c in self.plan(scenes, patch, draw)]
        return tuple(torch.from_numpy(np.stack(a)).to(device) for a in zip(*cuts))

    def epoch(self, batch_size: int, generator: torch.Generator, patch: int | None = None, device="cpu"):
        """Batches over one random permutation of the scenes (the last one may be smaller)."""
        yield from _epoch(self, batch_size, generator, patch, device)


def cut_pair(p: Pair, crop: Crop) -> tuple[np.ndarray, np.ndarray]:
    """(input (C,n,n) float32 normalised x amplification, clipped at 1; target (3,sn,sn) in [0,1])."""
    y, x, n, s = crop.y, crop.x, crop.size, p.scale
    inp = rawpack.normalise(p.packed[:, y:y + n, x:x + n], p.black, p.white) * np.float32(p.amplification)
    np.minimum(inp, 1.0, out=inp)
    target = p.truth[y * s:(y + n) * s, x * s:(x + n) * s].astype(np.float32).transpose(2, 0, 1) / 65535
    return _augment_np(inp, crop), _augment_np(target, crop)


class DevicePairs:
    """The whole cached split on one device; crops, normalises and augments there with torch."""

    def __init__(self, dataset: PairDataset, device, budget_bytes: int | None = None):
        self.dataset, self.device = dataset, torch.device(device)
        budget = default_budget(self.device) if budget_bytes is None else budget_bytes
        if not self.fits(dataset, budget):
            raise SidkitError(f"the cached split needs {dataset.nbytes / 2**30:.2f} GiB, more than the "
                              f"{budget / 2**30:.2f} GiB budget on {self.device}; use the memmap loader")
        self.packed = [[torch.from_numpy(np.array(p.packed)).to(self.device) for p in pairs]
                       for pairs in dataset.scenes]
        truths: dict[int, torch.Tensor] = {}   # one copy per long exposure, shared by its shorts
        for p in (p for pairs in dataset.scenes for p in pairs):
            if id(p.truth) not in truths:
                truths[id(p.truth)] = torch.from_numpy(np.array(p.truth)).to(self.device)
        self.truth = [[truths[id(p.truth)] for p in pairs] for pairs in dataset.scenes]
        self.black = [[torch.from_numpy(p.black).to(self.device).view(-1, 1, 1) for p in pairs]
                      for pairs in dataset.scenes]

    @staticmethod
    def fits(dataset: PairDataset, budget_bytes: int) -> bool:
        return dataset.nbytes <= budget_bytes

    def __len__(self) -> int:
        return len(self.dataset)

    def cut(self, crop: Crop) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.dataset.scenes[crop.scene][crop.short]
        y, x, n, s = crop.y, crop.x, crop.size, p.scale
        packed = self.packed[crop.scene][crop.short][:, y:y + n, x:x + n].float()
        black = self.black[crop.scene][crop.short]
        inp = ((packed - black) / (p.white - black)).clamp_(0.0, 1.0) * np.float32(p.amplification)
        inp = inp.clamp_(max=1.0)
        target = self.truth[crop.scene][crop.short][y * s:(y + n) * s, x * s:(x + n) * s].float()
        target = target.permute(2, 0, 1) / 65535
        return _augment_torch(inp, crop), _augment_torch(target, crop)

    def batch(self, batch_size: int, patch: int | None, generator: torch.Generator, device=None,
              scenes=None):
        draw = _torch_draw(generator)
        if scenes is None:
            scenes = [draw(len(self.dataset)) for _ in range(batch_size)]
        cuts = [self.cut(c) for c in self.dataset.plan(scenes, patch, draw)]
        return tuple(torch.stack(a) for a in zip(*cuts))

    def epoch(self, batch_size: int, generator: torch.Generator, patch: int | None = None, device=None):
        yield from _epoch(self, batch_size, generator, patch, device)


def default_budget(device: torch.device) -> int:
    """Half the free memory of a CUDA device; 0 elsewhere (the memmaps already are in host memory)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    return 0


def _torch_draw(generator: torch.Generator):
    return lambda n: int(torch.randint(n, (1,), generator=generator))


def _epoch(source, batch_size, generator, patch, device):
    order = torch.randperm(len(source), generator=generator).tolist()
    for start in range(0, len(order), batch_size):
        yield source.batch(batch_size, patch, generator, device, scenes=order[start:start + batch_size])


def _augment_np(a: np.ndarray, crop: Crop) -> np.ndarray:
    if crop.flip_h:
        a = a[..., ::-1]
    if crop.flip_v:
        a = a[..., ::-1, :]
    if crop.transpose:
        a = a.swapaxes(-1, -2)
    return np.ascontiguousarray(a)


def _augment_torch(t: torch.Tensor, crop: Crop) -> torch.Tensor:
    if crop.flip_h:
        t = t.flip(-1)
    if crop.flip_v:
        t = t.flip(-2)
    if crop.transpose:
        t = t.transpose(-1, -2)
    return t.contiguous()
