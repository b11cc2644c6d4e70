"""history: the exits of the caller's processes (root: everyone's), newest first."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidRequestError
from ...ipc.messages import HistoryRequest
from . import Context, handles

MAX_LIMIT = 100_000


@handles(HistoryRequest)
async def history(ctx: Context, req: HistoryRequest) -> list[dict[str, Any]]:
    if not 1 <= req.limit <= MAX_LIMIT:
        raise InvalidRequestError(f"limit must be 1 to {MAX_LIMIT}, got {req.limit}")
    if req.id:
        ids: Any = [ctx.find(req.id).id]
    else:
        ids = None if ctx.caller.is_root else [p.id for p in ctx.visible()]
    return [r.to_json(ctx.authz.owner_name(r.owner)) for r in ctx.supervisor.history.query(ids, req.limit)]
