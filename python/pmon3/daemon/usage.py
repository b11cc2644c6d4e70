"""Live CPU and memory of running processes for `ls` and `desc`, from one read of /proc/<pid>/stat each.

CPU is the share of one core used since the previous look at that process (the first look shows 0.0%), as
psutil's cpu_percent(None) and pmon3 do; memory is the resident set. One read per process instead of
psutil's several: `ls` with many processes is a latency users feel."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

from ..models import Process
from ..states import Status

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.1f}"
        n /= 1024
    return f"{n:.1f} GB"


def sample(pid: int) -> Optional[tuple[int, float, float]]:
    """(start ticks, cpu seconds, rss bytes) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z":
        return None
    # after the comm field: state(0) ... utime(11) stime(12) ... starttime(19) vsize(20) rss(21)
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE


class Usage:
    def __init__(self) -> None:
        # pid -> (start ticks, cpu seconds, monotonic time) of the previous look, for CPU since then
        self._last: dict[int, tuple[int, float, float]] = {}

    def records(
        self, procs: list[Process], record: Callable[[Process], dict[str, Any]], prune: bool = True
    ) -> list[dict[str, Any]]:
        if prune:
            live = {p.pid for p in procs if p.status in (Status.RUNNING, Status.STARTING)}
            for pid in list(self._last):
                if pid not in live:
                    del self._last[pid]
        return [self._with_usage(p, record(p)) for p in procs]

    def _with_usage(self, p: Process, data: dict[str, Any]) -> dict[str, Any]:
        if p.status not in (Status.RUNNING, Status.STARTING) or not p.pid:
            return data
        now = time.monotonic()
        got = sample(p.pid)
        if got is None:
            self._last.pop(p.pid, None)
            data["cpu_usage"], data["memory_usage"] = "0", "0"
            return data
        start, cpu, rss = got
        before = self._last.get(p.pid)
        self._last[p.pid] = (start, cpu, now)
        share = 0.0
        if before is not None and before[0] == start and now > before[2]:  # same process (pid not reused)
            share = max(0.0, (cpu - before[1]) / (now - before[2]) * 100)
        data["cpu_usage"] = f"{share:.1f}%"
        data["memory_usage"] = human_bytes(rss)
        return data
