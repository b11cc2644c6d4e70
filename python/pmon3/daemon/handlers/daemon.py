"""daemon_status, daemon_stop, daemon_restart: pmond about itself."""

from __future__ import annotations

from typing import Any

from ...ipc.messages import DaemonRestartRequest, DaemonStatusRequest, DaemonStopRequest
from . import Context, handles


def _status(ctx: Context) -> dict[str, Any]:
    return ctx.control.status(ctx.caller, ctx.visible(), ctx.supervisor.is_alive)


@handles(DaemonStatusRequest)
async def daemon_status(ctx: Context, req: DaemonStatusRequest) -> dict[str, Any]:
    return _status(ctx)


@handles(DaemonStopRequest)
async def daemon_stop(ctx: Context, req: DaemonStopRequest) -> dict[str, Any]:
    ctx.control.stop(ctx.caller)  # pmond stops once this reply is on its way
    return _status(ctx)


@handles(DaemonRestartRequest)
async def daemon_restart(ctx: Context, req: DaemonRestartRequest) -> dict[str, Any]:
    ctx.control.restart(ctx.caller)
    return _status(ctx)
