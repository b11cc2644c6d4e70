"""del and drop: stop (gracefully unless forced) and remove rows; the logs pmond made for them go too."""

from __future__ import annotations

from typing import Any

from ...errors import NotFoundError
from ...ipc.messages import DeleteRequest, DropRequest
from . import Context, handles


@handles(DeleteRequest)
async def delete(ctx: Context, req: DeleteRequest) -> dict[str, Any]:
    p = ctx.find(req.id)
    family = ctx.authz.family(p)  # NAME goes with its instances
    if len(family) > 1:
        await ctx.supervisor.remove_many([q.id for q in family[1:]], req.force)
    return ctx.record(await ctx.supervisor.remove(p.id, req.force))


@handles(DropRequest)
async def drop(ctx: Context, req: DropRequest) -> list[dict[str, Any]]:
    procs = ctx.visible()
    if not procs:
        raise NotFoundError("there are no processes")
    return [ctx.record(p) for p in await ctx.supervisor.remove_many([p.id for p in procs], req.force)]
