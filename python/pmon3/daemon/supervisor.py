"""The process state machine: spawning, death handling, restarts, stops, adoption.

This is the only writer of process state. Deaths arrive from the kernel (a pidfd becoming readable, or
SIGCHLD for orphans re-parented to us as subreaper) and are handled in the same loop iteration: a process
that had been up `min_uptime` is respawned before anything else is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import pwd
import select
import signal
import time
from typing import Any, Callable, Optional

from .. import _native
from ..config import Config
from ..models import ExitInfo, Process
from ..states import Status, check_transition
from ..store import Store
from . import policy
from .hooks import HookRunner

log = logging.getLogger("pmond.supervisor")

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SpawnError(Exception):
    """A process could not be started; the message says why in one line."""


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


@dataclasses.dataclass(frozen=True)
class RunAs:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str


_users: dict[str, RunAs] = {}
_users_stamp: tuple[float, ...] = ()


def _account_files_stamp() -> tuple[float, ...]:
    stamp = []
    for path in ("/etc/passwd", "/etc/group"):
        try:
            stamp.append(os.stat(path).st_mtime)
        except OSError:
            stamp.append(0.0)
    return tuple(stamp)


def resolve_user(name: str) -> RunAs:
    """Resolved here in the parent (NSS is not async-signal-safe, so never after fork). Cached while
    /etc/passwd and /etc/group are unchanged: a restart should not pay for an NSS lookup."""
    global _users_stamp
    stamp = _account_files_stamp()
    if stamp != _users_stamp:
        _users.clear()
        _users_stamp = stamp
    cached = _users.get(name)
    if cached is not None:
        return cached
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        raise SpawnError(f"user: unknown user {name}") from None
    groups = tuple(os.getgrouplist(pw.pw_name, pw.pw_gid))
    user = _users[name] = RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir, pw.pw_shell)
    return user


def signal_number(value: str | int) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    name = str(value).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


class Supervisor:
    def __init__(self, store: Store, cfg: Config, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.cfg = cfg
        self.loop = loop
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

    def prepare_log(self, path: str, user: RunAs) -> None:
        """Files in the daemon's own log directory are created by the daemon and handed to the run user;
        anywhere else the child opens its log itself, as the run user, so no privilege leaks through a path."""
        if os.path.dirname(path) != self.cfg.logs_directory:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        try:
            st = os.fstat(fd)
            if (st.st_uid, st.st_gid) != (user.uid, user.gid) and os.geteuid() == 0:
                os.fchown(fd, user.uid, user.gid)
        finally:
            os.close(fd)

    def spawn(self, p: Process) -> None:
        """Start `p` now; on success its row says running with the new pid, else SpawnError."""
        if p.id in self.runtimes:
            raise SpawnError(f"process ({p.name}) is already running")
        user = resolve_user(p.username)
        if os.geteuid() != 0 and user.uid != os.geteuid():
            raise SpawnError(f"this pmond cannot run processes as {user.name}")
        root = os.geteuid() == 0
        launch = Launch(
            p.process_file,
            [p.name, *p.argv],
            self.environment(p, user),
            {
                "cwd": p.cwd or os.path.dirname(p.process_file) or "/",
                "uid": user.uid if root else None,
                "gid": user.gid if root else None,
                "groups": list(user.groups) if root else None,
                "log_path": p.log or None,
            },
        )
        try:
            self.prepare_log(p.log, user)
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
            p.status = Status.FAILED
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
        check_transition(p.status, Status.RUNNING)
        p.pid, p.pid_start_time, p.status = rt.pid, start_time, Status.RUNNING
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
        self._track(p.id, Runtime(p.pid, pidfd, False, time.monotonic(), self.loop.create_future()))
        if p.status != Status.RUNNING:
            p.status = Status.RUNNING
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
        if self._respawn_at_once(process_id, rt, uptime, info):
            return
        p = self.store.get(process_id)
        if p is None:
            return
        p.last_exit_code, p.last_exit_signal = info.code, info.signal
        self._after_exit(p, uptime, info)  # first the restart, then the bookkeeping
        log.info("%s (id %d, pid %d) exited: %s after %.3f s", p.name, p.id, info.pid, info.describe(), uptime)

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
            p.status = Status.STOPPED if decision.outcome == "stopped" else Status.FAILED
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
        p.status = Status.RESTARTING
        self.store.update_runtime(p)
        log.info("%s will restart in %.3f s (quick death #%d)", p.name, decision.delay, decision.quick_deaths)
        self._schedule(p.id, decision.delay)

    def _back_off(self, p: Process, retry_at: float) -> None:
        p.status = Status.BACKOFF
        self.store.update_runtime(p)
        log.warning("%s is flapping: backoff until %s", p.name, time.strftime("%H:%M:%S", time.localtime(retry_at)))
        self.hooks.fire("backoff", p, int(Status.BACKOFF), p.pid)
        self._schedule(p.id, max(0.0, retry_at - time.time()))

    def resume_backoff(self, p: Process) -> None:
        """At boot: a process that was backing off stays so until its retry time."""
        retry_at = float(p.flap.get("backoff_until", 0))
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
            p.status = Status.FAILED
            self.store.update_runtime(p)
            self._schedule(p.id, delay)
            return
        self._restart_hook(p, old_status, old_pid)

    def clear_flap(self, p: Process) -> None:
        """`reset`: forget restarts and backoff; a backed-off process is retried now."""
        self.quick_deaths.pop(p.id, None)
        p.flap = {}
        if p.status == Status.BACKOFF and p.id not in self.runtimes:
            self.cancel_timer(p.id)
            self._schedule(p.id, 0.0)
            p.status = Status.RESTARTING

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
        """Stop the live process: its stop signal to its group, then SIGKILL after its stop_timeout."""
        self.cancel_timer(process_id)
        rt = self.runtimes.get(process_id)
        if rt is None:
            return None
        p = self.store.get(process_id)
        settings = self.settings(p) if p is not None else policy.effective(self.cfg, True, {})
        timeout = settings.stop_timeout
        self.stopping.add(process_id)
        try:
            self._signal(rt, signal.SIGKILL if force else signal_number(settings.stop_signal))
            try:
                return await asyncio.wait_for(asyncio.shield(rt.exited), timeout)
            except asyncio.TimeoutError:
                log.warning("pid %d ignored the stop signal for %.1f s: SIGKILL", rt.pid, timeout)
                self._signal(rt, signal.SIGKILL)
                return await asyncio.shield(rt.exited)
        finally:
            self.stopping.discard(process_id)

    async def stop(self, p: Process, force: bool, final: Status = Status.STOPPED) -> Process:
        info = await self.terminate(p.id, force)
        p = self.store.get(p.id) or p
        if info is not None:
            p.last_exit_code, p.last_exit_signal = info.code, info.signal
        p.status = final
        if final == Status.STOPPED:
            p.restart_count = 0  # as pmon3: a stop resets the restart counter
            p.flap = {}
        self.quick_deaths.pop(p.id, None)
        self.store.update_runtime(p)
        return p

    def forget(self, process_id: int) -> None:
        self.cancel_timer(process_id)
        self.quick_deaths.pop(process_id, None)
        self.locks.pop(process_id, None)


def _pidfd_exited(pidfd: int) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))
