"""restart|start ID [flags]."""

from __future__ import annotations

from typing import Any, Callable, Optional

import click

from ..output import escape, message
from . import Command, handle_errors, id_argument, json_option, session, show_process
from .exec import user_flag_check


def _restart_command(verb: str, doc: str) -> Callable[..., Any]:
    @click.command(verb, cls=Command, help=doc)
    @id_argument()
    @click.option("-n", "--no-autorestart", is_flag=True, help="do not restart upon process failure")
    @click.option("-u", "--user", help="run the process as this user")
    @click.option("-l", "--log", help="absolute path of the log file")
    @click.option("--log-dir", "--log_dir", "log_dir", help="log directory")
    @click.option("-a", "--args", "args_", help="arguments as one string")
    @click.option("-d", "--dependencies", multiple=True, help="names this process depends on")
    @json_option
    @handle_errors
    def command(
        id: str,
        no_autorestart: bool,
        user: Optional[str],
        log: Optional[str],
        log_dir: Optional[str],
        args_: Optional[str],
        dependencies: tuple[str, ...],
        as_json: bool,
    ) -> None:
        user_flag_check(user)
        with session() as c:
            method = c.restart if verb == "restart" else c.start
            data = method(
                id,
                no_auto_restart=no_autorestart,
                user=user or "",
                log=log or "",
                log_dir=log_dir or "",
                args=args_ or "",
                dependencies=list(dependencies),
            )
        if data.get("message") and not as_json:
            message(escape(data["message"]))
        show_process(data, as_json)

    return command


restart_cmd = _restart_command("restart", "(Re)start a process by id or name.")
start_cmd = _restart_command("start", "Start a process by id or name (a running one is left alone).")
