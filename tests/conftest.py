"""Shared fixtures: the real sample raws and a tiny simulated dataset with planted defects."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import RAW_SAMPLE_DIRS

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def sidkit_cache(tmp_path_factory) -> Path:
    """Every cache (decoded raws, thumbnails) goes to a session folder, never the user's ~/.cache:
    SIDKIT_CACHE is set before any other fixture runs (subprocesses inherit it)."""
    import os

    folder = tmp_path_factory.mktemp("sidkit-cache")
    before = os.environ.get("SIDKIT_CACHE")
    os.environ["SIDKIT_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("SIDKIT_CACHE", None)
    else:
        os.environ["SIDKIT_CACHE"] = before


@pytest.fixture(scope="session")
def raw_samples() -> Path:
    """The folder of real camera raws (CR2, CR3, CRW, ...); the test is skipped without it."""
    for folder in RAW_SAMPLE_DIRS:
        if folder.is_dir() and any(folder.iterdir()):
            return folder
    pytest.skip(f"no raw samples in {' or '.join(map(str, RAW_SAMPLE_DIRS))}")


@pytest.fixture(scope="session")
def sim_dataset(tmp_path_factory) -> Path:
    """4 simulated scenes (2 indoor, 2 outdoor) on 2 bodies, 128x96, 2 shorts each, defects planted.

    sim02's first short has dimmed light, sim03's first short is moved by (5, 11) px and sim04 is
    shot at ratio 20; `planted_defects.json` lists them. Treat it as read-only.
    """
    from capture.simulate import simulate_dataset

    return simulate_dataset(tmp_path_factory.mktemp("sim") / "dataset", scenes=4, size=(128, 96), defects=True)


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    """helpers.make_dataset: 4 scenes of 64x64 DNG pairs (train, train, val, test), ratio 100.
    Shared by the training tests (its cache fills once); treat it as read-only."""
    from helpers import make_dataset

    return make_dataset(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def tiny_run(tiny_manifest, tmp_path_factory) -> Path:
    """A tiny network trained 6 epochs on tiny_manifest (eval every 3, last.pt and best.pt): its run
    folder, shared by the tests that evaluate, predict or inspect a trained network. Read-only."""
    from helpers import tiny_config
    from train.loop import train_run

    out = tmp_path_factory.mktemp("tiny-runs") / "tiny"
    return train_run(tiny_config(tiny_manifest, out, epochs=6, eval_every=3), progress=False)


@pytest.fixture
def vcam(tmp_path):
    """Environment for a subprocess with libgphoto2's virtual camera (python-gphoto2's wheel): one
    JPEG in VCAMERADIR, a private HOME."""
    import os

    from PIL import Image

    folder, home = tmp_path / "vcamdir", tmp_path / "home"
    folder.mkdir()
    home.mkdir()
    Image.new("RGB", (32, 24), (200, 120, 40)).save(folder / "frame.jpg")
    return {**os.environ, "VCAMERADIR": str(folder), "HOME": str(home), "COLUMNS": "200"}
