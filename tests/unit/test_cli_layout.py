"""The `aura` command line is a package: a group that loads each command's module by name, command
modules that share aura.cli.common and never import each other or the group, and a run that
imports only the module of the command it runs."""

from __future__ import annotations

import subprocess
import sys

import click

from aura.cli import group
from tests.support.harness import REPO
from tests.support.imports import cycles, graph


def test_no_cycle_through_the_commands_the_group_loads_by_name() -> None:
    """The group imports its commands' modules from strings, which the import graph cannot see: with
    those edges added, the CLI still has no cycle (a command module importing the group would make one)."""
    edges = graph()
    edges["aura.cli.group"] = edges["aura.cli.group"] | {module for module, _ in group.LAZY_COMMANDS.values()}
    found = [sorted(c) for c in cycles(edges) if any(m.startswith("aura.cli") for m in c)]
    assert found == []
    for module, _ in group.LAZY_COMMANDS.values():
        assert not edges[module] & {"aura.cli", "aura.cli.group"}, f"{module} imports the group"
        assert not any(m.startswith("aura.cli.") and m != "aura.cli.common" for m in edges[module]), (
            f"{module} imports another command module: shared code goes to aura.cli.common"
        )


def test_every_command_of_the_table_loads_under_its_name() -> None:
    ctx = click.Context(group.cli)
    for name in group.LAZY_COMMANDS:
        command = group.cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name, (name, command.name)


def test_a_command_imports_only_its_own_module(tmp_path) -> None:
    """`aura ps`, `aura wake`, `aura status` and the commands that answer the run or steer its tree
    start fast: the other command modules, the start and stop code and the model SDK stay unimported."""
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom aura.cli import cli\n"
        "for args in (['ps'], ['wake'], ['status'], ['questions'], ['answer', 'Q1', 'yes'], ['approve', 'Q1'],\n"
        "             ['deny', 'Q1', 'no'], ['task', 'note', 'T1', 'hi']):\n"
        "    CliRunner().invoke(cli, ['--project', sys.argv[1], *args])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('aura.cli.', 'aura.startstop', 'anthropic'))))\n"
    )
    (tmp_path / ".aura").mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    loaded = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr
    assert loaded == str(["aura.cli.common", "aura.cli.group", "aura.cli.look", "aura.cli.steer"]), loaded
