"""sd_notify without libsystemd: READY=1, STOPPING=1 and watchdog pings over $NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Optional


def notify(message: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.sendto(message.encode(), path)
        except OSError:
            return False
    return True


def watchdog_interval() -> Optional[float]:
    """Half of WatchdogSec, when systemd asked this very process for pings."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


def start_watchdog(loop: asyncio.AbstractEventLoop) -> None:
    interval = watchdog_interval()
    if interval is None:
        return

    def ping() -> None:
        notify("WATCHDOG=1")
        loop.call_later(interval, ping)

    ping()
