"""version, reset and top: small requests with no state machine of their own."""

from __future__ import annotations

import os
from typing import Any

from ... import PMON3_COMPAT_VERSION, __version__
from ...ipc.messages import ResetRequest, TopRequest, Version
from . import Context, handles


@handles(Version)
async def version(ctx: Context, req: Version) -> dict[str, Any]:
    return {"version": __version__, "pmon3": PMON3_COMPAT_VERSION, "pid": os.getpid(), "uid": os.geteuid()}


@handles(ResetRequest)
async def reset(ctx: Context, req: ResetRequest) -> list[dict[str, Any]]:
    targets = [ctx.find(req.id)] if req.id else ctx.visible()
    ctx.supervisor.reset(p.id for p in targets)  # a backed-off process is retried at once
    return [ctx.record(p) for p in ctx.visible()]


@handles(TopRequest)
async def top(ctx: Context, req: TopRequest) -> dict[str, Any]:
    pids = ctx.supervisor.live_pids(p.id for p in ctx.visible())
    return {"pids": pids, "daemon": os.getpid()}
