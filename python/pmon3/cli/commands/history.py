"""history [NAME|ID] [-n N] [--json]: how processes ended and what pmond did next; metrics: Prometheus text."""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

import click

from . import Command, handle_errors, id_argument, json_option, session


def _exit_text(r: dict[str, Any]) -> str:
    if r.get("signal_name"):
        return str(r["signal_name"]) + (" (core)" if r.get("core_dumped") else "")
    return f"code {r['code']}" if r.get("code") is not None else "?"


def history_table(records: list[dict[str, Any]]) -> None:
    from ...models import bytes_text, duration_text
    from ..output import display_name, render_table

    headers = ["Time", "Name", "PID", "Exit", "Reason", "Uptime", "CPU", "Peak RSS", "Then"]
    rows = []
    for r in records:
        oom = {True: "oom", None: "oom?" if r.get("oom_source") == "vmstat" else ""}.get(r.get("oom_kill"), "")
        reason = r["reason"] if r["reason"] != "signal" or not oom else oom
        rows.append(
            [
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"])),
                display_name(r),
                str(r["pid"]),
                _exit_text(r),
                reason + (f" ({r['detected']})" if r["detected"] != "child" else ""),
                duration_text(r["uptime"]),
                f"{r['cpu_seconds']:.2f}s" if r.get("cpu_seconds") is not None else "",
                bytes_text(r["peak_rss"]) if r.get("peak_rss") else "",
                _then(r),
            ]
        )
    justify = ["left", "left", "right", "left", "left", "right", "right", "right", "left"]
    sys.stdout.write(render_table(headers, rows, justify))


def _then(r: dict[str, Any]) -> str:
    from ...models import ExitRecord

    fields = {k: r[k] for k in ExitRecord.__dataclass_fields__ if k in r}
    fields["owner"] = 0
    return ExitRecord(**fields).then()


@click.command("history", cls=Command)
@id_argument(required=False)
@click.option(
    "-n", "--lines", "limit", type=click.IntRange(1, 100_000), default=20, show_default=True, help="exits shown"
)
@json_option
@handle_errors
def history_cmd(id: Optional[str], limit: int, as_json: bool) -> None:
    """How processes ended and what pmond did next, newest first."""
    from ..output import message, print_json

    with session() as c:
        records = c.history(id, limit)
    if as_json:
        print_json(records)
    elif not records:
        message("no exits recorded")
    else:
        history_table(list(records))


@click.command("metrics", cls=Command)
@handle_errors
def metrics_cmd() -> None:
    """Prometheus metrics, as metrics.listen serves them (for node_exporter's textfile collector)."""
    with session() as c:
        text = c.metrics()
    # pmond escapes every control character in label values (daemon/metrics.py): the text is safe as it is.
    sys.stdout.write(text)
