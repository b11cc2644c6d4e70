"""reload, group_reload and scale: zero-downtime restarts and instances."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequestError
from ...ipc.messages import GroupReloadRequest, ReloadRequest, ScaleRequest
from .. import spec
from . import Context, handles

MAX_INSTANCES = spec.MAX_INSTANCES


@handles(ReloadRequest)
async def reload(ctx: Context, req: ReloadRequest) -> list[dict[str, Any]]:
    flags = req.restart_flags()
    targets = ctx.authz.family(ctx.find(req.id))  # instances one at a time: capacity never drops
    changes = [(p, spec.restart_changes(ctx.authz, ctx.caller, p, flags)) for p in targets]
    out = []
    for p, change in changes:
        done, note = await ctx.supervisor.reload(p.id, change)
        data = ctx.record(done)
        if note:
            data["message"] = note
        out.append(data)
    return out


@handles(GroupReloadRequest)
async def group_reload(ctx: Context, req: GroupReloadRequest) -> dict[str, Any]:
    g = ctx.authz.find_group(ctx.caller, req.id)
    for p in ctx.authz.group_members(ctx.caller, g):
        await ctx.supervisor.reload(p.id, {})
    members = ctx.authz.group_members(ctx.caller, g)
    return {
        "group": {"id": g.id, "name": g.name, "owner": ctx.authz.owner_name(g.owner)},
        "processes": [ctx.record(p) for p in members],
    }


@handles(ScaleRequest)
async def scale(ctx: Context, req: ScaleRequest) -> list[dict[str, Any]]:
    if not 1 <= req.instances <= MAX_INSTANCES:
        raise InvalidRequestError(f"instances: expected 1 to {MAX_INSTANCES}, got {req.instances}")
    p = ctx.find(req.id)
    return [ctx.record(q) for q in await ctx.supervisor.scale(p.id, req.instances)]
