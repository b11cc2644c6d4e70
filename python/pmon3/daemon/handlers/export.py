"""export: the caller's processes as process-config entries, ordered by a whitelisted field."""

from __future__ import annotations

from typing import Any

from ... import procconfig
from . import CommandError, Context, command

ORDER_FIELDS = {"id": lambda p: p.id, "name": lambda p: p.name}


@command("export")
async def export(ctx: Context) -> list[dict[str, Any]]:
    field = str(ctx.arg("order") or "id")
    key = ORDER_FIELDS.get(field)
    if key is None:
        raise CommandError(f"cannot order by {field!r}: use one of {', '.join(ORDER_FIELDS)}", "invalid")
    return [procconfig.export_entry(p.to_json()) for p in sorted(ctx.visible(), key=key)]
