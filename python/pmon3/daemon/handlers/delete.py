"""del|delete and drop: stop (gracefully unless forced) and remove rows; logs in pmond's log dir go too."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from ...logfiles import rotated_files
from ...models import Process
from . import CommandError, Context, command

log = logging.getLogger("pmond")


async def remove(ctx: Context, p: Process, force: bool) -> dict[str, Any]:
    sup = ctx.daemon.supervisor
    async with sup.lock(p.id):
        await sup.terminate(p.id, force=force)
        ctx.daemon.store.delete(p.id)
        sup.forget(p.id)
    # Only files pmond created itself are removed; a user-chosen log path is the user's to keep.
    if os.path.dirname(p.log) == ctx.daemon.cfg.logs_directory:
        for path in [p.log, *rotated_files(p.log)]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove %s: %s", path, exc)
    return p.to_json()


@command("del", "delete")
async def delete(ctx: Context) -> dict[str, Any]:
    return await remove(ctx, ctx.find(ctx.arg("id")), bool(ctx.arg("force", False)))


@command("drop")
async def drop(ctx: Context) -> list[dict[str, Any]]:
    procs = ctx.visible()
    if not procs:
        raise CommandError("there are no processes", "not_found")
    return list(await asyncio.gather(*(remove(ctx, p, bool(ctx.arg("force", False))) for p in procs)))
