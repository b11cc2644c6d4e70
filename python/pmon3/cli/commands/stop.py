"""stop and kill."""

from __future__ import annotations

import click

from . import Command, handle_errors, id_argument, json_option, session, show_process, show_processes


@click.command("stop", cls=Command)
@id_argument()
@click.option("-f", "--force", is_flag=True, help="force the process to stop (SIGKILL at once)")
@json_option
@handle_errors
def stop_cmd(id: str, force: bool, as_json: bool) -> None:
    """Stop a process by id or name."""
    with session() as c:
        show_process(c.stop(id, force), as_json)


@click.command("kill", cls=Command)
@click.option("-f", "--force", is_flag=True, help="force kill all processes")
@json_option
@handle_errors
def kill_cmd(force: bool, as_json: bool) -> None:
    """Terminate all processes."""
    with session() as c:
        show_processes(c.kill(force), as_json)
