"""exec: create (or re-create) a process and start it; the reply comes once it runs or has failed."""

from __future__ import annotations

from typing import Any

from ...ipc.messages import ExecRequest
from .. import spec
from . import Context, handles


@handles(ExecRequest)
async def exec_(ctx: Context, req: ExecRequest) -> dict[str, Any]:
    new = spec.build(ctx.authz, ctx.caller, req)
    p = await ctx.supervisor.upsert(new, exec_semantics=True, groups_given=bool(new.groups), instances=req.instances)
    return ctx.record(ctx.find(p.id))
