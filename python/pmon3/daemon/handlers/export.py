"""export: the caller's processes as process-config entries, ordered by a whitelisted field."""

from __future__ import annotations

from typing import Any, Callable

from ... import procconfig
from ...errors import InvalidRequestError
from ...ipc.messages import ExportRequest
from ...models import Process
from . import Context, handles

ORDER_FIELDS: dict[str, Callable[[Process], Any]] = {"id": lambda p: p.id, "name": lambda p: p.name}


@handles(ExportRequest)
async def export(ctx: Context, req: ExportRequest) -> list[dict[str, Any]]:
    key = ORDER_FIELDS.get(req.order)
    if key is None:
        raise InvalidRequestError(f"cannot order by {req.order!r}: use one of {', '.join(ORDER_FIELDS)}")
    return [procconfig.export_entry(ctx.record(p)) for p in sorted(ctx.visible(), key=key)]
