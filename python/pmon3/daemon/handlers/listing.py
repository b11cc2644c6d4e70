"""list and desc: what the caller may see, with live CPU and memory for running processes."""

from __future__ import annotations

from typing import Any

from ...ipc.messages import DescRequest, ListRequest
from ...models import Process
from . import Context, handles


@handles(ListRequest)
async def list_(ctx: Context, req: ListRequest) -> list[dict[str, Any]]:
    procs = ctx.authz.visible_rows(ctx.caller)  # read only: records are made from them at once
    owners: dict[int, str] = {}

    def record(p: Process) -> dict[str, Any]:
        name = owners.get(p.owner)
        if name is None:
            name = owners[p.owner] = ctx.authz.owner_name(p.owner)
        return p.to_json(name)

    return ctx.usage.records(procs, record)


@handles(DescRequest)
async def desc(ctx: Context, req: DescRequest) -> dict[str, Any]:
    p = ctx.find(req.id)
    data = ctx.usage.records([p], ctx.record, prune=False)[0]
    data.update(ctx.supervisor.runtime_info(p.id))
    return data
