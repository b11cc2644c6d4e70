"""topn: a live view of pmond's processes (psutil); the pid list follows restarts. ESC or q quits."""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Any

import click

from ..output import CliError
from . import Command, handle_errors, session


def _rows(pids: list[int], by_cpu: bool, probes: dict[int, Any]) -> list[tuple[Any, ...]]:
    import psutil

    rows = []
    for pid in pids:
        try:
            proc = probes.get(pid) or probes.setdefault(pid, psutil.Process(pid))
            with proc.oneshot():
                rows.append(
                    (
                        pid,
                        proc.username(),
                        proc.cpu_percent(None),
                        proc.memory_percent(),
                        proc.memory_info().rss,
                        proc.status(),
                        " ".join(proc.cmdline()) or proc.name(),
                    )
                )
        except psutil.Error:
            probes.pop(pid, None)
    rows.sort(key=lambda r: r[2] if by_cpu else r[4], reverse=True)
    return rows


def _table(rows: list[tuple[Any, ...]], by_cpu: bool) -> Any:
    from rich import box
    from rich.table import Table

    other = "Memory" if by_cpu else "CPU"
    table = Table(
        box=box.SIMPLE,
        title=f"Press ESC or q to quit, (s) to sort by {other} utilization",
        title_style="bold red underline",
    )
    for col in ("PID", "USER", "%CPU", "%MEM", "RSS", "S", "COMMAND"):
        table.add_column(col, justify="right" if col in ("PID", "%CPU", "%MEM", "RSS") else "left", no_wrap=True)
    for pid, user, cpu, mem, rss, status, cmd in rows:
        table.add_row(str(pid), user, f"{cpu:.1f}", f"{mem:.1f}", f"{rss // 1024} K", status[:1].upper(), cmd)
    return table


@click.command("topn", cls=Command)
@click.option(
    "-s", "--seconds", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="refresh every (n) seconds"
)
@handle_errors
def topn_cmd(seconds: float) -> None:
    """Shows processes with a live top view."""
    import termios
    import tty

    from rich.live import Live

    if not sys.stdin.isatty():
        raise CliError("topn needs a terminal")
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    probes: dict[int, Any] = {}
    by_cpu = False
    with session() as s:
        try:
            tty.setcbreak(fd)
            with Live(auto_refresh=False, screen=False) as live:
                while True:
                    top = s.top()
                    live.update(_table(_rows([*top["pids"], top["daemon"]], by_cpu, probes), by_cpu), refresh=True)
                    deadline = time.monotonic() + seconds
                    while (left := deadline - time.monotonic()) > 0:
                        ready, _, _ = select.select([fd], [], [], left)
                        if not ready:
                            break
                        key = os.read(fd, 8)
                        if key[:1] in (b"\x1b", b"q", b"\x03"):
                            return
                        if key[:1] == b"s":
                            by_cpu = not by_cpu
                            break
        except KeyboardInterrupt:
            pass
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
