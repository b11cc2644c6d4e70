"""ls|list and desc|show."""

from __future__ import annotations

import click

from . import Command, handle_errors, id_argument, json_option, session, show_process


@click.command("ls", cls=Command)
@json_option
@click.option("-A", "--all", "show_all", is_flag=True, help="on a terminal too, every process (not only a screenful)")
@handle_errors
def ls_cmd(as_json: bool, show_all: bool) -> None:
    """List all processes (on a terminal: a screenful and a summary when there are more)."""
    from ..ls import show

    show(as_json, show_all)


@click.command("desc", cls=Command)
@id_argument()
@json_option
@handle_errors
def desc_cmd(id: str, as_json: bool) -> None:
    """List process information by id or name."""
    with session() as c:
        show_process(c.describe(id), as_json, table="desc")
