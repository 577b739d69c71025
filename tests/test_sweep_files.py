"""Sweep files: expansion, and the study's tables as dry-run listings."""
from pathlib import Path

import pytest

from curate.common.errors import SidkitError
from train.sweep import load_sweep, scale_epochs

EXPERIMENTS = Path(__file__).resolve().parents[1] / "docs" / "experiments"


def test_learning_rate_table_rows():
    sweep = load_sweep(EXPERIMENTS / "learning-rate.toml")
    rows = {r.name: (r.settings["lr"], r.settings["lr_steps"]) for r in sweep.runs}
    assert len(rows) == 10
    assert rows["1e-4, 1e-5 after half the epochs (SID)"] == (1e-4, "2000:1e-5")
    assert rows["1e-7"] == (1e-7, [])
    assert rows["1e-3, 1e-4 after 500"] == (1e-3, "500:1e-4")
    assert rows["1e-3, 1e-4, 1e-5, 1e-6 in four steps"][1] == "1000:1e-4,2000:1e-5,3000:1e-6"
    assert all(r.settings["epochs"] == 4000 for r in sweep.runs)


def test_patch_size_table_rows():
    sweep = load_sweep(EXPERIMENTS / "patch-size.toml")
    fixed = [r.settings["patch"] for r in sweep.runs if "patch" in r.settings]
    choices = [r.settings["patch_choices"] for r in sweep.runs if "patch_choices" in r.settings]
    assert fixed == [512, 1, 64, 128, 256, 650]
    assert choices == [[2 ** k for k in range(10)], [8, 16, 32, 64], [16, 32, 64, 128, 256, 512],
                       [64, 128, 256, 512]]


def test_ablation_grid_covers_every_unet_preset():
    from train.networks import FAMILIES

    sweep = load_sweep(EXPERIMENTS / "ablation.toml")
    assert sorted(r.settings["arch"] for r in sweep.runs) == sorted(FAMILIES["unet"].presets)
    assert sweep.runs[0].name == "arch=sid"


def test_ratio_policy_rows():
    sweep = load_sweep(EXPERIMENTS / "ratio-policy.toml")
    assert [r.settings["ratio_policy"] for r in sweep.runs] == ["exif", "cap:300", "fixed:100"]


def test_list_times_grid_and_errors(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[base]\nepochs = 10\n[[runs]]\nname = "a"\nlr = 1e-3\n[[runs]]\nname = "b"\n'
                    '[grid]\nseed = [0, 1]\n')
    sweep = load_sweep(path)
    assert [r.name for r in sweep.runs] == ["a, seed=0", "a, seed=1", "b, seed=0", "b, seed=1"]
    assert sweep.runs[1].settings == {"epochs": 10, "lr": 1e-3, "seed": 1}
    path.write_text('[[runs]]\nname = "a"\nlearning_rate = 1\n')
    with pytest.raises(SidkitError, match="run 'a': 'learning_rate' is not a train run setting"):
        load_sweep(path)
    path.write_text('[[runs]]\nname = "a b"\n[[runs]]\nname = "a_b"\n')
    with pytest.raises(SidkitError, match="share the folder name"):
        load_sweep(path)


def test_scale_epochs_scales_schedules():
    scaled = scale_epochs({"epochs": 4000, "lr_steps": "1000:1e-4,2000:1e-5", "eval_every": 200}, 0.01)
    assert scaled == {"epochs": 40, "lr_steps": [[10, 1e-4], [20, 1e-5]], "eval_every": 2}
    assert scale_epochs({}, 0.5)["lr_steps"] == [[1000, 1e-5]]


def test_a_sweep_run_evaluates_at_least_five_times_whatever_the_scale():
    """At --scale 0.001 (as the docs suggest on a CPU) the paper's 4000 epochs become 4: evaluating
    at epoch 200 only would give single dots; every epoch is evaluated, and 100 epochs every 20th."""
    from train.sweep import evaluated_often

    assert evaluated_often(scale_epochs({"epochs": 4000}, 0.001)) == {"epochs": 4, "lr_steps": [[2, 1e-05]],
                                                                       "eval_every": 1}
    assert evaluated_often({"epochs": 100, "eval_every": 50})["eval_every"] == 20
    assert evaluated_often({"epochs": 4000, "eval_every": 200})["eval_every"] == 200     # already often enough
