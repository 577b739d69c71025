"""train.networks: the registry of network families, NAFNet, and a NAFNet through run, checkpoint,
eval and predict."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
import torch
from click.testing import CliRunner

from curate.common.errors import SidkitError
from helpers import make_dataset
from train.checkpoint import load_checkpoint, model_from_checkpoint
from train.checkpoint_checks import BadCheckpoint, check_spec
from train.cli import main
from train.config import load_config
from train.networks import (FAMILIES, PRESETS, BadSpec, build_model, count_parameters, meta_shapes,
                            parameter_count, preset, spec_from_dict)
from train.networks.nafnet import NAFNet, NAFNetSpec
from train.networks.unet import UNet, UNetSpec

TINY_NAF = {"width": 4, "encoder_blocks": [1, 1], "middle_blocks": 1, "decoder_blocks": [1, 1]}
REPO = Path(__file__).resolve().parents[1]


def test_the_registry_holds_both_families_and_one_flat_preset_namespace():
    assert list(FAMILIES) == ["unet", "nafnet"]
    assert {name: spec.family for name, spec in PRESETS.items() if name.startswith(("sid", "nafnet"))} == {
        "sid": "unet", "nafnet": "nafnet", "nafnet-sid": "nafnet", "nafnet-small": "nafnet"}
    for family in FAMILIES.values():
        assert all(isinstance(spec, family.spec) for spec, _ in family.presets.values())
    assert isinstance(build_model(PRESETS["sid"]), UNet) and isinstance(build_model(PRESETS["nafnet-small"]), NAFNet)
    assert NAFNetSpec() == PRESETS["nafnet"]     # the paper's SIDD NAFNet: width 32, 2-2-4-8 / 12 / 2-2-2-2


def test_preset_applies_overrides_and_the_datas_fit():
    spec = preset("nafnet-small", {"width": 8}, in_channels=9, upscale=3)
    assert spec == NAFNetSpec(in_channels=9, upscale=3, width=8, encoder_blocks=(1, 1, 1, 1), middle_blocks=1,
                              decoder_blocks=(1, 1, 1, 1))
    assert preset("sid", {"widths": [8, 16], "encoder_convs": [1], "decoder_convs": [1]}).levels == 1
    with pytest.raises(TypeError):
        preset("nafnet-small", {"widths": [8, 16]})       # a U-Net field
    with pytest.raises(ValueError, match="arch 'sid' is a unet network, not 'nafnet'"):
        preset("sid", {"family": "nafnet"})
    with pytest.raises(KeyError):
        preset("resnet")


def test_spec_dicts_round_trip_and_name_their_family():
    for spec in PRESETS.values():
        data = spec.to_dict()
        assert data["family"] == spec.family and spec_from_dict(data) == spec
    old = {k: v for k, v in PRESETS["sid"].to_dict().items() if k != "family"}   # a checkpoint from before families
    assert spec_from_dict(old) == UNetSpec()


@pytest.mark.parametrize("data, message", [
    ({"family": "resnet"}, "spec family 'resnet' is not one of unet, nafnet"),
    ({"family": ["unet"]}, "spec family ['unet'] is not one of"),
    ({**NAFNetSpec().to_dict(), "widths": [8]}, "spec has unknown key 'widths'"),
    ({k: v for k, v in NAFNetSpec().to_dict().items() if k != "family"}, "spec has unknown key 'decoder_blocks'"),
    ({**NAFNetSpec().to_dict(), "width": 0}, "spec width must be a whole number from 1 to 512, not 0"),
    ({**NAFNetSpec().to_dict(), "width": 8.0}, "spec width must be a whole number from 1 to 512, not 8.0"),
    ({**NAFNetSpec().to_dict(), "decoder_blocks": [1, 1]}, "spec decoder_blocks needs one count per level (4), got 2"),
    ({**NAFNetSpec().to_dict(), "encoder_blocks": [1] * 9, "decoder_blocks": [1] * 9}, "encoder_blocks has 9 levels"),
    ({**NAFNetSpec().to_dict(), "middle_blocks": 65}, "spec middle_blocks must be a whole number from 0 to 64"),
    ({**NAFNetSpec().to_dict(), "upscale": 9}, "spec upscale must be a whole number from 1 to 8, not 9"),
    ({**NAFNetSpec().to_dict(), "encoder_blocks": [64] * 4, "decoder_blocks": [64] * 4}, "spec has 524 NAF blocks"),
])
def test_bad_spec_dicts_are_refused_naming_the_field(data, message):
    with pytest.raises(BadSpec) as err:
        spec_from_dict(data)
    assert message in str(err.value)


def test_parameter_counts_and_shapes_come_from_the_meta_device_and_match_a_real_build():
    for name in ("sid", "nafnet-small", "nafnet-sid"):
        model = build_model(PRESETS[name])
        assert parameter_count(PRESETS[name]) == count_parameters(model), name
        shapes, parameters = meta_shapes(PRESETS[name])
        assert shapes == {k: tuple(v.shape) for k, v in model.state_dict().items()}
        assert parameters == [tuple(p.shape) for p in model.parameters()]
    assert parameter_count(PRESETS["nafnet-sid"]) == 7_602_540      # about the SID U-Net's 7,760,748


def test_a_huge_nafnet_is_refused_from_its_meta_build():
    with pytest.raises(BadCheckpoint, match=r"spec declares [\d,]+ parameters \(a nafnet network\), over the 200,000,000"):
        check_spec({**NAFNetSpec().to_dict(), "width": 512, "encoder_blocks": [2] * 6, "decoder_blocks": [2] * 6})


@pytest.mark.parametrize("channels, upscale, size", [(4, 2, (37, 50)), (9, 3, (13, 22)), (4, 2, (16, 16)), (4, 2, (1, 3))])
def test_nafnet_takes_bayer_and_xtrans_at_any_size(channels, upscale, size):
    torch.manual_seed(0)
    model = build_model(preset("nafnet-small", TINY_NAF, in_channels=channels, upscale=upscale))
    with torch.no_grad():
        out = model(torch.rand(1, channels, *size))
    assert out.shape == (1, 3, size[0] * upscale, size[1] * upscale) and torch.isfinite(out).all()
    assert model.ending.out_channels == 3 * upscale ** 2


def test_nafnet_blocks_start_as_identities_and_learn():
    """The residual scales start at 0 (the paper's init), so a block passes its input through; a few
    Adam steps on one batch lower the L1 loss, in channels_last under bf16 autocast as `train run` on CPU."""
    torch.manual_seed(0)
    model = build_model(preset("nafnet-small", TINY_NAF))
    block = model.encoders[0][0]
    x = torch.rand(2, 4, 8, 8)
    assert torch.equal(block(x), x) and not block.beta.any() and not block.gamma.any()
    model = model.to(memory_format=torch.channels_last)
    x, y = torch.rand(2, 4, 16, 16).contiguous(memory_format=torch.channels_last), torch.rand(2, 3, 32, 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(6):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        loss = (out.float() - y).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] and block.beta.abs().sum() > 0


def test_config_checks_nafnet_overrides_against_its_own_family():
    def resolved(**settings):
        return load_config(None, manifest="m.csv", device="cpu", **settings).resolved()

    assert resolved(arch="nafnet-small", spec={"width": 8}).spec == {"width": 8}
    with pytest.raises(SidkitError, match="spec {'widths': \\[8, 16\\]} does not make a network"):
        resolved(arch="nafnet-small", spec={"widths": [8, 16]})
    with pytest.raises(SidkitError, match="spec width must be a whole number from 1 to 512, not 4096; change the spec"):
        resolved(arch="nafnet-small", spec={"width": 4096})


@pytest.fixture(scope="module")
def naf_run(tmp_path_factory):
    """(manifest, run) of `train run --arch nafnet-small` with a tiny NAFNet (config file) for 2 epochs."""
    folder = tmp_path_factory.mktemp("naf")
    manifest = make_dataset(folder, size=32)
    config = folder / "run.toml"
    config.write_bytes(tomli_w.dumps({"patch": 16, "lr": 1e-2, "lr_steps": "", "spec": TINY_NAF,
                                      "eval_every": 1, "device": "cpu", "seed": 1}).encode())
    result = CliRunner().invoke(main, ["run", str(manifest), "--arch", "nafnet-small", "--config", str(config),
                                       "--epochs", "2", "--out", str(folder / "run")])
    assert result.exit_code == 0, result.output
    return manifest, Path(result.stdout.strip())


def test_train_run_arch_nafnet_writes_a_checkpoint_that_names_its_family(naf_run):
    _, run = naf_run
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    assert payload["spec"] == {**NAFNetSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY_NAF.items()})
                               .to_dict(), "family": "nafnet"}
    assert payload["config"]["arch"] == "nafnet-small" and payload["step"] == 4
    model, _ = model_from_checkpoint(run / "checkpoints" / "last.pt")
    assert isinstance(model, NAFNet) and model.spec.width == 4
    assert all(torch.equal(v, payload["model"][k]) for k, v in model.state_dict().items())
    assert any(payload["model"][k].abs().sum() > 0 for k in payload["model"] if k.endswith(".beta"))   # it trained


def test_a_nafnet_run_evaluates_predicts_and_resumes(naf_run, tmp_path):
    manifest, run = naf_run
    runner = CliRunner()
    result = runner.invoke(main, ["eval", str(run / "checkpoints" / "best.pt"), str(manifest), "--split", "all",
                                  "--format", "json", "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    png = tmp_path / "p.png"
    result = runner.invoke(main, ["predict", str(run / "checkpoints" / "last.pt"), str(manifest.parent / "s0_short.dng"),
                                  "--ratio", "100", "-o", str(png)])
    assert result.exit_code == 0 and png.stat().st_size > 0, result.output
    result = runner.invoke(main, ["run", str(manifest), "--out", str(run), "--resume", "--epochs", "3"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6


def test_a_checkpoint_without_family_loads_as_the_unet_and_a_nafnet_without_it_is_refused(naf_run, tmp_path):
    _, run = naf_run
    payload = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    del payload["spec"]["family"]
    torch.save(payload, tmp_path / "naf.pt")
    with pytest.raises(SidkitError, match="naf.pt: not a usable checkpoint: spec has unknown key 'decoder_blocks'"):
        load_checkpoint(tmp_path / "naf.pt")
    unet = UNetSpec(widths=(8, 16), encoder_convs=(1,), decoder_convs=(1,), bottleneck_convs=1)
    old = copy.deepcopy(payload)
    old["spec"] = {k: v for k, v in unet.to_dict().items() if k != "family"}      # as sidkit wrote before families
    model = build_model(unet)
    old["model"] = model.state_dict()
    old["optimizer"] = torch.optim.Adam(model.parameters()).state_dict()
    torch.save(old, tmp_path / "old.pt")
    loaded, _ = model_from_checkpoint(tmp_path / "old.pt")
    assert isinstance(loaded, UNet) and loaded.spec == unet


def test_presets_lists_every_family():
    result = CliRunner().invoke(main, ["presets"])
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") > 3}
    assert set(PRESETS) <= set(rows)
    assert "nafnet" in rows["nafnet-small"] and "1,138,652" in rows["nafnet-small"]
    assert "unet" in rows["sid"] and "7,760,748" in rows["sid"]
    assert "nafnet: NAFNet (Chen et al., ECCV 2022" in result.stdout


@pytest.mark.slow
def test_the_architecture_study_script_writes_its_page(tmp_path):
    page = tmp_path / "page.md"
    command = [sys.executable, str(REPO / "scripts" / "architecture_study.py"), "--seeds", "2", "--steps", "6",
               "--scenes", "3", "--size", "64x48", "--patch", "16", "--time-steps", "1", "--full-patch", "16",
               "--out", str(tmp_path / "study"), "--page", str(page)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    text = page.read_text()
    page.unlink()
    result = subprocess.run([*command, "--page-only"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and page.read_text() == text, result.stderr      # from results.json alone
    assert "| SID U-Net | `sid`, widths 16-256 | 1,941,436 | 73.0 |" in text
    assert "| NAFNet | `nafnet-small` | 1,138,652 | 76.1 |" in text
    assert "| `nafnet-sid` | nafnet | 7,602,540 | 558.9 |" in text and " ± " in text
