"""Two torchrun "nodes" on localhost (c10d rendezvous, two processes each, a cache folder of its own
per node): each node's local rank 0 fills that node's cache, global rank 0 alone writes the run, and
the loss curve is the one of a single node with the same four processes. Then a resume on two
processes says what changed. Gloo on the CPU, a tiny network.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import rows, torchrun_data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str], cache: Path, run: Path, manifest: Path, config: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SIDKIT_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *args, "-m", "train", "run", str(manifest),
                             "--config", str(config), "--out", str(run), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finished(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-2000:] + err[-8000:]
    assert "terminate called" not in err, err[-8000:]
    return out + err


def cached(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return torchrun_data(tmp_path_factory.mktemp("nodes"), training_scenes=4)


@pytest.mark.slow
def test_two_nodes_fill_a_cache_each_write_one_run_and_match_one_node(data, tmp_path):
    manifest, config = data
    port = free_port()
    two = tmp_path / "two-nodes"
    nodes = [torchrun(["--nnodes", "2", "--node-rank", str(n), "--nproc-per-node", "2", "--rdzv-backend", "c10d",
                       "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "sidkit-test"],
                      tmp_path / f"cache-node{n}", two, manifest, config, "--epochs", "2") for n in (0, 1)]
    printed = [finished(p) for p in nodes]
    files = [cached(tmp_path / f"cache-node{n}") for n in (0, 1)]
    assert files[0] == files[1] > 0                       # each node decoded every raw into its own cache
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    assert sum(text.count("epoch 2: loss") for text in printed) == 1          # global rank 0 alone logs

    one = tmp_path / "one-node"
    finished(torchrun(["--standalone", "--nproc-per-node", "4"], tmp_path / "cache-one", one, manifest, config,
                      "--epochs", "2"))
    assert rows(two) == rows(one)                         # same global batch, same loss curve

    # resume the 4-process run on 2: one line says what the effective batch became
    text = finished(torchrun(["--standalone", "--nproc-per-node", "2"], tmp_path / "cache-one", one, manifest, config,
                             "--epochs", "3", "--resume"))
    assert "resuming on 2 process(es), the run was on 4: the effective batch is now 2 x 1 = 2 crops a step (was 4)" \
        in " ".join(text.split())
    assert [r["epoch"] for r in rows(one)] == ["1", "2", "3"]
