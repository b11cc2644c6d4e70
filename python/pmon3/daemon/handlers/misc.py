"""version, ping, reset and top: small requests with no state machine of their own."""

from __future__ import annotations

import os
from typing import Any

from ... import PMON3_COMPAT_VERSION, __version__
from . import Context, command


@command("ping", "version")
async def version(ctx: Context) -> dict[str, Any]:
    return {"version": __version__, "pmon3": PMON3_COMPAT_VERSION, "pid": os.getpid(), "uid": os.geteuid()}


@command("reset")
async def reset(ctx: Context) -> list[dict[str, Any]]:
    key = ctx.arg("id")
    targets = [ctx.find(key)] if key else ctx.visible()
    for p in targets:
        p.restart_count = 0
        ctx.daemon.supervisor.clear_flap(p)  # a backed-off process is retried at once
        ctx.daemon.store.update_runtime(p)
    return [p.to_json() for p in ctx.visible()]


@command("top")
async def top(ctx: Context) -> dict[str, Any]:
    pids = [p.pid for p in ctx.visible() if ctx.daemon.supervisor.is_alive(p.id)]
    return {"pids": pids, "daemon": os.getpid()}
