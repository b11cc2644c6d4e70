"""Live CPU and memory of running processes for `ls` and `desc` (psutil, from /proc when asked)."""

from __future__ import annotations

from typing import Any, Callable

import psutil

from ..models import Process
from ..states import Status


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.1f}"
        n /= 1024
    return f"{n:.1f} GB"


class Usage:
    def __init__(self) -> None:
        # psutil needs the same Process object between calls to report CPU since the previous look.
        self._probes: dict[int, psutil.Process] = {}

    def records(
        self, procs: list[Process], record: Callable[[Process], dict[str, Any]], prune: bool = True
    ) -> list[dict[str, Any]]:
        if prune:
            live = {p.pid for p in procs if p.status == Status.RUNNING}
            for pid in list(self._probes):
                if pid not in live:
                    del self._probes[pid]
        return [self._with_usage(p, record(p)) for p in procs]

    def _with_usage(self, p: Process, data: dict[str, Any]) -> dict[str, Any]:
        if p.status != Status.RUNNING or not p.pid:
            return data
        probe = self._probes.get(p.pid)
        try:
            if probe is None:
                probe = self._probes[p.pid] = psutil.Process(p.pid)
            with probe.oneshot():
                data["cpu_usage"] = f"{probe.cpu_percent(None):.1f}%"
                data["memory_usage"] = human_bytes(probe.memory_info().rss)
        except psutil.Error:
            self._probes.pop(p.pid, None)
            data["cpu_usage"], data["memory_usage"] = "0", "0"
        return data
