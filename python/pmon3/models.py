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


def signal_name(number: Optional[int]) -> str:
    """SIGKILL for 9; the number as text for one Python does not name."""
    if number is None:
        return ""
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def duration_text(seconds: float) -> str:
    """A short human duration: 120ms, 5.2s, 12m5s, 3h12m, 2d3h."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def bytes_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns


# Why a run ended (ExitRecord.reason); `exits_total{reason}` of the metrics uses the same words.
EXIT_REASONS = (
    "exit",  # it exited by itself with a code
    "signal",  # a signal pmond did not send killed it
    "oom",  # the kernel's OOM killer killed it (see ExitRecord.oom_kill)
    "unknown",  # not pmond's child (adopted): only its end is known, not how
    "max_memory",  # pmond restarted it: its tree's RSS stayed above max_memory
    "watchdog",  # pmond killed it: no WATCHDOG=1 in time
    "not_ready",  # pmond killed it: its readiness check did not pass in time
    "stop",  # stopped on request (stop, restart, kill, apply)
    "reload",  # replaced by a new copy (reload)
    "shutdown",  # pmond stopped with handle_interrupts: true
)
# What pmond did next (ExitRecord.action).
EXIT_ACTIONS = ("restarted", "scheduled", "backoff", "failed", "stopped", "closed", "replaced")


@dataclasses.dataclass
class ExitRecord:
    """One exit of a supervised process: a row of the history (`pmon3 history`)."""

    process_id: int
    owner: int
    name: str
    time: float  # wall clock, when pmond saw the end
    pid: int
    code: Optional[int]
    signal: Optional[int]
    core_dumped: bool
    detected: str  # child (wait4 status) | adopted (pidfd, no status) | tree (leader's status; pmond ended the rest)
    uptime: float  # seconds
    reason: str  # EXIT_REASONS
    action: str  # EXIT_ACTIONS
    # restarted: from the end seen to the new process spawned; scheduled, backoff: the wait until the next try
    delay_ms: Optional[float] = None
    peak_rss: Optional[int] = None  # bytes (wait4: the leader and the children it waited for)
    cpu_seconds: Optional[float] = None  # the tree's (cgroup cpu.stat) or wait4's user + system
    # True: the kernel's OOM killer did it (cgroup memory.events, or the kernel log naming the pid); False: not
    # (no SIGKILL, or a source says no); None: SIGKILL from outside pmond and no source to tell (see oom_source).
    oom_kill: Optional[bool] = False
    oom_source: str = ""  # cgroup | kmsg | vmstat (the machine's OOM kill count rose while it ran: possibly)
    note: str = ""
    id: int = 0

    def to_json(self, owner_name: str = "") -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["owner"] = owner_name
        data["signal_name"] = signal_name(self.signal)
        data["summary"] = self.summary()
        return data

    def cause(self) -> str:
        sig = signal_name(self.signal)
        core = " (core dumped)" if self.core_dumped else ""
        by = f"killed by {sig}{core}" if sig else (f"exited with code {self.code}" if self.code is not None else "")
        if self.reason == "oom":
            return f"killed by {sig or 'SIGKILL'} (OOM killer)"
        if self.reason == "unknown":
            return "ended (exit status unknown: not pmond's child)"
        if self.reason in ("max_memory", "watchdog", "not_ready"):
            what = {"max_memory": "over max_memory", "watchdog": "watchdog timeout", "not_ready": "not ready"}
            return f"{by or 'ended'} by pmond ({self.note or what[self.reason]})"
        if self.reason == "stop":
            return f"stopped on request ({by})" if by else "stopped on request"
        if self.reason == "reload":
            return f"replaced by a reload ({by})" if by else "replaced by a reload"
        if self.reason == "shutdown":
            return f"stopped at pmond's shutdown ({by})" if by else "stopped at pmond's shutdown"
        if self.oom_kill is None and self.oom_source == "vmstat":
            by += " (OOM killer? the machine's OOM kill count rose meanwhile)"
        return by or "ended"

    def then(self) -> str:
        delay = self.delay_ms
        if self.action == "restarted":
            if delay is None:
                return "restarted"
            return f"restarted in {delay:.1f} ms" if delay < 10 else f"restarted in {duration_text(delay / 1000)}"
        if self.action == "scheduled":
            return f"restart in {duration_text((delay or 0) / 1000)}"
        if self.action == "backoff":
            return f"flapping: backoff, next try in {duration_text((delay or 0) / 1000)}"
        if self.action == "failed":
            return "not restarted (failed)" + (f": {self.note}" if self.note and self.reason != "max_memory" else "")
        if self.action == "stopped":
            return "stopped" if self.reason in ("stop", "shutdown") else "not restarted (stopped)"
        if self.action == "closed":
            return "closed"
        if self.action == "replaced":
            return "the new copy serves"
        return self.action

    def summary(self) -> str:
        """One line: `killed by SIGKILL after 3h12m, restarted in 2.1 ms`."""
        return f"{self.cause()} after {duration_text(self.uptime)}, {self.then()}"
