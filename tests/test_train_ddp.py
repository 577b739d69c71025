"""`torchrun --nproc_per_node 2 -m train run` on CPU (gloo): the DDP path of the loop, for real.

Two ranks, three training scenes (one rank gets a padded turn): only rank 0 logs and writes, and
a run stopped after 2 epochs and resumed to 3 gives the same rows as one run of 3 epochs.
"""
import os
import re
import subprocess
import sys

import pytest
import torch

from helpers import rows, torchrun_data


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return torchrun_data(tmp_path_factory.mktemp("ddp"), training_scenes=3)


def torchrun(manifest, config, out, *args) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "train", "run", str(manifest), "--config", str(config),
                           "--out", str(out), *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-8000:]   # the failing rank's own lines too
    assert "terminate called" not in done.stderr, done.stderr[-8000:]       # no rank aborted at exit
    return done.stdout + done.stderr


@pytest.mark.slow
def test_ddp_rank0_writes_and_resume_is_exact(setup, tmp_path):
    manifest, config = setup
    whole = tmp_path / "whole"
    output = torchrun(manifest, config, whole, "--epochs", "3")
    assert output.count("epoch 3: loss") == 1 and len(re.findall(r"epoch:? 3/3", output)) == 1   # one rank logs
    assert [(r["epoch"], r["step"]) for r in rows(whole)] == [("1", "2"), ("2", "4"), ("3", "6")]
    assert len(list(whole.glob("events.out.tfevents*"))) == 1
    checkpoint = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)
    assert len(checkpoint["rng"]["samplers"]) == 2                  # every rank's crop sampler state

    split = tmp_path / "split"
    torchrun(manifest, config, split, "--epochs", "2")
    torchrun(manifest, config, split, "--epochs", "3", "--resume")
    assert rows(split) == rows(whole)
