"""group|groups: named sets of processes, many to many; every change is one transaction."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from . import CommandError, Context, command
from .delete import remove
from .exec import NAME_RE

GROUP_NAME = re.compile(NAME_RE.pattern)


def _split(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def _group(ctx: Context, key: str) -> tuple[int, str]:
    g = ctx.daemon.store.get_group(str(key))
    if g is None:
        raise CommandError(f"Group ({key}) does not exist", "not_found")
    return g


def _members(ctx: Context, group_id: int) -> list[Any]:
    store = ctx.daemon.store
    procs = [store.get(pid) for pid in store.group_members(group_id)]
    return [p for p in procs if p is not None and ctx.may_see(p)]


def _reply(ctx: Context, g: tuple[int, str]) -> dict[str, Any]:
    return {"group": {"id": g[0], "name": g[1]}, "processes": [p.to_json() for p in _members(ctx, g[0])]}


@command("group_list")
async def group_list(ctx: Context) -> list[dict[str, Any]]:
    return [{"id": gid, "name": name} for gid, name in ctx.daemon.store.list_groups()]


@command("group_create")
async def group_create(ctx: Context) -> dict[str, Any]:
    name = str(ctx.arg("name"))
    if not GROUP_NAME.fullmatch(name) or name.isdigit():
        raise CommandError(f"invalid group name {name!r}: letters, digits and . _ - @ + :, not only digits", "invalid")
    if ctx.daemon.store.get_group(name) is not None:
        raise CommandError(f"group {name} already exists", "conflict")
    gid, name = ctx.daemon.store.create_group(name)
    return {"id": gid, "name": name}


@command("group_del")
async def group_del(ctx: Context) -> dict[str, Any]:
    if not ctx.is_root and ctx.daemon.cfg.mode == "system":
        raise CommandError("permission denied: only root may delete groups", "denied")
    g = _group(ctx, ctx.arg("id"))
    ctx.daemon.store.delete_group(g[0])
    return {"id": g[0], "name": g[1]}


@command("group_desc")
async def group_desc(ctx: Context) -> dict[str, Any]:
    return _reply(ctx, _group(ctx, ctx.arg("id")))


async def _membership(ctx: Context, add: bool) -> list[dict[str, Any]]:
    groups = [_group(ctx, g) for g in _split(ctx.arg("groups"))]
    procs = [ctx.find(p) for p in _split(ctx.arg("processes"))]
    if not groups or not procs:
        raise CommandError("name at least one group and one process", "invalid")
    ctx.daemon.store.change_membership([g[0] for g in groups], [p.id for p in procs], add)
    return [_reply(ctx, g) for g in groups]


@command("group_assign")
async def group_assign(ctx: Context) -> list[dict[str, Any]]:
    return await _membership(ctx, add=True)


@command("group_remove")
async def group_remove(ctx: Context) -> list[dict[str, Any]]:
    return await _membership(ctx, add=False)


@command("group_stop")
async def group_stop(ctx: Context) -> dict[str, Any]:
    g = _group(ctx, ctx.arg("id"))
    sup = ctx.daemon.supervisor

    async def one(p_id: int) -> None:
        async with sup.lock(p_id):
            current = ctx.daemon.store.get(p_id)
            if current is not None:
                await sup.stop(current, force=bool(ctx.arg("force", False)))

    await asyncio.gather(*(one(p.id) for p in _members(ctx, g[0])))
    return _reply(ctx, g)


@command("group_restart")
async def group_restart(ctx: Context) -> dict[str, Any]:
    from .restart import restart

    g = _group(ctx, ctx.arg("id"))
    for p in _members(ctx, g[0]):
        sub = Context(ctx.daemon, ctx.uid, {"id": str(p.id), "verb": "restart", "flags": ctx.arg("flags", {})})
        await restart(sub)
    return _reply(ctx, g)


@command("group_drop")
async def group_drop(ctx: Context) -> dict[str, Any]:
    g = _group(ctx, ctx.arg("id"))
    members = _members(ctx, g[0])
    await asyncio.gather(*(remove(ctx, p, bool(ctx.arg("force", False))) for p in members))
    return {"group": {"id": g[0], "name": g[1]}, "processes": [p.to_json() for p in members]}
