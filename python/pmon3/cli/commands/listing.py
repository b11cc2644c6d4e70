"""ls|list and desc|show."""

from __future__ import annotations

import click

from . import Command, handle_errors, id_argument, json_option, session, show_process, show_processes


@click.command("ls", cls=Command)
@json_option
@click.option("-A", "--all", "show_all", is_flag=True, help="on a terminal too, every process (not only a screenful)")
@handle_errors
def ls_cmd(as_json: bool, show_all: bool) -> None:
    """List all processes (on a terminal: a screenful and a summary when there are more)."""
    if as_json:  # pmond's JSON text as it came, indented: no record is decoded only to be encoded again
        with session() as c:
            text = c.list_json()
        from ..output import print_json_text

        print_json_text(text)
        return
    with session() as c:
        procs = c.list()
    if show_all:
        show_processes(procs, as_json)
    else:
        from ..output import process_table_for_terminal

        process_table_for_terminal(procs)


@click.command("desc", cls=Command)
@id_argument()
@json_option
@handle_errors
def desc_cmd(id: str, as_json: bool) -> None:
    """List process information by id or name."""
    with session() as c:
        show_process(c.describe(id), as_json, table="desc")
