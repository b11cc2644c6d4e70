"""reload ID and scale ID N."""

from __future__ import annotations

import os
from typing import Optional

import click

from ..output import escape, message
from . import Command, handle_errors, id_argument, json_option, session, show_processes


@click.command("reload", cls=Command)
@id_argument()
@click.option("-u", "--user", help="run the new copy as this user")
@click.option("-l", "--log", help="absolute path of the log file")
@click.option("--log-dir", "--log_dir", "log_dir", help="log directory")
@click.option("-a", "--args", "args_", help="arguments as one string")
@click.option("-d", "--dependencies", multiple=True, help="names this process depends on")
@json_option
@handle_errors
def reload_cmd(
    id: str,
    user: Optional[str],
    log: Optional[str],
    log_dir: Optional[str],
    args_: Optional[str],
    dependencies: tuple[str, ...],
    as_json: bool,
) -> None:
    """Restart without downtime: the new copy starts, and the old one stops once the new one is ready."""
    with session() as c:
        procs = c.reload(
            id,
            user=user or "",
            log=os.path.abspath(log) if log else "",
            log_dir=os.path.abspath(log_dir) if log_dir else "",
            args=args_ or "",
            dependencies=list(dependencies),
        )
    if not as_json:
        for note in dict.fromkeys(str(p["message"]) for p in procs if p.get("message")):
            message(f"note: {escape(note)}")
    show_processes([dict(p) for p in procs], as_json)


@click.command("scale", cls=Command)
@id_argument()
@click.argument("instances", type=click.IntRange(1, 256))
@json_option
@handle_errors
def scale_cmd(id: str, instances: int, as_json: bool) -> None:
    """Run N instances of a process (NAME, NAME@1 ...), sharing its sockets."""
    with session() as c:
        show_processes([dict(p) for p in c.scale(id, instances)], as_json)
