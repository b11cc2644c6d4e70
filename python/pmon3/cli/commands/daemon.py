"""daemon status|stop|restart: pmond about itself."""

from __future__ import annotations

import time
from typing import Any

import click

from ..output import escape, message, print_json, render_table
from . import handle_errors, json_option, session


def _uptime(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d" if d else "") + (f"{h}h" if d or h else "") + f"{m}m{s}s"


def show_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(status)
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status["by_status"].items())) or "none"
    rows = [
        ["pid", str(status["pid"])],
        ["version", status["version"]],
        ["uptime", _uptime(status["uptime"])],
        ["started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(status["started_at"]))],
        ["mode", status["mode"] + (" (systemd)" if status["systemd"] else "")],
        ["transport", f"{status['transport']} {status['endpoint']}"],
        ["config", status["config"]],
        ["data", status["data_directory"]],
        ["logs", status["logs_directory"]],
        ["process trees", status["process_trees"]],
        ["processes", f"{status['processes']} ({status['alive']} alive: {counts})"],
    ]
    from sys import stdout

    stdout.write(render_table(["pmond", ""], [[escape(a), escape(b)] for a, b in rows]))


@click.group("daemon")
def daemon_cmd() -> None:
    """pmond itself: status, stop, restart."""


@daemon_cmd.command("status")
@json_option
@handle_errors
def status(as_json: bool) -> None:
    """pmond's pid, version, uptime, mode, transport, paths and process counts."""
    with session() as c:
        show_status(dict(c.daemon_status()), as_json)


@daemon_cmd.command("stop")
@json_option
@handle_errors
def stop(as_json: bool) -> None:
    """Stop pmond (with handle_interrupts: true, its processes are stopped first)."""
    from ...client import Client

    with Client() as c:  # never start one just to stop it
        data = dict(c.daemon_stop())
    if as_json:
        print_json(data)
    else:
        message(f"pmond (pid {data['pid']}) is stopping")


@daemon_cmd.command("restart")
@json_option
@handle_errors
def restart(as_json: bool) -> None:
    """Replace pmond by a new one (the installed version); every process keeps running."""
    from ...client import Client

    with Client() as c:
        old = dict(c.daemon_restart())
    with Client() as c:  # waits for the new pmond to say it is ready
        new = dict(c.daemon_status())
    if as_json:
        print_json(new)
    else:
        was = escape(str(old["version"]))
        message(f"pmond restarted (pid {new['pid']}, version {escape(str(new['version']))}, was {was})")
