"""A request -> a validated process spec. Every field is checked before anything is stored or touched, and
every decision about users and paths is asked of `authz` (with the caller's rights)."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from typing import Any, Optional

from .. import limits, procconfig
from ..config import parse_duration_ms
from ..errors import ConfigError, InvalidRequestError, Pmon3Error, ProcessConfigError
from ..ipc.messages import ExecRequest, RestartFlags
from ..models import Process
from . import policy, readiness, sockets
from .authz import Authz, Caller, check_group_name, check_name

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_words(value: Any, what: str) -> list[str]:
    """A list passes through; a string is split with shell-like quoting (never run by a shell)."""
    if value in (None, ""):
        return []
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise InvalidRequestError(f"invalid {what}: {exc}") from None
    raise InvalidRequestError(f"invalid {what}: expected a string or a list of strings")


def env_list(value: Any) -> list[str]:
    items = split_words(value, "env vars")
    for item in items:
        key = item.partition("=")[0]
        if "=" not in item or not _ENV_KEY.fullmatch(key):
            raise InvalidRequestError(f"invalid env var {item!r}: expected KEY=VALUE")
    return items


def name_list(value: Any, what: str) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidRequestError(f"invalid {what}: expected names")
        names += [n.strip() for n in item.replace(" ", ",").split(",") if n.strip()]
    return list(dict.fromkeys(names))


def request_name(req: ExecRequest) -> str:
    return req.name or os.path.basename(req.file)


def build(authz: Authz, caller: Caller, req: ExecRequest, env_file: str = "", *, create_dirs: bool = True) -> Process:
    """The process `req` describes, owned by the caller; raises a one-line error on the first bad field, with
    that field in the error's `field` (its process config key). `create_dirs=False` only validates: root's
    missing log directory is not created."""
    key = "file"
    try:
        file = authz.exec_file(caller, req.file)
        key = "name"
        name = check_name(req.name or os.path.basename(file))
        p = Process(id=0, name=name, process_file=file, owner=caller.uid)
        key = "args"
        p.argv = split_words(req.argv if req.argv is not None else req.args, "args")
        key = "env_vars"
        p.env_vars = env_list(req.env_vars)
        if env_file:
            key = "env_file"
            authz.env_file_allowed(caller)
            if not os.path.isabs(env_file):
                raise InvalidRequestError(f"env file must be an absolute path: {env_file}")
            try:
                from_file = procconfig.parse_env_file(env_file)
            except ProcessConfigError as exc:
                raise InvalidRequestError(str(exc)) from None
            p.env_vars = from_file + p.env_vars  # explicit env_vars win over the file
        key = "user"
        user = authz.run_as(caller, req.user)
        p.username, p.uid, p.gid = user.name, user.uid, user.gid
        key = "log" if req.log else "log_dir"
        p.log = authz.log_path(caller, p.owner, name, req.log, req.log_dir, create=create_dirs)
        p.auto_restart = not req.no_auto_restart
        key = "dependencies"
        p.dependencies = [check_name(n, "dependency name") for n in name_list(req.dependencies, "dependencies")]
        key = "groups"
        p.groups = [check_group_name(g) for g in name_list(req.groups, "groups")]
        p.policy = {}
        for key in policy.POLICY_KEYS:
            value = getattr(req, key)
            if value is not None:
                try:
                    p.policy.update(policy.normalize_overrides({key: value}))
                except ConfigError as exc:
                    raise InvalidRequestError(str(exc)) from None
        if p.policy.get("restart") == "never":
            p.auto_restart = False
        key = "cwd"
        p.cwd = authz.cwd(caller, req.cwd)
        if req.strict_modes is False:
            p.options["strict_modes"] = False
        key = "listen"
        listen = split_words(req.listen, "listen") if isinstance(req.listen, str) else list(req.listen)
        if listen:
            p.options["listen"] = [s.text() for s in sockets.parse_all(listen)]
        key = "ready"
        if req.ready not in (None, "", "none"):
            ready = readiness.parse(str(req.ready))
            if ready.kind in ("tcp", "http") and p.options.get("listen"):
                raise InvalidRequestError(
                    f"ready {ready.text()}: on a socket pmond holds, a connection is answered by whichever copy "
                    "accepts it, so it cannot tell when a new copy is ready: use notify, log:REGEX or delay:DURATION"
                )
            p.options["ready"] = ready.text()
        key = "ready_timeout"
        if req.ready_timeout is not None:
            p.options["ready_timeout"] = _duration(req.ready_timeout, "ready_timeout")
        key = "watchdog"
        if req.watchdog is not None:
            if p.options.get("ready") != "notify":
                raise InvalidRequestError("watchdog needs ready: notify (the process pings with WATCHDOG=1)")
            p.options["watchdog"] = _duration(req.watchdog, "watchdog")
        key = "instances"
        if req.instances is not None and not 1 <= req.instances <= MAX_INSTANCES:
            raise InvalidRequestError(f"instances: expected 1 to {MAX_INSTANCES}, got {req.instances}")
        key = "limits"
        p.options.update(limit_options(req))
    except Pmon3Error as exc:
        if exc.field is None:
            exc.field = key
        raise
    return p


MAX_INSTANCES = 256


def _duration(value: Any, key: str) -> int:
    try:
        ms = parse_duration_ms(value, key)
    except ConfigError as exc:
        raise InvalidRequestError(str(exc)) from None
    if ms <= 0:
        raise InvalidRequestError(f"{key}: must be more than 0")
    return ms


def limit_options(req: ExecRequest) -> dict[str, Any]:
    """The limits of a request as Process.options (pmon3/limits.py); an InvalidRequestError names the key."""
    out: dict[str, Any] = {}
    key = "limits"
    try:
        rl = limits.parse_limits(req.limits)
        if rl:
            out["limits"] = rl
        key = "max_memory"
        if req.max_memory not in (None, ""):
            out["max_memory"] = limits.parse_size(req.max_memory, "max_memory")
            if out["max_memory"] < limits.MAX_MEMORY_MIN:
                raise limits.LimitError(f"max_memory: {req.max_memory!r} is less than 1M")
        key = "memory_max"
        if req.memory_max not in (None, ""):
            out["memory_max"] = limits.parse_size(req.memory_max, "memory_max")
        key = "cpu_max"
        if req.cpu_max not in (None, ""):
            out["cpu_max"] = limits.parse_cpu_max(req.cpu_max)
        key = "pids_max"
        if req.pids_max not in (None, ""):
            out["pids_max"] = limits.parse_count(req.pids_max, "pids_max")
    except limits.LimitError as exc:
        err = InvalidRequestError(str(exc))
        err.field = key
        raise err from None
    return out


def cgroup_limits(p: Process) -> dict[str, str]:
    """The cgroup limits of a process as the values written to its cgroup (trees.CGROUP_LIMITS keys)."""
    out: dict[str, str] = {}
    if "memory_max" in p.options:
        out["memory_max"] = str(int(p.options["memory_max"]))
    if "cpu_max" in p.options:
        out["cpu_max"] = str(p.options["cpu_max"])
    if "pids_max" in p.options:
        out["pids_max"] = str(int(p.options["pids_max"]))
    return out


def restart_changes(authz: Authz, caller: Caller, p: Process, flags: RestartFlags) -> dict[str, Any]:
    """The spec fields `restart -u/-a/-l/--log-dir/-d` change, all validated before the process is touched."""
    changes: dict[str, Any] = {}
    if flags.user:
        user = authz.run_as(caller, flags.user, owner=p.owner)
        changes.update(username=user.name, uid=user.uid, gid=user.gid)
    if flags.args:
        changes["argv"] = split_words(flags.args, "args")
    if flags.log or flags.log_dir:
        changes["log"] = authz.log_path(caller, p.owner, p.name, flags.log, flags.log_dir)
    deps = name_list(flags.dependencies, "dependencies")
    if deps:
        changes["dependencies"] = [check_name(n, "dependency name") for n in deps]
    if flags.no_auto_restart:
        changes["auto_restart"] = False
    return changes


def from_entry(entry: dict[str, Any]) -> tuple[ExecRequest, str]:
    """A process config entry as an exec request (and its env file, read by pmond for root's config)."""
    fields = {k: v for k, v in entry.items() if k in ExecRequest.field_names()}
    try:
        req = ExecRequest.parse(fields)
    except InvalidRequestError as exc:
        where = f"process config entry {entry.get('name')}"
        raise InvalidRequestError(str(exc).replace("invalid request exec", where)) from None
    env_file = entry.get("env_file") or ""
    return req, str(env_file) if isinstance(env_file, str) else ""


# The spec fields an update of an existing row replaces; the rest (id, counters, flap state) stays.
SPEC_FIELDS = (
    "process_file",
    "argv",
    "env_vars",
    "username",
    "uid",
    "gid",
    "log",
    "cwd",
    "auto_restart",
    "dependencies",
    "policy",
    "options",
)


# Options that say where a process stands among its instances: set by Supervisor.scale, never by a spec.
FAMILY_OPTIONS = ("family", "instance")


def keep_place(new: Process, stored: Optional[Process]) -> Process:
    """`new` with the place the stored row of its name has in its family (options family and instance), unless it
    gives one itself: a spec (a config entry, an exec) says nothing of it, and replacing the row's options must not
    cut it off from its instances (or an instance from its family)."""
    if stored is None or not any(k in stored.options for k in FAMILY_OPTIONS):
        return new
    place = {k: stored.options[k] for k in FAMILY_OPTIONS if k in stored.options}
    return dataclasses.replace(new, options={**place, **new.options})


def instance_name(family: str, k: int) -> str:
    """Instance k of a family: NAME itself for 0, else NAME@k."""
    return f"{family}@{k}" if k else family


def instance_log(head: Process, name: str, own_log: bool) -> str:
    """The log of the instance `name` of `head`: its own file beside the head's when the head's is pmond's own
    (authz.is_managed_log: <logs>/NAME.log, so <logs>/NAME@k.log), else the file the head writes to."""
    return os.path.join(os.path.dirname(head.log), f"{name}.log") if own_log else head.log


def instance_spec(head: Process, k: int, log: str) -> Process:
    """Instance k (>= 1) of the process `head` as `scale` makes it: a new row (nothing of the head's run: no id,
    pid, counters or status) with the head's spec and groups, named NAME@k, writing to `log`, with its place in
    the family in its options (PMON3_INSTANCE=k, and the family's held sockets)."""
    family = str(head.options.get("family") or head.name)
    twin = Process(id=0, name=instance_name(family, k), process_file=head.process_file, owner=head.owner)
    merge(twin, head, groups_given=True)
    twin.argv, twin.env_vars, twin.dependencies = list(head.argv), list(head.env_vars), list(head.dependencies)
    twin.policy = dict(head.policy)
    twin.log, twin.options = log, {**head.options, "family": family, "instance": k}
    return twin


def merge(existing: Process, spec: Process, groups_given: bool) -> Process:
    for field in SPEC_FIELDS:
        setattr(existing, field, getattr(spec, field))
    if groups_given:  # no groups given: CLI-assigned memberships stay (pmon3 cleared them)
        existing.groups = list(spec.groups)
    return existing
