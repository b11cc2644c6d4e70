"""The process state machine: spawning, death handling, restarts, stops, removal, adoption.

This is the only writer of process rows and the only place a status changes (`_set_status`, checked against
states.TRANSITIONS). Handlers call one of the public operations (upsert, restart, stop, remove, reset, revive)
and never take a row's lock themselves. Deaths arrive from the kernel (a pidfd becoming readable, or SIGCHLD
for orphans re-parented to us as subreaper) and are handled in the same loop iteration: a process that had
been up `min_uptime` is respawned before anything else is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import select
import signal
import stat
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional

from .. import _native
from ..config import BASE_PATH, Config, signal_number
from ..errors import ConflictError, InvalidRequestError, NotFoundError, PermissionDeniedError, SpawnError
from ..logfiles import rotated_files
from ..models import ExitInfo, Process
from ..states import Status, check_transition
from ..store import Store
from . import policy, spec
from .accounts import RunAs, resolve_user
from .authz import Authz
from .hooks import HookRunner
from .trees import Trees

log = logging.getLogger("pmond.supervisor")

# After SIGKILL a tree is gone in milliseconds; this bounds waiting for one in uninterruptible sleep.
KILL_WAIT = 5.0
# Rows `exec` may take over by name: not alive and not about to be restarted by us.
REUSABLE = (Status.STOPPED, Status.FAILED, Status.CLOSED, Status.QUEUED, Status.BACKOFF)


@dataclasses.dataclass
class Launch:
    """Everything _native.spawn needs, kept so that a crashed process is respawned without any lookup."""

    file: str
    argv: list[str]
    env: list[str]
    options: dict[str, Any]


@dataclasses.dataclass
class Runtime:
    """What the daemon knows about a live process beyond its row."""

    pid: int
    pidfd: int
    is_child: bool
    started: float  # monotonic
    exited: asyncio.Future[ExitInfo]
    launch: Optional[Launch] = None  # None for a process adopted from a previous pmond
    # (auto_restart, per-process policy): the restart decision is made against config.yml as it is then
    policy_inputs: Optional[tuple[bool, dict[str, Any]]] = None


class Supervisor:
    def __init__(self, store: Store, cfg: Config, loop: asyncio.AbstractEventLoop, authz: Authz, trees: Trees) -> None:
        self.store = store
        self.cfg = cfg
        self.loop = loop
        self.authz = authz
        self.trees = trees
        self.clearing: set[asyncio.Task[None]] = set()
        self.runtimes: dict[int, Runtime] = {}
        self.by_pid: dict[int, int] = {}
        self.quick_deaths: dict[int, int] = {}
        self.timers: dict[int, asyncio.TimerHandle] = {}
        self.locks: dict[int, asyncio.Lock] = {}
        self.stopping: set[int] = set()
        self.shutting_down = False
        self.started = time.monotonic()
        self.watchers: dict[int, Callable[[ExitInfo], None]] = {}
        self.hooks = HookRunner(
            loop, lambda: self.cfg.hooks, lambda: self.cfg.hook_timeout_ms / 1000, self.watchers.__setitem__
        )

    # -- settings ---------------------------------------------------------------------------------------
    def settings(self, p: Process) -> policy.RestartSettings:
        return policy.effective(self.cfg, p.auto_restart, p.policy)

    def restart_hooks_due(self) -> bool:
        """pmon3's initialization_period: no restart hooks while the daemon is still booting."""
        return time.monotonic() - self.started >= self.cfg.initialization_period_s

    def lock(self, process_id: int) -> asyncio.Lock:
        return self.locks.setdefault(process_id, asyncio.Lock())

    def is_alive(self, process_id: int) -> bool:
        return process_id in self.runtimes

    def tree_of(self, process_id: int) -> str:
        return self.trees.describe(process_id)

    def live_pids(self, process_ids: Iterable[int]) -> list[int]:
        return [self.runtimes[i].pid for i in process_ids if i in self.runtimes]

    # -- the one writer of a status ------------------------------------------------------------------------
    @staticmethod
    def _set_status(p: Process, new: Status) -> None:
        check_transition(p.status, new)
        p.status = new

    # -- operations for the request handlers ----------------------------------------------------------------
    async def upsert(self, new: Process, *, exec_semantics: bool, groups_given: bool) -> Process:
        """Create `new` (a validated spec) or update its owner's stored row of that name, and start it unless it
        is alive. With exec semantics a live (or restarting) name is refused, as pmon3; a config entry updates
        the row and leaves a live process running."""
        existing = self.store.get_by_name(new.owner, new.name)
        if existing is None:
            p = self.store.insert(new)  # a new row starts `queued`
            async with self.lock(p.id):
                try:
                    self.start(p)
                except SpawnError as exc:  # a failed start leaves nothing new behind
                    self.store.delete(p.id)
                    self._forget(p.id)
                    raise SpawnError(f"command error: start process error: {exc}") from None
            return self.store.get(p.id) or p
        async with self.lock(existing.id):
            current = self.store.get(existing.id) or existing
            alive = self.is_alive(current.id)
            if exec_semantics and (alive or current.status not in REUSABLE):
                raise ConflictError(f"process already running with the name provided: {new.name}")
            p = spec.merge(current, new, groups_given)
            self.store.update(p)
            self.store.set_groups(p)
            if not alive:
                try:
                    self.start(p)
                except SpawnError as exc:
                    raise SpawnError(f"command error: start process error: {exc}") from None
        return self.store.get(p.id) or p

    async def restart(self, process_id: int, changes: dict[str, Any], verb: str) -> tuple[Process, bool]:
        """restart: stop gracefully, apply the validated `changes`, start, count. start: the same, except that a
        live process is left alone. Returns the row and whether it was started."""
        async with self.lock(process_id):
            p = self._get(process_id)
            if verb == "start" and self.is_alive(process_id):
                return p, False
            if self.is_alive(process_id):
                await self.terminate(process_id, force=False)
            p = self._get(process_id)
            for key, value in changes.items():
                setattr(p, key, value)
            if verb == "restart":
                p.restart_count += 1
            self._clear_runtime_state(process_id)
            self.store.update(p)
            try:
                self.start(p)
            except SpawnError as exc:
                raise SpawnError(f"command error: start process error: {exc}") from None
            return self._get(process_id), True

    async def update_spec(
        self, process_id: int, new: Process, *, restart: bool, groups_given: bool
    ) -> tuple[Process, bool]:
        """apply: replace a stored row's spec with `new` (validated; spec.merge). A live process is restarted
        (gracefully, counted) when `restart`, i.e. when what it was started with changed; otherwise it keeps
        running and the new restart policy applies from its next exit. A process that is not alive is updated
        and left as it is: a stopped one stays stopped, a pending restart starts the new spec. Returns the row
        and whether it was restarted."""
        async with self.lock(process_id):
            p = self._get(process_id)
            restart = restart and self.is_alive(process_id)
            if restart:
                await self.terminate(process_id, force=False)
                p = self._get(process_id)
                p.restart_count += 1
                self._clear_runtime_state(process_id)
            p = spec.merge(p, new, groups_given)
            self.store.update(p)
            self.store.set_groups(p)
            rt = self.runtimes.get(process_id)
            if rt is not None and rt.launch is not None:
                rt.policy_inputs = (p.auto_restart, dict(p.policy))
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
            await self.terminate(process_id, force=force)
            self.store.delete(process_id)
            self._forget(process_id)
            self.trees.release(process_id)
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

    async def shutdown_stop(self, layers: list[list[int]]) -> None:
        """pmond is stopping with handle_interrupts: every live process ends `closed`, dependents first. No row
        lock: a request still holding one must not keep pmond from stopping."""
        for layer in layers:
            procs = [p for p in (self.store.get(i) for i in layer) if p is not None]
            await asyncio.gather(*(self._stop(p, force=False, final=Status.CLOSED) for p in procs))

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
        for item in p.env_vars:
            key, _, value = item.partition("=")
            env[key] = value
        return [f"{k}={v}" for k, v in env.items()]

    def prepare_log(self, p: Process, user: RunAs) -> None:
        """pmond's own file for the row (its default path, in a directory no user can write) is created by
        pmond and handed to the run user. Any other path is opened by the child as the run user, so no
        privilege leaks through a path a user chose."""
        if not self.authz.is_managed_log(p):
            return
        directory = os.path.dirname(p.log)
        if directory != self.cfg.logs_directory:
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

    def spawn(self, p: Process) -> None:
        """Start `p` now; on success its row says running with the new pid, else SpawnError."""
        if p.id in self.runtimes:
            raise SpawnError(f"process ({p.name}) is already running")
        try:
            user = resolve_user(p.username)
        except InvalidRequestError as exc:
            raise SpawnError(str(exc)) from None
        if os.geteuid() != 0 and user.uid != os.geteuid():
            raise SpawnError(f"this pmond cannot run processes as {user.name}")
        if p.options.get("strict_modes", True):
            try:
                self.authz.trusted_executable(user, p.process_file)
            except PermissionDeniedError as exc:
                raise SpawnError(exc.message) from None
        root = os.geteuid() == 0
        launch = Launch(
            p.process_file,
            [p.process_file, *p.argv],  # argv[0] is the program as given (pmon3; multi-call binaries need it)
            self.environment(p, user),
            {
                "cwd": p.cwd or os.path.dirname(p.process_file) or "/",
                "uid": user.uid if root else None,
                "gid": user.gid if root else None,
                "groups": list(user.groups) if root else None,
                "log_path": p.log or None,
                **self.trees.spawn_options(p.id),  # born inside its tree: nothing it starts can leave it
            },
        )
        try:
            self.prepare_log(p, user)
        except OSError as exc:
            raise SpawnError(f"open log {p.log}: {exc.strerror}") from None
        self._launch(p.id, launch, (p.auto_restart, dict(p.policy)))
        p.uid, p.gid = user.uid, user.gid
        self._record_start(p)

    def start(self, p: Process) -> None:
        """spawn, recording `failed` when the process cannot start (the SpawnError still reaches the caller)."""
        try:
            self.spawn(p)
        except SpawnError:
            self._set_status(p, Status.FAILED)
            self.store.update_runtime(p)
            raise

    def _launch(self, process_id: int, launch: Launch, policy_inputs: tuple[bool, dict[str, Any]]) -> Runtime:
        try:
            pid, pidfd = _native.spawn(launch.file, launch.argv, launch.env, **launch.options)
        except OSError as exc:
            raise SpawnError(str(exc.args[1]) if len(exc.args) > 1 else str(exc)) from None
        rt = Runtime(pid, pidfd, True, time.monotonic(), self.loop.create_future(), launch, policy_inputs)
        self._track(process_id, rt)
        return rt

    def _record_start(self, p: Process) -> None:
        rt = self.runtimes[p.id]
        try:
            start_time = _native.proc_start_time(rt.pid)
        except OSError:
            start_time = 0  # died already: the pidfd still reports it
        self._set_status(p, Status.RUNNING)
        p.pid, p.pid_start_time = rt.pid, start_time
        p.started_at = time.time()
        self.store.update_runtime(p)
        log.info("started %s (id %d) as pid %d", p.name, p.id, rt.pid)

    def _track(self, process_id: int, rt: Runtime) -> None:
        self.runtimes[process_id] = rt
        self.by_pid[rt.pid] = process_id
        self.loop.add_reader(rt.pidfd, self._pidfd_ready, process_id)

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
        self._track(p.id, Runtime(p.pid, pidfd, is_child, started, self.loop.create_future()))
        if p.status != Status.RUNNING:
            self._set_status(p, Status.RUNNING)
            self.store.update_runtime(p)
        log.info("adopted %s (id %d, pid %d)", p.name, p.id, p.pid)
        return True

    # -- deaths ---------------------------------------------------------------------------------------------
    def sweep(self) -> None:
        """Reap every exited child (ours, and orphans re-parented to us) and handle the ones we supervise."""
        try:
            records = _native.reap()
        except OSError as exc:
            log.error("reap failed: %s", exc)
            return
        for pid, code, sig, utime, stime, rss in records:
            process_id = self.by_pid.get(pid)
            if process_id is not None:
                self._exited(process_id, ExitInfo(pid, code, sig, utime, stime, rss))
            elif pid in self.watchers:  # a hook
                self.watchers.pop(pid)(ExitInfo(pid, code, sig, utime, stime, rss))

    def _pidfd_ready(self, process_id: int) -> None:
        self.sweep()
        rt = self.runtimes.get(process_id)
        if rt is not None and not rt.is_child:
            # Not our child: its exit status belongs to its real parent; we only know it is gone.
            self._exited(process_id, ExitInfo(rt.pid, None, None))

    def _untrack(self, process_id: int) -> Optional[Runtime]:
        rt = self.runtimes.pop(process_id, None)
        if rt is None:
            return None
        self.loop.remove_reader(rt.pidfd)
        os.close(rt.pidfd)
        self.by_pid.pop(rt.pid, None)
        return rt

    def _exited(self, process_id: int, info: ExitInfo) -> None:
        rt = self._untrack(process_id)
        if rt is None:
            return
        uptime = time.monotonic() - rt.started
        if not rt.exited.done():
            rt.exited.set_result(info)
        if process_id in self.stopping or self.shutting_down:
            return  # whoever is stopping it records the outcome
        if self.trees.populated(process_id, rt.pid):
            # The leader died but its tree lives on: end it before anything restarts (no two generations).
            task = self.loop.create_task(self._end_tree_then_decide(process_id, rt, uptime, info))
            self.clearing.add(task)
            task.add_done_callback(self.clearing.discard)
            return
        self._decide(process_id, rt, uptime, info)

    def _decide(self, process_id: int, rt: Runtime, uptime: float, info: ExitInfo) -> None:
        if self._respawn_at_once(process_id, rt, uptime, info):
            return
        p = self.store.get(process_id)
        if p is None:
            return
        p.last_exit_code, p.last_exit_signal = info.code, info.signal
        self._after_exit(p, uptime, info)  # first the restart, then the bookkeeping
        log.info("%s (id %d, pid %d) exited: %s after %.3f s", p.name, p.id, info.pid, info.describe(), uptime)

    async def _end_tree_then_decide(self, process_id: int, rt: Runtime, uptime: float, info: ExitInfo) -> None:
        async with self.lock(process_id):  # a user's stop or delete waits for this, then finds it dead
            p = self.store.get(process_id)
            settings = self.settings(p) if p is not None else policy.effective(self.cfg, True, {})
            log.info("pid %d exited and left processes in its tree: stopping them", rt.pid)
            await self._end_tree(process_id, rt.pid, signal_number(settings.stop_signal), settings.stop_timeout)
            if self.shutting_down or process_id in self.runtimes:
                return
            p = self.store.get(process_id)
            if p is None or p.status == Status.STOPPED:
                return
            self._decide(process_id, rt, uptime, info)

    async def _end_tree(self, process_id: int, leader: int, sig: int, timeout: float) -> None:
        """`sig` to what is left of the tree; SIGKILL for what is still there after `timeout`."""
        if sig != signal.SIGKILL:
            self.trees.signal(process_id, leader, sig)
            if await self.trees.wait_gone(process_id, leader, timeout):
                return
            log.warning("processes of pid %d's tree ignored the stop signal for %.1f s: SIGKILL", leader, timeout)
        self.trees.signal(process_id, leader, signal.SIGKILL)
        if not await self.trees.wait_gone(process_id, leader, KILL_WAIT):
            log.error("processes of pid %d's tree survived SIGKILL for %.0f s", leader, KILL_WAIT)

    def _respawn_at_once(self, process_id: int, rt: Runtime, uptime: float, info: ExitInfo) -> bool:
        """The hot path: a long-enough run that died is respawned from its Launch before anything else is
        looked up or written. Anything less simple (flap detection, a delay, no restart, a failed spawn)
        goes the general way."""
        if rt.launch is None or rt.policy_inputs is None or self.cfg.flap.enabled:
            return False
        settings = policy.effective(self.cfg, *rt.policy_inputs)
        decision = policy.after_exit(
            settings=settings, uptime=uptime, quick_deaths=0, code=info.code, signal=info.signal
        )
        if not decision.restart or decision.delay:
            return False
        try:
            self._launch(process_id, rt.launch, rt.policy_inputs)
        except SpawnError:
            return False
        self.quick_deaths.pop(process_id, None)
        p = self.store.get(process_id)
        if p is None:
            return True
        old_status, old_pid = p.status, p.pid
        p.last_exit_code, p.last_exit_signal = info.code, info.signal
        p.restart_count += 1
        self._record_start(p)
        self._restart_hook(p, old_status, old_pid)
        log.info("%s (id %d, pid %d) exited: %s after %.3f s", p.name, p.id, info.pid, info.describe(), uptime)
        return True

    def _restart_hook(self, p: Process, old_status: Status, old_pid: int) -> None:
        if self.restart_hooks_due():
            self.hooks.fire("restart", p, int(old_status), old_pid)
        else:
            log.info("restart of %s during the initialization period: no hook", p.name)

    def _after_exit(self, p: Process, uptime: float, info: ExitInfo) -> None:
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
        if not decision.restart:
            self._set_status(p, Status.STOPPED if decision.outcome == "stopped" else Status.FAILED)
            self.store.update_runtime(p)
            if p.status == Status.FAILED:
                self.hooks.fire("failure", p, int(old_status), old_pid)
            return
        flap = policy.FlapSettings.from_config(self.cfg)
        p.flap, retry_at = policy.flap_check(p.flap, time.time(), flap)
        if retry_at is not None:
            self._back_off(p, retry_at)
            return
        if decision.delay == 0:
            self._restart_now(p, old_status, old_pid)
            return
        self._set_status(p, Status.RESTARTING)
        self.store.update_runtime(p)
        log.info("%s will restart in %.3f s (quick death #%d)", p.name, decision.delay, decision.quick_deaths)
        self._schedule(p.id, decision.delay)

    def _back_off(self, p: Process, retry_at: float) -> None:
        self._set_status(p, Status.BACKOFF)
        self.store.update_runtime(p)
        log.warning("%s is flapping: backoff until %s", p.name, time.strftime("%H:%M:%S", time.localtime(retry_at)))
        self.hooks.fire("backoff", p, int(Status.BACKOFF), p.pid)
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
        if self.shutting_down or self.lock(process_id).locked():
            return  # a user operation owns the process now
        p = self.store.get(process_id)
        if p is None or process_id in self.runtimes:
            return
        if p.status == Status.BACKOFF:
            p.flap = policy.flap_retry(p.flap, time.time(), policy.FlapSettings.from_config(self.cfg))
            self._restart_now(p, Status.BACKOFF, p.pid)
        elif p.status in (Status.RESTARTING, Status.FAILED):
            self._restart_now(p, p.status, p.pid)

    def _restart_now(self, p: Process, old_status: Status, old_pid: int) -> None:
        """An automatic restart: counted, and a failure to spawn is retried with the quick-death delay."""
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
            return
        self._restart_hook(p, old_status, old_pid)

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
                if exc2.errno != errno.ESRCH:
                    raise

    async def terminate(self, process_id: int, force: bool) -> Optional[ExitInfo]:
        """End the process and its whole tree: the stop signal to all of it, then SIGKILL after its
        stop_timeout. Returns the leader's exit once nothing of the tree is left."""
        self.cancel_timer(process_id)
        rt = self.runtimes.get(process_id)
        p = self.store.get(process_id)
        settings = self.settings(p) if p is not None else policy.effective(self.cfg, True, {})
        timeout = settings.stop_timeout
        sig = signal.SIGKILL if force else signal_number(settings.stop_signal)
        if rt is None:  # no leader, but maybe what it left behind (an orphan of a dead leader)
            leader = p.pid if p is not None else 0
            if self.trees.populated(process_id, leader):
                await self._end_tree(process_id, leader, sig, timeout)
            return None
        deadline = time.monotonic() + timeout
        self.stopping.add(process_id)
        log.info("stopping pid %d: %s, SIGKILL after %.1f s", rt.pid, signal.Signals(sig).name, timeout)
        try:
            self.trees.signal(process_id, rt.pid, sig)  # first: it finds members through the leader
            self._signal(rt, sig)
            try:
                info = await asyncio.wait_for(asyncio.shield(rt.exited), timeout)
            except asyncio.TimeoutError:
                log.warning("pid %d ignored the stop signal for %.1f s: SIGKILL", rt.pid, timeout)
                self._signal(rt, signal.SIGKILL)
                self.trees.signal(process_id, rt.pid, signal.SIGKILL)
                info = await asyncio.shield(rt.exited)
            if self.trees.populated(process_id, rt.pid):
                await self._end_tree(process_id, rt.pid, sig, max(0.0, deadline - time.monotonic()))
            return info
        finally:
            self.stopping.discard(process_id)

    async def _stop(self, p: Process, force: bool, final: Status = Status.STOPPED) -> Process:
        info = await self.terminate(p.id, force)
        p = self.store.get(p.id) or p
        if info is not None:
            p.last_exit_code, p.last_exit_signal = info.code, info.signal
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
        self._clear_runtime_state(process_id)
        self.locks.pop(process_id, None)


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
