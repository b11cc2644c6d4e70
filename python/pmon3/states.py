"""Process statuses (integer values as pmon3 stores them) and the transitions the supervisor may make."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    QUEUED = 0
    INIT = 1
    RUNNING = 2
    STOPPED = 3
    FAILED = 4
    CLOSED = 5
    BACKOFF = 6
    RESTARTING = 7
    STARTING = 8  # spawned, not yet ready (a readiness check is pending)

    @property
    def label(self) -> str:
        return self.name.lower()


S = Status
# Every change of a process's status goes through `check_transition`; anything else is a bug.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.QUEUED: frozenset({S.INIT, S.RUNNING, S.STARTING, S.FAILED, S.STOPPED, S.RESTARTING, S.CLOSED}),
    S.INIT: frozenset({S.RUNNING, S.STARTING, S.FAILED, S.STOPPED}),
    S.RUNNING: frozenset({S.RUNNING, S.STARTING, S.STOPPED, S.FAILED, S.CLOSED, S.BACKOFF, S.RESTARTING, S.QUEUED}),
    S.STARTING: frozenset({S.RUNNING, S.STARTING, S.STOPPED, S.FAILED, S.CLOSED, S.BACKOFF, S.RESTARTING}),
    S.STOPPED: frozenset({S.QUEUED, S.INIT, S.RUNNING, S.STARTING, S.FAILED, S.RESTARTING}),
    S.FAILED: frozenset({S.QUEUED, S.INIT, S.RUNNING, S.STARTING, S.FAILED, S.STOPPED, S.RESTARTING, S.BACKOFF}),
    S.CLOSED: frozenset({S.QUEUED, S.INIT, S.RUNNING, S.STARTING, S.FAILED, S.STOPPED, S.RESTARTING}),
    S.BACKOFF: frozenset({S.QUEUED, S.INIT, S.RUNNING, S.STARTING, S.FAILED, S.STOPPED, S.RESTARTING, S.CLOSED}),
    S.RESTARTING: frozenset({S.QUEUED, S.INIT, S.RUNNING, S.STARTING, S.FAILED, S.STOPPED}),
}

# Rows a booting daemon brings back to life (user-stopped and failed rows stay as they are).
REVIVE_AT_BOOT = frozenset({S.RUNNING, S.STARTING, S.QUEUED, S.CLOSED, S.RESTARTING, S.INIT, S.BACKOFF})


class TransitionError(ValueError):
    pass


def check_transition(old: Status, new: Status) -> None:
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"illegal status change {old.label} -> {new.label}")
