"""The commands' parser (cli.commands.Command): a known short option is taken at once, without click's detour
through a NoSuchOption (which imports difflib); what is parsed and every error stay click's own."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from pmon3.cli.commands import Command
from pmon3.cli.commands.exec import exec_cmd
from pmon3.cli.commands.stop import stop_cmd

ARGVS = [
    ["/bin/sleep", "--name", "x", "-a", "1000"],
    ["/bin/sleep", "-a1000", "-n", "-e", "A=1", "-eB=2"],
    ["/bin/sleep", "-a=5"],
    ["/bin/sleep", "-na", "x y"],
    ["/bin/sleep", "-a", "-e"],  # -e is the value of -a
    ["/bin/sleep", "--", "-a", "1"],
    ["/bin/sleep", "-a"],  # requires an argument
    ["/bin/sleep", "-z"],  # no such option
    ["/bin/sleep", "-nz"],
    ["/bin/sleep", "--nme", "x"],  # did you mean --name?
    ["/bin/sleep", "-name", "x"],
    ["/bin/sleep", "-i", "0"],  # out of range
    ["/bin/sleep", "--restart", "sometimes"],
]


def parse(command: click.Command, argv: list[str]) -> object:
    try:
        with command.make_context("exec", list(argv)) as ctx:
            return ctx.params
    except click.ClickException as exc:
        return (type(exc).__name__, exc.format_message())


@pytest.mark.parametrize("argv", ARGVS)
def test_the_same_as_clicks_own_parser(argv: list[str]) -> None:
    plain = click.Command("exec", params=exec_cmd.params, context_settings=exec_cmd.context_settings)
    assert isinstance(exec_cmd, Command)
    assert parse(exec_cmd, argv) == parse(plain, argv)


def test_stop_force_the_same() -> None:
    plain = click.Command("stop", params=stop_cmd.params)
    for argv in (["api", "-f"], ["-f", "api"], ["api", "-x"], ["api", "--forc"]):
        assert parse(stop_cmd, argv) == parse(plain, argv)


def test_exec_with_short_options_does_not_import_difflib() -> None:
    code = (
        "import sys\nfrom pmon3.cli.commands.exec import exec_cmd\n"
        "exec_cmd.make_context('exec', ['/bin/sleep', '--name', 'x', '-a', '1000', '-n', '-e', 'A=1'])\n"
        "print('difflib' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
