"""Restart policy and flap detection: when to bring a dead process back. Pure functions, no I/O.

Restart delay: a process that ran at least `min_uptime` is restarted at once and its quick-death streak is
forgotten; one that died sooner waits `restart_delay`, doubled per consecutive quick death, capped at
`max_restart_delay`. A crash loop costs one spawn per delay and nothing in between.

Flap detection (pmon3's keys, in units of `process_monitor_interval`): automatic restarts are counted inside
a sliding window of `threshold_countdown` intervals. A death after `threshold_restarted` restarts inside the
window puts the process in `backoff` instead of restarting it. It is retried after `threshold_decrement`
intervals (one restart is forgiven, so a still-failing process backs off again after one more try), or, with
a decrement of 0, after the whole countdown with the count cleared. See docs/restart-policy.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ..config import Config, check_exit_codes, check_mode, check_signal, parse_duration_ms
from ..config import RestartSettings as RestartSettings  # the one type, re-exported for the supervisor

# Process-level keys (exec flags, process config fields) and where they land in the effective policy.
POLICY_KEYS = (
    "restart",
    "success_exit_codes",
    "min_uptime",
    "restart_delay",
    "max_restart_delay",
    "stop_signal",
    "stop_timeout",
)
_DURATIONS = ("min_uptime", "restart_delay", "max_restart_delay", "stop_timeout")


@dataclasses.dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float
    quick_deaths: int
    outcome: str = "running"  # when not restarted: "stopped" (a success) or "failed"


def normalize_overrides(raw: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Validate per-process policy keys; durations become ms. Raises config.ConfigError."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value in (None, "", []):
            continue
        label = f"{where}{key}"
        if key == "restart":
            out[key] = check_mode(value, label)
        elif key == "success_exit_codes":
            out[key] = list(check_exit_codes(value, label))
        elif key == "stop_signal":
            out[key] = check_signal(value, label)
        elif key in _DURATIONS:
            out[key] = parse_duration_ms(value, label)
    return out


def effective(cfg: Config, auto_restart: bool, overrides: dict[str, Any]) -> RestartSettings:
    """config.yml's restart defaults with a process's own keys (as normalize_overrides stored them) applied."""
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key == "restart":
            changes["mode"] = value
        elif key == "success_exit_codes":
            changes[key] = tuple(value)
        elif key in _DURATIONS:
            changes[key] = value / 1000
        elif key == "stop_signal":
            changes[key] = value
    if not auto_restart:
        changes["mode"] = "never"  # pmon3's --no-autorestart
    return cfg.restart.replace(**changes) if changes else cfg.restart


def quick_delay(settings: RestartSettings, streak: int) -> float:
    # 2**60 is already far past any cap; bounding the exponent keeps the float finite.
    return float(min(settings.max_restart_delay, settings.restart_delay * 2 ** min(max(streak, 1) - 1, 60)))


def restarts_at_once(settings: RestartSettings, uptime: float, code: Optional[int], signal: Optional[int]) -> bool:
    """Whether after_exit says "restart now, no delay" (the restart hot path asks this alone)."""
    if settings.mode == "never" or uptime < settings.min_uptime:
        return False
    return settings.mode != "on-failure" or not (
        signal is None and code is not None and code in settings.success_exit_codes
    )


def after_exit(
    *,
    settings: RestartSettings,
    uptime: float,
    quick_deaths: int,
    code: Optional[int] = None,
    signal: Optional[int] = None,
) -> Decision:
    """What to do with a process that just died after `uptime` seconds with `quick_deaths` before it."""
    success = signal is None and code is not None and code in settings.success_exit_codes
    if settings.mode == "never" or (settings.mode == "on-failure" and success):
        return Decision(False, 0.0, quick_deaths, "stopped" if success else "failed")
    if uptime >= settings.min_uptime:
        return Decision(True, 0.0, 0)
    streak = quick_deaths + 1
    return Decision(True, quick_delay(settings, streak), streak)


# -- flap detection ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FlapSettings:
    enabled: bool
    threshold: int
    window: float  # seconds: threshold_countdown intervals
    decrement: float  # seconds: threshold_decrement intervals (0: wait out the whole window)

    @classmethod
    def from_config(cls, cfg: Config) -> FlapSettings:
        tick = cfg.process_monitor_interval_ms / 1000
        f = cfg.flap
        return cls(f.enabled, f.threshold_restarted, f.threshold_countdown * tick, f.threshold_decrement * tick)


def recent(state: dict[str, Any], now: float, s: FlapSettings) -> list[float]:
    return [t for t in state.get("restarts", []) if now - t < s.window]


def flap_check(state: dict[str, Any], now: float, s: FlapSettings) -> tuple[dict[str, Any], Optional[float]]:
    """Before an automatic restart: the new state, and the time to retry at if the process must back off."""
    if not s.enabled:
        return {}, None
    restarts = recent(state, now, s)
    if len(restarts) < s.threshold:
        return {"restarts": restarts}, None
    retry_at = now + (s.decrement if s.decrement > 0 else s.window)
    return {"restarts": restarts, "backoff_until": retry_at}, retry_at


def flap_note_restart(state: dict[str, Any], now: float, s: FlapSettings) -> dict[str, Any]:
    if not s.enabled:
        return {}
    return {"restarts": [*recent(state, now, s), now]}


def flap_retry(state: dict[str, Any], now: float, s: FlapSettings) -> dict[str, Any]:
    """Leaving backoff: forgive one restart (decrement), or all of them when there is no decrement."""
    restarts = recent(state, now, s)
    return {"restarts": restarts[1:] if s.decrement > 0 else []}
