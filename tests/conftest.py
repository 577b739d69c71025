"""Shared fixtures: the real sample raws and a tiny simulated dataset with planted defects."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RAW_SAMPLE_DIRS = (REPO_ROOT.parent / "shared" / "raw-samples", Path("/work/shared/raw-samples"))


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
