"""exec|run: create (or re-create) a process and start it; the reply comes once it runs or has failed."""

from __future__ import annotations

import os
import re
import shlex
import stat
from typing import Any

from ... import procconfig
from ...config import ConfigError
from ...models import Process
from ...states import Status
from .. import policy
from ..supervisor import RunAs, SpawnError, resolve_user
from . import CommandError, Context, command

NAME_RE = re.compile(r"[A-Za-z0-9_@+:][A-Za-z0-9_.@+:-]{0,127}")
REUSABLE = (Status.STOPPED, Status.FAILED, Status.CLOSED, Status.QUEUED, Status.BACKOFF)


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise CommandError(
            f"invalid process name {name!r}: use letters, digits and . _ - @ + : (at most 128, "
            "not starting with . or -)",
            "invalid",
        )
    return name


def check_file(file: str) -> str:
    if not isinstance(file, str) or not file:
        raise CommandError("command error: file argument error: no file given", "invalid")
    if not os.path.isabs(file):
        raise CommandError(f"command error: file argument error: {file} is not an absolute path", "invalid")
    try:
        st = os.stat(file)
    except OSError as exc:
        raise CommandError(
            f"command error: file argument error: {file} does not exist: stat {file}: {(exc.strerror or '').lower()}",
            "invalid",
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise CommandError(f"command error: file argument error: {file} is not a regular file", "invalid")
    if not st.st_mode & 0o111:
        raise CommandError(f"command error: file argument error: {file} is not executable", "invalid")
    return os.path.normpath(file)


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
            raise CommandError(f"invalid {what}: {exc}", "invalid") from None
    raise CommandError(f"invalid {what}: expected a string or a list of strings", "invalid")


def env_list(value: Any) -> list[str]:
    items = split_words(value, "env vars")
    for item in items:
        key = item.partition("=")[0]
        if "=" not in item or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise CommandError(f"invalid env var {item!r}: expected KEY=VALUE", "invalid")
    return items


def name_list(value: Any, what: str) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise CommandError(f"invalid {what}: expected names", "invalid")
        names += [n.strip() for n in item.replace(" ", ",").split(",") if n.strip()]
    return list(dict.fromkeys(names))


def run_user(ctx: Context, requested: str) -> RunAs:
    """Root may run processes as anyone; everybody else only as themselves."""
    own = ctx.username
    user = requested or own
    if not ctx.is_root and user != own:
        raise CommandError(f"permission denied: {own} may only run processes as {own}, not {user}", "denied")
    try:
        return resolve_user(user)
    except SpawnError as exc:
        raise CommandError(str(exc), "invalid") from None


def log_path(ctx: Context, name: str, log: str, log_dir: str) -> str:
    """pmon3's rules (§8.1): --log verbatim, else <log_dir or logs.directory>/<name>.log."""
    if log:
        if not os.path.isabs(log):
            raise CommandError(f"log path must be absolute: {log}", "invalid")
        return os.path.normpath(log)
    if log_dir:
        if not os.path.isabs(log_dir):
            raise CommandError(f"log directory must be absolute: {log_dir}", "invalid")
        log_dir = os.path.normpath(log_dir)
        if not os.path.isdir(log_dir):
            if not ctx.is_root:  # we would create it with the daemon's rights
                raise CommandError(f"log directory {log_dir} does not exist", "invalid")
            os.makedirs(log_dir, mode=0o755, exist_ok=True)
        return os.path.join(log_dir, f"{name}.log")
    return os.path.join(ctx.daemon.cfg.logs_directory, f"{name}.log")


def process_from_args(ctx: Context, existing: Process | None = None) -> Process:
    a = ctx.args
    file = check_file(a.get("file", ""))
    name = check_name(a.get("name") or os.path.basename(file))
    argv = split_words(a.get("argv") if a.get("argv") is not None else a.get("args"), "args")
    p = existing or Process(id=0, name=name, process_file=file)
    p.process_file = file
    p.argv = argv
    p.env_vars = env_list(a.get("env_vars"))
    if a.get("env_file"):
        if not ctx.is_root and ctx.uid != os.geteuid():
            # pmond would read it with its own rights; the CLI reads it with the caller's and sends the values
            raise CommandError("permission denied: pmond reads env files only for root", "denied")
        env_file = str(a["env_file"])
        if not os.path.isabs(env_file):
            raise CommandError(f"env file must be an absolute path: {env_file}", "invalid")
        try:
            from_file = procconfig.parse_env_file(env_file)
        except procconfig.ProcessConfigError as exc:
            raise CommandError(str(exc), "invalid") from None
        p.env_vars = from_file + p.env_vars  # explicit --env-vars win over the file
    user = run_user(ctx, a.get("user") or "")
    p.username, p.uid, p.gid = user.name, user.uid, user.gid
    p.log = log_path(ctx, name, a.get("log") or "", a.get("log_dir") or "")
    p.auto_restart = not bool(a.get("no_auto_restart"))
    p.dependencies = name_list(a.get("dependencies"), "dependencies")
    p.groups = name_list(a.get("groups"), "groups")
    try:
        p.policy = policy.normalize_overrides({k: a[k] for k in policy.POLICY_KEYS if k in a})
    except ConfigError as exc:
        raise CommandError(str(exc), "invalid") from None
    if p.policy.get("restart") == "never":
        p.auto_restart = False
    cwd = a.get("cwd") or ""
    if cwd and not (os.path.isabs(cwd) and os.path.isdir(cwd)):
        raise CommandError(f"working directory {cwd} does not exist", "invalid")
    p.cwd = cwd
    return p


@command("exec", "run")
async def exec_(ctx: Context) -> dict[str, Any]:
    p = await upsert_and_start(ctx, reuse_only_stopped=True)
    return p.to_json()


async def upsert_and_start(ctx: Context, reuse_only_stopped: bool, groups_from_args: bool = True) -> Process:
    """Create the process described by ctx.args, or update the caller's stored one of that name, and start it
    unless it is alive. exec refuses a live name (pmon3's error); a config entry updates it and leaves it running."""
    d = ctx.daemon
    name = ctx.arg("name") or os.path.basename(str(ctx.arg("file") or ""))
    existing = d.store.get_by_name(name) if name else None
    if existing is None:
        p = process_from_args(ctx)  # a new row starts `queued`
        d.store.insert(p)
        async with d.supervisor.lock(p.id):
            start(ctx, p, fresh=True)
        return d.store.get(p.id) or p
    if not ctx.may_see(existing):
        raise CommandError(f"process name {name} is taken", "conflict")
    async with d.supervisor.lock(existing.id):
        alive = d.supervisor.is_alive(existing.id)
        if reuse_only_stopped and (alive or existing.status not in REUSABLE):
            raise CommandError(f"process already running with the name provided: {name}", "conflict")
        keep_groups = list(existing.groups)
        p = process_from_args(ctx, existing)
        if not groups_from_args or not ctx.arg("groups"):
            p.groups = keep_groups  # no groups given: CLI-assigned memberships stay (pmon3 cleared them)
        if not alive:
            p.restart_count = existing.restart_count
        d.store.update(p)
        d.store.set_groups(p)
        if not alive:
            start(ctx, p, fresh=False)
    return d.store.get(p.id) or p


def start(ctx: Context, p: Process, fresh: bool) -> None:
    """Spawn now; a process that cannot start leaves nothing new behind (a fresh row is removed)."""
    try:
        ctx.daemon.supervisor.start(p)
    except SpawnError as exc:
        if fresh:
            ctx.daemon.store.delete(p.id)
        raise CommandError(f"command error: start process error: {exc}", "spawn") from None
