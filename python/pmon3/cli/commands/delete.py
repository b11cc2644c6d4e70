"""del|delete and drop."""

from __future__ import annotations

import click

from . import handle_errors, id_argument, json_option, session, show_process, show_processes


@click.command("del")
@id_argument()
@click.option("-f", "--force", is_flag=True, help="kill the process before deletion")
@json_option
@handle_errors
def del_cmd(id: str, force: bool, as_json: bool) -> None:
    """Delete process by id or name."""
    with session() as s:
        show_process(s.call("del", {"id": id, "force": force}, timeout=s.stop_timeout()), as_json)


@click.command("drop")
@click.option("-f", "--force", is_flag=True, help="force kill before deleting processes")
@json_option
@handle_errors
def drop_cmd(force: bool, as_json: bool) -> None:
    """Delete all processes."""
    with session() as s:
        s.call("drop", {"force": force}, timeout=s.stop_timeout())
        show_processes(s.call("list"), as_json)
