"""restart and start: restart always restarts (and counts); start of a running process is a no-op that says so."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequestError, NotFoundError
from ...ipc.messages import RestartRequest
from .. import spec
from . import Context, handles


@handles(RestartRequest)
async def restart(ctx: Context, req: RestartRequest) -> dict[str, Any]:
    if req.verb not in ("restart", "start"):
        raise InvalidRequestError(f"invalid request restart: verb must be restart or start, not {req.verb!r}")
    flags = req.restart_flags()
    p = ctx.authz.find_optional(ctx.caller, req.id)
    if p is None:
        # pmon3: a name that is not stored but is in the process config is created from there and started.
        entry = ctx.boot.config_entries(ctx.caller).get(req.id)
        if entry is None:
            raise NotFoundError(
                f"command error: start process error: could not find process in Process Config with name {req.id}"
            )
        new = ctx.boot.build_entry(ctx.caller, entry)
        return ctx.record(await ctx.supervisor.upsert(new, exec_semantics=False, groups_given=bool(new.groups)))
    family = ctx.authz.family(p)  # NAME restarts its instances too
    changes = [(q, spec.restart_changes(ctx.authz, ctx.caller, q, flags)) for q in family]  # validated first
    for q, change in changes[1:]:
        await ctx.supervisor.restart(q.id, change, req.verb)
    p, started = await ctx.supervisor.restart(p.id, changes[0][1], req.verb)
    data = ctx.record(p)
    if not started:
        data["message"] = f"process ({p.name}) is already running"
    return data
