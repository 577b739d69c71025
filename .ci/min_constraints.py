"""Print pip constraints that pin every dependency in pyproject.toml to its declared floor
('numpy>=1.26' -> 'numpy==1.26'), for the job that tests the minimum versions. torch is left out:
its floor on PyPI is a CUDA build of several GB; the job keeps the CPU torch the main job installs."""
import re
import sys
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
for spec in project["dependencies"]:         # the test tools (pytest, ruff) are not what users install
    m = re.match(r"^([A-Za-z0-9_.-]+)\s*(?:[^>]*?,)?\s*>=\s*([0-9][0-9.]*)", spec)
    if m and m[1] != "torch":
        print(f"{m[1]}=={m[2]}")
    elif not m and "==" not in spec:
        sys.exit(f"no floor in {spec!r}: declare one (>=)")
