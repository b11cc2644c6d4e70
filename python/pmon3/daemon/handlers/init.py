"""init: start every process of the caller that is not alive and was not stopped by its user."""

from __future__ import annotations

from typing import Any

from ...states import Status
from ..supervisor import SpawnError
from . import CommandError, Context, command


@command("init")
async def init(ctx: Context) -> list[dict[str, Any]]:
    sup = ctx.daemon.supervisor
    errors: list[str] = []
    for p in ctx.visible():
        if sup.is_alive(p.id) or p.status == Status.STOPPED:
            continue
        async with sup.lock(p.id):
            current = ctx.daemon.store.get(p.id)
            if current is None or sup.is_alive(p.id):
                continue
            try:
                sup.spawn(current)
            except SpawnError as exc:
                errors.append(f"{p.name}: {exc}")
    if errors:
        raise CommandError("; ".join(errors), "spawn")
    return [p.to_json() for p in ctx.visible()]
