"""One typed request per command, and the records replies carry: the vocabulary the client and pmond share.

A request is a frozen dataclass whose `CMD` is the canonical command name on the wire (aliases live in the
CLI only). `to_args()` gives the `args` object of the envelope (see protocol.py); `parse(args)` is pmond's
side and checks every field's type against the annotations, so a handler receives a well-formed value or
the caller gets an `invalid` error naming the field. docs/protocol.md is generated from these types
(`python -m pmon3.ipc.messages`) and a test keeps the two equal.
"""

from __future__ import annotations

import sys
import typing
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, TypeVar, Union

from ..errors import InvalidRequestError

if TYPE_CHECKING:
    from .records import ApplyAction as ApplyAction
    from .records import ApplyChange as ApplyChange
    from .records import ApplyPlan as ApplyPlan
    from .records import DaemonStatus as DaemonStatus
    from .records import DependencyGraph as DependencyGraph
    from .records import ExitInfo as ExitInfo
    from .records import GroupInfo as GroupInfo
    from .records import GroupWithProcesses as GroupWithProcesses
    from .records import ProcessInfo as ProcessInfo
    from .records import VersionInfo as VersionInfo

# The records in replies live in records.py, made on first use: the CLI only needs them as types.
RECORDS = frozenset(
    (
        "ApplyAction",
        "ApplyChange",
        "ApplyPlan",
        "DaemonStatus",
        "DependencyGraph",
        "ExitInfo",
        "GroupInfo",
        "GroupWithProcesses",
        "ProcessInfo",
        "VersionInfo",
    )
)


def __getattr__(name: str) -> Any:
    if name in RECORDS:
        from . import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


R = TypeVar("R", bound="Request")


class _Factory:
    """A default made fresh for each request (a list or a dict), like dataclasses' default_factory."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def factory(make: Callable[[], Any]) -> Any:
    return _Factory(make)


_MISSING = object()


class Field:
    __slots__ = ("name", "default")

    def __init__(self, name: str, default: Any) -> None:
        self.name = name
        self.default = default

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def make_default(self) -> Any:
        return self.default.make() if isinstance(self.default, _Factory) else self.default


class Request:
    """A request type: its annotated attributes are its fields, in order, with their defaults. Built by hand
    rather than with dataclasses: generating ~30 dataclasses costs the CLI tens of milliseconds at start-up."""

    CMD: ClassVar[str] = ""
    DOC: ClassVar[str] = ""
    REPLY: ClassVar[str] = "null"
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    # Derived from FIELDS once per class: a boot builds 10,000 requests from a process config.
    NAMES: ClassVar[frozenset[str]] = frozenset()
    _PLAN: ClassVar[tuple[tuple[str, Any, bool], ...]] = ()  # (name, default, default is a factory)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__annotations__", {})
        fields = list(cls.FIELDS)
        for name in own:
            default = cls.__dict__.get(name, _MISSING)
            fields.append(Field(name, default))
            if default is not _MISSING:
                delattr(cls, name)  # instances carry the value; the class keeps none
        cls.FIELDS = tuple(fields)
        cls.NAMES = frozenset(f.name for f in fields)
        cls._PLAN = tuple((f.name, f.default, isinstance(f.default, _Factory)) for f in fields)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > len(self.FIELDS):
                raise TypeError(f"{type(self).__name__} takes at most {len(self.FIELDS)} arguments")
            for f, value in zip(self.FIELDS, args):
                kwargs[f.name] = value
        values = self.__dict__
        for name, default, make in self._PLAN:
            value = kwargs.pop(name, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    raise TypeError(f"missing field {name!r}")
                value = default.make() if make else default
            values[name] = value
        if kwargs:
            raise TypeError(f"unknown field {next(iter(kwargs))!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Request) and type(other) is type(self) and self.to_args() == other.to_args()

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.FIELDS)
        return f"{type(self).__name__}({inner})"

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return cls.NAMES

    def replace(self: R, **changes: Any) -> R:
        return type(self)(**{**self.to_args(), **changes})

    def to_args(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in self.FIELDS}

    @classmethod
    def parse(cls: type[R], args: dict[str, Any]) -> R:
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in cls.FIELDS:
            if f.name not in args:
                continue
            value = args[f.name]
            if not _conforms(value, hints[f.name]):
                raise InvalidRequestError(f"invalid request {cls.CMD}: {f.name} must be {_describe(hints[f.name])}")
            values[f.name] = value
        unknown = sorted(set(args) - set(hints))
        if unknown:
            raise InvalidRequestError(f"invalid request {cls.CMD}: unknown field {unknown[0]!r}")
        try:
            return cls(**values)
        except TypeError as exc:  # a required field is missing
            raise InvalidRequestError(f"invalid request {cls.CMD}: {exc}") from None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The fields' types (evaluated on first use: the daemon parses, the CLI only builds)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls, vars(sys.modules[__name__]))
        hints = _HINTS[cls] = {k: v for k, v in hints.items() if k not in ("CMD", "DOC", "REPLY", "FIELDS")}
    return hints


def _conforms(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Union:
        return any(_conforms(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(_conforms(k, key) and _conforms(v, item) for k, v in value.items())
    if isinstance(hint, type) and issubclass(hint, Request):
        return isinstance(value, dict)
    return False


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Union:
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is list:
        return f"a list of {_describe(typing.get_args(hint)[0])}s"
    if origin is dict:
        return "an object"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


# -- requests ------------------------------------------------------------------------------------------------


class Hello(Request):
    CMD = "hello"
    DOC = "Lobby only: ask for the caller's own request queue."
    REPLY = '{"queue": string}'


class Version(Request):
    CMD = "version"
    DOC = "pmond's version, pid and uid."
    REPLY = "VersionInfo"


class ExecRequest(Request):
    """exec|run: a new process (or a stopped one of the same name re-created) started now."""

    CMD = "exec"
    DOC = "Create a process (or re-create a stopped one of that name) and start it."
    REPLY = "ProcessInfo"
    file: str = ""
    name: str = ""
    args: Union[str, list[str]] = ""
    # Exact arguments (after `--`); wins over `args` when given.
    argv: Optional[list[str]] = None
    env_vars: Union[str, list[str]] = ""
    user: str = ""
    log: str = ""
    log_dir: str = ""
    no_auto_restart: bool = False
    dependencies: Union[str, list[str]] = ""
    groups: Union[str, list[str]] = ""
    cwd: str = ""
    restart: Optional[str] = None
    success_exit_codes: Union[None, str, list[int]] = None
    min_uptime: Union[None, str, int, float] = None
    restart_delay: Union[None, str, int, float] = None
    max_restart_delay: Union[None, str, int, float] = None
    stop_signal: Union[None, str, int] = None
    stop_timeout: Union[None, str, int, float] = None
    # False: run the executable even if a user other than the run user (and root) can modify it.
    strict_modes: Optional[bool] = None
    # Listening sockets held by pmond and passed as LISTEN_FDS (tcp:HOST:PORT, tcp6:[HOST]:PORT, unix:PATH).
    listen: Union[str, list[str]] = ""
    # Readiness: none, notify, tcp[:PORT], http:PATH, log:REGEX, delay:DURATION; and its timeout.
    ready: Optional[str] = None
    ready_timeout: Union[None, str, int, float] = None
    # With ready notify: restarted when it sends no WATCHDOG=1 for this long.
    watchdog: Union[None, str, int, float] = None
    # Copies of the process sharing its sockets: NAME, NAME@1, ... NAME@N-1.
    instances: Optional[int] = None
    # setrlimit limits: "nofile=65536,core=0", a list of such items, or {"nofile": 65536} (see pmon3/limits.py)
    limits: Union[None, str, list[str], dict[str, Any]] = None
    # restart when the tree's resident memory stays above this (bytes, or "512M")
    max_memory: Union[None, str, int] = None
    # cgroup v2 limits of the tree (only where pmond has the controllers): bytes or "1G"; "50%" or "QUOTA PERIOD"; n
    memory_max: Union[None, str, int] = None
    cpu_max: Union[None, str, int, float] = None
    pids_max: Union[None, str, int] = None


class ListRequest(Request):
    CMD = "list"
    DOC = "The caller's processes (root: everyone's), with CPU and memory of the live ones."
    REPLY = "list[ProcessInfo]"


class DescRequest(Request):
    CMD = "desc"
    DOC = "One process by id or name."
    REPLY = "ProcessInfo"
    id: str


class StopRequest(Request):
    CMD = "stop"
    DOC = "Stop one process gracefully (force: SIGKILL at once); answered once it is gone."
    REPLY = "ProcessInfo"
    id: str
    force: bool = False


class KillRequest(Request):
    CMD = "kill"
    DOC = "Stop every running process of the caller."
    REPLY = "list[ProcessInfo]"
    force: bool = False


class RestartFlags(Request):
    CMD = "(restart flags)"
    no_auto_restart: bool = False
    user: str = ""
    log: str = ""
    log_dir: str = ""
    args: str = ""
    dependencies: Union[str, list[str]] = ""


class RestartRequest(Request):
    CMD = "restart"
    DOC = "Restart (verb restart) or start when not running (verb start); flags change the spec first."
    REPLY = "ProcessInfo (with `message` when start found it running)"
    id: str
    verb: str = "restart"
    flags: dict[str, Any] = factory(dict)

    def restart_flags(self) -> RestartFlags:
        return RestartFlags.parse(self.flags)


class DeleteRequest(Request):
    CMD = "del"
    DOC = "Stop and remove one process; the log pmond created for it goes too."
    REPLY = "ProcessInfo"
    id: str
    force: bool = False


class DropRequest(Request):
    CMD = "drop"
    DOC = "Stop and remove every process of the caller."
    REPLY = "list[ProcessInfo]"
    force: bool = False


class InitRequest(Request):
    CMD = "init"
    DOC = "Start the process config's entries and every stored process that is not alive (not user-stopped)."
    REPLY = "list[ProcessInfo]"
    process_config_only: bool = False
    blocking: bool = False


class DgraphRequest(Request):
    CMD = "dgraph"
    DOC = "The start order: dependency layers, then the rest."
    REPLY = "DependencyGraph"
    process_config_only: bool = False


class ResetRequest(Request):
    CMD = "reset"
    DOC = "Zero the restart counter and leave backoff (one process, or all of the caller's)."
    REPLY = "list[ProcessInfo]"
    id: str = ""


class ExportRequest(Request):
    CMD = "export"
    DOC = "The caller's processes as process config entries, ordered by id or name."
    REPLY = "list[entry]"
    order: str = "id"


class TopRequest(Request):
    CMD = "top"
    DOC = "The pids of the caller's live processes (for topn)."
    REPLY = '{"pids": list[int], "daemon": int}'


class GroupListRequest(Request):
    CMD = "group_list"
    DOC = "The caller's groups (root: everyone's)."
    REPLY = "list[GroupInfo]"


class GroupCreateRequest(Request):
    CMD = "group_create"
    DOC = "A new empty group of the caller's."
    REPLY = "GroupInfo"
    name: str


class GroupDeleteRequest(Request):
    CMD = "group_del"
    DOC = "Delete a group and its memberships; the processes stay."
    REPLY = "GroupInfo"
    id: str


class GroupDescRequest(Request):
    CMD = "group_desc"
    DOC = "A group and its processes."
    REPLY = "GroupWithProcesses"
    id: str


class GroupAssignRequest(Request):
    CMD = "group_assign"
    DOC = "Put processes into groups (comma lists of ids or names), all or nothing."
    REPLY = "list[GroupWithProcesses]"
    groups: str
    processes: str


class GroupRemoveRequest(Request):
    CMD = "group_remove"
    DOC = "Take processes out of groups, all or nothing."
    REPLY = "list[GroupWithProcesses]"
    groups: str
    processes: str


class GroupStopRequest(Request):
    CMD = "group_stop"
    DOC = "Stop every process of a group."
    REPLY = "GroupWithProcesses"
    id: str
    force: bool = False


class GroupRestartRequest(Request):
    CMD = "group_restart"
    DOC = "Restart every process of a group, with the restart flags applied to each."
    REPLY = "GroupWithProcesses"
    id: str
    flags: dict[str, Any] = factory(dict)

    def restart_flags(self) -> RestartFlags:
        return RestartFlags.parse(self.flags)


class GroupDropRequest(Request):
    CMD = "group_drop"
    DOC = "Delete every process of a group (the group stays)."
    REPLY = '{"group": GroupInfo, "processes": list[ProcessInfo]}'
    id: str
    force: bool = False


class DaemonStatusRequest(Request):
    CMD = "daemon_status"
    DOC = "pmond's pid, version, uptime, mode, transport, paths and process counts (the caller's)."
    REPLY = "DaemonStatus"


class DaemonStopRequest(Request):
    CMD = "daemon_stop"
    DOC = "Stop pmond (root, or the user of a user daemon); with handle_interrupts its processes stop too."
    REPLY = "DaemonStatus"


class DaemonRestartRequest(Request):
    CMD = "daemon_restart"
    DOC = "Replace pmond by a new one (the installed version) while every process keeps running."
    REPLY = "DaemonStatus"


class ApplyRequest(Request):
    CMD = "apply"
    DOC = (
        "Make the caller's processes match process config entries (read by the client): create, change "
        "(a live process restarted only when what it runs changed), leave unchanged ones alone, delete the "
        "others with prune; all entries are validated first; dry_run only plans."
    )
    REPLY = "ApplyPlan"
    entries: list[dict[str, Any]] = factory(list)
    dry_run: bool = False
    prune: bool = False
    # the file the entries come from, for messages only (pmond never opens it)
    source: str = ""


class ReloadRequest(Request):
    CMD = "reload"
    DOC = (
        "Zero-downtime restart: a new copy (with the flags applied) is started beside the serving one and the old "
        "one is stopped once the new one is ready; instances one at a time. On failure the old copy keeps running."
    )
    REPLY = "list[ProcessInfo] (with `message` when the reload had no readiness check)"
    id: str
    flags: dict[str, Any] = factory(dict)

    def restart_flags(self) -> RestartFlags:
        return RestartFlags.parse(self.flags)


class GroupReloadRequest(Request):
    CMD = "group_reload"
    DOC = "Reload every process of a group, one at a time."
    REPLY = "GroupWithProcesses"
    id: str


class ScaleRequest(Request):
    CMD = "scale"
    DOC = "Change the number of instances of a process live: NAME, NAME@1, ... NAME@N-1 (they share its sockets)."
    REPLY = "list[ProcessInfo]"
    id: str
    instances: int


class HistoryRequest(Request):
    CMD = "history"
    DOC = "Exits of one process (id or name) or of all the caller's (root: everyone's), newest first."
    REPLY = "list[ExitInfo]"
    id: str = ""
    limit: int = 20


class MetricsRequest(Request):
    CMD = "metrics"
    DOC = (
        "The Prometheus text of metrics.listen: root gets exactly the endpoint's, another user the same "
        "metrics for their own processes only."
    )
    REPLY = '{"text": string}'


REQUESTS: tuple[type[Request], ...] = (
    Hello,
    Version,
    ExecRequest,
    ListRequest,
    DescRequest,
    StopRequest,
    KillRequest,
    RestartRequest,
    DeleteRequest,
    DropRequest,
    InitRequest,
    DgraphRequest,
    ResetRequest,
    ExportRequest,
    TopRequest,
    GroupListRequest,
    GroupCreateRequest,
    GroupDeleteRequest,
    GroupDescRequest,
    GroupAssignRequest,
    GroupRemoveRequest,
    GroupStopRequest,
    GroupRestartRequest,
    GroupDropRequest,
    DaemonStatusRequest,
    DaemonStopRequest,
    DaemonRestartRequest,
    ReloadRequest,
    GroupReloadRequest,
    ScaleRequest,
    ApplyRequest,
    HistoryRequest,
    MetricsRequest,
)
BY_CMD: dict[str, type[Request]] = {r.CMD: r for r in REQUESTS}


def describe() -> str:
    """The command table of docs/protocol.md."""
    lines = ["| command | arguments | reply | what it does |", "|---|---|---|---|"]
    for req in REQUESTS:
        hints = _hints(req)
        fields = []
        for f in req.FIELDS:
            default = "" if f.required else f" = {f.make_default()!r}"
            fields.append(f"`{f.name}`: {_describe(hints[f.name])}{default}")
        lines.append(f"| `{req.CMD}` | {'<br>'.join(fields) or '—'} | {req.REPLY} | {req.DOC} |")
    flags = [f"`{f.name}`: {_describe(_hints(RestartFlags)[f.name])}" for f in RestartFlags.FIELDS]
    lines += ["", f"Restart flags (`flags` of `restart` and `group_restart`): {', '.join(flags)}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(describe())
