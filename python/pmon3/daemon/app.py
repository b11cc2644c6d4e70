"""pmond: start-up, single-instance lock, boot reconciliation, request dispatch, graceful shutdown."""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
from typing import Any, Optional

from .. import __version__, _native
from .. import config as config_mod
from ..config import Config, ConfigError
from ..ipc import protocol, transport
from ..states import REVIVE_AT_BOOT, Status
from ..store import SchemaError, Store
from . import handlers, notify
from .handlers import CommandError, Context
from .handlers import init as init_handlers
from .logrotate import LogRotator
from .logrotate import parse_settings as parse_rotation
from .supervisor import Supervisor

log = logging.getLogger("pmond")


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


class AlreadyRunning(Exception):
    pass


class Daemon:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.loop = asyncio.get_running_loop()
        self.lock_fd = -1
        self.store: Store
        self.supervisor: Supervisor
        self.servers: list[Any] = []
        self.registry = handlers.load_all()
        self.stop_event = asyncio.Event()
        self.background: set[asyncio.Task[Any]] = set()
        self.config_stamp: Optional[tuple[float, int, int]] = None

    def acquire_lock(self) -> None:
        """One daemon per data directory: an flock, released by the kernel however we die."""
        fd = os.open(self.cfg.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunning("pmond is already running") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.lock_fd = fd

    async def start(self) -> None:
        cfg = self.cfg
        config_mod.ensure_dir(cfg.data_directory, 0o755 if cfg.mode == "system" else 0o700)
        config_mod.ensure_dir(cfg.logs_directory, cfg.logs_directory_mode)
        self.acquire_lock()
        _native.set_child_subreaper()
        _raise_mq_limit()
        self.maybe_reload()  # records the stamp of the file we started with
        self.store = Store(cfg.db_path)
        self.supervisor = Supervisor(self.store, cfg, self.loop)
        self.loop.add_signal_handler(signal.SIGCHLD, self.supervisor.sweep)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self.loop.add_signal_handler(sig, self._on_signal, sig)
        self.loop.add_signal_handler(signal.SIGHUP, self._reload)
        self.adopt_survivors()
        self.rotator = LogRotator(
            parse_rotation(cfg.raw), lambda: [(p.log, p.uid) for p in self.store.list_processes()], self.loop
        )
        self.rotator.start()
        if cfg.transport == "mq":
            server: Any = transport.MQServer(cfg.mq_base, self.handle, self.loop)
            server.start()
        else:
            server = transport.UnixServer(cfg.socket_path, self.handle)
            await server.start()
        self.servers.append(server)
        boot = self.loop.create_task(self.boot_start())
        self.background.add(boot)
        boot.add_done_callback(self.background.discard)
        notify.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=supervising")
        notify.start_watchdog(self.loop)
        log.info("pmond %s ready (pid %d, %s transport, config %s)", __version__, os.getpid(), cfg.transport, cfg.path)

    def adopt_survivors(self) -> None:
        """Take over live processes a previous pmond left behind (same pid and start time, same boot)."""
        this_boot = boot_id()
        same_boot = bool(this_boot) and self.store.get_meta("boot_id") == this_boot
        self.store.set_meta("boot_id", this_boot)
        for p in self.store.list_processes():
            if p.status in REVIVE_AT_BOOT:
                self.supervisor.adopt(p, same_boot)

    async def boot_start(self) -> None:
        """Bring back what was running (or closed by a shutdown) and the process config's entries, in
        dependency order; user-stopped and failed rows stay as they are."""
        ctx = Context(self, os.geteuid(), {})
        try:
            errors = await init_handlers.bring_up(ctx, config_only=False, revive=REVIVE_AT_BOOT)
        except CommandError as exc:
            errors = [exc.message]
        for line in errors:
            log.error("boot start: %s", line)
        log.info("boot start done")

    def _reload(self) -> None:
        """SIGHUP: re-read config.yml whether or not it changed."""
        self.config_stamp = None
        problem = self.maybe_reload()
        if problem is None:
            log.info("config reloaded from %s", self.cfg.path)

    def maybe_reload(self) -> Optional[str]:
        """Re-read config.yml when it changed (pmon3 re-reads before every command). A broken file is
        reported and the last good config stays in force. Paths and IPC endpoints are fixed at start."""
        try:
            st = os.stat(self.cfg.path)
            stamp: Optional[tuple[float, int, int]] = (st.st_mtime, st.st_size, st.st_ino)
        except OSError:
            stamp = (0.0, 0, 0)
        if stamp == self.config_stamp:
            return None
        try:
            fresh = config_mod.load(self.cfg.path, self.cfg.mode)
        except ConfigError as exc:
            log.error("config reload failed, the last good config stays in force: %s", exc)
            return f"config reload failed, the last good config stays in force: {exc}"
        try:
            rotation = parse_rotation(fresh.raw)
        except ConfigError as exc:
            log.error("config reload failed, the last good config stays in force: %s", exc)
            return f"config reload failed, the last good config stays in force: {exc}"
        self.config_stamp = stamp
        if hasattr(self, "rotator"):
            self.rotator.settings = rotation
        for field in (
            "restart",
            "flap",
            "hooks",
            "hook_timeout_ms",
            "handle_interrupts",
            "disable_reloads",
            "process_config_file",
            "wait_dependent_ms",
            "initialization_period_s",
            "process_monitor_interval_ms",
        ):
            setattr(self.cfg, field, getattr(fresh, field))
        if fresh.log_level != self.cfg.log_level:
            self.cfg.log_level = fresh.log_level
            logging.getLogger().setLevel(LEVELS[fresh.log_level])
        return None

    def _on_signal(self, sig: int) -> None:
        log.info("received %s", signal.Signals(sig).name)
        self.stop_event.set()

    async def handle(self, uid: int, msg: dict[str, Any]) -> dict[str, Any]:
        req_id = msg["id"]
        fn = self.registry.get(msg["cmd"])
        if fn is None:
            return protocol.error(req_id, "unknown_command", f"unknown command {msg['cmd']!r}")
        if self.supervisor.shutting_down:
            return protocol.error(req_id, "shutting_down", "pmond is shutting down")
        warning = None if self.cfg.disable_reloads else self.maybe_reload()
        try:
            reply = protocol.ok(req_id, await fn(Context(self, uid, msg.get("args") or {})))
        except CommandError as exc:
            reply = protocol.error(req_id, exc.code, exc.message)
        except Exception as exc:  # one bad request must never take the daemon down
            log.exception("request %s failed", msg["cmd"])
            reply = protocol.error(req_id, "internal", f"internal error: {exc}")
        if warning:
            reply["warnings"] = [warning]
        return reply

    async def shutdown(self) -> None:
        sup = self.supervisor
        sup.shutting_down = True
        notify.notify("STOPPING=1")
        for task in list(self.background):
            task.cancel()
        self.rotator.stop()
        for server in self.servers:
            server.close()
        if self.cfg.handle_interrupts:
            ctx = Context(self, 0, {})
            log.info("stopping %d processes", len(sup.runtimes))
            for layer in init_handlers.stop_order(ctx):  # reverse dependency order
                procs = [p for p in (self.store.get_by_name(n) for n in layer) if p is not None]
                await asyncio.gather(*(sup.stop(p, force=False, final=Status.CLOSED) for p in procs))
        else:
            log.info("leaving %d processes running for the next pmond", len(sup.runtimes))
        self.store.close()


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


LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def setup_logging(cfg: Config, foreground: bool) -> None:
    handler: logging.Handler
    if cfg.daemon_log and not foreground:
        os.makedirs(os.path.dirname(cfg.daemon_log), exist_ok=True)
        handler = logging.FileHandler(cfg.daemon_log)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[cfg.log_level])


async def _main(cfg: Config, ready_fd: Optional[int]) -> int:
    daemon = Daemon(cfg)
    try:
        await daemon.start()
    except AlreadyRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if ready_fd is not None:
        try:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        except OSError:
            pass
    await daemon.stop_event.wait()
    await daemon.shutdown()
    return 0


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="pmond", description="pmon3 process manager daemon")
    parser.add_argument("--version", action="version", version=f"pmond {__version__}")
    parser.add_argument("--config", help="config file (default: PMON3_CONF or the mode's path)")
    parser.add_argument("--foreground", action="store_true", help="log to stderr even in user mode")
    parser.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        cfg = config_mod.load(args.config)
        parse_rotation(cfg.raw)  # the logs.* rotation keys are checked here too
    except ConfigError as exc:
        print(f"pmond: {exc}", file=sys.stderr)
        sys.exit(1)
    setup_logging(cfg, args.foreground)
    try:
        code = asyncio.run(_main(cfg, args.ready_fd))
    except (OSError, SchemaError) as exc:
        print(f"pmond: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
