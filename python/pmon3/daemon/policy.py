"""Restart policy: when to bring a dead process back. Pure functions of the facts, no I/O.

A process that ran at least `min_uptime` is restarted at once, and its quick-death streak is forgotten.
One that died sooner waits `restart_delay` doubled per consecutive quick death, capped at
`max_restart_delay`: a crash loop costs one spawn per delay and nothing in between.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RestartSettings:
    min_uptime: float = 1.0
    restart_delay: float = 0.1
    max_restart_delay: float = 30.0


@dataclasses.dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float
    quick_deaths: int


def after_exit(*, auto_restart: bool, uptime: float, quick_deaths: int, settings: RestartSettings) -> Decision:
    """What to do with a process that just died after `uptime` seconds with `quick_deaths` before it."""
    if not auto_restart:
        return Decision(restart=False, delay=0.0, quick_deaths=quick_deaths)
    if uptime >= settings.min_uptime:
        return Decision(restart=True, delay=0.0, quick_deaths=0)
    streak = quick_deaths + 1
    # 2**60 is already far past any cap; bounding the exponent keeps the float finite.
    delay = min(settings.max_restart_delay, settings.restart_delay * 2 ** min(streak - 1, 60))
    return Decision(restart=True, delay=delay, quick_deaths=streak)
