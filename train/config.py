"""The run configuration: every setting of `train run` with its default, in one visible place.

Precedence: defaults < `--config run.toml` < command-line flags. The resolved config (no None
left where a default depends on the machine) is saved as `config.toml` beside the outputs.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from curate.common.atomic import atomic_write
from curate.common.errors import SidkitError

from .cache import default_cache_dir
from .rawpack import amplification

AMP_MODES = ("bf16", "off")
NUMBERS = {"epochs": int, "lr": float, "patch": int, "batch": int, "seed": int, "eval_every": int,
           "save_every": int, "log_every": int, "num_workers": int}
DEVICES = ("cuda", "cpu")


@dataclass
class RunConfig:
    manifest: str = ""
    epochs: int = 4000                  # one epoch = one pass over the training scenes
    lr: float = 1e-4
    lr_steps: list[tuple[int, float]] = field(default_factory=lambda: [(2000, 1e-5)])  # (epoch, lr)
    patch: int = 512                    # crop side in packed pixels (output: 2x for Bayer, 3x X-Trans)
    patch_choices: list[int] | None = None  # a random side per step from these, instead of `patch`
    batch: int = 1
    arch: str = "sid"                   # a preset of any network family (train.networks.PRESETS, `train presets`)
    spec: dict[str, Any] = field(default_factory=dict)  # fields of the preset's spec overriding it
    ratio_policy: str = "cap:300"       # 'exif', 'cap:N' or 'fixed:N'
    device: str | None = None           # None: 'cuda' when available, else 'cpu'
    amp: str | None = None              # None: 'bf16' on cuda and native-bf16 CPUs, else 'off'
    channels_last: bool | None = None   # NHWC layout; None: by the device (default_channels_last)
    compile: bool = False               # torch.compile the model
    out: str | None = None              # None: runs/<manifest stem>
    seed: int = 0
    eval_every: int = 200               # epochs between evaluations (and at the last epoch)
    save_every: int = 50                # epochs between writes of checkpoints/last.pt
    log_every: int = 10                 # steps between TensorBoard loss points (each one waits for the device)
    num_workers: int = 0                # threads decoding raws into the cache (0: one per CPU core)
    cache_dir: str | None = None        # None: <user cache>/raw (train.cache.default_cache_dir)
    synthetic: str | None = None        # a noise profile (curate noise-profile): synthetic shorts from longs
    synthetic_fraction: float | None = None  # share of steps with synthetic shorts; None: 1.0 for longs only, else 0.5
    synthetic_ratio: str | None = None  # ratios of synthetic shorts, LOW:HIGH; None: the manifest's (longs only: 100:300)
    synthetic_iso: str | None = None    # ISOs of synthetic shorts, LOW:HIGH; None: the manifest's shorts' (longs only:
                                        # the profile's ISOs nearest the longs')

    def resolved(self, df=None, profile=None) -> RunConfig:
        """A copy with every machine-dependent default filled in and every value checked; ``df`` and
        ``profile`` are the manifest and noise profile already read (else read here when needed)."""
        if not self.manifest:
            raise SidkitError("run config: no manifest given; pass MANIFEST or set manifest = '...'")
        device = pick_device(self.device)
        if not self.lr > 0 or any(not v > 0 for _, v in self.lr_steps):
            raise SidkitError(f"run config: learning rates must be positive (lr {self.lr:g}, "
                              f"lr_steps {self.lr_steps}); e.g. --lr 1e-4 --lr-steps 2000:1e-5")
        amp = self.amp or default_amp(device)
        if amp not in AMP_MODES:
            raise SidkitError(f"run config: amp {amp!r} is not one of {', '.join(AMP_MODES)}")
        manifest = Path(self.manifest)
        out = self.out or default_out(manifest)
        cache_dir = str(Path(self.cache_dir).expanduser()) if self.cache_dir else str(default_cache_dir())
        numbers = {}
        for name, kind in NUMBERS.items():
            try:
                numbers[name] = kind(getattr(self, name))
            except (TypeError, ValueError):
                raise SidkitError(f"run config: {name} = {getattr(self, name)!r} is not a number") from None
        for name in ("epochs", "patch", "batch", "eval_every", "save_every", "log_every"):
            if numbers[name] < 1:
                raise SidkitError(f"run config: {name} must be at least 1, not {numbers[name]}")
        if self.patch_choices is not None and (not self.patch_choices or min(self.patch_choices) < 1):
            raise SidkitError(f"run config: patch_choices {self.patch_choices!r} must be positive sizes")
        amplification(1.0, self.ratio_policy)  # SidkitError for an unknown policy
        synthetic = _check_synthetic(self, df, profile) if self.synthetic else {}
        _check_network(self.arch, self.spec)
        return dataclasses.replace(
            self, **numbers, device=device, amp=amp, out=out, cache_dir=cache_dir, compile=bool(self.compile),
            channels_last=default_channels_last(device) if self.channels_last is None else bool(self.channels_last),
            lr_steps=sorted((int(e), float(v)) for e, v in self.lr_steps),
            patch_choices=None if self.patch_choices is None else sorted(int(p) for p in self.patch_choices),
            spec=dict(self.spec), **synthetic)

    def to_dict(self) -> dict[str, Any]:
        """Plain TOML-ready types; None values are left out (TOML has no null)."""
        data = dataclasses.asdict(self)
        data["lr_steps"] = [[e, v] for e, v in self.lr_steps]
        return {k: v for k, v in data.items() if v is not None}

    def save(self, path: str | os.PathLike) -> Path:
        with atomic_write(path, "wb") as handle:
            tomli_w.dump(self.to_dict(), handle)
        return Path(path)


FIELDS = {f.name for f in dataclasses.fields(RunConfig)}


def _check_synthetic(config: RunConfig, df=None, profile=None) -> dict[str, Any]:
    """The synthetic settings checked (the profile readable), the fraction's default filled in, the
    profile's path made absolute (config.toml's, so that --resume and `train eval` find it from any
    folder). ``df`` and ``profile``: the manifest and profile when the caller has read them."""
    from curate.manifest import is_longs_only, read_manifest
    from curate.noiseprofile import read_profile

    from .synthetic import data_ranges, parse_iso_range, parse_ratio_range

    profile = profile or read_profile(config.synthetic)
    df = read_manifest(config.manifest).rows if df is None else df
    default_iso, default_ratio = data_ranges(df, profile)
    low, high = parse_ratio_range(config.synthetic_ratio or default_ratio)
    iso_low, iso_high = parse_iso_range(config.synthetic_iso or default_iso)
    fraction = config.synthetic_fraction
    if fraction is None:
        fraction = 1.0 if is_longs_only(df) else 0.5
    if not 0 <= float(fraction) <= 1:
        raise SidkitError(f"run config: synthetic_fraction {fraction!r} must be from 0 to 1")
    return {"synthetic": str(Path(config.synthetic).expanduser().resolve()), "synthetic_fraction": float(fraction),
            "synthetic_ratio": f"{low:g}:{high:g}", "synthetic_iso": f"{iso_low:g}:{iso_high:g}"}


def _check_network(arch: str, spec: dict) -> None:
    """SidkitError unless ``arch`` is a preset (of any family) and ``spec`` valid overrides of its fields."""
    from .networks import PRESETS, preset

    if arch not in PRESETS:
        raise SidkitError(f"run config: unknown arch {arch!r}; `train presets` lists: {', '.join(PRESETS)}")
    from .checkpoint_checks import BadCheckpoint, check_spec

    try:
        merged = preset(arch, spec).to_dict()
    except (TypeError, ValueError) as exc:
        raise SidkitError(f"run config: spec {spec!r} does not make a network ({exc})") from None
    try:
        check_spec(merged)            # the checkpoint's own bounds: a run never writes what eval refuses
    except BadCheckpoint as exc:
        raise SidkitError(f"run config: {exc}; change the spec (`train presets` shows the paper's)") from None


def check_device(device: str) -> str:
    """``device`` if it names a device this machine has; a one-line SidkitError otherwise."""
    if device not in DEVICES:
        raise SidkitError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise SidkitError("device cuda: no CUDA GPU is visible to this torch build; use --device cpu "
                              "(or install a CUDA build of torch)")
    return device


def pick_device(device: str | None = None) -> str:
    """``device`` checked, or the default: 'cuda' when available, else 'cpu' (run, eval and predict)."""
    if device is None:
        import torch
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return check_device(device)


def cpu_isa() -> str:
    """The vector instruction set torch's CPU kernels dispatch to: 'AVX512', 'AVX2', 'DEFAULT' (or what
    ATEN_CPU_CAPABILITY caps it at; with ONEDNN_MAX_CPU_ISA, how an AVX2-only CPU is tried on a newer one)."""
    import torch
    return torch.backends.cpu.get_cpu_capability()


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX, with AVX-512 kernels in use), where
    bf16 convolutions are fast."""
    return cpu_isa() == "AVX512" and bool(_bf16_units())


def _bf16_units() -> list[str]:
    import torch
    cpu = getattr(torch, "cpu", None)
    return [label for label, probe in (("AVX512-BF16", "_is_avx512_bf16_supported"), ("AMX", "_is_amx_tile_supported"))
            if bool(getattr(cpu, probe, lambda: False)())]


def default_channels_last(device: str) -> bool:
    """NHWC (channels_last) on CUDA and on CPUs with AVX-512 kernels, where it is measured faster (a
    float32 step 1.2x); NCHW elsewhere: on AVX2 kernels NHWC made the step 1.2x slower (docs/train.md)."""
    return not device.startswith("cpu") or cpu_isa() == "AVX512"


def cpu_description() -> str:
    """'Intel(R) Xeon(R) Processor, AVX512 with native bf16 (AVX512-BF16, AMX)': the CPU's name and the
    vector instruction set torch dispatches to, for the figures that depend on it."""
    import platform

    name = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        pass
    isa, units = cpu_isa(), _bf16_units()
    if units and isa != "AVX512":
        return f"{name or 'unknown CPU'}, {isa} (kernels capped below the CPU's {', '.join(units)})"
    return f"{name or 'unknown CPU'}, {isa}" + (f" with native bf16 ({', '.join(units)})" if units else
                                                 ", no native bf16")


def default_amp(device: str) -> str:
    """Mixed precision unless given (run, eval and predict): bf16 autocast where the hardware computes
    bf16 natively, CUDA or a CPU with AVX512-BF16/AMX (1.9x a CPU step at patch 256, the same scores:
    docs/experiments/precision-study.md); float32 elsewhere, where bf16 would be emulated and slower."""
    return "bf16" if device.startswith("cuda") or native_bf16() else "off"


# What a None default resolves to, for help texts (RunConfig.resolved does the resolving).
MACHINE_DEFAULTS = {"device": "cuda when available", "amp": "bf16 on cuda and on CPUs with native bf16, else off",
                    "channels_last": "on cuda and AVX-512 CPUs, else off",
                    "out": "runs/<manifest name>", "num_workers": "one per CPU core",
                    "cache_dir": "$SIDKIT_CACHE/raw, else ~/.cache/sidkit/raw"}


def default_text(name: str) -> str:
    """'[default: ...]' for a `train run` option, read from RunConfig's own defaults."""
    value = getattr(RunConfig(), name)
    if name in MACHINE_DEFAULTS and value in (None, 0):
        value = MACHINE_DEFAULTS[name]
    elif name == "lr_steps":
        value = ",".join(f"{e}:{_short(v)}" for e, v in value) or "none"
    elif isinstance(value, float):
        value = _short(value)
    elif value is None:
        return ""
    return f"[default: {value}]"


def _short(value: float) -> str:
    """The shorter of 0.0001 and 1e-4."""
    mantissa, exponent = f"{value:e}".split("e")
    scientific = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return min(f"{value:g}", scientific, key=len)


def parse_lr_steps(text: str | list) -> list[tuple[int, float]]:
    """'2000:1e-5,3000:1e-6' (or [[2000, 1e-5]]) -> [(2000, 1e-5), (3000, 1e-6)]."""
    if not isinstance(text, str):
        try:
            return [(int(e), float(v)) for e, v in text]
        except (TypeError, ValueError):
            raise SidkitError(f"run config: lr_steps {text!r} must be pairs [epoch, lr]") from None
    steps = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        epoch, sep, lr = item.partition(":")
        try:
            steps.append((int(epoch), float(lr)))
        except ValueError:
            raise SidkitError(f"--lr-steps: {item!r} is not EPOCH:LR, e.g. 2000:1e-5") from None
        if not sep:
            raise SidkitError(f"--lr-steps: {item!r} is not EPOCH:LR, e.g. 2000:1e-5")
    return steps


def parse_patch_choices(text: str | list | None) -> list[int] | None:
    """'64,128,256' -> [64, 128, 256]; None or '' -> None."""
    if text is None or text == "":
        return None
    items = text.split(",") if isinstance(text, str) else text
    try:
        return [int(p) for p in items]
    except (TypeError, ValueError):
        raise SidkitError(f"--patch-choices: {text!r} is not a comma-separated list of sizes") from None


def lr_at(epoch: int, lr: float, lr_steps: list[tuple[int, float]]) -> float:
    """The learning rate of a (0-based) epoch: `lr`, replaced by each step's value from its epoch on."""
    for start, value in lr_steps:
        if epoch >= start:
            lr = value
    return lr


# Settings that change where or how fast a run computes, not what it computes.
MACHINE_SETTINGS = {"device", "num_workers", "cache_dir", "compile", "log_every", "channels_last"}


def default_out(manifest: str | os.PathLike) -> str:
    """The run folder when none is given: runs/<manifest stem>."""
    return str(Path("runs") / Path(manifest).stem)


def changed_settings(before: dict, now: dict, ignore: set[str] = MACHINE_SETTINGS) -> list[str]:
    """The keys (sorted) whose values differ between two config dicts, ``ignore`` left out."""
    return sorted(k for k in set(before) | set(now) if k not in ignore and before.get(k) != now.get(k))


def resume_config(config_file: str | os.PathLike | None, **overrides: Any) -> tuple[RunConfig, list[str]]:
    """The config that ``--resume`` continues with: the run's own config.toml (unless a config file is
    given) under the flags given now; and one line per setting that the flags change."""
    if config_file is None:
        saved = Path(overrides.get("out") or default_out(overrides.get("manifest") or "")) / "config.toml"
        config_file = saved if saved.is_file() else None
    config = load_config(config_file, **overrides)
    if config_file is None:
        return config, []
    before, now = load_config(config_file).to_dict(), config.to_dict()
    for values in (before, now):     # a profile is the same file however its path is written
        if values.get("synthetic"):
            values["synthetic"] = str(Path(values["synthetic"]).expanduser().resolve())
    return config, [f"{key}: {before.get(key)!r} -> {now.get(key)!r}"
                    for key in changed_settings(before, now, MACHINE_SETTINGS | {"manifest"})]


def parse_set(item: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: VALUE as TOML (100, 1e-4, true, [[200, 1e-5]], 'cpu'), else as plain
    text, so that a bare word (device=cpu, as a shell leaves device='cpu') is a string."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or not text.strip():
        raise SidkitError(f"--set {item}: write KEY=VALUE, e.g. --set epochs=100 --set device=cpu")
    try:
        return key, tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return key, text.strip()


def load_config(path: str | os.PathLike | None = None, **overrides: Any) -> RunConfig:
    """Defaults, then the TOML file at ``path``, then ``overrides`` whose value is not None."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SidkitError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise SidkitError(f"{path}: not valid TOML ({exc}); fix the file") from None
        unknown = sorted(set(values) - FIELDS)
        if unknown:
            raise SidkitError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(FIELDS))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise SidkitError(f"run config: unknown setting {unknown[0]!r}")
    if "lr_steps" in values:
        values["lr_steps"] = parse_lr_steps(values["lr_steps"])
    if "patch_choices" in values:
        values["patch_choices"] = parse_patch_choices(values["patch_choices"])
    if not isinstance(values.get("spec", {}), dict):
        raise SidkitError(f"{path or 'run config'}: spec must be a table of the preset's spec fields (`train presets` lists the presets)")
    return RunConfig(**values)
