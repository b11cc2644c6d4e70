"""pmond about itself: `daemon status`, `daemon stop` and `daemon restart` (replace pmond by a new one, of the
installed version, while every process keeps running: the way to upgrade without downtime)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

from .. import __version__
from ..config import Config
from ..errors import PermissionDeniedError
from ..models import Process
from .authz import Caller


def under_systemd() -> bool:
    """systemd sets INVOCATION_ID for every unit it starts."""
    return bool(os.environ.get("INVOCATION_ID"))


@dataclasses.dataclass
class Control:
    cfg: Config
    tree_mode: str
    request_stop: Callable[[], None]
    request_restart: Callable[[], None]
    started_monotonic: float = dataclasses.field(default_factory=time.monotonic)
    started_at: float = dataclasses.field(default_factory=time.time)

    def status(self, caller: Caller, procs: list[Process], alive: Callable[[int], bool]) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for p in procs:
            counts[p.status.label] = counts.get(p.status.label, 0) + 1
        cfg = self.cfg
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": round(time.monotonic() - self.started_monotonic, 3),
            "started_at": self.started_at,
            "mode": cfg.mode,
            "uid": os.geteuid(),
            "systemd": under_systemd(),
            "transport": cfg.transport,
            "endpoint": cfg.mq_base if cfg.transport == "mq" else cfg.socket_path,
            "config": cfg.path,
            "data_directory": cfg.data_directory,
            "logs_directory": cfg.logs.directory,
            "process_trees": self.tree_mode,
            "processes": len(procs),
            "alive": sum(1 for p in procs if alive(p.id)),
            "by_status": counts,
        }

    def _may_control(self, caller: Caller, verb: str) -> None:
        if not (caller.is_root or caller.uid == os.geteuid()):
            raise PermissionDeniedError(f"permission denied: only root may {verb} pmond")
        if under_systemd():
            raise PermissionDeniedError(f"pmond is managed by systemd: run `systemctl {verb} pmond` instead")

    def stop(self, caller: Caller) -> None:
        self._may_control(caller, "stop")
        self.request_stop()

    def restart(self, caller: Caller) -> None:
        self._may_control(caller, "restart")
        self.request_restart()
