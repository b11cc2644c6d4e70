"""apply: make the caller's processes match the entries of a process config file, as a plan first.

The CLI reads the file (and the env files it names) with the caller's own rights and sends the entries; pmond
opens no path named in an apply. Every entry is validated with spec.build before anything is touched, and the
first error names its place (file, entry index and name, key). The plan is computed by pure functions (stored
rows + validated specs -> actions, `compute`) and carried out in dependency order through supervisor
operations: `upsert` creates, `update_spec` changes, `remove` deletes with prune.

Only the caller's own rows are compared (root's apply, too, never sees another owner's rows). A change of what
a live process was started with (file, args, environment, user, log, working directory) restarts it; the
restart keys, no_auto_restart, strict_modes, dependencies and groups are stored without a restart (the policy
applies from the next exit or stop, strict_modes at the next spawn). An entry without groups keeps the groups
assigned with the CLI, as `init` does. Unchanged processes are not touched, and nothing is started that is not
created or restarted (`init` starts stored processes that are not running).

An entry with `instances: N` stands for N processes, NAME, NAME@1 ... NAME@N-1, as boot and `init` make them
(spec.instance_spec): the plan has an action for each copy, creations of the missing ones and deletions (the
highest first) of the ones past N, and they are carried out by `Supervisor.scale`, as `pmon3 scale` does. An
entry without `instances` keeps the copies a `scale` made, as boot does, and they take the entry's spec. A
process's place in its family (options `family` and `instance`) is scale's, never a change; the copies of an
entry's family belong to the file for --prune.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shlex
from collections.abc import Container
from typing import Any, Optional

from .. import procconfig
from ..config import Config, signal_number
from ..errors import DependencyError, InvalidRequestError, Pmon3Error, ProcessConfigError
from ..ipc.messages import ApplyAction, ApplyChange, ApplyPlan, ApplyRequest, ExecRequest
from ..models import Process
from ..store import Store
from . import policy, spec
from .authz import Authz, Caller
from .supervisor import Supervisor

log = logging.getLogger("pmond.apply")

CREATE, CHANGE, UNCHANGED, DELETE = "create", "change", "unchanged", "delete"
_DURATIONS = ("min_uptime", "restart_delay", "max_restart_delay", "stop_timeout")
# Options (Process.options) whose change needs no restart: strict_modes is only looked at when pmond spawns, and
# max_memory is watched live (memwatch.py). Any other option is taken to shape what runs (limits are set in the
# new process), so that a change of it restarts a live process.
CHECKED_AT_SPAWN = frozenset({"strict_modes", "max_memory"})
# Options that say where a process stands among its instances: set by Supervisor.scale, never by a file.
FAMILY_OPTIONS = frozenset(spec.FAMILY_OPTIONS)


@dataclasses.dataclass(frozen=True)
class Desired:
    """One validated entry: its place in the file, the request it was built from, and the spec."""

    index: int
    req: ExecRequest
    env_file: str
    spec: Process
    groups_given: bool
    own_log: bool = False  # the log is pmond's own file (authz.is_managed_log): each copy gets its own too


@dataclasses.dataclass(frozen=True)
class Change:
    field: str  # the process config key
    old: Any
    new: Any
    restart: bool  # what a live process was started with: it takes a restart

    def wire(self) -> ApplyChange:
        return {"field": self.field, "old": self.old, "new": self.new, "restart": self.restart}


@dataclasses.dataclass
class Action:
    name: str
    action: str
    changes: list[Change] = dataclasses.field(default_factory=list)
    restart: bool = False
    id: int = 0
    seen: str = ""  # the process status (label) as seen by the plan, then after the action
    pid: int = 0
    desired: Optional[Desired] = None
    result: str = ""
    error: str = ""
    copy_of: str = ""  # a copy NAME@k of the entry NAME: carried out by NAME's scale
    instance: int = 0  # k, for a copy
    scale: Optional[int] = None  # an entry's: the number of instances to scale to, when its copies change

    def wire(self, done: bool) -> ApplyAction:
        out: ApplyAction = {
            "name": self.name,
            "action": self.action,
            "changes": [c.wire() for c in self.changes],
            "restart": self.restart,
            "id": self.id,
            "status": self.seen,
            "pid": self.pid,
        }
        if done:
            out["result"] = self.result
            if self.error:
                out["error"] = self.error
        return out


@dataclasses.dataclass
class Plan:
    actions: list[Action]
    warnings: list[str]
    depended: set[str]  # names others depend on: started ones get `wait.dependent_process_enqueued`
    source: str = "apply"


# -- comparing specs (pure) ------------------------------------------------------------------------------------


def _env(items: list[str]) -> dict[str, str]:
    """The environment a list gives (a later KEY wins, as in Supervisor.environment)."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _env_text(env: dict[str, str], keys: list[str]) -> str:
    return " ".join(shlex.quote(f"{k}={env[k]}") for k in keys if k in env)


def _path(value: str) -> str:
    return os.path.normpath(value) if value else ""


def _duration(ms: int) -> str:
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _policy_value(key: str, value: Any) -> Any:
    """A normalised policy value (policy.normalize_overrides made it) in a form that compares equal for
    equivalent spellings: exit codes as a set, signals by number."""
    if value is None:
        return None
    if key == "success_exit_codes":
        return tuple(sorted(set(value)))
    if key == "stop_signal":
        return signal_number(value)
    return value


def _policy_shown(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _DURATIONS:
        return _duration(int(value))
    if key == "success_exit_codes":
        return list(value)
    return value


def diff(old: Process, new: Process, groups_given: bool) -> list[Change]:
    """The fields in which a stored row differs from a validated spec, equivalent spellings being equal:
    args as a string or a list (both are argv by now), durations in any unit (ms by now), the order of
    dependencies, groups, exit codes and environment variables, SIGTERM/TERM/15, a trailing slash."""
    changes: list[Change] = []
    if old.process_file != new.process_file:
        changes.append(Change("file", old.process_file, new.process_file, True))
    if old.argv != new.argv:
        changes.append(Change("args", old.args, new.args, True))
    old_env, new_env = _env(old.env_vars), _env(new.env_vars)
    if old_env != new_env:
        keys = sorted(k for k in old_env.keys() | new_env.keys() if old_env.get(k) != new_env.get(k))
        changes.append(Change("env_vars", _env_text(old_env, keys), _env_text(new_env, keys), True))
    if (old.username, old.uid, old.gid) != (new.username, new.uid, new.gid):
        if old.username != new.username:
            changes.append(Change("user", old.username, new.username, True))
        else:  # the account itself changed (uid or primary group)
            was, now = f"{old.uid}:{old.gid}", f"{new.uid}:{new.gid}"
            changes.append(Change("user", f"{old.username} ({was})", f"{new.username} ({now})", True))
    if _path(old.log) != _path(new.log):
        changes.append(Change("log", old.log, new.log, True))
    if _path(old.cwd) != _path(new.cwd):
        changes.append(Change("cwd", old.cwd, new.cwd, True))
    if old.auto_restart != new.auto_restart:
        changes.append(Change("no_auto_restart", not old.auto_restart, not new.auto_restart, False))
    for key in policy.POLICY_KEYS:
        before, after = old.policy.get(key), new.policy.get(key)
        if _policy_value(key, before) != _policy_value(key, after):
            changes.append(Change(key, _policy_shown(key, before), _policy_shown(key, after), False))
    for key in sorted((old.options.keys() | new.options.keys()) - FAMILY_OPTIONS):
        before, after = old.options.get(key), new.options.get(key)
        if before != after:
            shown = [None if v is None else procconfig.option_text(key, v) for v in (before, after)]
            changes.append(Change(key, shown[0], shown[1], key not in CHECKED_AT_SPAWN))
    if set(old.dependencies) != set(new.dependencies):
        changes.append(Change("dependencies", list(old.dependencies), list(new.dependencies), False))
    if groups_given and set(old.groups) != set(new.groups):
        changes.append(Change("groups", sorted(old.groups), list(new.groups), False))
    return changes


def copies_by_family(stored: list[Process]) -> dict[str, dict[int, Process]]:
    """The stored copies (NAME@k, k >= 1) of each family, by k."""
    out: dict[str, dict[int, Process]] = {}
    for p in stored:
        family = p.options.get("family")
        if family and p.name != family:
            out.setdefault(str(family), {})[int(p.options.get("instance", 0))] = p
    return out


def instance_count(d: Desired, copies: dict[int, Process]) -> int:
    """How many instances an entry asks for: its `instances`; without it the stored family stays as it is."""
    if d.req.instances is not None:
        return d.req.instances
    return max(copies) + 1 if copies else 1


def compute(
    desired: list[Desired], stored: list[Process], alive: Container[int], prune: bool, source: str = "apply"
) -> Plan:
    """The plan: deletions first (with prune; dependents before what they depend on), then every entry in
    dependency order (procconfig.dependency_order) as create, change or unchanged, each followed by its copies
    (create, change or unchanged, then delete, the highest first). `stored` are the caller's own rows, `alive` the
    ids of live processes. Raises DependencyError for a cycle, InvalidRequestError for an entry named as a copy
    of another."""
    by_name = {p.name: p for p in stored}
    wanted = {d.spec.name: d for d in desired}
    families = copies_by_family(stored)
    counts = {name: instance_count(d, families.get(name, {})) for name, d in wanted.items()}
    copy_names = {spec.instance_name(name, k): (name, k) for name, n in counts.items() for k in range(1, n)}
    for d in desired:
        if d.spec.name in copy_names:
            of, k = copy_names[d.spec.name]
            message = f"{d.spec.name} is instance {k} of {of} ({counts[of]} instances): rename one"
            raise InvalidRequestError(place(source, d.index, d.spec.name, "name", message))
    # the file's: its entries and their stored copies (those past the count go with the entry's scale)
    listed = set(wanted) | {p.name for name in wanted for p in families.get(name, {}).values()}
    ordered, independent, _ = procconfig.dependency_order([(d.spec.name, list(d.spec.dependencies)) for d in desired])
    actions: list[Action] = []
    warnings = []
    if prune:
        doomed = [p for p in stored if p.name not in listed]
        try:
            first, rest, _ = procconfig.dependency_order([(p.name, list(p.dependencies)) for p in doomed])
            names = [*reversed(first), *rest]
        except DependencyError:  # rows made with `exec -d` are not checked for cycles
            names = [p.name for p in doomed]
        for name in names:
            p = by_name[name]
            actions.append(Action(name, DELETE, id=p.id, seen=p.status.label, pid=p.pid))
    for name in ordered + independent:
        d = wanted[name]
        row = by_name.get(name)
        if row is None:
            head = Action(name, CREATE, desired=d)
        else:
            changes = diff(row, d.spec, d.groups_given)
            kind = CHANGE if changes else UNCHANGED
            restart = row.id in alive and any(c.restart for c in changes)
            head = Action(name, kind, changes, restart, row.id, row.status.label, row.pid, d)
        actions.append(head)
        members = families.get(name, {})
        family: list[Action] = []
        for k in range(1, counts[name]):
            copy_name = spec.instance_name(name, k)
            member = members.get(k)
            if member is None:
                family.append(Action(copy_name, CREATE, desired=d, copy_of=name, instance=k))
                if copy_name in by_name and not prune:
                    why = "not an instance of it: the instances cannot be created (--prune deletes it)"
                    warnings.append(f"{name}: {copy_name} is a process of its own, {why}")
                continue
            target = spec.instance_spec(d.spec, k, spec.instance_log(d.spec, copy_name, d.own_log))
            changes = diff(member, target, d.groups_given)
            kind = CHANGE if changes else UNCHANGED
            restart = member.id in alive and any(c.restart for c in changes)
            seen, pid = member.status.label, member.pid
            family.append(Action(copy_name, kind, changes, restart, member.id, seen, pid, d, copy_of=name, instance=k))
        for k in sorted((k for k in members if k >= counts[name]), reverse=True):
            p = members[k]
            family.append(Action(p.name, DELETE, id=p.id, seen=p.status.label, pid=p.pid, copy_of=name, instance=k))
        if any(a.action != UNCHANGED for a in family):
            head.scale = counts[name]
        actions += family
    scaled_away = {a.name for a in actions if a.copy_of and a.action == DELETE}
    kept = set(wanted) | set(copy_names) | (set() if prune else set(by_name) - scaled_away)
    for d in desired:
        for dep in d.spec.dependencies:
            if dep not in kept:
                if dep in scaled_away:
                    why = "an instance past its entry's instances: deleted"
                elif dep in by_name:
                    why = "deleted by --prune"
                else:
                    why = "neither in the file nor a stored process"
                warnings.append(f"{d.spec.name}: dependency {dep} is {why}")
    depended = {dep for d in desired for dep in d.spec.dependencies}
    return Plan(actions, warnings, depended)


# -- validation and execution ------------------------------------------------------------------------------------


_ENTRY_KEYS = ExecRequest.field_names() - {"argv"}


def place(source: str, index: int, name: Any, key: Optional[str], message: str) -> str:
    """`FILE: processes[I] (NAME): KEY: message`, as procconfig names places (the key is not repeated)."""
    where = f"{source}: processes[{index}]"
    if isinstance(name, str) and name:
        where += f" ({name})"
    if key and not message.startswith(f"{key}:"):
        where += f": {key}"
    return f"{where}: {message}"


class Applier:
    def __init__(self, store: Store, cfg: Config, authz: Authz, supervisor: Supervisor) -> None:
        self.store = store
        self.cfg = cfg
        self.authz = authz
        self.supervisor = supervisor

    def validate(
        self, caller: Caller, entries: list[dict[str, Any]], source: str, *, create_dirs: bool
    ) -> list[Desired]:
        """Every entry as a validated spec of the caller's; the first error names its place. A missing user is
        the caller (as `init` does for pmond's own user)."""
        try:
            entries = procconfig.normalize({"processes": entries}, source)
        except ProcessConfigError as exc:
            raise InvalidRequestError(exc.message) from None
        out = []
        for i, entry in enumerate(entries):
            out.append(self._one(caller, i, entry, source, create_dirs))
        return out

    def _one(self, caller: Caller, index: int, entry: dict[str, Any], source: str, create_dirs: bool) -> Desired:
        name = entry.get("name")
        try:
            req = ExecRequest.parse({k: v for k, v in entry.items() if k in _ENTRY_KEYS})
        except InvalidRequestError:
            req = None  # which key: asked one by one below (only when something is wrong: it costs)
        for key, value in entry.items():
            if key == "env_file":
                if not isinstance(value, str):
                    raise InvalidRequestError(place(source, index, name, key, "must be a string"))
                continue
            if key not in _ENTRY_KEYS:
                raise InvalidRequestError(place(source, index, name, key, "not a process config key"))
            if req is None:
                try:
                    ExecRequest.parse({key: value})
                except InvalidRequestError as exc:
                    message = exc.message.replace(f"invalid request exec: {key} ", "")
                    raise InvalidRequestError(place(source, index, name, key, message)) from None
        assert req is not None
        if not req.user:
            req = req.replace(user=caller.name)
        env_file = str(entry.get("env_file") or "")
        try:
            p = spec.build(self.authz, caller, req, env_file, create_dirs=create_dirs)
        except Pmon3Error as exc:
            raise type(exc)(place(source, index, name, exc.field, exc.message), exc.code) from None
        if p.name in p.dependencies:  # procconfig.dependency_order would refuse it without saying where
            raise InvalidRequestError(
                place(source, index, name, "dependencies", "self-referential dependencies not allowed")
            )
        return Desired(index, req, env_file, p, bool(entry.get("groups")), self.authz.is_managed_log(p))

    def plan(self, caller: Caller, req: ApplyRequest) -> Plan:
        desired = self.validate(caller, req.entries, req.source or "apply", create_dirs=False)
        stored = self.store.list_processes(caller.uid)  # the caller's own rows, root's too
        alive = {p.id for p in stored if self.supervisor.is_alive(p.id)}
        try:
            plan = compute(desired, stored, alive, req.prune, req.source or "apply")
        except DependencyError as exc:
            raise InvalidRequestError(f"{req.source or 'apply'}: dependencies: {exc.message}") from None
        plan.source = req.source or "apply"
        return plan

    async def run(self, caller: Caller, req: ApplyRequest) -> ApplyPlan:
        """The plan, and without dry_run the plan carried out: each action's result, or its error (the others
        still run, as at boot)."""
        plan = self.plan(caller, req)
        if not req.dry_run:
            await self.execute(caller, plan)
            results = [a.result for a in plan.actions]
            log.info(
                "apply of %s by uid %d: %s",
                plan.source,
                caller.uid,
                ", ".join(f"{results.count(r)} {r}" for r in dict.fromkeys(results)) or "nothing to do",
            )
        return {
            "source": req.source,
            "dry_run": req.dry_run,
            "prune": req.prune,
            "actions": [a.wire(not req.dry_run) for a in plan.actions],
            "warnings": plan.warnings,
            "ok": not any(a.error for a in plan.actions),
        }

    async def execute(self, caller: Caller, plan: Plan) -> None:
        sup = self.supervisor
        pause = self.cfg.wait_dependent_ms / 1000
        starts = [a for a in plan.actions if not a.copy_of and (a.action == CREATE or a.restart)]
        copies: dict[str, list[Action]] = {}
        for a in plan.actions:
            if a.copy_of:
                copies.setdefault(a.copy_of, []).append(a)
        for a in plan.actions:
            if a.copy_of:
                continue  # with its entry, below
            started = False
            new: Optional[Process] = None
            try:
                if a.action == DELETE:
                    await sup.remove(a.id, force=False)
                    a.result, a.seen, a.pid = "deleted", "", 0
                elif a.action in (CREATE, CHANGE) or a.scale is not None:
                    assert a.desired is not None
                    d = a.desired
                    # Built again, now creating root's missing log directory (the plan created nothing).
                    new = spec.build(self.authz, caller, d.req, d.env_file)
                    row = self.store.get(a.id) if a.id else None
                    if a.scale is not None or (row is not None and row.options.get("family") == a.name):
                        new.options.update(family=a.name, instance=0)  # as scale leaves it: not a change
                    if a.action == CREATE:
                        p = await sup.upsert(new, exec_semantics=False, groups_given=d.groups_given)
                        a.result, started = "created", True
                    elif a.action == CHANGE:
                        # a process that holds its sockets or says when it is ready is reloaded, not restarted
                        smooth = bool(new.options.get("listen") or new.options.get("ready"))
                        p, started = await sup.update_spec(
                            a.id, new, restart=a.restart, groups_given=d.groups_given, reload=smooth
                        )
                        a.result = ("reloaded" if smooth else "restarted") if started else "updated"
                    else:  # unchanged itself, built for its copies' spec
                        p = row or new
                        a.result = UNCHANGED
                    a.id, a.seen, a.pid = p.id, p.status.label, p.pid
                else:
                    a.result = UNCHANGED
            except Pmon3Error as exc:
                a.result = "failed"
                at = a.desired
                a.error = place(plan.source, at.index, a.name, exc.field, exc.message) if at else f"{a.name}: {exc}"
            family = copies.get(a.name, [])
            if family:
                await self.carry_out_copies(plan, a, new, family)
            if started and a.name in plan.depended and pause and a is not starts[-1]:
                await asyncio.sleep(pause)  # pmon3's grace period for a dependency to come up

    async def carry_out_copies(self, plan: Plan, head: Action, new: Optional[Process], family: list[Action]) -> None:
        """An entry's copies: created and deleted by Supervisor.scale (as `pmon3 scale`), which gives the existing
        ones the entry's spec for their next start; then those whose change takes a restart are restarted (or
        reloaded) one at a time, after their entry."""
        d = head.desired
        assert d is not None
        if head.scale is None:
            for a in family:
                a.result = UNCHANGED
            return

        def failed(a: Action, message: str, field: Optional[str] = None) -> None:
            a.result, a.error = "failed", place(plan.source, d.index, a.name, field, message)

        if head.error or new is None:
            for a in family:
                failed(a, f"not carried out: {head.name} failed")
            return
        try:
            rows = {p.name: p for p in await self.supervisor.scale(head.id, head.scale)}
        except Pmon3Error as exc:
            for a in family:
                failed(a, exc.message, exc.field)
            return
        own_log = self.authz.is_managed_log(new)
        for a in family:
            p = rows.get(a.name)
            try:
                if a.action == DELETE:
                    if p is not None:
                        raise InvalidRequestError(f"{a.name} was not deleted")
                    a.result, a.seen, a.pid = "deleted", "", 0
                    continue
                if p is None:
                    raise InvalidRequestError(f"{a.name} is not an instance of {head.name}")
                if a.action == CREATE:
                    a.result = "created"
                elif a.action == CHANGE:
                    target = spec.instance_spec(new, a.instance, spec.instance_log(new, a.name, own_log))
                    smooth = bool(target.options.get("listen") or target.options.get("ready"))
                    p, started = await self.supervisor.update_spec(
                        p.id, target, restart=a.restart, groups_given=d.groups_given, reload=smooth
                    )
                    a.result = ("reloaded" if smooth else "restarted") if started else "updated"
                else:
                    a.result = UNCHANGED
                a.id, a.seen, a.pid = p.id, p.status.label, p.pid
            except Pmon3Error as exc:
                failed(a, exc.message, exc.field)
