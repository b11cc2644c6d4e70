"""apply: make the caller's processes match process config entries the client read (a plan with dry_run)."""

from __future__ import annotations

from ...ipc.messages import ApplyPlan, ApplyRequest
from . import Context, handles


@handles(ApplyRequest)
async def apply(ctx: Context, req: ApplyRequest) -> ApplyPlan:
    # Every entry is validated with the caller's rights (spec.build asks authz) before anything is touched;
    # only the caller's own rows are compared, changed or pruned.
    return await ctx.applier.run(ctx.caller, req)
