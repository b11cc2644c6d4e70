"""init and reset."""

from __future__ import annotations

from typing import Optional

import click

from . import Command, handle_errors, id_argument, json_option, session, show_processes


@click.command("init", cls=Command)
@click.option("-c", "--process-config-only", is_flag=True, help="only the process config file's entries")
@click.option("-b", "--blocking", is_flag=True, help="answer only after all processes have started")
@json_option
@handle_errors
def init_cmd(process_config_only: bool, blocking: bool, as_json: bool) -> None:
    """Start the process config's entries and every process that is not running (user-stopped ones stay)."""
    with session() as c:
        show_processes(c.init(process_config_only, blocking), as_json)


@click.command("reset", cls=Command)
@id_argument(required=False)
@json_option
@handle_errors
def reset_cmd(id: Optional[str], as_json: bool) -> None:
    """Reset the restart counter(s)."""
    with session() as c:
        show_processes(c.reset(id), as_json)
