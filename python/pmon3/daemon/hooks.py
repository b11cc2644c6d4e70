"""Event hooks: process_restart, process_failure, process_backoff run as child processes, never a shell.

argv = the configured command line split with shell-like quoting (so it may carry arguments, as in pmon3)
followed by one argument, the process as JSON with pmon3's keys plus `restart_count`. The hook runs as
pmond's own user with a clean environment, its output goes to pmond's log line by line, and it is killed
after `event_handling.timeout`. Supervision never waits for a hook.

At most MAX_RUNNING hooks run at once; more wait in a queue (up to MAX_QUEUED, then the oldest are dropped,
said once a minute): a storm of 1000 restarts must not start 1000 shells that compete with the restarted
processes for the CPU (benches/scale.py, docs/scale.md).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import pwd
import shlex
import signal
import time
from typing import Any, Callable, Optional

from .. import _native
from ..config import BASE_PATH
from ..models import ExitInfo, Process

log = logging.getLogger("pmond.hooks")
MAX_RUNNING = 8
MAX_QUEUED = 10000


def payload(p: Process, status: int, pid: int, last_exit: Optional[dict[str, Any]] = None) -> str:
    """pmon3's event JSON (reference §9.2), in its key order, plus restart_count and `exit`: the process's
    last exit as `pmon3 history --json` shows it (null when none is known)."""
    data: dict[str, Any] = {
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "log": p.log,
        "name": p.name,
        "process_file": p.process_file,
        "args": p.args,
        "env_vars": " ".join(shlex.quote(e) for e in p.env_vars),
        "username": p.username,
        "memory_usage": "",
        "cpu_usage": "",
        "dependencies": " ".join(p.dependencies),
        "Groups": [{"name": g} for g in p.groups] or None,
        "status": status,
        "id": p.id,
        "pid": pid,
        "uid": p.uid,
        "gid": p.gid,
        "auto_restart": p.auto_restart,
        "restart_count": p.restart_count,
    }
    if last_exit is not None:
        data["exit"] = {k: v for k, v in last_exit.items() if k not in ("id", "process_id", "name", "owner")}
    else:
        data["exit"] = None
    return json.dumps(data)


class HookRunner:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        commands: Callable[[], dict[str, str]],
        timeout: Callable[[], float],
        watch: Callable[[int, Callable[[ExitInfo], None]], None],
        unwatch: Callable[[int], object] = lambda pid: None,
    ) -> None:
        self.loop = loop
        self.commands = commands
        self.timeout = timeout
        # A hook's exit comes through its pidfd (collected there, at once) or, if a sweep of pmond's
        # children collected it first, through the watcher registered here: whichever comes first.
        self.watch = watch
        self.unwatch = unwatch
        self.running: dict[int, int] = {}  # pid -> pidfd
        self.queued: collections.deque[tuple[str, str, str, str]] = collections.deque()
        self.dropped = 0
        self._dropped_said = 0.0

    def fire(self, event: str, p: Process, status: int, pid: int, last_exit: Optional[dict[str, Any]] = None) -> None:
        command = self.commands().get(event)
        if not command:
            return
        self.queued.append((event, command, payload(p, status, pid, last_exit), p.name))
        if len(self.queued) > MAX_QUEUED:
            self.queued.popleft()
            self.dropped += 1
            if time.monotonic() - self._dropped_said > 60:
                self._dropped_said = time.monotonic()
                log.warning("%d hooks waiting: the oldest are dropped (%d so far)", MAX_QUEUED, self.dropped)
        self._start_queued()

    def _start_queued(self) -> None:
        while self.queued and len(self.running) < MAX_RUNNING:
            event, command, data, name = self.queued.popleft()
            try:
                self._spawn(event, command, data, name)
            except (OSError, ValueError) as exc:
                log.error("%s hook for %s could not start: %s", event, name, exc)

    def _spawn(self, event: str, command: str, data: str, name: str) -> None:
        argv = shlex.split(command)
        if not argv:
            return
        if os.path.isabs(argv[0]):
            exe: Optional[str] = argv[0]
        else:
            import shutil  # only for a hook named without its path: shutil pulls in bz2 and lzma

            exe = shutil.which(argv[0], path=BASE_PATH)
        if not exe:
            raise ValueError(f"{argv[0]}: command not found")
        pw = pwd.getpwuid(os.geteuid())
        env = [f"PATH={BASE_PATH}", f"HOME={pw.pw_dir}", f"USER={pw.pw_name}", f"LOGNAME={pw.pw_name}"]
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            pid, pidfd = _native.spawn(exe, [*argv, data], env, cwd="/", log_fd=write_fd)
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self.running[pid] = pidfd
        os.set_blocking(read_fd, False)
        label = f"{event} hook {os.path.basename(exe)} for {name}"
        buf = bytearray()

        def drain() -> None:
            try:
                chunk = os.read(read_fd, 65536)
            except BlockingIOError:
                return
            buf.extend(chunk)
            *lines, rest = bytes(buf).split(b"\n")
            buf[:] = rest
            for line in lines:
                log.info("%s: %s", label, line.decode(errors="replace"))
            if not chunk:  # EOF: the hook and everything it started have closed the pipe
                if buf:
                    log.info("%s: %s", label, buf.decode(errors="replace"))
                self.loop.remove_reader(read_fd)
                os.close(read_fd)

        self.loop.add_reader(read_fd, drain)
        timer = self.loop.call_later(self.timeout(), self._kill, pid, label)

        def done(info: ExitInfo) -> None:
            if self.running.get(pid) != pidfd:
                return  # already handled the other way
            timer.cancel()
            self.loop.remove_reader(pidfd)
            os.close(self.running.pop(pid))
            self.unwatch(pid)
            level = logging.INFO if info.code == 0 else logging.WARNING
            log.log(level, "%s finished: %s", label, info.describe())
            self._start_queued()

        def exited() -> None:
            try:
                record = _native.reap_pidfd(pidfd, pid)
            except OSError:  # ECHILD: a sweep collected it; its watcher says how it ended
                self.loop.remove_reader(pidfd)
                return
            if record is not None:
                done(ExitInfo(*record))

        self.watch(pid, done)
        self.loop.add_reader(pidfd, exited)

    def _kill(self, pid: int, label: str) -> None:
        pidfd = self.running.get(pid)
        if pidfd is None:
            return
        log.warning("%s timed out: killed", label)
        try:
            _native.killpg(pid, signal.SIGKILL)  # its own session: take what it started too
        except OSError:
            try:
                _native.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
