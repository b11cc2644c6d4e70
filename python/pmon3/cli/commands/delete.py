"""del|delete and drop."""

from __future__ import annotations

import click

from . import Command, handle_errors, id_argument, json_option, session, show_process, show_processes


@click.command("del", cls=Command)
@id_argument()
@click.option("-f", "--force", is_flag=True, help="kill the process before deletion")
@json_option
@handle_errors
def del_cmd(id: str, force: bool, as_json: bool) -> None:
    """Delete process by id or name."""
    with session() as c:
        show_process(c.delete(id, force), as_json)


@click.command("drop", cls=Command)
@click.option("-f", "--force", is_flag=True, help="force kill before deleting processes")
@json_option
@handle_errors
def drop_cmd(force: bool, as_json: bool) -> None:
    """Delete all processes."""
    with session() as c:
        c.drop(force)
        show_processes(c.list(), as_json)
