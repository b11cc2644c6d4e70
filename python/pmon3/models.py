"""Records shared by the daemon and the CLI: what a process is, and how one ended."""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any, Optional

from .states import Status


@dataclasses.dataclass
class Process:
    id: int
    name: str
    process_file: str
    # The uid that created the row: names, groups and rights are per owner (run-as `uid` may differ for root).
    owner: int = 0
    argv: list[str] = dataclasses.field(default_factory=list)
    env_vars: list[str] = dataclasses.field(default_factory=list)
    username: str = ""
    uid: int = 0
    gid: int = 0
    log: str = ""
    cwd: str = ""
    pid: int = 0
    pid_start_time: int = 0
    status: Status = Status.QUEUED
    auto_restart: bool = True
    dependencies: list[str] = dataclasses.field(default_factory=list)
    groups: list[str] = dataclasses.field(default_factory=list)
    restart_count: int = 0
    created_at: str = ""
    updated_at: str = ""
    started_at: float = 0.0
    last_exit_code: Optional[int] = None
    last_exit_signal: Optional[int] = None
    # Per-process overrides of config.yml's `restart` defaults (keys as in the process config).
    policy: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Flap detection state: {"restarts": [wall times], "backoff_until": wall time}; persisted.
    flap: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Per-process options beyond the restart policy, validated by daemon/spec.py (e.g. strict_modes).
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def args(self) -> str:
        """pmon3 shows args as one string; quoting keeps arguments with spaces intact."""
        return shlex.join(self.argv)

    def to_json(self, owner_name: str = "") -> dict[str, Any]:
        """The wire/--json form (DESIGN §7): status by name, lists for dependencies and groups."""
        return {
            "id": self.id,
            "name": self.name,
            "owner": owner_name,
            "pid": self.pid,
            "status": self.status.label,
            "restart_count": self.restart_count,
            "auto_restart": self.auto_restart,
            "process_file": self.process_file,
            "args": self.args,
            "argv": list(self.argv),
            "env_vars": " ".join(shlex.quote(e) for e in self.env_vars),
            "username": self.username,
            "uid": self.uid,
            "gid": self.gid,
            "log": self.log,
            "cwd": self.cwd,
            "dependencies": list(self.dependencies),
            "groups": list(self.groups),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_exit_code": self.last_exit_code,
            "last_exit_signal": self.last_exit_signal,
            "policy": dict(self.policy),
            "options": dict(self.options),
            "cpu_usage": "0.0%",
            "memory_usage": "0.0 MB",
        }


@dataclasses.dataclass(frozen=True)
class Group:
    id: int
    owner: int
    name: str


@dataclasses.dataclass(frozen=True)
class ExitInfo:
    pid: int
    code: Optional[int]
    signal: Optional[int]
    user_cpu: float = 0.0
    system_cpu: float = 0.0
    max_rss_kib: int = 0
    core_dumped: bool = False

    @property
    def success(self) -> bool:
        return self.code == 0

    def describe(self) -> str:
        if self.code is not None:
            return f"exit code {self.code}"
        if self.signal is not None:
            return f"signal {self.signal}"
        return "unknown exit status"
