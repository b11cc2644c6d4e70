"""Finding and talking to the right pmond: the system daemon, else the caller's own (started on demand)."""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from .. import config as config_mod
from ..config import Config, ConfigError
from .output import CliError

DEFAULT_TIMEOUT = 30.0
READY_TIMEOUT = 15.0


def load_config() -> Config:
    """PMON3_CONF wins; root uses the system config; a user uses the system daemon when one listens."""
    try:
        if os.environ.get("PMON3_CONF") or os.geteuid() == 0:
            return config_mod.load(cached=True)
        system = config_mod.load(config_mod.SYSTEM_CONFIG, "system", cached=True)
        if _listening(system):
            return system
        return config_mod.load(mode="user", cached=True)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _listening(cfg: Config) -> bool:
    if cfg.transport == "unix":
        return os.path.exists(cfg.socket_path)
    from .. import _native

    try:
        _native.MessageQueue(cfg.mq_base, read=False).close()
        return True
    except OSError as exc:
        return exc.errno == 13  # EACCES: it exists, so a daemon owns it


def _client(cfg: Config) -> Any:
    from ..ipc import transport

    if cfg.transport == "unix":
        return transport.UnixClient(cfg.socket_path)
    return transport.MQClient(cfg.mq_base)


class Session:
    def __init__(self, cfg: Optional[Config] = None, autostart: bool = True) -> None:
        self.cfg = cfg or load_config()
        self.autostart = autostart and self.cfg.autostart
        self.client: Any = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()

    def _connect(self) -> None:
        from ..ipc import transport

        self.client = _client(self.cfg)
        try:
            self.client.connect(5.0)
            return
        except transport.TimeoutError_ as exc:
            raise CliError(str(exc)) from None
        except transport.ConnectError as exc:
            self.client.close()
            if not self.autostart:
                hint = " (start it with: systemctl start pmond)" if self.cfg.mode == "system" else ""
                raise CliError(f"{exc}{hint}") from None
        # Several CLIs may race to start the daemon: whoever loses finds the winner listening.
        started = start_daemon(self.cfg)
        self.client = _client(self.cfg)
        try:
            self.client.connect(5.0)
        except (transport.ConnectError, transport.TimeoutError_) as exc:
            where = self.cfg.daemon_log or os.path.join(self.cfg.logs_directory, "pmond.log")
            raise CliError(str(exc) if started else f"pmond did not start; see {where}") from None

    def call(self, cmd: str, args: Optional[dict[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        from ..ipc import protocol, transport

        if self.client is None:
            self._connect()
        try:
            reply = self.client.call(protocol.request(cmd, args), timeout or DEFAULT_TIMEOUT)
        except (transport.TimeoutError_, transport.ConnectError, protocol.ProtocolError) as exc:
            raise CliError(str(exc)) from None
        except OSError as exc:
            raise CliError(f"could not talk to pmond: {exc}") from None
        for warning in reply.get("warnings") or []:
            sys.stderr.write(f"error: {warning}\n")
        if not reply.get("ok"):
            raise CliError(reply.get("error", {}).get("message", "unknown error"))
        return reply.get("data")

    def stop_timeout(self) -> float:
        """Long enough for a graceful stop that escalates to SIGKILL."""
        return self.cfg.restart.stop_timeout_ms / 1000 * 2 + 15


def start_daemon(cfg: Config) -> bool:
    """Start a pmond in the background and wait until it says it is ready (no guessing with sleeps)."""
    import select
    import subprocess

    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "pmon3.daemon", "--ready-fd", str(write_fd)]
    if os.environ.get("PMON3_CONF") is None:
        cmd += ["--config", cfg.path]
    err: Any = subprocess.DEVNULL
    # The daemon's own log: user mode names a file; a system daemon started by hand logs beside its processes.
    log_file = cfg.daemon_log or os.path.join(cfg.logs_directory, "pmond.log")
    try:
        os.makedirs(os.path.dirname(log_file), mode=0o755 if cfg.mode == "system" else 0o700, exist_ok=True)
        err = open(log_file, "ab")  # noqa: SIM115
        subprocess.Popen(
            cmd,
            pass_fds=(write_fd,),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            close_fds=True,
        )
    except OSError as exc:
        raise CliError(f"could not start pmond: {exc}") from None
    finally:
        os.close(write_fd)
        if err is not subprocess.DEVNULL:
            err.close()
    try:
        ready, _, _ = select.select([read_fd], [], [], READY_TIMEOUT)
        answer = os.read(read_fd, 64) if ready else b""
    finally:
        os.close(read_fd)
    return answer.startswith(b"ready")
