"""group_*: named sets of one owner's processes; every change is one transaction."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequestError
from ...ipc.messages import (
    GroupAssignRequest,
    GroupCreateRequest,
    GroupDeleteRequest,
    GroupDescRequest,
    GroupDropRequest,
    GroupListRequest,
    GroupRemoveRequest,
    GroupRestartRequest,
    GroupStopRequest,
)
from ...models import Group
from .. import spec
from . import Context, handles


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _group_record(ctx: Context, g: Group) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "owner": ctx.authz.owner_name(g.owner)}


def _reply(ctx: Context, g: Group) -> dict[str, Any]:
    members = ctx.authz.group_members(ctx.caller, g)
    return {"group": _group_record(ctx, g), "processes": [ctx.record(p) for p in members]}


@handles(GroupListRequest)
async def group_list(ctx: Context, req: GroupListRequest) -> list[dict[str, Any]]:
    return [_group_record(ctx, g) for g in ctx.authz.visible_groups(ctx.caller)]


@handles(GroupCreateRequest)
async def group_create(ctx: Context, req: GroupCreateRequest) -> dict[str, Any]:
    name = ctx.authz.new_group_name(ctx.caller, req.name)
    return _group_record(ctx, ctx.groups.create(ctx.caller.uid, name))


@handles(GroupDeleteRequest)
async def group_del(ctx: Context, req: GroupDeleteRequest) -> dict[str, Any]:
    g = ctx.authz.find_group(ctx.caller, req.id)
    ctx.authz.may_delete_group(ctx.caller, g)
    ctx.groups.delete(g)
    return _group_record(ctx, g)


@handles(GroupDescRequest)
async def group_desc(ctx: Context, req: GroupDescRequest) -> dict[str, Any]:
    return _reply(ctx, ctx.authz.find_group(ctx.caller, req.id))


async def _membership(ctx: Context, groups_arg: str, procs_arg: str, add: bool) -> list[dict[str, Any]]:
    groups = [ctx.authz.find_group(ctx.caller, g) for g in _split(groups_arg)]
    procs = [ctx.find(p) for p in _split(procs_arg)]
    if not groups or not procs:
        raise InvalidRequestError("name at least one group and one process")
    ctx.authz.check_membership(ctx.caller, groups, procs)
    ctx.groups.change(groups, procs, add)
    return [_reply(ctx, g) for g in groups]


@handles(GroupAssignRequest)
async def group_assign(ctx: Context, req: GroupAssignRequest) -> list[dict[str, Any]]:
    return await _membership(ctx, req.groups, req.processes, add=True)


@handles(GroupRemoveRequest)
async def group_remove(ctx: Context, req: GroupRemoveRequest) -> list[dict[str, Any]]:
    return await _membership(ctx, req.groups, req.processes, add=False)


@handles(GroupStopRequest)
async def group_stop(ctx: Context, req: GroupStopRequest) -> dict[str, Any]:
    g = ctx.authz.find_group(ctx.caller, req.id)
    await ctx.supervisor.stop_many([p.id for p in ctx.authz.group_members(ctx.caller, g)], req.force)
    return _reply(ctx, g)


@handles(GroupRestartRequest)
async def group_restart(ctx: Context, req: GroupRestartRequest) -> dict[str, Any]:
    g = ctx.authz.find_group(ctx.caller, req.id)
    flags = req.restart_flags()
    members = ctx.authz.group_members(ctx.caller, g)
    changes = [(p.id, spec.restart_changes(ctx.authz, ctx.caller, p, flags)) for p in members]
    for process_id, change in changes:  # one after the other, as pmon3
        await ctx.supervisor.restart(process_id, change, "restart")
    return _reply(ctx, g)


@handles(GroupDropRequest)
async def group_drop(ctx: Context, req: GroupDropRequest) -> dict[str, Any]:
    g = ctx.authz.find_group(ctx.caller, req.id)
    members = ctx.authz.group_members(ctx.caller, g)
    removed = await ctx.supervisor.remove_many([p.id for p in members], req.force)
    return {"group": _group_record(ctx, g), "processes": [ctx.record(p) for p in removed]}
