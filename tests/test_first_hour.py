"""Issue 19: a newcomer's first hour without a surprise (the items not tested beside their code)."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

from click.testing import CliRunner

from curate.cli import main as curate_main

REPO = Path(__file__).resolve().parents[1]


def test_the_install_prints_no_license_banner():
    """setuptools warned three times per install that a TOML-table license is deprecated: the
    license is an SPDX string, which needs setuptools 77."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["build-system"]["requires"] == ["setuptools>=77"]


def test_inspect_prints_values_as_a_person_writes_them(raw_samples):
    result = CliRunner().invoke(curate_main, ["inspect", str(raw_samples / "RAW_CANON_D30_SRGB.CRW"),
                                              str(raw_samples / "Blackmagic.dng")], terminal_width=200)
    assert result.exit_code == 0, result.output
    rows = {tuple(c.strip() for c in line.split("│")[1:3]) for line in result.stdout.splitlines() if "│" in line}
    assert ("iso", "100") in rows and ("black_level", "126 126 126 126") in rows and ("exposure_s", "1/200") in rows
    assert ("exposure_s", "-") in rows and ("camera", "Blackmagic Pocket Cinema Camera 4K") in rows
    assert "None" not in result.stdout and "100.0" not in result.stdout and "[126" not in result.stdout
    assert "no-exposure" in result.stdout and "0 error(s)" in result.stderr
    data = json.loads(CliRunner().invoke(curate_main, ["inspect", str(raw_samples / "Blackmagic.dng"),
                                                       "--format", "json"]).stdout)
    assert data[0]["exposure_s"] is None and [f["code"] for f in data[0]["findings"]] == ["no-exposure"]
