"""Every command of the three CLIs has help text with an example and a docs entry."""
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from capture.cli import main as capture_main
from curate.cli import main as curate_main
from train.cli import main as train_main

DOCS = Path(__file__).resolve().parents[1] / "docs"
GROUPS = {"capture": capture_main, "curate": curate_main, "train": train_main}
COMMANDS = [(group, name) for group, cli in GROUPS.items() for name in cli.commands]


@pytest.mark.parametrize("group, name", COMMANDS)
def test_command_has_help_and_docs(group, name):
    command = GROUPS[group].commands[name]
    result = CliRunner().invoke(GROUPS[group], [name, "-h"])
    assert result.exit_code == 0 and command.help and len(command.help.strip()) > 20
    assert re.search(rf"^\s*{group} {name}\b", result.output, re.M), "the help has no example"
    assert f"{group} {name}" in (DOCS / f"{group}.md").read_text(), f"docs/{group}.md does not mention {name}"


def test_groups_answer_help():
    for cli in GROUPS.values():
        assert isinstance(cli, click.Group) and CliRunner().invoke(cli, ["--help"]).exit_code == 0


@pytest.mark.parametrize("group", GROUPS)
def test_groups_answer_version(group):
    from importlib.metadata import version
    result = CliRunner().invoke(GROUPS[group], ["--version"])
    assert result.exit_code == 0 and result.output.strip().endswith(f"(sidkit) {version('sidkit')}")


def test_every_finding_code_is_documented():
    """Each code curate can report (curate.findings.CODES) has its line in docs/curate.md."""
    import re

    from curate.findings import CODES

    text = (DOCS / "curate.md").read_text()
    missing = [code for code in CODES if not re.search(rf"(^|[\s|`,]){re.escape(code)}([\s|`,]|$)", text, re.M)]
    assert missing == []
    rows = re.findall(r"^\| ([a-z0-9-]+(?:, [a-z0-9-]+)*) \| (error|warning) \|", text, re.M)
    documented = {code: severity for group, severity in rows for code in group.split(", ")}
    assert set(documented) <= set(CODES)                       # and no table row for a code that is gone
    assert {c: s for c, s in documented.items() if CODES[c] != s} == {}   # with the severity it has
