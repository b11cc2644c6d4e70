"""The process state machine: spawning, death handling, restarts, stops, removal, adoption.

This is the only writer of process rows and the only place a status changes (`_set_status`, checked against
states.TRANSITIONS). Handlers call one of the public operations (upsert, restart, stop, remove, reset, revive)
and never take a row's lock themselves. Deaths arrive from the kernel (a pidfd becoming readable, or SIGCHLD
for orphans re-parented to us as subreaper) and are handled in the same loop iteration: a process that had
been up `min_uptime` is respawned before anything else is written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import logging
import os
import select
import signal
import stat
import sys
import time
from collections.abc import Coroutine, Iterable
from typing import Any, Callable, Literal, Optional

from .. import _native, limits
from ..config import BASE_PATH, Config, signal_number
from ..errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    Pmon3Error,
    SpawnError,
)
from ..logfiles import rotated_files
from ..models import ExitInfo, ExitRecord, Process, bytes_text
from ..states import Status, check_transition
from ..store import Store, StoreWriteError
from . import fsas, policy, readiness, spec
from .accounts import RunAs, resolve_user
from .authz import Authz
from .history import History
from .hooks import HookRunner
from .readiness import Notifier
from .sockets import Key as SocketKey
from .sockets import Sockets
from .trees import CGROUP_LIMITS, LEAVES, CgroupError, Copy, Trees

log = logging.getLogger("pmond.supervisor")

# After SIGKILL a tree is gone in milliseconds; this bounds waiting for one in uninterruptible sleep.
KILL_WAIT = 5.0
# Rows `exec` may take over by name: not alive and not about to be restarted by us.
REUSABLE = (Status.STOPPED, Status.FAILED, Status.CLOSED, Status.QUEUED, Status.BACKOFF)
# What a start leaves for later (its start time, the SQL write, log line, restart hook, callbacks) waits this
# long: with CLONE_VFORK pmond runs again the moment the child's execve let go of our memory, before the exec
# is done, and on the same CPU that work would delay the child (benches/README.md, restart breakdown).
SETTLE_DELAY = 0.005
SETTLE_SLICE = 0.002  # seconds of that bookkeeping per turn of the loop
# Respawns closer together than this are a storm: pmond does not wait for each child's exec (child_first).
BURST_GAP = 0.002
# Descriptors pmond needs besides one pidfd per process (database, queues, log, inotify, hooks, requests).
NOFILE_RESERVE = 256
# SIGCHLD: at most one sweep (wait4(-1) until nothing is left: each call walks every child of ours) this often.
# Supervised copies and hooks are collected through their own pidfds at once; only orphans (re-parented to us,
# the subreaper) wait for a sweep. The kernel's walk costs ~0.1 us per child (1.2 ms at 10,000), so with
# many children sweeps are further apart (SWEEP_PER_CHILD each, up to SWEEP_MAX): at a 50 ms cadence the walk
# ran into the next restart (restart median at 10,000 was 2x the one at 1) for an orphan's zombie reaped sooner.
SWEEP_DELAY = 0.05
SWEEP_PER_CHILD = 0.0001
SWEEP_MAX = 2.0


def sweep_delay(children: int) -> float:
    """How long after a SIGCHLD the sweep runs, with this many children."""
    return min(SWEEP_MAX, max(SWEEP_DELAY, children * SWEEP_PER_CHILD))


def _open_trace() -> int:
    """PMON3_TRACE=path (benches/README.md): one "<CLOCK_MONOTONIC ns> <event> <pid>" line per restart step."""
    path = os.environ.get("PMON3_TRACE", "")
    if not path:
        return -1
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


_trace_fd = _open_trace()


def _trace(event: bytes, pid: int) -> None:
    os.write(_trace_fd, b"%d %s %d\n" % (time.monotonic_ns(), event, pid))


# A start whose bookkeeping waits for settle(): the row (a private copy), the copy, and for an automatic
# restart what the restart hook and the log line need (old status, old pid, the exit, the uptime).
Unsettled = tuple[Process, "Runtime", Optional[tuple[Status, int, ExitInfo, float]]]


_OWN_KEYS = frozenset(("PMON3_NAME", "PMON3_ID"))  # environment entries no two processes share
# Per-process objects have __slots__ and share what processes have in common (docs/scale.md): pmond holds one
# Launch and one Runtime per live process, 10,000 of them on a big host.
# (pid, code, signal, user cpu, system cpu, max rss KiB, core dumped), as _native.reap_pidfd gives it
ExitTuple = tuple[int, Optional[int], Optional[int], float, float, int, bool]
RespawnEvent = tuple[
    int,
    int,
    int,
    Optional[ExitTuple],
    float,
    int,
    int,
    float,
    bool,
]
PolicyInputs = tuple[bool, dict[str, Any]]
_DEFAULT_POLICY: PolicyInputs = (True, {})  # shared: never mutated (policy.effective only reads it)


class Launch:
    """A process's spawn arguments, packed natively (_native.Launch), kept so that a crashed process is respawned
    without any lookup, by the native Respawner or from here. `plain`: no descriptors of pmond's are passed (no
    held sockets), so the Respawner may spawn it on its own."""

    __slots__ = ("native", "plain", "max_memory")

    def __init__(
        self,
        file: str,
        argv: list[str],
        env: list[str],
        cwd: Optional[str] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
        groups: Optional[tuple[int, ...]] = None,
        log_path: Optional[str] = None,
        rlimits: Optional[list[tuple[int, int, int]]] = None,
        pass_fds: Optional[list[int]] = None,
        max_memory: int = 0,
    ) -> None:
        self.native = _native.Launch(
            file,
            argv,
            env,
            cwd,
            uid,
            gid,
            groups,
            log_path,
            rlimits=rlimits,
            pass_fds=pass_fds or None,
            listen_pid=bool(pass_fds),
        )
        self.plain = not pass_fds
        self.max_memory = max_memory  # bytes; 0: not watched (memwatch.py)

    def spawn(self, child_first: bool, **where: Any) -> tuple[int, int]:
        """(pid, pidfd) of a new copy; `where`: its cgroup, as _native.spawn takes it."""
        return self.native.spawn(child_first=child_first, **where)


class Runtime:
    """One live copy of a process: what the daemon knows beyond its row. Futures are made only when someone
    waits for one (exit_waiter(); `ready` stays None for a copy without a readiness check)."""

    __slots__ = (
        "process_id",
        "leaf",
        "pid",
        "pidfd",
        "is_child",
        "started",
        "launch",
        "policy_inputs",
        "role",
        "ready",
        "notified",
        "status_text",
        "main_pid",
        "watchdog",
        "kill_reason",
        "kill_note",
        "max_memory",
        "exit_info",
        "armed",
        "_waiter",
    )

    def __init__(
        self,
        process_id: int,
        leaf: str,
        pid: int,
        pidfd: int,
        is_child: bool,
        started: float,
        launch: Optional[Launch] = None,
        policy_inputs: Optional[PolicyInputs] = None,
        role: str = "main",
    ) -> None:
        self.process_id = process_id
        self.leaf = leaf  # which of the process's two copy trees (trees.LEAVES) it runs in
        self.pid = pid
        self.pidfd = pidfd
        self.is_child = is_child
        self.started = started  # monotonic
        self.launch = launch  # None for a process adopted from a previous pmond
        # (auto_restart, per-process policy): the restart decision is made against config.yml as it is then
        self.policy_inputs = policy_inputs
        self.role = role  # main | successor (a reload's new copy, not yet serving) | retiring (being replaced)
        self.ready: Optional[asyncio.Future[None]] = None  # None: ready (no check); else resolved once ready
        self.notified: Optional[asyncio.Event] = None  # READY=1 arrived
        self.status_text = ""  # the last STATUS= it sent
        self.main_pid = 0  # MAINPID= it named: followed when the first process exits
        self.watchdog: Optional[asyncio.TimerHandle] = None
        self.kill_reason = ""  # pmond killed it (watchdog, not_ready): the history's reason
        self.kill_note = ""
        self.max_memory = 0  # restarted when its tree stays above this many bytes (memwatch.py); 0: not watched
        self.exit_info: Optional[ExitInfo] = None  # once it has exited
        self.armed = -1  # the Respawner's token while the native thread watches it (supervisor._arm)
        self._waiter: Optional[asyncio.Future[ExitInfo]] = None

    @property
    def copy(self) -> Copy:
        return (self.process_id, self.leaf)

    def exit_waiter(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[ExitInfo]:
        """A future of its exit (done at once if it has exited)."""
        if self._waiter is None:
            self._waiter = loop.create_future()
            if self.exit_info is not None:
                self._waiter.set_result(self.exit_info)
        return self._waiter

    def set_exited(self, info: ExitInfo) -> None:
        if self.exit_info is None:
            self.exit_info = info
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(info)

    def following(self, pid: int, pidfd: int, is_child: bool) -> Runtime:
        """The same copy, supervised through another process of its tree (MAINPID=)."""
        rt = Runtime(
            self.process_id, self.leaf, pid, pidfd, is_child, self.started, self.launch, self.policy_inputs, self.role
        )
        rt.ready, rt.notified, rt.status_text, rt.watchdog = self.ready, self.notified, self.status_text, self.watchdog
        rt.max_memory = self.max_memory  # still watched (memwatch)
        return rt


class RowLock(asyncio.Lock):
    """The lock of one row, dropped from its table once nobody holds or waits for it (10,000 idle locks are
    1.5 MB)."""

    def __init__(
        self, table: dict[int, RowLock], key: int, taken: Callable[[int], None], free: Callable[[int], None]
    ) -> None:
        super().__init__()
        self.table, self.key, self.users = table, key, 0
        self.taken, self.free = taken, free  # the supervisor's: the row's copy is disarmed while it is locked

    async def acquire(self) -> Literal[True]:
        self.users += 1
        try:
            await super().acquire()
        except BaseException:
            self.users -= 1
            self._drop()
            raise
        try:
            self.taken(self.key)
        except BaseException:
            self.release()  # a lock nobody holds must not stay taken
            raise
        return True

    def release(self) -> None:
        super().release()
        self.users -= 1
        self._drop()

    def _drop(self) -> None:
        if self.users == 0 and self.table.get(self.key) is self:
            del self.table[self.key]
            self.free(self.key)


class Supervisor:
    def __init__(
        self,
        store: Store,
        cfg: Config,
        loop: asyncio.AbstractEventLoop,
        authz: Authz,
        trees: Trees,
        sockets: Optional[Sockets] = None,
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.loop = loop
        self.authz = authz
        self.trees = trees
        self.sockets = sockets or Sockets()
        self.runtimes: dict[int, Runtime] = {}  # the serving copy of each live process
        self.by_pid: dict[int, Runtime] = {}  # every tracked copy, serving or not
        self.leaves: dict[int, str] = {}  # the copy tree a process's next start uses, when it is not LEAVES[0]
        self.notifiers: dict[Copy, Notifier] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.quick_deaths: dict[int, int] = {}
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.locks: dict[int, RowLock] = {}
        # processes being stopped on purpose -> (history reason, action) of the exit that follows
        self.stopping: dict[int, tuple[str, str]] = {}
        self.shutting_down = False
        self.started = time.monotonic()
        self.watchers: dict[int, Callable[[ExitInfo], None]] = {}
        self.on_start: list[Callable[[Process], None]] = []  # called after each spawn (its log may be new)
        self.unsettled: list[Unsettled] = []
        # RLIMIT_NOFILE: what pmond has (one pidfd per process), and what its processes get back when pmond
        # raised its own soft limit (the soft limit it was started with, as systemd does for services).
        self.nofile = 0
        self.child_rlimits: Optional[list[tuple[int, int, int]]] = None
        self._nofile_said = False
        self._settle_handle: Optional[asyncio.TimerHandle] = None
        self._sweep_handle: Optional[asyncio.TimerHandle] = None
        self._last_respawn = 0.0  # monotonic time the last fast respawn ended (BURST_GAP)
        # The native respawn thread (respawn.rs): copies that need no decision of ours are restarted without a
        # trip through the loop; its events are handled in order (_drain).
        self.respawner: Optional[_native.Respawner] = None
        self._events: collections.deque[RespawnEvent] = collections.deque()
        self._draining = False
        try:
            self.respawner = _native.Respawner(BURST_GAP, _trace_fd)
            loop.add_reader(self.respawner.fileno(), self._drain)
        except OSError as exc:
            log.warning("no respawn thread (%s): every restart goes through the event loop", exc)
        self.hooks = HookRunner(
            loop,
            lambda: self.cfg.hooks,
            lambda: self.cfg.hook_timeout_ms / 1000,
            self.watchers.__setitem__,
            lambda pid: self.watchers.pop(pid, None),
        )
        self.history = History(store, trees, loop, lambda: self.cfg.history_retain)

    # -- settings ---------------------------------------------------------------------------------------
    def set_nofile(self, original_soft: int, soft: int, hard: int) -> None:
        import resource

        self.nofile = soft
        if soft != original_soft:
            self.child_rlimits = [(resource.RLIMIT_NOFILE, original_soft, hard)]

    def check_nofile(self, processes: int) -> None:
        """Say once when the descriptor limit is too low for the processes pmond has (one pidfd each, and
        some for itself)."""
        if self._nofile_said or not self.nofile or processes + NOFILE_RESERVE <= self.nofile:
            return
        self._nofile_said = True
        log.warning(
            "%d processes need about %d descriptors (one pidfd each) and pmond may open %d (RLIMIT_NOFILE hard "
            "limit): raise it (LimitNOFILE= in pmond.service, or ulimit -Hn) and restart pmond",
            processes,
            processes + NOFILE_RESERVE,
            self.nofile,
        )

    def settings(self, p: Process) -> policy.RestartSettings:
        return policy.effective(self.cfg, p.auto_restart, p.policy)

    def restart_hooks_due(self) -> bool:
        """pmon3's initialization_period: no restart hooks while the daemon is still booting."""
        return time.monotonic() - self.started >= self.cfg.initialization_period_s

    def lock(self, process_id: int) -> RowLock:
        lock = self.locks.get(process_id)
        if lock is None:
            lock = self.locks[process_id] = RowLock(self.locks, process_id, self._hold, self._rearm)
        return lock

    def _set_leaf(self, process_id: int, leaf: str) -> None:
        if leaf == LEAVES[0]:
            self.leaves.pop(process_id, None)
        else:
            self.leaves[process_id] = leaf

    def is_alive(self, process_id: int) -> bool:
        return process_id in self.runtimes

    def tree_of(self, process_id: int) -> str:
        return self.trees.describe((process_id, self.leaves.get(process_id, LEAVES[0])))

    def live_pids(self, process_ids: Iterable[int]) -> list[int]:
        return [self.runtimes[i].pid for i in process_ids if i in self.runtimes]

    def runtime_info(self, process_id: int) -> dict[str, Any]:
        """What `desc` shows beyond the row: the tree, and what the process said over NOTIFY_SOCKET."""
        info: dict[str, Any] = {"tree": self.tree_of(process_id)}
        rt = self.runtimes.get(process_id)
        if rt is not None and rt.status_text:
            info["notify_status"] = rt.status_text
        last = self.history.last_exit(process_id)
        if last is not None:
            info["last_exit"] = last.summary()
        return info

    async def wait_ready(self, process_id: int) -> None:
        """Until the serving copy is ready (boot waits so for a dependency); a copy that will not be ready
        raises NotReady."""
        rt = self.runtimes.get(process_id)
        if rt is not None and rt.ready is not None:
            await asyncio.shield(rt.ready)

    # -- the one writer of a status ------------------------------------------------------------------------
    @staticmethod
    def _set_status(p: Process, new: Status) -> None:
        check_transition(p.status, new)
        p.status = new

    def check_limits(self, p: Process) -> None:
        """A process with cgroup limits is refused before anything is stored where pmond cannot apply them."""
        wanted = spec.cgroup_limits(p)
        if not wanted:
            return
        try:
            self.trees.require({CGROUP_LIMITS[k][0] for k in wanted})
        except CgroupError as exc:
            raise InvalidRequestError(f"{', '.join(wanted)}: {exc}") from None

    # -- operations for the request handlers ----------------------------------------------------------------
    async def upsert(
        self, new: Process, *, exec_semantics: bool, groups_given: bool, instances: Optional[int] = None
    ) -> Process:
        """Create `new` (a validated spec) or update its owner's stored row of that name, and start it unless it
        is alive. With exec semantics a live (or restarting) name is refused, as pmon3; a config entry updates
        the row and leaves a live process running.

        `instances` (exec -i, a config entry's `instances`): it runs as that many instances (`scale`), and when
        that is more than one it is started as instance 0 of its family, so that NAME has PMON3_INSTANCE from its
        first start as its copies have. A stored row keeps its place in its family (spec.keep_place): without
        `instances`, a process that has copies keeps them, as many as there are, and they take its spec."""
        self.check_limits(new)
        new = spec.keep_place(new, self.store.get_by_name(new.owner, new.name))
        if instances is not None and instances > 1 and "family" not in new.options:
            # before its first start: PMON3_INSTANCE=0
            new = dataclasses.replace(new, options={**new.options, "family": new.name, "instance": 0})
        p = await self._upsert(new, exec_semantics, groups_given)
        if p.options.get("family") == p.name or (instances or 1) > 1:
            await self.scale(p.id, instances)
            return self.store.get(p.id) or p
        return p

    async def _upsert(self, new: Process, exec_semantics: bool, groups_given: bool) -> Process:
        existing = self.store.get_by_name(new.owner, new.name)
        if existing is None:
            p = self.store.insert(new)  # a new row starts `queued`
            async with self.lock(p.id):
                try:
                    self.start(p)
                except SpawnError as exc:  # a failed start leaves nothing new behind
                    with contextlib.suppress(StoreWriteError):  # disk full: the row stays, `failed`
                        self.store.delete(p.id)
                    self._forget(p.id)
                    self._release_sockets(p)
                    raise SpawnError(f"command error: start process error: {exc}") from None
            return self.store.get(p.id) or p
        async with self.lock(existing.id):
            current = self.store.get(existing.id) or existing
            alive = self.is_alive(current.id)
            if exec_semantics and (alive or current.status not in REUSABLE):
                raise ConflictError(f"process already running with the name provided: {new.name}")
            p = spec.merge(current, spec.keep_place(new, current), groups_given)
            self.store.update(p, with_groups=True)
            if not alive:
                try:
                    self.start(p)
                except SpawnError as exc:
                    raise SpawnError(f"command error: start process error: {exc}") from None
        return self.store.get(p.id) or p

    async def restart(
        self, process_id: int, changes: dict[str, Any], verb: str, why: tuple[str, str] = ("stop", "restarted")
    ) -> tuple[Process, bool]:
        """restart: stop gracefully, apply the validated `changes`, start, count. start: the same, except that a
        live process is left alone. Returns the row and whether it was started. `why`: what the history
        records for the exit."""
        async with self.lock(process_id):
            p = self._get(process_id)
            if verb == "start" and self.is_alive(process_id):
                return p, False
            for key, value in changes.items():
                setattr(p, key, value)
            if verb == "restart":
                p.restart_count += 1
            self.store.update(p)  # first: if it cannot be written (disk full), nothing has happened
            if self.is_alive(process_id):
                await self.terminate(process_id, force=False, why=why)
            p = self._get(process_id)
            self._clear_runtime_state(process_id)
            try:
                self.start(p)
            except SpawnError as exc:
                raise SpawnError(f"command error: start process error: {exc}") from None
            return self._get(process_id), True

    async def restart_for_memory(self, process_id: int, used: int, limit: int) -> None:
        """memwatch: the tree stayed above max_memory: a graceful restart, counted, recorded as max_memory."""
        rt = self.runtimes.get(process_id)
        p = self.store.get(process_id)
        if rt is None or p is None or process_id in self.stopping:
            return
        rt.kill_note = f"tree memory {bytes_text(used)} > max_memory {bytes_text(limit)}"
        log.warning("%s (id %d): %s: restarting it", p.name, p.id, rt.kill_note)
        old_status, old_pid = p.status, p.pid
        try:
            p, _started = await self.restart(process_id, {}, "restart", why=("max_memory", "restarted"))
        except (SpawnError, NotFoundError) as exc:
            log.error("restart of %s for max_memory failed: %s", p.name, exc)
            return
        self._restart_hook(p, old_status, old_pid)

    async def reload(self, process_id: int, changes: dict[str, Any]) -> tuple[Process, str]:
        """Zero-downtime restart: start a new copy (with `changes` applied) beside the serving one, wait until
        it is ready, then stop the old one gracefully; never zero copies serving. If the new copy fails or is
        not ready in time, the old one keeps running, the row is unchanged, and SpawnError says why. A process
        that is not running is simply started. Returns the row and a note for the user (or "")."""
        async with self.lock(process_id):
            return await self._reload_locked(process_id, changes)

    async def _reload_locked(self, process_id: int, changes: dict[str, Any]) -> tuple[Process, str]:
        """reload, with the row's lock held (apply reloads under the lock it already holds)."""
        p = self._get(process_id)
        old = self.runtimes.get(process_id)
        target = dataclasses.replace(p, options=dict(p.options), policy=dict(p.policy))
        for key, value in changes.items():
            setattr(target, key, value)
        if old is None:
            self._clear_runtime_state(process_id)
            self.store.update(target)
            try:
                self.start(target)
            except SpawnError as exc:
                raise SpawnError(f"command error: start process error: {exc}") from None
            return self._get(process_id), "it was not running: started"
        ready = readiness.parse(str(target.options.get("ready", "none")))
        note = ""
        if ready.kind == "none":
            settings = self.settings(target)
            ready = readiness.ReadySpec("delay", delay=settings.min_uptime)
            note = f"no readiness check: the new copy counted as ready after min_uptime ({settings.min_uptime:g} s)" + (
                "" if target.options.get("listen") else "; without --listen it must share its port (SO_REUSEPORT)"
            )
        leaf = _other(old.leaf)
        if self.trees.populated((process_id, leaf), 0):
            await self._end_tree((process_id, leaf), 0, signal.SIGKILL, 0)  # a failed reload's leftovers
        try:
            new = self._spawn_copy(target, leaf, role="successor")
        except SpawnError as exc:
            raise SpawnError(f"reload of {p.name} failed: {exc}; the old copy keeps running") from None
        try:
            await self._await_ready(new, target, ready)
        except readiness.NotReady as exc:
            # gracefully: sharing the held sockets, it may be answering requests it has accepted
            await self._terminate_copy(new, force=False)
            self._close_notifier(new.copy)
            raise SpawnError(f"reload of {p.name} failed: {exc}; the old copy keeps running") from None
        target.restart_count += 1
        try:
            self.store.update(target)
        except StoreWriteError as exc:
            await self._terminate_copy(new, force=True)
            self._close_notifier(new.copy)
            raise SpawnError(f"reload of {p.name} failed: {exc}; the old copy keeps running") from None
        # The new copy serves: it becomes the process, then the old one is stopped gracefully.
        old.role, new.role = "retiring", "main"
        self.runtimes[process_id] = new
        self._set_leaf(process_id, leaf)
        self._stop_watchdog(old)
        self._record_start(target, new)
        self._set_status(target, Status.RUNNING)
        self.store.update_runtime(target)
        await self._terminate_copy(old, force=False)
        self._close_notifier(old.copy)
        log.info("reloaded %s: pid %d replaced pid %d", p.name, new.pid, old.pid)
        return self._get(process_id), note

    async def scale(self, head_id: int, n: Optional[int]) -> list[Process]:
        """Make the process `head_id` run as `n` instances: NAME (instance 0), NAME@1 ... NAME@n-1, sharing its
        held sockets, each with PMON3_INSTANCE. New instances take the head's spec (spec.instance_spec; they start if
        it runs); the ones past n are stopped and removed, the highest first. Existing instances get the head's spec
        for their next start. No `n`: as many as there are (up to the highest NAME@k)."""
        async with self.lock(head_id):
            head = self._get(head_id)
            family = str(head.options.get("family") or head.name)
            if family != head.name:
                raise InvalidRequestError(f"{head.name} is an instance of {family}: scale {family}")
            members = {
                int(q.options.get("instance", 0)): q
                for q in self.store.list_processes(head.owner)
                if q.options.get("family") == family and q.id != head.id
            }
            if n is None:
                n = max(members, default=0) + 1
            head.options.update(family=family, instance=0)
            self.store.update(head)
            running = self.is_alive(head.id)
            created: list[Process] = []
            own_log = self.authz.is_managed_log(head)
            for k in range(1, n):
                name = spec.instance_name(family, k)
                twin = spec.instance_spec(head, k, spec.instance_log(head, name, own_log))
                existing = members.get(k)
                if existing is None:
                    if self.store.get_by_name(head.owner, name) is not None:
                        raise ConflictError(f"cannot scale {head.name}: a process named {name} already exists")
                    created.append(self.store.insert(twin))
                else:
                    self.store.update(spec.merge(existing, twin, groups_given=True))
        for p in created:
            if running:
                async with self.lock(p.id):
                    try:
                        self.start(p)
                    except SpawnError as exc:
                        log.error("instance %s could not start: %s", p.name, exc)
        for k, q in sorted(members.items(), reverse=True):  # the highest first: NAME@1 ... stay contiguous
            if k >= n:
                await self.remove(q.id, force=False)
        return self.authz.family(self._get(head_id))

    async def update_spec(
        self, process_id: int, new: Process, *, restart: bool, groups_given: bool, reload: bool = False
    ) -> tuple[Process, bool]:
        """apply: replace a stored row's spec with `new` (validated; spec.merge). A live process is restarted
        (gracefully, counted) when `restart`, i.e. when what it was started with changed; otherwise it keeps
        running and the new restart policy applies from its next exit. A process that is not alive is updated
        and left as it is: a stopped one stays stopped, a pending restart starts the new spec. Returns the row
        and whether it was restarted."""
        self.check_limits(new)
        async with self.lock(process_id):
            p = self._get(process_id)
            restart = restart and self.is_alive(process_id)
            if restart and reload:  # without downtime: the new copy first, the old one stopped once it is ready
                target = spec.merge(dataclasses.replace(p), new, groups_given)
                changes = {f: getattr(target, f) for f in spec.SPEC_FIELDS}
                await self._reload_locked(process_id, changes)
                p = self._get(process_id)
                p.groups = list(target.groups)
                self.store.set_groups(p)
                return self._get(process_id), True
            p = spec.merge(p, new, groups_given)
            if restart:
                p.restart_count += 1
            self.store.update(p, with_groups=True)  # first: if it cannot be written (disk full), nothing happened
            if restart:
                await self.terminate(process_id, force=False, why=("stop", "restarted"))
                p = self._get(process_id)
                self._clear_runtime_state(process_id)
            rt = self.runtimes.get(process_id)
            if rt is not None and rt.launch is not None:
                rt.policy_inputs = (p.auto_restart, dict(p.policy))
            if rt is not None:  # max_memory applies without a restart
                rt.max_memory = int(p.options.get("max_memory") or 0)
                if rt.launch is not None:
                    rt.launch.max_memory = rt.max_memory
            if restart:
                try:
                    self.start(p)
                except SpawnError as exc:
                    raise SpawnError(f"command error: start process error: {exc}") from None
            return self._get(process_id), restart

    async def stop(self, process_id: int, force: bool) -> Process:
        async with self.lock(process_id):
            return await self._stop(self._get(process_id), force)

    async def stop_many(self, process_ids: Iterable[int], force: bool) -> None:
        async def one(process_id: int) -> None:
            async with self.lock(process_id):
                p = self.store.get(process_id)
                if p is not None:
                    await self._stop(p, force)

        await asyncio.gather(*(one(i) for i in process_ids))

    async def remove(self, process_id: int, force: bool) -> Process:
        """Stop (gracefully unless forced) and delete the row; the log files pmond made for it go too."""
        async with self.lock(process_id):
            p = self._get(process_id)
            info = await self.terminate(process_id, force=force, why=("stop", "deleted"))
            try:
                self.store.delete(process_id)
            except StoreWriteError as exc:  # disk full: the row stays, as a stopped process
                current = self._get(process_id)
                if current.status != Status.STOPPED:
                    if info is not None:
                        current.last_exit_code, current.last_exit_signal = info.code, info.signal
                    self._set_status(current, Status.STOPPED)
                    self.store.update_runtime(current)
                raise StoreWriteError(f"{p.name} was stopped but not deleted: {exc.message}") from None
            self._forget(process_id)
            self.trees.release(process_id)
            for leaf in LEAVES:
                self._close_notifier((process_id, leaf))
            self._release_sockets(p)
        if self.authz.is_managed_log(p):  # a path the user chose is the user's to keep
            for path in [p.log, *rotated_files(p.log)]:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("could not remove %r: %s", path, exc)
        return p

    async def remove_many(self, process_ids: Iterable[int], force: bool) -> list[Process]:
        return list(await asyncio.gather(*(self.remove(i, force) for i in process_ids)))

    def reset(self, process_ids: Iterable[int]) -> None:
        """Forget restarts and backoff; a backed-off process is retried now."""
        for process_id in process_ids:
            p = self.store.get(process_id)
            if p is None:
                continue
            p.restart_count = 0
            self.quick_deaths.pop(p.id, None)
            p.flap = {}
            if p.status == Status.BACKOFF and p.id not in self.runtimes:
                self._schedule(p.id, 0.0)
                self._set_status(p, Status.RESTARTING)
            self.store.update_runtime(p)

    async def revive(self, process_id: int) -> bool:
        """Boot and init: start a stored row that is not alive and was not stopped by its user. A process
        backing off when pmond went down keeps waiting for its retry time."""
        p = self.store.get(process_id)
        if p is None or self.is_alive(process_id) or p.status == Status.STOPPED:
            return False
        if p.status == Status.BACKOFF and float(p.flap.get("backoff_until", 0)) > time.time():
            self._schedule(p.id, max(0.0, float(p.flap["backoff_until"]) - time.time()))
            return False
        async with self.lock(process_id):
            current = self.store.get(process_id)
            if current is None or self.is_alive(process_id):
                return False
            self.start(current)
        return True

    async def end_untracked(self, rows: Iterable[int]) -> int:
        """At start, after adoption (cgroup mode): processes in a copy tree that no adopted process leads were
        left by a pmond that died: the children of a leader that died while no pmond watched, or a copy spawned
        just before the crash, before its pid was written. Nobody tracks them and boot would start the process
        again beside them, so they are ended first (SIGKILL: their leader is gone or unknown). Trees of rows that
        no longer exist go with their cgroups. Returns how many trees were ended."""
        existing = set(rows)
        ended = 0
        for copy in self.trees.copies():
            rt = self.runtimes.get(copy[0])
            if rt is not None and rt.leaf == copy[1]:
                continue  # the adopted copy's own tree
            if self.trees.populated(copy, 0):
                log.warning(
                    "process %d: ending what a previous pmond left untracked in %s", copy[0], self.trees.describe(copy)
                )
                await self._end_tree(copy, 0, signal.SIGKILL, 0)
                ended += 1
            if copy[0] not in existing:
                self.trees.release(copy[0])
        return ended

    async def shutdown_stop(self, layers: list[list[int]]) -> None:
        """pmond is stopping with handle_interrupts: every live process ends `closed`, dependents first. No row
        lock: a request still holding one must not keep pmond from stopping."""
        for layer in layers:
            procs = [p for p in (self.store.get(i) for i in layer) if p is not None]
            await asyncio.gather(*(self._stop(p, force=False, final=Status.CLOSED) for p in procs))

    def begin_shutdown(self) -> None:
        """pmond is stopping: nothing is respawned any more (shutdown_stop and the general way see the flag)."""
        self.shutting_down = True
        self._disarm_all()

    def close(self) -> None:
        """pmond goes away: what it holds for processes (sockets, notify sockets) is closed, processes stay."""
        self._disarm_all()
        if self.respawner is not None:
            self.loop.remove_reader(self.respawner.fileno())
            self.respawner.close()
            self.respawner = None  # anything after this goes through the loop
        self.settle()
        for handle in (self._sweep_handle,):
            if handle is not None:
                handle.cancel()
        for copy in list(self.notifiers):
            self._close_notifier(copy)
        self.sockets.close()
        self.history.close()

    def _get(self, process_id: int) -> Process:
        p = self.store.get(process_id)
        if p is None:
            raise NotFoundError(f"process ({process_id}) does not exist")
        return p

    # -- spawning -----------------------------------------------------------------------------------------
    def environment(self, p: Process, user: RunAs) -> list[str]:
        """A clean base (never the daemon's own environment) followed by the process's variables."""
        env = {
            "PATH": BASE_PATH,
            "HOME": user.home,
            "USER": user.name,
            "LOGNAME": user.name,
            "SHELL": user.shell or "/bin/sh",
        }
        lang = os.environ.get("LANG")
        if lang:
            env["LANG"] = lang
        # who it is, for the process itself (and for finding it in /proc): its name and id
        env["PMON3_NAME"], env["PMON3_ID"] = p.name, str(p.id)
        if "instance" in p.options:
            env["PMON3_INSTANCE"] = str(p.options["instance"])
        for item in p.env_vars:
            key, _, value = item.partition("=")
            env[key] = value
        # interned: most entries are the same in every process's environment, and it is kept (Launch)
        return [f"{k}={v}" if k in _OWN_KEYS else sys.intern(f"{k}={v}") for k, v in env.items()]

    def prepare_log(self, p: Process, user: RunAs) -> None:
        """pmond's own file for the row (its default path, in a directory no user can write) is created by
        pmond and handed to the run user. Any other path is opened by the child as the run user, so no
        privilege leaks through a path a user chose."""
        if not self.authz.is_managed_log(p):
            return
        directory = os.path.dirname(p.log)
        if directory != self.cfg.logs.directory:
            _own_directory(directory)
        fd = os.open(p.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise OSError(errno.EPERM, "not a plain file of pmond's")
            if (st.st_uid, st.st_gid) != (user.uid, user.gid) and os.geteuid() == 0:
                os.fchown(fd, user.uid, user.gid)
        finally:
            os.close(fd)

    @staticmethod
    def socket_key(p: Process) -> SocketKey:
        """A process and its instances share one set of held sockets."""
        return (p.owner, str(p.options.get("family") or p.name))

    def _release_sockets(self, p: Process) -> None:
        key = self.socket_key(p)
        if not any(self.socket_key(q) == key for q in self.store.list_processes(p.owner) if q.id != p.id):
            self.sockets.release(key)

    def spawn(self, p: Process) -> None:
        """Start `p` now as its serving copy; on success its row says running (or starting, until ready) with the
        new pid, else SpawnError."""
        if p.id in self.runtimes:
            raise SpawnError(f"process ({p.name}) is already running")
        rt = self._spawn_copy(p, self.leaves.get(p.id, LEAVES[0]), role="main")
        self._record_start(p, rt)
        self._watch_ready(rt, p)

    def _spawn_copy(self, p: Process, leaf: str, role: str) -> Runtime:
        """Prepare everything (user, StrictModes, log, sockets, notify socket, tree) and spawn one copy."""
        try:
            user = resolve_user(p.username)
        except InvalidRequestError as exc:
            raise SpawnError(str(exc)) from None
        if os.geteuid() != 0 and user.uid != os.geteuid():
            raise SpawnError(f"this pmond cannot run processes as {user.name}")
        try:
            self.authz.may_run_as(p.owner, user)  # a row stored before the rule (or edited) is refused too
        except PermissionDeniedError as exc:
            raise SpawnError(exc.message) from None
        if p.options.get("strict_modes", True):
            try:
                self.authz.trusted_executable(user, p.process_file)
            except PermissionDeniedError as exc:
                raise SpawnError(exc.message) from None
        try:
            self.prepare_log(p, user)
        except OSError as exc:
            raise SpawnError(f"open log {p.log}: {exc.strerror}") from None
        env = self.environment(p, user)
        pass_fds: list[int] = []
        key = self.socket_key(p)
        if p.options.get("listen"):
            try:
                if not self.sockets.fds(key) or p.options["listen"] != self._held_texts(key):
                    self.sockets.ensure(key, list(p.options["listen"]), p.owner, user)
            except Pmon3Error as exc:
                raise SpawnError(exc.message) from None
            pass_fds = self.sockets.fds(key)
            env += self.sockets.spawn_env(key)
        copy = (p.id, leaf)
        ready = str(p.options.get("ready", "none"))
        if ready == "notify":
            env.append(self._notifier(copy).env)
            if p.options.get("watchdog"):
                env.append(f"WATCHDOG_USEC={int(p.options['watchdog']) * 1000}")
        root = os.geteuid() == 0
        rlimits = self.child_rlimits
        if p.options.get("limits"):  # the process's own limits win over the ones pmond restores
            own = limits.rlimits(p.options["limits"])
            mine = {r[0] for r in own}
            rlimits = [r for r in (rlimits or []) if r[0] not in mine] + own
        cgroup_limits = spec.cgroup_limits(p)
        try:
            self.trees.apply_limits(copy, cgroup_limits)
        except CgroupError as exc:
            raise SpawnError(f"{', '.join(cgroup_limits) or 'cgroup limits'}: {exc}") from None
        self.history.started(copy)
        launch = Launch(
            p.process_file,
            [p.process_file, *p.argv],  # argv[0] is the program as given (pmon3; multi-call binaries need it)
            env,
            cwd=sys.intern(p.cwd or os.path.dirname(p.process_file) or "/"),
            uid=user.uid if root else None,
            gid=user.gid if root else None,
            groups=user.groups if root else None,
            log_path=p.log or None,
            rlimits=rlimits,
            pass_fds=pass_fds,
            max_memory=int(p.options.get("max_memory") or 0),
        )
        inputs = (p.auto_restart, dict(p.policy)) if p.policy or not p.auto_restart else _DEFAULT_POLICY
        rt = self._launch(p.id, leaf, launch, inputs, role)
        p.uid, p.gid = user.uid, user.gid
        return rt

    def _held_texts(self, key: SocketKey) -> list[str]:
        return [spec.text() for spec, _s in self.sockets.held.get(key, [])]

    def start(self, p: Process) -> None:
        """spawn, recording `failed` when the process cannot start (the SpawnError still reaches the caller)."""
        try:
            self.spawn(p)
        except SpawnError:
            self._set_status(p, Status.FAILED)
            self.store.update_runtime(p)
            raise

    def _launch(
        self, process_id: int, leaf: str, launch: Launch, policy_inputs: tuple[bool, dict[str, Any]], role: str
    ) -> Runtime:
        try:
            tree = self.trees.spawn_fds((process_id, leaf))  # born inside its tree: nothing it starts can leave it
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                self.check_nofile(len(self.by_pid) + NOFILE_RESERVE)
            raise SpawnError(f"cgroup {self.trees.path((process_id, leaf))}: {exc.strerror}") from None
        if _trace_fd >= 0:
            _trace(b"spawn", 0)
        try:
            # child_first: the child finishes its exec before we run again (spawn.rs)
            pid, pidfd = launch.spawn(child_first=True, **tree)
        except OSError as exc:
            if exc.errno == errno.ENOSYS and "cgroup_fd" in tree:
                self.trees.no_clone3()
                return self._launch(process_id, leaf, launch, policy_inputs, role)
            if exc.errno == errno.EMFILE:
                self.check_nofile(len(self.by_pid) + NOFILE_RESERVE)
            raise SpawnError(str(exc.args[1]) if len(exc.args) > 1 else str(exc)) from None
        finally:
            for fd in tree.values():
                os.close(fd)
        if _trace_fd >= 0:
            _trace(b"spawned", pid)
        rt = Runtime(process_id, leaf, pid, pidfd, True, time.monotonic(), launch, policy_inputs, role)
        rt.max_memory = launch.max_memory
        self._track(rt)
        return rt

    def _record_start(
        self, p: Process, rt: Runtime, restart: Optional[tuple[Status, int, ExitInfo, float]] = None
    ) -> None:
        """The row says the new copy runs: in the store's cache at once (every read sees it). Its start time,
        the SQL write, the log line, the restart hook and the on_start callbacks wait for settle(), soon
        after (SETTLE_DELAY), or before the reply to a request."""
        gated = str(p.options.get("ready", "none")) != "none"
        self._set_status(p, Status.STARTING if gated else Status.RUNNING)
        p.pid, p.pid_start_time = rt.pid, 0
        p.started_at = time.time()
        self.store.update_runtime(p, deferred=True)
        self.unsettled.append((p, rt, restart))
        if self._settle_handle is None:
            self._settle_handle = self.loop.call_later(SETTLE_DELAY, self.settle, SETTLE_SLICE)

    def settle(self, budget: Optional[float] = None) -> None:
        """The bookkeeping of the starts since the last call (see _record_start), then every deferred write.
        With a `budget` (seconds: the timer's call), the rest waits for the loop's next turn once it is spent,
        so that a storm's respawns go first and its hooks and log lines after (SETTLE_SLICE)."""
        if self._settle_handle is not None:
            self._settle_handle.cancel()
            self._settle_handle = None
        deadline = None if budget is None else time.monotonic() + budget
        pending, self.unsettled = self.unsettled, []
        for i, (p, rt, restart) in enumerate(pending):
            if deadline is not None and i and time.monotonic() > deadline:
                self.unsettled[:0] = pending[i:]
                # a timer of 0: it runs after the deaths that the loop's next poll finds
                self._settle_handle = self.loop.call_later(0, self.settle, budget)
                break
            start_time = 0
            if self.by_pid.get(rt.pid) is rt:  # not collected yet: the pid is still that process's
                try:
                    start_time = _native.proc_start_time(rt.pid)
                except OSError:
                    pass
            if self.store.set_start_time(p.id, rt.pid, start_time):
                p.pid_start_time = start_time
            if restart is None:
                log.info("started %s (id %d) as pid %d", p.name, p.id, rt.pid)
            else:
                old_status, old_pid, info, uptime = restart
                log.info(
                    "%s (id %d, pid %d) exited: %s after %.3f s; started again as pid %d",
                    p.name,
                    p.id,
                    info.pid,
                    info.describe(),
                    uptime,
                    rt.pid,
                )
                self._restart_hook(p, old_status, old_pid)
            for callback in self.on_start:
                callback(p)
        self.store.flush()

    def _track(self, rt: Runtime, armed: int = -1) -> None:
        """Supervise a new copy: by the respawn thread when it is armed already or may be (_armable), else by
        the loop."""
        if rt.role == "main":
            self.runtimes[rt.process_id] = rt
            self._set_leaf(rt.process_id, rt.leaf)
        self.by_pid[rt.pid] = rt
        if armed >= 0:
            rt.armed = armed
        elif not self._arm(rt):
            self.loop.add_reader(rt.pidfd, self._pidfd_ready, rt)

    # -- the respawn thread ---------------------------------------------------------------------------------
    # A copy is armed only while nothing but its death can happen to it: no row lock, stop, shutdown, tree kill,
    # readiness kill, MAINPID, flap detection or held sockets. Whoever is about to act on a copy disarms it
    # first (_disarm, RowLock), which also handles what the thread did before, so the caller sees the copy as
    # it is. The thread decides exactly what _respawn_fast decides (policy.restarts_at_once, an empty cgroup).
    def _armable(self, rt: Runtime) -> bool:
        launch, trees = rt.launch, self.trees
        return (
            self.respawner is not None
            and launch is not None
            and launch.plain
            and rt.policy_inputs is not None
            and rt.is_child
            and rt.role == "main"
            and not rt.main_pid
            and not rt.kill_reason
            and trees.base is not None
            and not self.shutting_down
            and not self.cfg.flap.enabled
            and rt.process_id not in self.stopping
            and rt.process_id not in self.locks
            and rt.copy not in trees.killed
            and rt.copy in trees.used
            and self.runtimes.get(rt.process_id) is rt
        )

    def _arm(self, rt: Runtime) -> bool:
        """Hand the copy to the respawn thread if it may have it; whether it did."""
        if self.respawner is None or not self._armable(rt):
            return False
        assert rt.launch is not None and rt.policy_inputs is not None
        settings = policy.effective(self.cfg, *rt.policy_inputs)
        path = self.trees.path(rt.copy)
        if settings.mode == "never" or path is None:
            return False
        try:
            rt.armed = self.respawner.arm(
                rt.pid,
                rt.pidfd,
                rt.started,
                rt.launch.native,
                path,
                not self.trees.born_in_cgroup,
                settings.mode == "on-failure",
                settings.min_uptime,
                list(settings.success_exit_codes),
            )
        except OSError as exc:
            log.warning("pid %d: not armed for a native respawn: %s", rt.pid, exc)
            return False
        return True

    def _disarm(self, rt: Runtime) -> None:
        """The copy is the loop's again (a no-op when it is not armed); what the thread did before is handled
        first, so afterwards by_pid and runtimes say which copy runs."""
        if rt.armed < 0 or self.respawner is None:
            return
        token, rt.armed = rt.armed, -1
        self.respawner.disarm(token)
        self.loop.add_reader(rt.pidfd, self._pidfd_ready, rt)
        self._drain()

    def _disarm_all(self) -> None:
        if self.respawner is not None:
            self._unarm_all(self.respawner)
            self._drain()

    def _unarm_all(self, respawner: _native.Respawner) -> None:
        for rt in self.by_pid.values():
            if rt.armed >= 0:
                rt.armed = -1
                self.loop.add_reader(rt.pidfd, self._pidfd_ready, rt)
        respawner.disarm_all()

    def _hold(self, process_id: int) -> None:
        """Its row lock was taken: the process's copy is not respawned behind the lock holder's back."""
        rt = self.runtimes.get(process_id)
        if rt is not None:
            self._disarm(rt)

    def _rearm(self, process_id: int) -> None:
        """Its row lock is free again: the serving copy may go back to the respawn thread."""
        rt = self.runtimes.get(process_id)
        if rt is None or rt.armed >= 0 or self.by_pid.get(rt.pid) is not rt:
            return
        if self._arm(rt):
            self.loop.remove_reader(rt.pidfd)

    def reconsider(self) -> None:
        """The restart settings may have changed (config reload): every copy is armed again under them."""
        self._disarm_all()
        for process_id in list(self.runtimes):
            self._rearm(process_id)

    def _drain(self) -> None:
        """The respawn thread's events, in the order it made them, also when a handler disarms another copy
        (which drains again: those wait their turn here)."""
        if self.respawner is None:
            return
        self._events.extend(self.respawner.take())
        if not self.respawner.running():  # an error ended it: every copy goes back to the loop, for good
            log.error("the respawn thread has ended: restarts go through the event loop from now on")
            respawner, self.respawner = self.respawner, None
            self._unarm_all(respawner)
            self.loop.remove_reader(respawner.fileno())
            respawner.close()
            self._events.extend(respawner.take())
        if self._draining:
            return
        self._draining = True
        try:
            while self._events:
                self._native_event(*self._events.popleft())
        finally:
            self._draining = False

    def _native_event(
        self,
        token: int,
        old_pid: int,
        old_pidfd: int,
        exit: Optional[ExitTuple],
        ended: float,
        new_pid: int,
        new_pidfd: int,
        spawned: float,
        still_armed: bool,
    ) -> None:
        rt = self.by_pid.get(old_pid)
        if exit is None:  # collected by a sweep (which handled it) or lost: as _pidfd_ready does
            if rt is not None and rt.armed == token:
                rt.armed = -1
                self.loop.add_reader(rt.pidfd, self._pidfd_ready, rt)
                self.sweep()
                if self.by_pid.get(old_pid) is rt:
                    self._exited(rt, ExitInfo(old_pid, None, None))
            return
        if rt is None or rt.pidfd != old_pidfd or rt.launch is None:
            # Only a copy the thread held ends here, and only through this event: a bug if it happens.
            log.error("respawn event for pid %d, which pmond does not supervise", old_pid)
            if new_pid:
                os.close(new_pidfd)
            return
        rt.armed = -1
        info = ExitInfo(*exit)
        if not new_pid:  # the rule said wait, or the spawn failed: the general way decides and says why
            self._exited(rt, info)
            return
        self._last_respawn = spawned
        self._untrack(rt)
        rt.set_exited(info)
        new = Runtime(rt.process_id, rt.leaf, new_pid, new_pidfd, True, spawned, rt.launch, rt.policy_inputs, "main")
        new.max_memory = rt.launch.max_memory
        self._track(new, token if still_armed and self.respawner is not None else -1)
        self._respawned(rt, new, info, ended - rt.started, ended, spawned, _detected(rt))

    def adopt(self, p: Process, boot_matches: bool) -> bool:
        """Take over a live process left by a previous pmond, if it is really the same process."""
        if not p.pid or not p.pid_start_time or not boot_matches:
            return False
        try:
            pidfd = _native.pidfd_open(p.pid)
            same = _native.proc_start_time(p.pid) == p.pid_start_time
        except OSError:
            return False
        if not same:
            os.close(pidfd)
            return False
        # Still our child after `daemon restart` (pmond exec'd itself): then its exit status is ours to read.
        is_child = _parent_of(p.pid) == os.getpid()
        started = time.monotonic() - _age(p.pid_start_time)  # its uptime counts from its own start
        leaf = self.trees.leaf_of(p.id, p.pid)
        self.trees.adopted((p.id, leaf), p.pid, pidfd)
        rt = Runtime(p.id, leaf, p.pid, pidfd, is_child, started)
        rt.max_memory = int(p.options.get("max_memory") or 0)
        self._track(rt)
        self.history.started(rt.copy)
        if p.options.get("listen") and not self.sockets.fds(self.socket_key(p)):
            if not self.sockets.recover(self.socket_key(p), list(p.options["listen"]), pidfd, p.pid):
                log.warning("%s: its held sockets are bound again at its next start", p.name)
        if p.options.get("ready") == "notify":
            self._notifier(rt.copy)  # it still sends to the same NOTIFY_SOCKET name
        if p.status != Status.RUNNING:
            self._set_status(p, Status.RUNNING)
            self.store.update_runtime(p)
        log.info("adopted %s (id %d, pid %d)", p.name, p.id, p.pid)
        return True

    # -- readiness ----------------------------------------------------------------------------------------
    def _notifier(self, copy: Copy) -> Notifier:
        notifier = self.notifiers.get(copy)
        if notifier is None:
            # Abstract names are anyone's to bind: a random part, or a user binds the next ones first and the
            # process cannot start (the name is visible in /proc/net/unix once bound, but then it is ours).
            name = (
                f"pmon3{'_' + self.cfg.name_suffix if self.cfg.name_suffix else ''}/notify/"
                f"p{copy[0]}{copy[1]}.{os.urandom(8).hex()}"
            )
            notifier = self.notifiers[copy] = Notifier(
                self.loop, name, lambda pid: self._in_copy(copy, pid), lambda msg, pid: self._notified(copy, msg, pid)
            )
        return notifier

    def _close_notifier(self, copy: Copy) -> None:
        notifier = self.notifiers.pop(copy, None)
        if notifier is not None:
            notifier.close()

    def _copy_runtime(self, copy: Copy) -> Optional[Runtime]:
        for rt in self.by_pid.values():
            if rt.copy == copy:
                return rt
        return None

    def _in_copy(self, copy: Copy, pid: int) -> bool:
        rt = self._copy_runtime(copy)
        return rt is not None and (pid == rt.pid or pid in self.trees.members(copy, rt.pid))

    def _notified(self, copy: Copy, msg: dict[str, str], pid: int) -> None:
        rt = self._copy_runtime(copy)
        if rt is None:
            return
        if msg.get("READY") == "1" and rt.notified is not None:
            rt.notified.set()
        if "STATUS" in msg:
            rt.status_text = msg["STATUS"][:512]
        if msg.get("MAINPID", "").isascii() and msg["MAINPID"].isdigit():  # "²".isdigit(), int() refuses it
            main = int(msg["MAINPID"])
            if main == rt.pid or main in self.trees.members(copy, rt.pid):
                rt.main_pid = main
                self._disarm(rt)  # its end is followed (_follow_main_pid), not respawned
        if msg.get("WATCHDOG") == "1" and rt.watchdog is not None:
            self._arm_watchdog(rt)

    def _watch_ready(self, rt: Runtime, p: Process) -> None:
        """A copy with a readiness check shows `starting` until it passes; one that does not pass in time is
        stopped and handled as a crash."""
        ready = p.options.get("ready", "none")
        if ready == "none":
            rt.ready = None  # ready at once
            return
        rt.ready = self.loop.create_future()
        spec_ = readiness.parse(str(ready))
        if spec_.kind == "none":
            rt.ready.set_result(None)
            return

        async def watch() -> None:
            try:
                await self._await_ready(rt, p, spec_)
            except readiness.NotReady as exc:
                self._disarm(rt)
                if rt.role == "main" and self.by_pid.get(rt.pid) is rt:
                    log.error("%s (pid %d) is not ready: %s; stopping it", p.name, rt.pid, exc)
                    rt.kill_reason, rt.kill_note = "not_ready", str(exc)
                    self.trees.signal(rt.copy, rt.pid, signal.SIGKILL)
                    self._signal(rt, signal.SIGKILL)
                return
            if rt.role != "main" or self.runtimes.get(rt.process_id) is not rt:
                return
            current = self.store.get(rt.process_id)
            if current is not None and current.status == Status.STARTING and current.pid == rt.pid:
                self._set_status(current, Status.RUNNING)
                self.store.update_runtime(current)
                log.info("%s (pid %d) is ready", current.name, rt.pid)
            self._start_watchdog(rt, p)

        self._background(watch())

    async def _await_ready(self, rt: Runtime, p: Process, spec_: readiness.ReadySpec) -> None:
        if rt.ready is None or rt.ready.done():
            rt.ready = self.loop.create_future()
        rt.notified = asyncio.Event()
        offset = 0
        if spec_.kind == "log" and p.log:
            try:  # lines from before this copy do not count; the run user's view of the file, as it is read
                offset = fsas.stat_as(p.uid, p.log).st_size
            except (OSError, Pmon3Error):
                offset = 0
        held = [s for s, _sock in self.sockets.held.get(self.socket_key(p), []) if s.kind in ("tcp", "tcp6")]
        try:
            await readiness.wait_ready(
                spec_,
                timeout=float(p.options.get("ready_timeout", readiness.DEFAULT_TIMEOUT * 1000)) / 1000,
                alive=lambda: self.by_pid.get(rt.pid) is rt,
                notified=rt.notified,
                log_path=p.log,
                log_offset=offset,
                log_uid=p.uid,
                default_port=held[0].port if held else 0,
            )
        except readiness.NotReady as exc:
            if not rt.ready.done():
                rt.ready.set_exception(exc)
                rt.ready.exception()  # retrieved: nobody may be waiting
            raise
        if not rt.ready.done():
            rt.ready.set_result(None)

    def _start_watchdog(self, rt: Runtime, p: Process) -> None:
        if p.options.get("ready") == "notify" and p.options.get("watchdog"):
            rt.watchdog = self.loop.call_later(float(p.options["watchdog"]) / 1000, self._watchdog_expired, rt)

    def _arm_watchdog(self, rt: Runtime) -> None:
        if rt.watchdog is not None:
            delay = rt.watchdog.when() - self.loop.time()  # keep the period: re-read it from the row
            p = self.store.get(rt.process_id)
            period = float(p.options.get("watchdog", 0)) / 1000 if p is not None else max(delay, 1.0)
            rt.watchdog.cancel()
            rt.watchdog = self.loop.call_later(period, self._watchdog_expired, rt)

    @staticmethod
    def _stop_watchdog(rt: Runtime) -> None:
        if rt.watchdog is not None:
            rt.watchdog.cancel()
            rt.watchdog = None

    def _watchdog_expired(self, rt: Runtime) -> None:
        rt.watchdog = None
        self._disarm(rt)
        if self.by_pid.get(rt.pid) is not rt or rt.role != "main":
            return
        log.error("pid %d sent no WATCHDOG=1 in time: killing it (it is restarted as after a crash)", rt.pid)
        rt.kill_reason, rt.kill_note = "watchdog", "no WATCHDOG=1 in time"
        self.trees.signal(rt.copy, rt.pid, signal.SIGKILL)
        self._signal(rt, signal.SIGKILL)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- deaths ---------------------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Reap every exited child (ours, and orphans re-parented to us) and handle the ones we supervise."""
        try:
            records = _native.reap()
        except OSError as exc:
            log.error("reap failed: %s", exc)
            return
        for pid, code, sig, utime, stime, rss, core in records:
            rt = self.by_pid.get(pid)
            if rt is not None:
                self._exited(rt, ExitInfo(pid, code, sig, utime, stime, rss, core))
            elif pid in self.watchers:  # a hook
                self.watchers.pop(pid)(ExitInfo(pid, code, sig, utime, stime, rss, core))

    def sweep_soon(self) -> None:
        """SIGCHLD: a sweep within SWEEP_DELAY, longer with many children (orphans; supervised copies and
        hooks come by their pidfds)."""
        if self._sweep_handle is None:
            self._sweep_handle = self.loop.call_later(sweep_delay(len(self.by_pid)), self._sweep_now)

    def _sweep_now(self) -> None:
        self._sweep_handle = None
        self.sweep()

    def _pidfd_ready(self, rt: Runtime) -> None:
        """A copy's pidfd is readable: it has exited. Our child is collected through its pidfd (O(1), where a
        sweep walks every child); of another parent's we only know that it is gone."""
        if _trace_fd >= 0:
            _trace(b"seen", rt.pid)
        if self.by_pid.get(rt.pid) is not rt or rt.armed >= 0:
            return
        if not rt.is_child:
            self._exited(rt, ExitInfo(rt.pid, None, None))
            return
        try:
            record = _native.reap_pidfd(rt.pidfd, rt.pid)
        except OSError as exc:
            if exc.errno != errno.ECHILD:
                log.error("collecting pid %d failed: %s", rt.pid, exc)
            record = None
        if record is None:  # not collectable through its pidfd (never seen): the general way
            self.sweep()
            if self.by_pid.get(rt.pid) is rt:
                self._exited(rt, ExitInfo(rt.pid, None, None))
            return
        info = ExitInfo(*record)
        if not self._respawn_fast(rt, info):
            self._exited(rt, info)

    def _respawn_fast(self, rt: Runtime, info: ExitInfo) -> bool:
        """The hot path, taken before anything else is looked up, closed or written: a copy that ran long
        enough is respawned from its Launch (policy.restarts_at_once: the rule of policy.after_exit) by one
        native call that checks that its cgroup is empty and spawns the new copy into it. Then the old copy is
        let go and the row updated (its SQL write, log line and hook at settle()). Anything else (a tree with
        leftovers, a delay, flap detection, a stop under way, a failed spawn) goes the general way."""
        launch, inputs, trees = rt.launch, rt.policy_inputs, self.trees
        if (
            launch is None
            or inputs is None
            or rt.role != "main"
            or rt.main_pid
            or trees.base is None
            or self.shutting_down
            or rt.process_id in self.stopping
            or self.cfg.flap.enabled
            or rt.copy in trees.killed
            or rt.copy not in trees.used  # a previous pmond's cgroup: renewed by the general way first
        ):
            return False
        now = time.monotonic()
        uptime = now - rt.started
        if not policy.restarts_at_once(policy.effective(self.cfg, *inputs), uptime, info.code, info.signal):
            return False
        # One restart: the child goes first (its exec is not interrupted by us). A storm (the last respawn
        # ended a moment ago): the next respawn does.
        child_first = now - self._last_respawn > BURST_GAP
        if _trace_fd >= 0:
            _trace(b"spawn", 0)
        try:
            pid, pidfd = launch.spawn(
                child_first=child_first,
                cgroup_dir=trees.path(rt.copy),
                cgroup_dir_procs=not trees.born_in_cgroup,
                only_if_empty=True,
            )
        except OSError:  # EBUSY: leftovers to end first; or a spawn that fails: the general way says why
            return False
        if _trace_fd >= 0:
            _trace(b"spawned", pid)
        self._last_respawn = time.monotonic()
        self._untrack(rt)
        rt.set_exited(info)
        process_id = rt.process_id
        new = Runtime(process_id, rt.leaf, pid, pidfd, True, self._last_respawn, launch, inputs, "main")
        new.max_memory = launch.max_memory
        self._track(new)
        self._respawned(rt, new, info, uptime, now, new.started, _detected(rt))
        return True

    def _untrack(self, rt: Runtime) -> None:
        if self.by_pid.get(rt.pid) is not rt:
            return
        if rt.armed >= 0 and self.respawner is not None:  # collected by a sweep: the thread lets go of it
            token, rt.armed = rt.armed, -1
            self.respawner.disarm(token)
        del self.by_pid[rt.pid]
        if self.runtimes.get(rt.process_id) is rt:
            del self.runtimes[rt.process_id]
        self.loop.remove_reader(rt.pidfd)
        os.close(rt.pidfd)
        self._stop_watchdog(rt)

    def _follow_main_pid(self, rt: Runtime) -> bool:
        """The process named another main process (MAINPID=, e.g. after re-exec) and its first one exited:
        supervision follows the named one instead of restarting."""
        if not rt.main_pid or rt.main_pid == rt.pid or rt.role != "main":
            return False
        try:
            pidfd = _native.pidfd_open(rt.main_pid)
        except OSError:
            return False
        successor = rt.following(rt.main_pid, pidfd, _parent_of(rt.main_pid) == os.getpid())
        self._track(successor)
        p = self.store.get(rt.process_id)
        if p is not None:
            p.pid = successor.pid
            try:
                p.pid_start_time = _native.proc_start_time(successor.pid)
            except OSError:
                p.pid_start_time = 0
            self.store.update_runtime(p)
        log.info("pid %d exited; following its named main pid %d", rt.pid, successor.pid)
        return True

    def _exited(self, rt: Runtime, info: ExitInfo) -> None:
        if self.by_pid.get(rt.pid) is not rt:
            return
        self._untrack(rt)
        ended = time.monotonic()
        uptime = ended - rt.started
        rt.set_exited(info)
        process_id = rt.process_id
        if rt.role != "main":
            if rt.role == "retiring":  # a reload's old copy: the reload handles it
                self._note_exit(process_id, rt, info, ended, "reload", "replaced")
            return
        why = self.stopping.get(process_id)
        if why is not None or self.shutting_down:
            if why is not None and why[1] != "deleted":  # whoever is stopping it sets the status
                self._note_exit(process_id, rt, info, ended, *why)
            return
        if self._follow_main_pid(rt):
            return
        if self.trees.populated(rt.copy, rt.pid):
            # The leader died but its tree lives on: end it before anything restarts (no two generations).
            self._background(self._end_tree_then_decide(rt, uptime, info, ended))
            return
        self._decide(rt, uptime, info, ended, _detected(rt))

    def _decide(self, rt: Runtime, uptime: float, info: ExitInfo, ended: float, detected: str) -> None:
        if self._respawn_at_once(rt, uptime, info, ended, detected):
            return
        p = self.store.get(rt.process_id)
        if p is None:
            return
        p.last_exit_code, p.last_exit_signal = info.code, info.signal
        self._after_exit(p, rt, uptime, info, ended, detected)  # first the restart, then the bookkeeping
        log.info("%s (id %d, pid %d) exited: %s after %.3f s", p.name, p.id, info.pid, info.describe(), uptime)

    async def _end_tree_then_decide(self, rt: Runtime, uptime: float, info: ExitInfo, ended: float) -> None:
        process_id = rt.process_id
        async with self.lock(process_id):  # a user's stop or delete waits for this, then finds it dead
            p = self.store.get(process_id)
            settings = self.settings(p) if p is not None else policy.effective(self.cfg, True, {})
            log.info("pid %d exited and left processes in its tree: stopping them", rt.pid)
            await self._end_tree(rt.copy, rt.pid, signal_number(settings.stop_signal), settings.stop_timeout)
            if self.shutting_down or process_id in self.runtimes:
                return
            p = self.store.get(process_id)
            if p is None or p.status == Status.STOPPED:
                return
            self._decide(rt, uptime, info, ended, "tree")

    async def _end_tree(self, copy: Copy, leader: int, sig: int, timeout: float, signalled: bool = False) -> None:
        """`sig` to what is left of the tree (unless it was `signalled` already); SIGKILL for what is still
        there after `timeout`."""
        if sig != signal.SIGKILL:
            if not signalled:
                self.trees.signal(copy, leader, sig)
            if await self.trees.wait_gone(copy, leader, timeout):
                return
            log.warning("processes of pid %d's tree ignored the stop signal for %.1f s: SIGKILL", leader, timeout)
        self.trees.signal(copy, leader, signal.SIGKILL)
        if not await self.trees.wait_gone(copy, leader, KILL_WAIT):
            log.error("processes of pid %d's tree survived SIGKILL for %.0f s", leader, KILL_WAIT)

    def _respawn_at_once(self, rt: Runtime, uptime: float, info: ExitInfo, ended: float, detected: str) -> bool:
        """The hot path: a long-enough run that died is respawned from its Launch before anything else is
        looked up or written. Anything less simple (flap detection, a delay, no restart, a failed spawn)
        goes the general way."""
        if rt.launch is None or rt.policy_inputs is None or self.cfg.flap.enabled or rt.copy in self.trees.killed:
            return False  # (a cgroup ended by cgroup.kill needs renewing first: the general way does it)
        settings = policy.effective(self.cfg, *rt.policy_inputs)
        decision = policy.after_exit(
            settings=settings, uptime=uptime, quick_deaths=0, code=info.code, signal=info.signal
        )
        if not decision.restart or decision.delay:
            return False
        process_id = rt.process_id
        try:
            new = self._launch(process_id, rt.leaf, rt.launch, rt.policy_inputs, "main")
        except SpawnError:
            return False
        self._respawned(rt, new, info, uptime, ended, new.started, detected)
        return True

    def _respawned(
        self, rt: Runtime, new: Runtime, info: ExitInfo, uptime: float, ended: float, spawned: float, detected: str
    ) -> None:
        """The row of a copy respawned at once: the new copy in the cache now; its SQL write, log line and
        restart hook at settle(); the exit in the history."""
        self.quick_deaths.pop(rt.process_id, None)
        p = self.store.get(rt.process_id)
        if p is None:
            return
        old_status, old_pid = p.status, p.pid
        p.last_exit_code, p.last_exit_signal = info.code, info.signal
        p.restart_count += 1
        self._record_start(p, new, (old_status, old_pid, info, uptime))
        self._note_exit(p, rt, info, ended, _reason(rt, info), "restarted", (spawned - ended) * 1000, detected)
        self._watch_ready(new, p)

    def _note_exit(
        self,
        p: Process | int,
        rt: Runtime,
        info: ExitInfo,
        ended: float,
        reason: str,
        action: str,
        delay_ms: Optional[float] = None,
        detected: str = "",
        note: str = "",
    ) -> Optional[ExitRecord]:
        """Queue the exit for the history (written after whatever is being done now)."""
        row = p if isinstance(p, Process) else self.store.get(p)
        if row is None:
            return None
        return self.history.record(
            process_id=row.id,
            owner=row.owner,
            name=row.name,
            copy=rt.copy,
            started=rt.started,
            ended=ended,
            info=info,
            detected=detected or _detected(rt),
            reason=reason,
            action=action,
            delay_ms=delay_ms,
            note=note or rt.kill_note,
        )

    def _fire(self, event: str, p: Process, status: int, pid: int) -> None:
        """A hook, with the process's last exit, once the exit being recorded is complete."""

        def fire() -> None:
            last = self.history.last.get(p.id)
            self.hooks.fire(event, p, status, pid, last.to_json(self.authz.owner_name(p.owner)) if last else None)

        self.history.when_final(fire)

    def _restart_hook(self, p: Process, old_status: Status, old_pid: int) -> None:
        if self.restart_hooks_due():
            self._fire("restart", p, int(old_status), old_pid)
        else:
            log.info("restart of %s during the initialization period: no hook", p.name)

    def _after_exit(self, p: Process, rt: Runtime, uptime: float, info: ExitInfo, ended: float, detected: str) -> None:
        settings = self.settings(p)
        decision = policy.after_exit(
            settings=settings,
            uptime=uptime,
            quick_deaths=self.quick_deaths.get(p.id, 0),
            code=info.code,
            signal=info.signal,
        )
        self.quick_deaths[p.id] = decision.quick_deaths
        old_status, old_pid = p.status, p.pid
        reason = _reason(rt, info)
        if not decision.restart:
            self._set_status(p, Status.STOPPED if decision.outcome == "stopped" else Status.FAILED)
            self.store.update_runtime(p)
            self._note_exit(p, rt, info, ended, reason, p.status.label, None, detected)
            if p.status == Status.FAILED:
                self._fire("failure", p, int(old_status), old_pid)
            return
        flap = policy.FlapSettings.from_config(self.cfg)
        p.flap, retry_at = policy.flap_check(p.flap, time.time(), flap)
        if retry_at is not None:
            wait_ms = max(0.0, retry_at - time.time()) * 1000
            self._note_exit(p, rt, info, ended, reason, "backoff", wait_ms, detected)
            self._back_off(p, retry_at)
            return
        if decision.delay == 0:
            rec = self._note_exit(p, rt, info, ended, reason, "restarted", None, detected)
            error = self._restart_now(p, old_status, old_pid)
            if rec is not None:  # still queued: completed in a loop callback
                rec.delay_ms = (time.monotonic() - ended) * 1000 if error is None else None
                if error is not None:
                    rec.action, rec.note = "failed", f"restart failed: {error}"
            return
        self._set_status(p, Status.RESTARTING)
        self.store.update_runtime(p)
        self._note_exit(p, rt, info, ended, reason, "scheduled", decision.delay * 1000, detected)
        log.info("%s will restart in %.3f s (quick death #%d)", p.name, decision.delay, decision.quick_deaths)
        self._schedule(p.id, decision.delay)

    def _back_off(self, p: Process, retry_at: float) -> None:
        self._set_status(p, Status.BACKOFF)
        self.store.update_runtime(p)
        log.warning("%s is flapping: backoff until %s", p.name, time.strftime("%H:%M:%S", time.localtime(retry_at)))
        self._fire("backoff", p, int(Status.BACKOFF), p.pid)
        self._schedule(p.id, max(0.0, retry_at - time.time()))

    def _schedule(self, process_id: int, delay: float) -> None:
        self.cancel_timer(process_id)
        self.timers[process_id] = self.loop.call_later(delay, self._timer_fired, process_id)

    def cancel_timer(self, process_id: int) -> None:
        handle = self.timers.pop(process_id, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, process_id: int) -> None:
        self.timers.pop(process_id, None)
        lock = self.locks.get(process_id)
        if self.shutting_down or (lock is not None and lock.locked()):
            return  # a user operation owns the process now
        p = self.store.get(process_id)
        if p is None or process_id in self.runtimes:
            return
        if p.status == Status.BACKOFF:
            p.flap = policy.flap_retry(p.flap, time.time(), policy.FlapSettings.from_config(self.cfg))
            self._restart_now(p, Status.BACKOFF, p.pid)
        elif p.status in (Status.RESTARTING, Status.FAILED):
            self._restart_now(p, p.status, p.pid)

    def _restart_now(self, p: Process, old_status: Status, old_pid: int) -> Optional[str]:
        """An automatic restart: counted, and a failure to spawn is retried with the quick-death delay.
        Returns None, or why the spawn failed."""
        p.restart_count += 1
        p.flap = policy.flap_note_restart(p.flap, time.time(), policy.FlapSettings.from_config(self.cfg))
        try:
            self.spawn(p)
        except SpawnError as exc:
            streak = self.quick_deaths.get(p.id, 0) + 1
            self.quick_deaths[p.id] = streak
            delay = policy.quick_delay(self.settings(p), streak)
            log.error("restart of %s failed: %s; retrying in %.3f s", p.name, exc, delay)
            self._set_status(p, Status.FAILED)
            self.store.update_runtime(p)
            self._schedule(p.id, delay)
            return str(exc)
        self._restart_hook(p, old_status, old_pid)
        return None

    # -- stopping -------------------------------------------------------------------------------------------
    def _signal(self, rt: Runtime, sig: int) -> None:
        """Signal the process group without ever hitting a reused pid: an unreaped child's pid (and so its
        group id) cannot be reused; for an adopted process the pidfd says whether it is still there."""
        try:
            if rt.is_child or not _pidfd_exited(rt.pidfd):
                _native.killpg(rt.pid, sig)
        except OSError as exc:
            if exc.errno != errno.ESRCH:
                raise
            try:  # not a group leader (e.g. adopted from elsewhere): signal the process alone
                _native.pidfd_send_signal(rt.pidfd, sig)
            except OSError as exc2:
                if exc2.errno not in (errno.ESRCH, errno.EBADF):
                    raise

    async def terminate(
        self, process_id: int, force: bool, why: tuple[str, str] = ("stop", "stopped")
    ) -> Optional[ExitInfo]:
        """End the process and its whole tree: the stop signal to all of it, then SIGKILL after its
        stop_timeout. Returns the leader's exit once nothing of the tree is left. `why` is the (reason, action)
        the history records for the exit."""
        self.cancel_timer(process_id)
        rt = self.runtimes.get(process_id)
        p = self.store.get(process_id)
        settings = self.settings(p) if p is not None else policy.effective(self.cfg, True, {})
        sig = signal.SIGKILL if force else signal_number(settings.stop_signal)
        if rt is None:  # no leader, but maybe what it left behind (an orphan of a dead leader)
            leader = p.pid if p is not None else 0
            copy = (process_id, self.leaves.get(process_id, LEAVES[0]))
            if self.trees.populated(copy, leader):
                await self._end_tree(copy, leader, sig, settings.stop_timeout)
            return None
        self.stopping[process_id] = why
        try:
            return await self._terminate_copy(rt, force)
        finally:
            self.stopping.pop(process_id, None)

    async def _terminate_copy(self, rt: Runtime, force: bool) -> ExitInfo:
        """The stop signal to one copy's whole tree, SIGKILL after stop_timeout; returns once it is gone."""
        p = self.store.get(rt.process_id)
        settings = self.settings(p) if p is not None else policy.effective(self.cfg, True, {})
        timeout = settings.stop_timeout
        sig = signal.SIGKILL if force else signal_number(settings.stop_signal)
        deadline = time.monotonic() + timeout
        self._disarm(rt)  # (held already by the row lock, except at shutdown, which disarmed all)
        self._stop_watchdog(rt)
        log.info("stopping pid %d: %s, SIGKILL after %.1f s", rt.pid, signal.Signals(sig).name, timeout)
        # Every process of the tree gets the stop signal once: to some programs a second SIGTERM (or SIGINT)
        # means "quit now, skip the cleanup".
        sent = self.trees.signal(rt.copy, rt.pid, sig)  # first: it finds members through the leader
        if rt.pid not in sent:
            self._signal(rt, sig)
        exited = rt.exit_waiter(self.loop)
        try:
            info = await asyncio.wait_for(asyncio.shield(exited), timeout)
        except asyncio.TimeoutError:
            log.warning("pid %d ignored the stop signal for %.1f s: SIGKILL", rt.pid, timeout)
            self._signal(rt, signal.SIGKILL)
            self.trees.signal(rt.copy, rt.pid, signal.SIGKILL)
            info = await asyncio.shield(exited)
        if self.trees.populated(rt.copy, rt.pid):
            await self._end_tree(rt.copy, rt.pid, sig, max(0.0, deadline - time.monotonic()), signalled=True)
        return info

    async def _stop(self, p: Process, force: bool, final: Status = Status.STOPPED) -> Process:
        why = ("stop", "stopped") if final == Status.STOPPED else ("shutdown", final.label)
        info = await self.terminate(p.id, force, why)
        p = self.store.get(p.id) or p
        if info is not None:
            p.last_exit_code, p.last_exit_signal = info.code, info.signal
        if p.status != final:  # stopping what is stopped already: nothing to change
            self._set_status(p, final)
        if final == Status.STOPPED:
            p.restart_count = 0  # as pmon3: a stop resets the restart counter
            p.flap = {}
        self.quick_deaths.pop(p.id, None)
        self.store.update_runtime(p)
        return p

    def _clear_runtime_state(self, process_id: int) -> None:
        self.cancel_timer(process_id)
        self.quick_deaths.pop(process_id, None)

    def _forget(self, process_id: int) -> None:
        """The row is deleted: what pmond kept about it goes too (its exits went with the row)."""
        self._clear_runtime_state(process_id)
        self.history.forget(process_id)
        self.locks.pop(process_id, None)
        self.leaves.pop(process_id, None)


def _detected(rt: Runtime) -> str:
    """How an end was seen: wait4 of our own child, or only the pidfd of a process we did not start."""
    return "child" if rt.is_child else "adopted"


def _reason(rt: Runtime, info: ExitInfo) -> str:
    if rt.kill_reason:
        return rt.kill_reason
    if info.code is not None:
        return "exit"
    return "signal" if info.signal is not None else "unknown"


def _other(leaf: str) -> str:
    return LEAVES[1] if leaf == LEAVES[0] else LEAVES[0]


def _age(start_ticks: int) -> float:
    """Seconds since a process started, from its start time in clock ticks since boot."""
    try:
        with open("/proc/uptime") as fh:
            up = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    return max(0.0, up - start_ticks / os.sysconf("SC_CLK_TCK"))


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _own_directory(path: str) -> None:
    """A per-owner log directory: pmond's, so that nobody can plant a file or a link in it."""
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise OSError(errno.EPERM, f"{path} is not a directory that only pmond can write")


def _pidfd_exited(pidfd: int) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))
