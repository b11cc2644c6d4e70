"""completions/: the shell scripts of `pmon3 completion`, and what they complete.

click's scripts are generic: at TAB time they run `pmon3` with `_PMON3_COMPLETE=<shell>_complete`, so a new
command or option changes nothing in them. What TAB offers is recorded beside them in `cli-surface.txt`
(commands, options and choices, read through click's own completion code), so that a change of the CLI
shows up as a diff there and a test fails until `make completions` is run. `.click-version` records the
click that generated the scripts: the test compares them byte for byte under that click, and otherwise
the parts that do not depend on click's version (program, variable, protocol, hooks).

    python scripts/completions.py DIR     # write the three scripts, cli-surface.txt and .click-version
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FILES = {"bash": "pmon3.bash", "zsh": "_pmon3", "fish": "pmon3.fish"}
SURFACE = "cli-surface.txt"
CLICK_VERSION = ".click-version"


def script(shell: str) -> str:
    """What `pmon3 completion <shell>` prints."""
    from click.shell_completion import get_completion_class
    from pmon3.cli.app import cli

    comp = get_completion_class(shell)
    assert comp is not None
    return comp(cli, {}, "pmon3", "_PMON3_COMPLETE").source() + "\n"


def surface() -> str:
    """Every command path with the subcommands, options and choices that TAB offers there, one per line.
    Read in-process through click's completion code; live process names (from a daemon) are never asked."""
    import click
    from click.shell_completion import BashComplete
    from pmon3.cli.app import cli

    comp = BashComplete(cli, {}, "pmon3", "_PMON3_COMPLETE")

    def offers(args: list[str], incomplete: str) -> list[str]:
        return sorted(item.value for item in comp.get_completions(args, incomplete))

    lines = []
    todo: list[list[str]] = [[]]
    while todo:
        path = todo.pop(0)
        cmd: click.Command = cli
        ctx = click.Context(cli, info_name="pmon3")
        for name in path:
            assert isinstance(cmd, click.Group)
            sub = cmd.get_command(ctx, name)
            assert sub is not None, path
            cmd, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
        where = " ".join(["pmon3", *path])
        if isinstance(cmd, click.Group):
            subcommands = offers(path, "")
            lines.append(f"{where}: {' '.join(subcommands)}")
            todo.extend([*path, s] for s in subcommands)
        lines.append(f"{where} -: {' '.join(offers(path, '-'))}")
        for param in cmd.params:
            if isinstance(param.type, click.Choice):
                key = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
                lines.append(f"{where} {key}: {' '.join(sorted(map(str, param.type.choices)))}")
    return "\n".join(lines) + "\n"


def essentials(text: str) -> list[str]:
    """The parts of a completion script that do not depend on click's version: the completion variable
    with its protocol instruction, the program it is registered for, and the function names."""
    found = set(re.findall(r"_PMON3_COMPLETE=\w+", text))
    found |= set(re.findall(r"\b_pmon3_completion\w*", text))
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(("complete ", "compdef ")):
            found.add(re.sub(r"\s+", " ", line))
    return sorted(found)


def write(directory: Path) -> None:
    import importlib.metadata

    for shell, name in FILES.items():
        (directory / name).write_text(script(shell))
    (directory / SURFACE).write_text(surface())
    (directory / CLICK_VERSION).write_text(importlib.metadata.version("click") + "\n")


if __name__ == "__main__":
    write(Path(sys.argv[1]))
