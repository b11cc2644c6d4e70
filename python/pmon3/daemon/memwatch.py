"""max_memory: a process whose whole tree stays above its max_memory is restarted (gracefully, counted, in the
history with reason `max_memory`).

Every `limits.memory_check_interval` (default 5 s) pmond looks at the live processes that have a max_memory,
and only at those: with the memory controller on the process's cgroup, its `memory.current` (one read; it
counts the page cache the tree uses too); else the resident memory of the tree's members (`cgroup.procs`, or
the session tree from one pass over /proc). "Stays above" is two looks in a row, so a short peak between two
looks is forgiven and a restart comes one to two intervals after the tree grew past the limit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

from ..config import Config
from .sampling import sample
from .supervisor import Supervisor

log = logging.getLogger("pmond.memory")
LOOKS = 2  # consecutive looks above the limit that restart a process


class MemoryWatch:
    def __init__(self, cfg: Config, supervisor: Supervisor, loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.supervisor = supervisor
        self.loop = loop
        self.timer: Optional[asyncio.TimerHandle] = None
        self.over: dict[int, int] = {}  # process id -> looks above its limit in a row
        self.tasks: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        self.timer = self.loop.call_later(self.cfg.memory_check_ms / 1000, self.tick)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def tick(self) -> None:
        self.timer = self.loop.call_later(self.cfg.memory_check_ms / 1000, self.tick)
        try:
            self.check()
        except Exception:  # the watch must go on
            log.exception("memory check failed")

    def check(self) -> None:
        sup = self.supervisor
        watched = {i: rt for i, rt in sup.runtimes.items() if rt.max_memory and i not in sup.stopping}
        for gone in set(self.over) - set(watched):
            del self.over[gone]
        if not watched:
            return
        rss: dict[int, int] = {}
        rest = {}
        for i, rt in watched.items():
            current = sup.trees.memory_current(rt.copy)
            if current is not None:
                rss[i] = current
            else:
                rest[i] = (rt.pid, rt.copy)
        for i, usage in sample(sup.trees, rest).items():
            rss[i] = usage.rss
        for i, used in rss.items():
            limit = watched[i].max_memory
            if used <= limit:
                self.over.pop(i, None)
                continue
            self.over[i] = self.over.get(i, 0) + 1
            if self.over[i] >= LOOKS:
                del self.over[i]
                task = self.loop.create_task(sup.restart_for_memory(i, used, limit))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
