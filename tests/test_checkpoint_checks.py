"""Broken checkpoints (generated here from a real tiny run's last.pt) through eval, predict and
--resume: exit 1, one line naming the file, no traceback, nothing written; a full disk on save."""
from __future__ import annotations

import copy
import errno
import io
import os
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from curate.common.errors import SidkitError
from helpers import make_dataset, tiny_config
from train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from train.checkpoint_checks import MAX_PARAMETERS
from train.cli import main
from train.loop import train_run
from train.networks import PRESETS, build_model, count_parameters, parameter_count
from train.networks.unet import UNetSpec


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(manifest, run folder) of a 1-epoch tiny run: config.toml and checkpoints/last.pt."""
    folder = tmp_path_factory.mktemp("ckpt")
    manifest = make_dataset(folder, size=32)
    out = train_run(tiny_config(manifest, folder / "run", epochs=1), progress=False)
    return manifest, Path(out)


@pytest.fixture(scope="module")
def good(run):
    return torch.load(run[1] / "checkpoints" / "last.pt", weights_only=True)


class NotWeightsOnly:
    """A pickled class: weights_only=True refuses it, never runs it."""


def _set(path: str, value):
    """A variant that sets payload[path] (dotted) to ``value``; the sentinel DELETE removes it."""
    def edit(payload):
        *parents, last = path.split(".")
        target = payload
        for key in parents:
            target = target[_key(target, key)]
        last = _key(target, last)
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
        return payload
    return edit


def _key(target, key: str):
    """'0' indexes a list, or a dict keyed by ints (the optimiser's state)."""
    return int(key) if key.isdigit() and (isinstance(target, list) or int(key) in target) else key


DELETE = object()
TOP_KEYS = ["format", "model", "optimizer", "schedule", "rng", "epoch", "step", "best", "spec", "data",
            "config", "progress"]
SPEC_KEYS = ["in_channels", "out_channels", "widths", "encoder_convs", "decoder_convs", "bottleneck_convs",
             "slope", "upscale"]


def _first_weight(fn):
    def edit(payload):
        key = next(iter(payload["model"]))
        payload["model"][key] = fn(payload["model"][key])
        return payload
    return edit


def _drop_first_weight(payload):
    del payload["model"][next(iter(payload["model"]))]
    return payload


def _other_spec_weights(payload):
    """Spec and weights disagree: weights of a wider network under the run's spec."""
    spec = dict(payload["spec"], widths=[8, 32])
    payload["model"] = build_model(UNetSpec.from_dict(spec)).state_dict()
    return payload


def _optimizer_moment(payload):
    state = payload["optimizer"]["state"]
    state[0]["exp_avg"] = torch.zeros(3)
    return payload


def _moment(name: str, fn):
    """A variant that sets the first parameter's optimiser moment ``name`` to fn(moment)."""
    def edit(payload):
        moments = payload["optimizer"]["state"][0]
        moments[name] = fn(moments[name])
        return payload
    return edit


def _negative_somewhere(t):
    t = t.clone()
    t[(0,) * t.dim()] = -1e-8
    return t


def _two_groups(payload):
    group = payload["optimizer"]["param_groups"][0]
    payload["optimizer"]["param_groups"] = [dict(group, params=group["params"][:2]),
                                            dict(group, params=group["params"][2:])]
    return payload


VARIANTS: dict[str, object] = {
    # whole files
    "garbage bytes": b"\x00\x13garbage" * 100,
    "empty file": b"",
    "truncated to half": "truncate:0.5",
    "truncated to 100 bytes": "truncate:100",
    "zip header only": b"PK\x03\x04" + b"\x00" * 60,
    "not weights_only safe": "unsafe",
    "a bare tensor": "tensor",
    "a list": "list",
    # top-level keys removed, and each of the wrong type
    **{f"no {key}": _set(key, DELETE) for key in TOP_KEYS},
    **{f"{key} is text": _set(key, "x") for key in TOP_KEYS},
    "format is True": _set("format", True),
    "format 0": _set("format", 0),
    "format 2 (newer)": _set("format", 2),
    "format 1.0": _set("format", 1.0),
    "best is a list": _set("best", [1.0]),
    # the network spec
    **{f"spec without {key}": _set(f"spec.{key}", DELETE) for key in SPEC_KEYS},
    **{f"spec {key} is text": _set(f"spec.{key}", "8") for key in SPEC_KEYS},
    "spec width 1,048,576": _set("spec.widths", [8, 1_048_576]),
    "spec widths 4096 x 9 levels (over 200 M)": lambda p: _set("spec", {**p["spec"], "widths": [4096] * 9,
                                                                        "encoder_convs": [2] * 8,
                                                                        "decoder_convs": [2] * 8})(p),
    "spec 12 levels": lambda p: _set("spec", {**p["spec"], "widths": [8] * 12, "encoder_convs": [1] * 11,
                                              "decoder_convs": [1] * 11})(p),
    "spec width 0": _set("spec.widths", [0, 16]),
    "spec negative convs": _set("spec.encoder_convs", [-1]),
    "spec 1000 convs": _set("spec.bottleneck_convs", 1000),
    "spec convs per level mismatch": _set("spec.decoder_convs", [1, 1]),
    "spec in_channels 3": _set("spec.in_channels", 3),
    "spec out_channels 1": _set("spec.out_channels", 1),
    "spec upscale 3": _set("spec.upscale", 3),
    "spec slope nan": _set("spec.slope", float("nan")),
    "spec slope 1e308": _set("spec.slope", 1e308),
    "spec slope -0.5": _set("spec.slope", -0.5),
    "spec unknown key": _set("spec.attention", True),
    "spec widths bool": _set("spec.widths", [True, 16]),
    "spec empty": _set("spec", {}),
    # weights
    "weights empty": _set("model", {}),
    "weight removed": _drop_first_weight,
    "weight extra": lambda p: {**p, "model": {**p["model"], "extra.weight": torch.zeros(1)}},
    "weight shape altered": _first_weight(lambda t: torch.zeros(t.shape[0] + 1, *t.shape[1:])),
    "weight flattened": _first_weight(lambda t: t.flatten()),
    "weight int tensor": _first_weight(lambda t: t.to(torch.int64)),
    "weight nan": _first_weight(lambda t: torch.full_like(t, float("nan"))),
    "weight is a number": _first_weight(lambda t: 1.0),
    "weight on the meta device": _first_weight(lambda t: torch.empty(t.shape, device="meta")),
    "weight sparse": _first_weight(lambda t: t.to_sparse()),
    "spec and weights disagree": _other_spec_weights,
    # optimiser
    "optimizer empty": _set("optimizer", {}),
    "optimizer two groups": _two_groups,
    "optimizer params missing": lambda p: _set("optimizer.param_groups.0.params", [0, 1])(p),
    "optimizer moment shape": _optimizer_moment,
    "optimizer state without step": _set("optimizer.state.0.step", DELETE),
    "optimizer lr text": _set("optimizer.param_groups.0.lr", "fast"),
    "optimizer betas": _set("optimizer.param_groups.0.betas", [2.0]),
    "optimizer exp_avg nan": _moment("exp_avg", lambda t: torch.full_like(t, float("nan"))),
    "optimizer exp_avg_sq inf": _moment("exp_avg_sq", lambda t: torch.full_like(t, float("inf"))),
    "optimizer exp_avg_sq negative": _moment("exp_avg_sq", _negative_somewhere),
    "optimizer exp_avg_sq int": _moment("exp_avg_sq", lambda t: t.to(torch.int64)),
    "optimizer exp_avg meta": _moment("exp_avg", lambda t: torch.empty(t.shape, device="meta")),
    "optimizer step -1": _moment("step", lambda t: torch.tensor(-1.0)),
    "optimizer step 2**70": _moment("step", lambda t: torch.tensor(2.0 ** 70)),
    "optimizer step nan": _moment("step", lambda t: torch.tensor(float("nan"))),
    # rng
    "rng empty": _set("rng", {}),
    "rng python short": _set("rng.python", [3, [1, 2, 3], None]),
    "rng numpy keys short": lambda p: _set("rng.numpy.1", torch.zeros(3, dtype=torch.int64))(p),
    "rng torch state short": _set("rng.torch", torch.zeros(10, dtype=torch.uint8)),
    "rng torch state float": _set("rng.torch", torch.zeros(5056)),
    "rng without sampler": _set("rng.sampler", DELETE),
    "rng sampler text": _set("rng.sampler", "seed"),
    "rng cuda text": _set("rng.cuda", "none"),
    # data config
    "data empty": _set("data", {}),
    "data cfa foveon": _set("data.cfa_kind", "foveon"),
    "data 9 channels for bayer": _set("data.channels", 9),
    "data ratio policy bogus": _set("data.ratio_policy", "bogus"),
    "data ratio policy number": _set("data.ratio_policy", 5),
    # counters
    "epoch negative": _set("epoch", -1),
    "epoch 2**70": _set("epoch", 2 ** 70),
    "step -1": _set("step", -1),
    "step 2**70": _set("step", 2 ** 70),
    "progress position 2**70": _set("progress.position", 2 ** 70),
    "progress seconds negative": _set("progress.seconds", -5.0),
    "best nan": _set("best", float("nan")),
    "step float": _set("step", 2.5),
    "progress position text": _set("progress.position", "x"),
    "progress overrides epoch": _set("progress.epoch", 5),
    "progress negative count": _set("progress.position", -3),
    "progress unknown key": _set("progress.patches", 3),
    "progress seconds nan": _set("progress.seconds", float("nan")),
    "rng torch state sparse": lambda p: _set("rng.torch", p["rng"]["torch"].to_sparse())(p),
    "zip of 64 MiB of zeros": "bomb:67108864",
    "schedule lr text": _set("schedule.lr", "x"),
}


def write_variant(name: str, good: dict, path: Path) -> Path:
    variant = VARIANTS[name]
    if isinstance(variant, bytes):
        path.write_bytes(variant)
    elif isinstance(variant, str) and variant.startswith("truncate:"):
        buffer = io.BytesIO()
        torch.save(good, buffer)
        data = buffer.getvalue()
        amount = float(variant.split(":")[1])
        path.write_bytes(data[: int(len(data) * amount) if amount < 1 else int(amount)])
    elif isinstance(variant, str) and variant.startswith("bomb:"):
        zip_bomb(good, path, int(variant.split(":")[1]))
    elif variant == "unsafe":
        torch.save({**good, "config": NotWeightsOnly()}, path)
    elif variant == "tensor":
        torch.save(torch.zeros(4), path)
    elif variant == "list":
        torch.save([good], path)
    else:
        torch.save(variant(copy.deepcopy(good)), path)
    return path


def zip_bomb(good: dict, path: Path, size: int) -> Path:
    """``good`` as torch.save writes it, its largest tensor's data replaced by ``size`` zero bytes,
    deflated (a few hundred KiB)."""
    buffer = io.BytesIO()
    torch.save(good, buffer)
    with zipfile.ZipFile(buffer) as source, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bomb:
        largest = max((m for m in source.infolist() if "/data/" in m.filename), key=lambda m: m.file_size)
        for member in source.infolist():
            if member is not largest:
                bomb.writestr(member, source.read(member))     # stored, as torch wrote it
                continue
            with bomb.open(member.filename, "w", force_zip64=True) as out:
                for _ in range(size // 2 ** 20):
                    out.write(bytes(2 ** 20))
    return path


def test_the_corpus_is_large_enough():
    assert len(VARIANTS) >= 60


def test_a_good_checkpoint_passes_every_check(run, good):
    model, payload = model_from_checkpoint(run[1] / "checkpoints" / "last.pt")
    assert payload["epoch"] == 1 and sum(p.numel() for p in model.parameters()) == parameter_count(
        UNetSpec.from_dict(good["spec"]))


def test_parameter_count_from_the_spec_matches_the_built_network():
    for name, spec in PRESETS.items():
        assert parameter_count(spec) == count_parameters(build_model(spec)), name
    assert parameter_count(PRESETS["sid"]) == 7_760_748


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_load_refuses_each_variant_in_one_line(name, good, tmp_path):
    path = write_variant(name, good, tmp_path / "last.pt")
    with pytest.raises(SidkitError) as err:
        model_from_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message


def test_the_huge_width_is_refused_before_any_allocation(good, tmp_path):
    import resource

    path = write_variant("spec width 1,048,576", good, tmp_path / "wide.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SidkitError, match=r"spec widths \[8, 1048576\] outside 1-4096"):
        load_checkpoint(path)
    path = write_variant("spec widths 4096 x 9 levels (over 200 M)", good, tmp_path / "big.pt")
    with pytest.raises(SidkitError, match=f"parameters .*over the {MAX_PARAMETERS:,}"):
        load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000   # KiB: < 200 MB


def assert_one_line_error(result, path: Path, after: str = ""):
    """Exit 1 and stderr ending in one 'error:' line naming ``path`` (after resume's notice of
    changed settings, when ``after`` starts it); no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert errors == [len(lines) - 1] and str(path.name) in lines[-1], result.stderr
    assert len(lines) == 1 or lines[0].startswith(after or "error:"), result.stderr
    assert "Traceback" not in result.output


def test_every_variant_through_eval_and_predict(run, good, tmp_path):
    manifest, _ = run
    raw = manifest.parent / "s0_short.dng"
    runner = CliRunner()
    for index, name in enumerate(sorted(VARIANTS)):
        path = write_variant(name, good, tmp_path / f"v{index}.pt")
        out = tmp_path / f"out{index}"
        result = runner.invoke(main, ["eval", str(path), str(manifest), "--split", "all", "--out", str(out)])
        assert_one_line_error(result, path)
        png = tmp_path / f"p{index}.png"
        result = runner.invoke(main, ["predict", str(path), str(raw), "--ratio", "100", "-o", str(png)])
        assert_one_line_error(result, path)
        assert not out.exists() and not png.exists(), name


@pytest.mark.slow
def test_every_variant_through_resume(run, good, tmp_path):
    manifest, folder = run
    runner = CliRunner()
    for index, name in enumerate(sorted(VARIANTS)):
        copy_ = tmp_path / f"run{index}"
        shutil.copytree(folder, copy_)
        last = write_variant(name, good, copy_ / "checkpoints" / "last.pt")
        before = sorted((p.relative_to(copy_), p.stat().st_mtime_ns) for p in copy_.rglob("*"))
        result = runner.invoke(main, ["run", str(manifest), "--out", str(copy_), "--resume", "--epochs", "2"])
        assert_one_line_error(result, last, after="resuming with changed settings")
        assert sorted((p.relative_to(copy_), p.stat().st_mtime_ns) for p in copy_.rglob("*")) == before, name


class FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes, as a full disk does."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data):
        self.room -= len(data)
        if self.room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.handle.__exit__(*exc)


@pytest.fixture
def full_disk(monkeypatch):
    import curate.common.atomic

    # atomic_write opens its temp file with the module's open(): every write past 4 KiB fails
    monkeypatch.setattr(curate.common.atomic, "open", lambda *a, **k: FullDisk(open(*a, **k), room=4096), raising=False)


def test_a_full_disk_on_save_is_one_line_and_keeps_the_old_checkpoint(good, tmp_path, full_disk):
    path = tmp_path / "last.pt"
    torch.save(good, path)
    before = path.read_bytes()
    model = build_model(UNetSpec.from_dict(good["spec"]))
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(SidkitError) as err:
        save_checkpoint(path, model=model, optimizer=optimizer, schedule={}, epoch=1, step=1, best=None,
                        spec=good["spec"], data=good["data"], config={}, rng=good["rng"])
    assert str(err.value) == (f"{path}: could not write the checkpoint (No space left on device); the previous "
                              "file is intact; free disk space or choose another --out, then resume")
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_full_disk_during_a_run_exits_1_with_one_line(run, tmp_path, full_disk):
    manifest, folder = run
    copy_ = tmp_path / "run"
    shutil.copytree(folder, copy_)
    before = {p.name: p.read_bytes() for p in (copy_ / "checkpoints").iterdir()}
    result = CliRunner().invoke(main, ["run", str(manifest), "--out", str(copy_), "--resume", "--epochs", "2"])
    assert_one_line_error(result, copy_ / "checkpoints", after="resuming with changed settings")
    assert "(No space left on device); the previous file is intact" in result.stderr
    assert {p.name: p.read_bytes() for p in (copy_ / "checkpoints").iterdir()} == before
    assert not [p for p in copy_.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name, message", [
    ("weight on the meta device", "model.encoders.0.0.weight is a meta tensor (a shape without data)"),
    ("weight sparse", "model.encoders.0.0.weight is a sparse_coo tensor; sidkit saves dense ones"),
    ("rng torch state sparse", "rng.torch is a sparse_coo tensor"),
    ("optimizer exp_avg meta", "optimizer.state.0.exp_avg is a meta tensor"),
    ("optimizer exp_avg nan", "optimizer exp_avg of parameter 0 holds NaN or inf"),
    ("optimizer exp_avg_sq inf", "optimizer exp_avg_sq of parameter 0 holds NaN or inf"),
    ("optimizer exp_avg_sq negative", "optimizer exp_avg_sq of parameter 0 is negative somewhere"),
    ("optimizer exp_avg_sq int", "optimizer exp_avg_sq of parameter 0 is a tensor of shape"),
    ("optimizer step -1", "optimizer step of parameter 0 is -1.0, not a count from 0 to 1,000,000,000,000"),
    ("optimizer step 2**70", "optimizer step of parameter 0 is 1.1805916207174113e+21, not a count"),
    ("optimizer step nan", "optimizer step of parameter 0 is nan, not a count"),
    ("step -1", "step -1 is not a count from 0 to 1,000,000,000,000"),
    ("step 2**70", f"step {2 ** 70} is not a count"),
    ("epoch 2**70", f"epoch {2 ** 70} is not a count"),
    ("progress position 2**70", "progress position = 1180591620717411303424 is not a count"),
    ("progress seconds negative", "progress seconds = -5.0 is not a finite number >= 0"),
    ("best nan", "best nan is not a finite PSNR"),
    ("spec slope 1e308", "spec slope (LeakyReLU's) must be a number from 0 to 1, not 1e+308"),
    ("spec slope -0.5", "spec slope (LeakyReLU's) must be a number from 0 to 1, not -0.5"),
    ("zip of 64 MiB of zeros", "its members declare 67,"),
])
def test_each_new_refusal_says_what_is_wrong(name, message, good, tmp_path):
    path = write_variant(name, good, tmp_path / "last.pt")
    with pytest.raises(SidkitError) as err:
        load_checkpoint(path)
    assert message in str(err.value), str(err.value)


def test_a_zip_bomb_is_refused_from_its_declared_sizes_before_anything_is_inflated(good, tmp_path):
    import resource

    path = zip_bomb(good, tmp_path / "bomb.pt", 256 * 2 ** 20)    # 256 MiB of zeros in ~1 MB
    size = path.stat().st_size
    assert size < 2 ** 21
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SidkitError, match=rf"its members declare 268,\d{{3}},\d{{3}} bytes in a {size:,}-byte file"):
        load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000   # KiB: < 50 MB


def test_a_finite_checkpoint_with_resumable_counters_still_passes(good, tmp_path):
    """The new bounds leave real values alone: zero moments, step 0, a slope of 0 (a plain ReLU)."""
    payload = copy.deepcopy(good)
    payload["optimizer"]["state"][0]["exp_avg_sq"].zero_()
    payload["spec"]["slope"] = 0.0
    torch.save(payload, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt")["spec"]["slope"] == 0.0
