"""THE authorization point: who may see and act on which process, group, user and path.

The rule (docs/security.md): a request from uid U makes pmond touch only what U could touch itself, and only
U's own rows and groups; root may do anything. Names and groups live in per-owner namespaces: `api` is the
caller's own `api`; root names another owner's with `user/api` (or by id). Someone else's process or group is
reported exactly like a missing one, so a user learns nothing about other users' names.
Handlers ask here before they delegate; nothing else decides.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from typing import Optional

from ..config import Config
from ..errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError
from ..models import Group, Process
from ..store import Store
from . import accounts, fsas
from .accounts import RunAs

# Process and group names become file names and appear in `user/name` references: no `/`, no controls.
NAME_RE = re.compile(r"[A-Za-z0-9_@+:][A-Za-z0-9_.@+:-]{0,127}")
NAME_RULE = "letters, digits and . _ - @ + : (at most 128, not starting with . or -)"
_SAFE_USER_DIR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who sent a request, as the kernel says (SO_PEERCRED, or the owner of a per-uid queue)."""

    uid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def name(self) -> str:
        return accounts.name_of(self.uid)

    @property
    def account(self) -> RunAs:
        return accounts.user_of(self.uid)


def _writable_by_others(run: RunAs, st: os.stat_result) -> str:
    """Why an inode could be changed by a non-root user other than `run` ("" if it cannot)."""
    if st.st_uid not in (0, run.uid):
        return f"owned by {Authz.owner_name(st.st_uid)}"
    if stat.S_ISLNK(st.st_mode):
        return ""  # a link's own mode means nothing; its owner (above) and its target (checked too) do
    if st.st_mode & 0o020:
        others = accounts.group_members(st.st_gid) - {0, run.uid}
        if others:
            return f"writable by group {accounts.group_name(st.st_gid)} (with {Authz.owner_name(min(others))})"
    if st.st_mode & 0o002 and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        return "writable by everyone"
    return ""


def as_id(text: str) -> Optional[int]:
    """An id as one can be written: ASCII digits of an integer SQLite holds. str.isdigit() alone takes "²" (which
    int() refuses) and 20 digits (which SQLite cannot bind); such a key is a name, and names no row."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def check_name(name: str, what: str = "process name") -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidRequestError(f"invalid {what} {name!r}: use {NAME_RULE}")
    return name


def check_group_name(name: str) -> str:
    check_name(name, "group name")
    if name.isdigit():
        raise InvalidRequestError(f"invalid group name {name!r}: not only digits (those are ids)")
    return name


class Authz:
    def __init__(self, store: Store, cfg: Config) -> None:
        self.store = store
        self.cfg = cfg
        self.own_uid = os.geteuid()

    # -- rows -------------------------------------------------------------------------------------------------
    def may_act(self, caller: Caller, p: Process) -> bool:
        return caller.is_root or p.owner == caller.uid

    def visible(self, caller: Caller) -> list[Process]:
        return self.store.list_processes(None if caller.is_root else caller.uid)

    def visible_rows(self, caller: Caller) -> list[Process]:
        """visible(), for reading only (Store.rows: no copies)."""
        return self.store.rows(None if caller.is_root else caller.uid)

    def find(self, caller: Caller, key: object) -> Process:
        """The process `key` names for this caller: an id, a name of the caller's own, or `user/name`."""
        text = str(key)
        p: Optional[Process] = None
        if (row_id := as_id(text)) is not None:
            p = self.store.get(row_id)
            if p is not None and not self.may_act(caller, p):
                p = None
        if p is None:
            owner, name = self._owner_and_name(caller, text)
            p = self.store.get_by_name(owner, name) if owner is not None else None
        if p is None:
            raise NotFoundError(f"process ({text}) does not exist")
        return p

    def find_optional(self, caller: Caller, key: object) -> Optional[Process]:
        try:
            return self.find(caller, key)
        except NotFoundError:
            return None

    def _owner_and_name(self, caller: Caller, text: str) -> tuple[Optional[int], str]:
        """`name` -> (caller, name); `user/name` -> (user, name) for root or for the user themself."""
        user, sep, name = text.rpartition("/")
        if not sep:
            return caller.uid, text
        try:
            uid = as_id(user)
            owner = accounts.uid_of(user) if uid is None else uid
        except InvalidRequestError:
            return None, name
        if owner != caller.uid and not caller.is_root:
            return None, name
        return owner, name

    def family(self, p: Process) -> list[Process]:
        """A process and its instances (NAME, NAME@1, ...): what stop, restart, reload and del of NAME act on."""
        if p.options.get("family") != p.name:
            return [p]
        members = [q for q in self.store.list_processes(p.owner) if q.options.get("family") == p.name and q.id != p.id]
        return [p, *sorted(members, key=lambda q: int(q.options.get("instance", 0)))]

    def display_name(self, caller: Caller, p: Process) -> str:
        """How this caller names `p`: plain when it is the caller's own, else `owner/name`."""
        return p.name if p.owner == caller.uid else f"{self.owner_name(p.owner)}/{p.name}"

    @staticmethod
    def owner_name(uid: int) -> str:
        try:
            return accounts.name_of(uid)
        except InvalidRequestError:
            return str(uid)

    def name_free(self, caller: Caller, name: str) -> Optional[Process]:
        """The caller's own row of that name, if any (names are per owner: nobody else's can collide)."""
        return self.store.get_by_name(caller.uid, name)

    # -- users ------------------------------------------------------------------------------------------------
    def run_as(self, caller: Caller, requested: str, owner: Optional[int] = None) -> RunAs:
        """Root may run processes as anyone; everybody else only as themselves. `owner`: the row the run user is
        for (default: a new row of the caller's), which must be allowed to run as that user (may_run_as)."""
        own = caller.name
        user = requested or own
        if not caller.is_root and user != own:
            raise PermissionDeniedError(f"permission denied: {own} may only run processes as {own}, not {user}")
        run = accounts.resolve_user(user)
        if self.own_uid != 0 and run.uid != self.own_uid:
            raise PermissionDeniedError(
                f"this pmond runs as {accounts.name_of(self.own_uid)}: it cannot run processes as {user}"
            )
        self.may_run_as(caller.uid if owner is None else owner, run)
        return run

    def may_run_as(self, owner: int, run: RunAs) -> None:
        """A user's process runs as that user, whoever asks: its owner chooses what it runs (restart -a, -l), so
        root giving it another identity (restart user/x -u root) would give the owner that identity. Only
        pmond's own user's processes (root's) may run as someone else."""
        if owner != self.own_uid and run.uid != owner:
            who = self.owner_name(owner)
            raise PermissionDeniedError(
                f"permission denied: a process of {who} runs as {who}, not as {run.name} (exec it as root instead)"
            )

    # -- groups -----------------------------------------------------------------------------------------------
    def visible_groups(self, caller: Caller) -> list[Group]:
        return self.store.list_groups(None if caller.is_root else caller.uid)

    def find_group(self, caller: Caller, key: object) -> Group:
        text = str(key)
        g: Optional[Group] = None
        if (group_id := as_id(text)) is not None:
            g = self.store.get_group(group_id)
            if g is not None and not (caller.is_root or g.owner == caller.uid):
                g = None
        if g is None:
            owner, name = self._owner_and_name(caller, text)
            g = self.store.get_group_by_name(owner, name) if owner is not None else None
        if g is None:
            raise NotFoundError(f"Group ({text}) does not exist")
        return g

    def group_members(self, caller: Caller, g: Group) -> list[Process]:
        """A group holds only its owner's processes (enforced at every membership change)."""
        procs = [self.store.get(pid) for pid in self.store.group_members(g.id)]
        return [p for p in procs if p is not None and p.owner == g.owner and self.may_act(caller, p)]

    def check_membership(self, caller: Caller, groups: list[Group], procs: list[Process]) -> None:
        """Only a group's owner's processes go into it, and only by its owner or root: nothing a user does can
        change what root's group operations act on."""
        for g in groups:
            if not (caller.is_root or g.owner == caller.uid):
                raise NotFoundError(f"Group ({g.name}) does not exist")
            for p in procs:
                if p.owner != g.owner:
                    raise PermissionDeniedError(
                        f"permission denied: {self.display_name(caller, p)} belongs to {self.owner_name(p.owner)}, "
                        f"group {g.name} to {self.owner_name(g.owner)}: a group holds only its owner's processes"
                    )

    def new_group_name(self, caller: Caller, name: str) -> str:
        check_group_name(name)
        if self.store.get_group_by_name(caller.uid, name) is not None:
            raise ConflictError(f"group {name} already exists")
        return name

    def may_delete_group(self, caller: Caller, g: Group) -> None:
        if not (caller.is_root or g.owner == caller.uid):
            raise NotFoundError(f"Group ({g.name}) does not exist")

    # -- paths ------------------------------------------------------------------------------------------------
    def default_log_path(self, owner: int, name: str) -> str:
        """pmond's own file for a row: <logs>/<name>.log for pmond's user's rows (as pmon3), and a directory
        per other owner, so that two users' `api` never share a file and nobody can plant one for another."""
        return os.path.join(self.log_dir_of(owner), f"{name}.log")

    def log_dir_of(self, owner: int) -> str:
        if owner == self.own_uid:
            return self.cfg.logs.directory
        name = self.owner_name(owner)
        sub = name if _SAFE_USER_DIR.fullmatch(name) and name not in (".", "..") else f"uid-{owner}"
        return os.path.join(self.cfg.logs.directory, sub)

    def is_managed_log(self, p: Process) -> bool:
        """Only the file pmond itself made for this row is pmond's to create, chown, rotate and delete."""
        return bool(p.log) and p.log == self.default_log_path(p.owner, p.name)

    def log_path(self, caller: Caller, owner: int, name: str, log: str, log_dir: str, create: bool = True) -> str:
        """pmon3's rules: --log verbatim, else <log_dir>/<name>.log, else pmond's own file. A path the caller
        chose is opened by the child as the run user, never by pmond. Root's missing log directory is created
        unless `create` is false (a plan that must change nothing)."""
        if log:
            if not os.path.isabs(log):
                raise InvalidRequestError(f"log path must be absolute: {log}")
            return os.path.normpath(log)
        if log_dir:
            if not os.path.isabs(log_dir):
                raise InvalidRequestError(f"log directory must be absolute: {log_dir}")
            log_dir = os.path.normpath(log_dir)
            if not fsas.is_dir(caller.uid, log_dir):
                if not caller.is_root:  # we would create it with root's rights
                    raise InvalidRequestError(f"log directory {log_dir} does not exist")
                if create:
                    os.makedirs(log_dir, mode=0o755, exist_ok=True)
            return os.path.join(log_dir, f"{name}.log")
        return self.default_log_path(owner, name)

    def exec_file(self, caller: Caller, file: str) -> str:
        """The executable as the caller sees it: what they could not stat, does not exist for them."""
        if not isinstance(file, str) or not file:
            raise InvalidRequestError("command error: file argument error: no file given")
        if not os.path.isabs(file):
            raise InvalidRequestError(f"command error: file argument error: {file} is not an absolute path")
        fsas.check_executable(caller.uid, file)
        return os.path.normpath(file)

    def cwd(self, caller: Caller, cwd: str) -> str:
        if cwd and not (os.path.isabs(cwd) and fsas.is_dir(caller.uid, cwd)):
            raise InvalidRequestError(f"working directory {cwd} does not exist")
        return cwd

    def trusted_executable(self, run: RunAs, path: str) -> None:
        """sshd's StrictModes for what pmond runs: refuse to run, as `run`, a file that a user other than `run`
        and root could replace — the file, any directory above it, and the same for where a symlink leads. A
        sticky world-writable directory (/tmp) is fine as long as the entry below it is `run`'s or root's."""
        targets = dict.fromkeys([os.path.normpath(path), os.path.realpath(path)])
        for target in targets:
            parts = target.split("/")
            for i in range(1, len(parts) + 1):
                component = "/".join(parts[:i]) or "/"
                try:
                    st = os.lstat(component)
                except OSError as exc:
                    raise PermissionDeniedError(f"cannot check {component}: {exc.strerror}") from None
                why = _writable_by_others(run, st)
                if why:
                    raise PermissionDeniedError(
                        f"refusing to run {path} as {run.name}: {component} is {why}, so another user could "
                        "replace what runs (strict_modes: false allows it)"
                    )

    def env_file_allowed(self, caller: Caller) -> None:
        """pmond would read an env file with its own rights: only for root (the CLI reads it as the caller)."""
        if not caller.is_root and caller.uid != self.own_uid:
            raise PermissionDeniedError("permission denied: pmond reads env files only for root")
