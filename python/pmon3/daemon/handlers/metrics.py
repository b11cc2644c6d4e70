"""metrics: the Prometheus text of metrics.listen, for the caller (see daemon/metrics.py)."""

from __future__ import annotations

from typing import Any

from ...ipc.messages import MetricsRequest
from . import Context, handles


@handles(MetricsRequest)
async def metrics(ctx: Context, req: MetricsRequest) -> dict[str, Any]:
    return {"text": await ctx.metrics.render(ctx.caller)}
