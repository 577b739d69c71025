"""The CUDA defaults (bf16 autocast, channels_last) and --compile, run on the CPU: the same code
paths as on a GPU, checked against a plain fp32 run of the same seed."""
import pytest
import torch

from curate.manifest import read_manifest
from helpers import metrics, tiny_config
from train.checkpoint import load_checkpoint, model_from_checkpoint
from train.evaluate import evaluate, score_model
from train.loop import train_run


@pytest.fixture(scope="module")
def manifest(tiny_manifest):
    return tiny_manifest


def losses(run):
    return [float(r["train_loss"]) for r in metrics(run)]


@pytest.fixture(scope="module")
def plain(manifest, tmp_path_factory):
    return train_run(tiny_config(manifest, tmp_path_factory.mktemp("plain") / "run", epochs=4, eval_every=2,
                                 amp="off", channels_last=False), progress=False)


def test_bf16_autocast_and_channels_last_follow_fp32(manifest, plain, tmp_path):
    run = train_run(tiny_config(manifest, tmp_path / "bf16", epochs=4, eval_every=2, amp="bf16",
                                channels_last=True), progress=False)
    assert losses(run) == pytest.approx(losses(plain), rel=0.05)
    assert losses(run) != losses(plain)                       # bf16 really ran
    psnr = [float(r["val_psnr"]) for r in metrics(run)]
    assert psnr == pytest.approx([float(r["val_psnr"]) for r in metrics(plain)], abs=0.5)


@pytest.mark.slow
def test_compiled_run_matches_and_its_checkpoint_evaluates(manifest, plain, tmp_path):
    run = train_run(tiny_config(manifest, tmp_path / "compiled", epochs=4, eval_every=2, amp="off",
                                compile=True), progress=False)
    assert losses(run) == pytest.approx(losses(plain), rel=1e-2)
    checkpoint = run / "checkpoints" / "last.pt"
    assert not any(k.startswith("_orig_mod") for k in load_checkpoint(checkpoint)["model"])
    trained, payload = model_from_checkpoint(load_checkpoint(checkpoint))
    result = evaluate(checkpoint, manifest, split="val", images=False, out=tmp_path / "eval", amp="off")
    untrained, _ = model_from_checkpoint({**payload, "model": untrained_weights(trained)})
    loaded = read_manifest(manifest)
    val = loaded.rows[loaded.rows["split"] == "val"]
    before = score_model(untrained, loaded, val, payload["data"]["ratio_policy"])["psnr"]
    assert result["psnr"] == pytest.approx(score_model(trained, loaded, val, "cap:300")["psnr"])
    assert result["psnr"] > before + 3          # 4 epochs of the compiled network beat its starting point


def untrained_weights(model):
    """The state dict of the same network freshly initialised (seed 3, as the run)."""
    torch.manual_seed(3)
    return type(model)(model.spec).state_dict()
