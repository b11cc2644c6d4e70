"""pmond: start-up, single-instance lock, boot reconciliation, request dispatch, graceful shutdown."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any, Optional

from .. import __version__, _native
from .. import config as config_mod
from ..config import Config
from ..errors import ConfigError, ErrorCode, Pmon3Error
from ..ipc import protocol, transport
from ..models import Process
from ..states import REVIVE_AT_BOOT
from ..store import SchemaError, Store, StoreWriteError
from ..text import escape
from . import handlers, notify
from .apply import Applier
from .authz import Authz, Caller
from .boot import Boot
from .control import Control
from .groups import Groups
from .handlers import Context
from .logrotate import LogRotator
from .memwatch import MemoryWatch
from .metrics import Metrics, result_of
from .supervisor import Supervisor
from .trees import Trees
from .usage import Usage

log = logging.getLogger("pmond")


class AlreadyRunning(Exception):
    pass


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.lock_fd = -1
        self.store: Store
        self.authz: Authz
        self.supervisor: Supervisor
        self.boot: Boot
        self.groups: Groups
        self.applier: Applier
        self.usage = Usage()
        self.servers: list[Any] = []
        self.registry = handlers.load_all()
        self.stop_event = asyncio.Event()
        self.background: set[asyncio.Task[Any]] = set()
        self.config_stamp: Optional[tuple[float, int, int]] = None
        self.reload_error: Optional[str] = None  # why the current config.yml is refused, if it is
        self.restart_requested = False
        self.flush_handle: Optional[asyncio.TimerHandle] = None
        self.endpoint = cfg.mq_base if cfg.transport == "mq" else cfg.socket_path
        self._trim: Optional[asyncio.TimerHandle] = None

    def acquire_lock(self, inherited: Optional[int] = None) -> None:
        """One daemon per data directory: an flock, released by the kernel however we die. A pmond that
        replaced itself (daemon restart) inherits the descriptor, so no other pmond can slip in between."""
        fd = (
            inherited
            if inherited is not None
            else os.open(self.cfg.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        )
        if inherited is not None:
            os.set_inheritable(fd, False)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning("pmond is already running") from None
        try:  # for people; the lock is what counts (and a full disk must not keep pmond from starting)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            log.warning("could not write my pid into %s: %s", self.cfg.lock_path, exc.strerror)
        self.lock_fd = fd

    async def start(self, lock_fd: Optional[int] = None) -> None:
        cfg = self.cfg
        config_mod.ensure_dir(cfg.data_directory, 0o755 if cfg.mode == "system" else 0o700)
        config_mod.ensure_dir(cfg.logs.directory, cfg.logs.directory_mode)
        self.acquire_lock(lock_fd)
        # From here a client that finds this file waits for `ready` instead of talking to a dead pmond's endpoints.
        transport.write_pid_file(cfg.data_directory, "starting", cfg.transport, self.endpoint)
        _native.set_child_subreaper()
        _raise_mq_limit()
        nofile = _raise_nofile_limit()
        self.maybe_reload()  # records the stamp of the file we started with, and logs its warnings
        self.store = Store(cfg.db_path)
        self.store.on_pending = self._retry_writes
        self.authz = Authz(self.store, cfg)
        self.trees = Trees(cfg, self.loop)
        self.supervisor = Supervisor(self.store, cfg, self.loop, self.authz, self.trees)
        self.supervisor.set_nofile(*nofile)
        self.boot = Boot(self.store, cfg, self.authz, self.supervisor)
        self.groups = Groups(self.store)
        self.control = Control(cfg, self.trees.mode, self.stop_event.set, self._request_restart)
        self.applier = Applier(self.store, cfg, self.authz, self.supervisor)
        self.metrics = Metrics(cfg, self.authz, self.supervisor, self.store)
        self.memory = MemoryWatch(cfg, self.supervisor, self.loop)
        self.loop.add_signal_handler(signal.SIGCHLD, self.supervisor.sweep_soon)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        self.loop.add_signal_handler(signal.SIGHUP, self._reload)
        _quiet_wakeup_fd()
        self.boot.adopt_survivors()
        await self.supervisor.end_untracked(p.id for p in self.store.list_processes())
        self.rotator = LogRotator(cfg.logs, self._rotated_logs, self.loop)
        self.rotator.start()
        self.supervisor.on_start.append(self._watch_log)  # a new log is watched at once
        if cfg.transport == "mq":
            server: Any = transport.MQServer(
                cfg.mq_base, self.handle, self.loop, self._queue_uids(), self._remember_queue_uid
            )
            server.start()
        else:
            server = transport.UnixServer(cfg.socket_path, self.handle)
            await server.start()
        self.servers.append(server)
        await self.metrics.start()
        self.memory.start()
        transport.write_pid_file(cfg.data_directory, "ready", cfg.transport, self.endpoint)
        self.run_in_background(self.boot_start())
        notify.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=supervising")
        notify.start_watchdog(self.loop)
        log.info("pmond %s ready (pid %d, %s transport, config %s)", __version__, os.getpid(), cfg.transport, cfg.path)

    def _queue_uids(self) -> list[int]:
        """The users pmond has made request queues for: a new pmond replaces all of them at start."""
        try:
            return [int(u) for u in json.loads(self.store.get_meta("mq_uids") or "[]")]
        except (ValueError, TypeError):
            return []

    def _remember_queue_uid(self, uid: int) -> None:
        try:
            self.store.set_meta("mq_uids", json.dumps(sorted({*self._queue_uids(), uid})))
        except StoreWriteError as exc:  # the user is served anyway; only a crash now would leave the queue
            log.error("uid %d's request queue is not remembered: %s", uid, exc.message)

    def _retry_writes(self) -> None:
        """Runtime states that could not be written (disk full) are written as soon as it works again."""
        if self.flush_handle is None:
            self.flush_handle = self.loop.call_later(WRITE_RETRY, self._flush_pending)

    def _flush_pending(self) -> None:
        self.flush_handle = None
        if not self.store.flush():
            self._retry_writes()

    def _request_restart(self) -> None:
        self.restart_requested = True
        # From now on a new client waits for the pmond that replaces us (same pid, same start time).
        transport.write_pid_file(self.cfg.data_directory, "starting", self.cfg.transport, self.endpoint)
        self.stop_event.set()

    def _rotated_logs(self) -> list[tuple[str, int]]:
        """The logs pmond may rotate with its rights: its own files, and paths root chose for root's rows. A
        path a user chose is never touched by root on their behalf."""
        own, default = self.authz.own_uid, self.authz.default_log_path
        return [
            (log, uid)
            for log, uid, owner, name in self.store.columns("log", "uid", "owner", "name")
            if log and (owner == own or log == default(owner, name))
        ]

    def _watch_log(self, p: Process) -> None:
        if p.log and (p.owner == self.authz.own_uid or self.authz.is_managed_log(p)):
            self.rotator.watch_soon(p.log, p.uid)

    def run_in_background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = self.loop.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def boot_start(self) -> None:
        """Bring back what was running (or closed by a shutdown) and the process config's entries, in
        dependency order; user-stopped and failed rows stay as they are. Each owner's rows in their own order."""
        owners = sorted({p.owner for p in self.store.list_processes()} | {os.geteuid()})
        for owner in owners:
            try:
                errors = await self.boot.bring_up(Caller(owner), config_only=False, revive=REVIVE_AT_BOOT)
            except Pmon3Error as exc:
                log.error("boot start: %s", exc.message)
                continue
            for line in errors:
                log.error("boot start: %s", line)
        self.supervisor.check_nofile(len(self.store.list_processes()))
        self._trim_soon()
        log.info("boot start done")

    def _reload(self) -> None:
        """SIGHUP: re-read config.yml whether or not it changed."""
        self.config_stamp = None
        self.maybe_reload()
        if self.reload_error is None:
            log.info("config reloaded from %s", self.cfg.path)

    def maybe_reload(self) -> list[str]:
        """Re-read config.yml when it changed (pmon3 re-reads before every command) and take over what Config
        says a reload may change. Returns what to tell the caller: the file's unknown keys and the keys whose
        change waits for the next pmond start (once, when the file changed), or, for as long as the file is
        broken, why it was refused: the last good config stays in force (logged once per problem)."""
        try:
            st = os.stat(self.cfg.path)
            stamp: Optional[tuple[float, int, int]] = (st.st_mtime, st.st_size, st.st_ino)
        except OSError:
            stamp = (0.0, 0, 0)
        if stamp == self.config_stamp:
            return []
        try:
            fresh = config_mod.load(self.cfg.path, self.cfg.mode)
        except ConfigError as exc:
            message = f"config reload failed, the last good config stays in force: {exc}"
            if message != self.reload_error:
                log.error("%s", message)
            self.reload_error = message
            return [message]
        self.config_stamp, self.reload_error = stamp, None
        level = self.cfg.log_level
        pending = self.cfg.apply_reload(fresh)
        if hasattr(self, "supervisor"):
            self.supervisor.reconsider()  # restart settings and flap detection may have changed
        if hasattr(self, "rotator"):
            self.rotator.settings = self.cfg.logs
        if self.cfg.log_level != level:
            logging.getLogger().setLevel(LEVELS[self.cfg.log_level])
        notes = list(fresh.warnings)
        if pending:
            notes.append(f"changes to {', '.join(pending)} take effect at the next pmond start")
        for note in notes:
            log.warning("%s", note)
        return notes

    def _on_signal(self, sig: int) -> None:
        log.info("received %s", signal.Signals(sig).name)
        self.stop_event.set()

    def context(self, uid: int) -> Context:
        return Context(
            Caller(uid),
            self.authz,
            self.supervisor,
            self.boot,
            self.groups,
            self.usage,
            self.control,
            self.cfg,
            self.run_in_background,
            self.applier,
            self.metrics,
        )

    async def handle(self, uid: int, msg: dict[str, Any]) -> dict[str, Any]:
        reply = await self._handle(uid, msg)
        # counted per command and result; an unknown command name is the client's text: one label for all
        command = msg["cmd"] if msg.get("cmd") in self.registry else "unknown"
        self.metrics.count_request(command, result_of(reply))
        return reply

    async def _handle(self, uid: int, msg: dict[str, Any]) -> dict[str, Any]:
        req_id = msg["id"]
        entry = self.registry.get(msg["cmd"])
        if entry is None:
            return protocol.error(req_id, ErrorCode.UNKNOWN_COMMAND, f"unknown command {msg['cmd']!r}")
        if self.supervisor.shutting_down:
            return protocol.error(req_id, ErrorCode.SHUTTING_DOWN, "pmond is shutting down")
        warnings = None if self.cfg.disable_reloads else self.maybe_reload()
        request_type, fn = entry
        try:
            request = request_type.parse(msg.get("args") or {})
            reply = protocol.ok(req_id, await fn(self.context(uid), request))
        except Pmon3Error as exc:
            reply = protocol.error(req_id, exc.code, exc.message)
        except Exception as exc:  # one bad request must never take the daemon down
            log.exception("request %s failed", msg["cmd"])
            reply = protocol.error(req_id, ErrorCode.INTERNAL, f"internal error: {exc}")
        if warnings:
            reply["warnings"] = warnings
        self.supervisor.settle()  # what the request started is on disk and in the log before it is answered
        data = reply.get("data")
        if isinstance(data, list) and len(data) >= TRIM_AFTER:
            self._trim_soon()  # its reply (megabytes at 10,000 processes) is freed once sent
        return reply

    def _trim_soon(self) -> None:
        """Give the C heap's free memory back to the kernel a moment from now (after a big reply went out, after
        the boot): pmond's RSS is what a host with 10,000 processes pays for it (docs/scale.md). Each call
        postpones it: a run of big replies is trimmed once, after the last."""
        if self._trim is not None:
            self._trim.cancel()
        self._trim = self.loop.call_later(TRIM_DELAY, self._trim_now, True)

    def _trim_now(self, again: bool) -> None:
        self._trim = None
        _native.malloc_trim()
        if again:
            # A reply is encoded and sent after its handler returns: one of 10,000 rows (~5 MB in 8 KiB frames, at
            # the client's pace) can still be going out at the first trim, and is freed after it. Without this
            # second pass its memory stayed: VmRSS at rest 57 or 70 MiB at 10,000 depending on that race.
            self._trim = self.loop.call_later(TRIM_AGAIN, self._trim_now, False)

    async def shutdown(self) -> None:
        sup = self.supervisor
        sup.begin_shutdown()
        sup.settle()
        notify.notify("STOPPING=1")
        for task in list(self.background):
            task.cancel()
        self.rotator.stop()
        self.metrics.close()
        self.memory.stop()
        for server in self.servers:
            await server.drain(IN_FLIGHT_GRACE)  # replies already being answered (a stop's own) go out first
            server.close()
        if self.restart_requested:
            log.info("replacing pmond; %d processes keep running", len(sup.runtimes))
            sup.close()
            # Same pid and start time after exec: clients must wait for the new pmond's `ready`.
            transport.write_pid_file(self.cfg.data_directory, "starting", self.cfg.transport, self.endpoint)
            self._close_store()
            return
        transport.remove_pid_file(self.cfg.data_directory)
        if self.cfg.handle_interrupts:
            log.info("stopping %d processes", len(sup.runtimes))
            await sup.shutdown_stop(self.boot.stop_order())  # reverse dependency order
        else:
            log.info("leaving %d processes running for the next pmond", len(sup.runtimes))
        sup.close()
        self._close_store()

    def _close_store(self) -> None:
        if self.flush_handle is not None:
            self.flush_handle.cancel()
        if self.store.pending and not self.store.flush():
            log.error("pmond stops with %d process states it could not write", len(self.store.pending))
        self.store.close()


def _raise_nofile_limit() -> tuple[int, int, int]:
    """One pidfd per process: take the whole hard limit of descriptors (the processes get the soft limit back,
    see Supervisor.set_nofile). Returns (the soft limit we started with, the one we have now, the hard one)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, NOFILE_UNLIMITED)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            log.info("descriptor limit (RLIMIT_NOFILE) raised from %d to %d", soft, wanted)
            return soft, wanted, hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the descriptor limit (RLIMIT_NOFILE) from %d: %s", soft, exc)
    return soft, soft, hard


def _raise_mq_limit() -> None:
    """Request queues are charged to pmond's user: take whatever room the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
    for wanted in ((resource.RLIM_INFINITY, resource.RLIM_INFINITY), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_MSGQUEUE, wanted)
            return
        except (ValueError, OSError):
            continue
    log.debug("RLIMIT_MSGQUEUE stays at %s", soft)


def _quiet_wakeup_fd() -> None:
    """asyncio's signal wake-up pipe, without a traceback on stderr when it is full: a storm of SIGCHLDs (1000
    children stopping at once) fills it, and a full pipe already means the loop will wake up."""
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


# A reply of at least this many records is big enough to give memory back after it (malloc_trim), this long after.
TRIM_AFTER = 500
TRIM_DELAY = 0.5
TRIM_AGAIN = 5.0  # a reply of 10,000 rows goes out in 0.3-0.8 s
# RLIMIT_NOFILE soft limit taken when the hard limit is unlimited (fs.nr_open caps what the kernel allows).
NOFILE_UNLIMITED = 1 << 20
# How long a stopping pmond lets requests being handled finish (so that `daemon stop` gets its answer).
IN_FLIGHT_GRACE = 2.0
WRITE_RETRY = 1.0  # seconds between attempts to write what a full disk refused
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class EscapingFormatter(logging.Formatter):
    """Every line of pmond's log is one line: a name, path or error text with a newline or an escape sequence
    in it cannot forge a line or act on the terminal of whoever reads the log."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  (logging's name)
        record.message = escape(record.message)
        return super().formatMessage(record)


def setup_logging(cfg: Config, foreground: bool) -> None:
    handler: logging.Handler
    if cfg.daemon_log and not foreground:
        os.makedirs(os.path.dirname(cfg.daemon_log), exist_ok=True)
        handler = logging.FileHandler(cfg.daemon_log)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[cfg.log_level])


async def _main(cfg: Config, ready_fd: Optional[int], lock_fd: Optional[int]) -> tuple[int, Optional[Daemon]]:
    daemon = Daemon(cfg)
    try:
        await daemon.start(lock_fd)
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1, None
    if ready_fd is not None:
        try:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        except OSError:
            pass
    await daemon.stop_event.wait()
    await daemon.shutdown()
    return 0, daemon


def _replace_self(daemon: Daemon, args: argparse.Namespace) -> None:
    """daemon restart: exec the installed pmond in this very process. The pid stays, so every supervised
    process stays our child (the new pmond adopts them, with their exit statuses), and so does the lock."""
    os.set_inheritable(daemon.lock_fd, True)
    argv = [sys.executable, "-m", "pmon3.daemon", "--lock-fd", str(daemon.lock_fd)]
    if args.config:
        argv += ["--config", args.config]
    if args.foreground:
        argv.append("--foreground")
    logging.shutdown()
    os.execv(sys.executable, argv)


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's own, with the terminal's width: its default asks shutil, which imports bz2, lzma and zlib,
    ~0.7 MiB that pmond would then hold for good (argparse makes a formatter for every add_argument)."""
    try:
        width = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        width = 80
    return argparse.HelpFormatter(prog, width=max(width - 2, 11))


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="pmond", description="pmon3 process manager daemon", formatter_class=_help_formatter
    )
    parser.add_argument("--version", action="version", version=f"pmond {__version__}")
    parser.add_argument("--config", help="config file (default: PMON3_CONF or the mode's path)")
    parser.add_argument("--foreground", action="store_true", help="log to stderr even in user mode")
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lock-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
    except ConfigError as exc:
        print(f"pmond: {exc}", file=sys.stderr)
        sys.exit(1)
    setup_logging(cfg, args.foreground)
    try:
        code, daemon = asyncio.run(_main(cfg, args.ready_fd, args.lock_fd))
    except (OSError, SchemaError) as exc:
        print(f"pmond: {exc}", file=sys.stderr)
        code, daemon = 1, None
    if daemon is not None and daemon.restart_requested:
        _replace_self(daemon, args)
    sys.exit(code)
