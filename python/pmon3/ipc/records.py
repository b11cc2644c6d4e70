"""The records replies carry (`ls --json`, pmon3.Client's return values), as TypedDicts for type checkers.

Kept apart from messages.py and imported only when a name is asked for (messages' `__getattr__`): making a
TypedDict compiles each field's annotation, ~2 ms for these at every CLI start that talks to pmond, and
at run time they are plain dicts anyway.
"""

from __future__ import annotations

from typing import Any, Optional, TypedDict


class ProcessInfo(TypedDict, total=False):
    """A process as `ls --json`, `desc --json` and pmon3.Client return it."""

    id: int
    name: str
    pid: int
    status: str
    restart_count: int
    auto_restart: bool
    process_file: str
    args: str
    argv: list[str]
    env_vars: str
    username: str
    uid: int
    gid: int
    owner: str
    log: str
    cwd: str
    dependencies: list[str]
    groups: list[str]
    created_at: str
    updated_at: str
    last_exit_code: Optional[int]
    last_exit_signal: Optional[int]
    policy: dict[str, Any]
    options: dict[str, Any]
    cpu_usage: str
    memory_usage: str
    tree: str
    message: str
    # desc: the last exit in one line (ExitInfo.summary), when there was one
    last_exit: str


class ExitInfo(TypedDict):
    """One exit of a process (`pmon3 history --json`, Client.history): see docs/operations.md."""

    id: int
    process_id: int
    name: str
    owner: str
    time: float
    pid: int
    code: Optional[int]
    signal: Optional[int]
    signal_name: str
    core_dumped: bool
    # child | adopted | tree
    detected: str
    uptime: float
    # exit | signal | oom | unknown | max_memory | watchdog | not_ready | stop | reload | shutdown
    reason: str
    # restarted | scheduled | backoff | failed | stopped | closed | replaced
    action: str
    delay_ms: Optional[float]
    peak_rss: Optional[int]
    cpu_seconds: Optional[float]
    oom_kill: Optional[bool]
    oom_source: str
    note: str
    # one line, as desc shows the last exit
    summary: str


class GroupInfo(TypedDict):
    id: int
    name: str
    owner: str


class GroupWithProcesses(TypedDict):
    group: GroupInfo
    processes: list[ProcessInfo]


class DependencyGraph(TypedDict):
    queue: list[str]
    dependency_order: list[str]


class DaemonStatus(TypedDict):
    pid: int
    version: str
    uptime: float
    started_at: float
    mode: str
    uid: int
    systemd: bool
    transport: str
    endpoint: str
    config: str
    data_directory: str
    logs_directory: str
    process_trees: str
    processes: int
    alive: int
    by_status: dict[str, int]


class VersionInfo(TypedDict):
    version: str
    pmon3: str
    pid: int
    uid: int


class ApplyChange(TypedDict):
    """One field apply changes, keyed as in a process config. Values as a process config writes them
    (durations as text such as "5s", null for config.yml's default); env_vars lists only the variables that
    differ."""

    field: str
    old: Any
    new: Any
    # what a live process was started with (file, args, env_vars, user, log, cwd): a live one is restarted
    restart: bool


class ApplyAction(TypedDict, total=False):
    name: str
    # create, change, unchanged or delete
    action: str
    changes: list[ApplyChange]
    # a live process is restarted: what it was started with changes
    restart: bool
    # the stored process (0 for a create that has not happened)
    id: int
    status: str
    pid: int
    # after a real apply: created, restarted, updated, unchanged, deleted or failed (then `error`)
    result: str
    error: str


class ApplyPlan(TypedDict):
    source: str
    dry_run: bool
    prune: bool
    # in the order they are (or would be) carried out: deletions, then the entries in dependency order
    actions: list[ApplyAction]
    warnings: list[str]
    # false when an action failed
    ok: bool
