"""ls|list, desc|show, log, logf: what the caller may see, with live CPU and memory for running processes."""

from __future__ import annotations

from typing import Any

import psutil

from ...models import Process
from ...states import Status
from . import Context, command

# psutil needs the same Process object between calls to report CPU since the previous look.
_probes: dict[int, psutil.Process] = {}


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.1f}"
        n /= 1024
    return f"{n:.1f} GB"


def with_usage(p: Process) -> dict[str, Any]:
    data = p.to_json()
    if p.status != Status.RUNNING or not p.pid:
        return data
    probe = _probes.get(p.pid)
    try:
        if probe is None:
            probe = _probes[p.pid] = psutil.Process(p.pid)
        with probe.oneshot():
            data["cpu_usage"] = f"{probe.cpu_percent(None):.1f}%"
            data["memory_usage"] = human_bytes(probe.memory_info().rss)
    except psutil.Error:
        _probes.pop(p.pid, None)
        data["cpu_usage"], data["memory_usage"] = "0", "0"
    return data


def _prune(live: set[int]) -> None:
    for pid in list(_probes):
        if pid not in live:
            del _probes[pid]


@command("list", "ls")
async def list_(ctx: Context) -> list[dict[str, Any]]:
    procs = ctx.visible()
    _prune({p.pid for p in procs if p.status == Status.RUNNING})
    return [with_usage(p) for p in procs]


@command("desc", "show", "log", "logf")
async def desc(ctx: Context) -> dict[str, Any]:
    return with_usage(ctx.find(ctx.arg("id")))
