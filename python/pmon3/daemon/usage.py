"""Live CPU and memory of running processes for `ls` and `desc`, from one read of /proc/<pid>/stat each.

CPU is the share of one core used since the previous look at that process (the first look shows 0.0%), as
psutil's cpu_percent(None) and pmon3 do; memory is the resident set. One read per process instead of
psutil's several: `ls` with many processes is a latency users feel."""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional

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
        if prune:
            alive = set(live)
            for pid in [pid for pid in self._last if pid not in alive]:
                del self._last[pid]
        # one native call reads every /proc/<pid>/stat (10,000 processes: 10,000 files), without the GIL
        samples = dict(zip(live, _native.proc_usage(live)))
        return [self._with_usage(p, record(p), samples) for p in procs]

    def _with_usage(
        self, p: Process, data: dict[str, Any], samples: dict[int, Optional[tuple[int, int, int]]]
    ) -> dict[str, Any]:
        if p.status not in _LIVE or not p.pid:
            return data
        now = time.monotonic()
        raw = samples.get(p.pid)
        got = None if raw is None else (raw[0], raw[1] / _TICK, raw[2] * _PAGE)
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
