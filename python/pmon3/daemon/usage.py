"""Live CPU and memory of running processes for `ls` and `desc`, from one read of /proc/<pid>/stat each.

CPU is the share of one core used since the previous look at that process (the first look shows 0.0%), as
psutil's cpu_percent(None) and pmon3 do; memory is the resident set. One read per process instead of
psutil's several: `ls` with many processes is a latency users feel."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from .. import _native
from ..models import Process
from ..states import Status

_LIVE = (Status.RUNNING, Status.STARTING)

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.1f}"
        n /= 1024
    return f"{n:.1f} GB"


class Usage:
    def __init__(self) -> None:
        # pid -> (start ticks, cpu seconds, monotonic time) of the previous look, for CPU since then
        self._last: dict[int, tuple[int, float, float]] = {}

    def records(
        self, procs: list[Process], record: Callable[[Process], dict[str, Any]], prune: bool = True
    ) -> list[dict[str, Any]]:
        live = [p.pid for p in procs if p.pid and p.status in _LIVE]
        last = self._last
        if prune:
            alive = set(live)
            for pid in [pid for pid in last if pid not in alive]:
                del last[pid]
        # one native call reads every /proc/<pid>/stat (10,000 processes: 10,000 files), without the GIL
        samples = dict(zip(live, _native.proc_usage(live)))
        now = time.monotonic()  # one instant for the whole answer: the reads above took well under a tick
        out = []
        for p in procs:  # one loop, locals only: this runs per process of every `ls`
            data = record(p)
            out.append(data)
            if not p.pid or p.status not in _LIVE:
                continue
            raw = samples.get(p.pid)
            if raw is None:
                last.pop(p.pid, None)
                data["cpu_usage"], data["memory_usage"] = "0", "0"
                continue
            start, cpu = raw[0], raw[1] / _TICK
            before = last.get(p.pid)
            last[p.pid] = (start, cpu, now)
            share = 0.0
            if before is not None and before[0] == start and now > before[2]:  # same process (pid not reused)
                share = max(0.0, (cpu - before[1]) / (now - before[2]) * 100)
            data["cpu_usage"] = f"{share:.1f}%"
            data["memory_usage"] = human_bytes(raw[2] * _PAGE)
        return out
