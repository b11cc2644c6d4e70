"""stop and kill: graceful (stop signal to the group, stop_timeout, then SIGKILL) unless forced."""

from __future__ import annotations

from typing import Any

from ...errors import NotFoundError
from ...ipc.messages import KillRequest, StopRequest
from ...states import Status
from . import Context, handles


@handles(StopRequest)
async def stop(ctx: Context, req: StopRequest) -> dict[str, Any]:
    p = ctx.find(req.id)
    family = ctx.authz.family(p)  # NAME stops its instances too
    if len(family) > 1:
        await ctx.supervisor.stop_many([q.id for q in family[1:]], req.force)
    return ctx.record(await ctx.supervisor.stop(p.id, req.force))


@handles(KillRequest)
async def kill(ctx: Context, req: KillRequest) -> list[dict[str, Any]]:
    targets = [p.id for p in ctx.visible() if ctx.supervisor.is_alive(p.id) or p.status == Status.RUNNING]
    if not targets:
        raise NotFoundError("could not find running processes")
    await ctx.supervisor.stop_many(targets, req.force)
    return [ctx.record(p) for p in ctx.visible()]
