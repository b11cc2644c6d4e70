"""stop and kill: graceful (stop signal to the group, stop_timeout, then SIGKILL) unless forced."""

from __future__ import annotations

import asyncio
from typing import Any

from ...states import Status
from . import CommandError, Context, command


@command("stop")
async def stop(ctx: Context) -> dict[str, Any]:
    p = ctx.find(ctx.arg("id"))
    sup = ctx.daemon.supervisor
    async with sup.lock(p.id):
        p = await sup.stop(p, force=bool(ctx.arg("force", False)))
    return p.to_json()


@command("kill")
async def kill(ctx: Context) -> list[dict[str, Any]]:
    sup = ctx.daemon.supervisor
    targets = [p for p in ctx.visible() if sup.is_alive(p.id) or p.status == Status.RUNNING]
    if not targets:
        raise CommandError("could not find running processes", "not_found")

    async def one(p_id: int) -> None:
        async with sup.lock(p_id):
            current = ctx.daemon.store.get(p_id)
            if current is not None:
                await sup.stop(current, force=bool(ctx.arg("force", False)))

    await asyncio.gather(*(one(p.id) for p in targets))
    return [p.to_json() for p in ctx.visible()]
