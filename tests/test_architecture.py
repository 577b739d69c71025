"""The dependency direction of docs/architecture.md: capture -> curate <- train, and curate without torch."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"curate": {"capture", "train", "torch"}, "capture": {"train", "torch"}, "train": {"capture"}}


def imported(path: Path) -> set[str]:
    """Top-level package names a module imports (absolute imports; relative ones stay in the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_in_the_documented_direction(package):
    offenders = {f"{path.relative_to(ROOT)} imports {name}" for path in sorted((ROOT / package).rglob("*.py"))
                 for name in imported(path) & FORBIDDEN[package]}
    assert sorted(offenders) == []


def test_the_checker_sees_an_import_it_forbids(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom torch import nn\nfrom . import sibling\n\ndef f():\n    import train.loop\n")
    assert imported(module) == {"os", "torch", "train"}


def test_test_modules_share_helpers_through_helpers_py_only():
    """A test module imports shared code from tests/helpers.py (fixtures: conftest.py), never from
    another test module or from conftest, whose import would run twice under two names."""
    offenders = {f"{path.name} imports {name}" for path in sorted((ROOT / "tests").glob("*.py"))
                 for name in imported(path) if name.startswith("test_") or name == "conftest"}
    assert sorted(offenders) == []
