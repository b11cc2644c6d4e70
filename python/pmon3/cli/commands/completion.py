"""completion bash|zsh|fish: click's own completion scripts (live ids come from the daemon at TAB time)."""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Generate completion script."""
    from click.shell_completion import get_completion_class

    from ..app import cli

    comp_cls = get_completion_class(shell)
    assert comp_cls is not None
    click.echo(comp_cls(cli, {}, "pmon3", "_PMON3_COMPLETE").source())
