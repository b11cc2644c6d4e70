"""init and dgraph: bring processes up in dependency order, from the database and the process config."""

from __future__ import annotations

from typing import Any

from ...errors import SpawnError
from ...ipc.messages import DgraphRequest, InitRequest
from . import Context, handles


@handles(InitRequest)
async def init(ctx: Context, req: InitRequest) -> list[dict[str, Any]]:
    if req.blocking:
        errors = await ctx.boot.bring_up(ctx.caller, req.process_config_only)
        if errors:
            raise SpawnError("; ".join(errors))
    else:
        ctx.boot.plan(ctx.caller, req.process_config_only)  # report a broken config or a cycle now
        ctx.background(ctx.boot.bring_up(ctx.caller, req.process_config_only))
    return [ctx.record(p) for p in ctx.visible()]


@handles(DgraphRequest)
async def dgraph(ctx: Context, req: DgraphRequest) -> dict[str, Any]:
    plan = ctx.boot.plan(ctx.caller, req.process_config_only)
    return {"queue": plan.queue, "dependency_order": plan.ordered}
