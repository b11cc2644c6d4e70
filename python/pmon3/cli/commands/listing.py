"""ls|list and desc|show."""

from __future__ import annotations

import click

from . import handle_errors, id_argument, json_option, session, show_process, show_processes


@click.command("ls")
@json_option
@handle_errors
def ls_cmd(as_json: bool) -> None:
    """List all processes."""
    with session() as c:
        show_processes(c.list(), as_json)


@click.command("desc")
@id_argument()
@json_option
@handle_errors
def desc_cmd(id: str, as_json: bool) -> None:
    """List process information by id or name."""
    with session() as c:
        show_process(c.describe(id), as_json, table="desc")
