"""The public Python client of pmond: `pmon3.Client`. The CLI is built on it.

    from pmon3 import Client

    with Client() as pm:
        api = pm.exec("/usr/local/bin/api", name="api", args=["--port", "8080"])
        for p in pm.list():
            print(p["name"], p["status"], p["pid"])
        pm.restart("api")

Every method sends one typed request (ipc/messages.py) and returns the reply's records (plain dicts typed as
`ProcessInfo`, `GroupInfo`, ...). Errors are `pmon3.errors.Pmon3Error` subclasses, the same the CLI reports:
`NotFoundError`, `PermissionDeniedError`, `InvalidRequestError`, `ConflictError`, `SpawnError`,
`DaemonUnavailableError` (no pmond), `DaemonTimeoutError`. Which pmond: the config named by `config` (a
path or a loaded Config), else PMON3_CONF, else root's system daemon, else the caller's user daemon (started
on demand when `autostart` and the config allow it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from . import config as config_mod
from .config import Config
from .errors import DaemonTimeoutError, DaemonUnavailableError, Pmon3Error, ProtocolError, from_reply
from .ipc import messages as m

DEFAULT_TIMEOUT = 30.0
READY_TIMEOUT = 15.0
Key = Union[int, str]
Words = Union[str, Sequence[str]]
Entries = list[dict[str, Any]]
if TYPE_CHECKING:  # the records are types only (made at run time they would cost every command ~2 ms)
    # Aliases so that the method named `list` does not shadow the builtin in the annotations below.
    Processes = list[m.ProcessInfo]
    Groups = list[m.GroupInfo]
    GroupsWithProcesses = list[m.GroupWithProcesses]
    Exits = list[m.ExitInfo]


def load_config(path: Optional[str] = None) -> Config:
    """PMON3_CONF wins; root uses the system config; a user uses the system daemon when one listens."""
    if path or os.environ.get("PMON3_CONF") or os.geteuid() == 0:
        return config_mod.load(path, cached=True)
    system = config_mod.load(config_mod.SYSTEM_CONFIG, "system", cached=True)
    if _listening(system):
        return system
    return config_mod.load(mode="user", cached=True)


def _listening(cfg: Config) -> bool:
    """Whether a live pmond serves this config (from its pid file and the kernel, not from an IPC name)."""
    from .ipc import transport

    inst = transport.find_instance(cfg.data_directory)
    if inst is None:
        return False
    inst.close()
    return True


def _transport(cfg: Config) -> Any:
    from .ipc import transport

    return transport.Connection(cfg.data_directory, cfg.transport, cfg.mq_base, cfg.socket_path)


def _words(value: Optional[Words]) -> Union[str, list[str]]:
    if value is None:
        return ""
    return value if isinstance(value, str) else list(value)


def _result(exchange: Any, timeout: float, raw_data: bool) -> Any:
    """The reply of a request sent (transport.Connection.send); its reply queue or socket is done with after."""
    try:
        return exchange.result(timeout, raw_data)
    finally:
        exchange.close()


class Client:
    def __init__(
        self,
        config: Union[None, str, Config] = None,
        *,
        autostart: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        on_warning: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.cfg = config if isinstance(config, Config) else load_config(config)
        self.autostart = autostart and self.cfg.autostart
        self.timeout = timeout
        self.on_warning = on_warning or (lambda text: sys.stderr.write(f"warning: {text}\n"))
        self._conn: Any = None
        self._early: Optional[tuple[m.Request, Any]] = None  # a request sent by `prefetch`, its reply unread

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._drop_early()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the wire --------------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._conn = _transport(self.cfg)
        try:
            self._conn.connect(5.0)
            return
        except DaemonUnavailableError as exc:
            self._conn.close()
            if not self.autostart:
                hint = " (start it with: systemctl start pmond)" if self.cfg.mode == "system" else ""
                raise DaemonUnavailableError(f"{exc}{hint}") from None
        # Several clients may race to start the daemon: whoever loses finds the winner listening.
        started = start_daemon(self.cfg)
        if not started:
            from .ipc import transport

            inst = transport.wait_for_instance(self.cfg.data_directory, READY_TIMEOUT)
            started = inst is not None
            if inst is not None:
                inst.close()
        self._conn = _transport(self.cfg)
        try:
            self._conn.connect(5.0)
        except (DaemonUnavailableError, DaemonTimeoutError) as exc:
            where = self.cfg.daemon_log or os.path.join(self.cfg.logs.directory, "pmond.log")
            raise DaemonUnavailableError(str(exc) if started else f"pmond did not start; see {where}") from None

    def prefetch(self, request: m.Request) -> bool:
        """Send `request` now if a pmond is already running, and keep its reply for the next `call` of an equal
        request: a caller that knows what it will ask lets pmond answer while it does other work (the CLI's `ls`
        sends its request before it loads the code that prints it). Never starts a pmond and never raises: False
        when nothing was sent, and the later call then does, and reports, everything itself. For requests that
        change nothing: one sent here is answered even if nobody ever reads the answer."""
        from .ipc import protocol

        self._drop_early()
        try:
            if self._conn is None:
                conn = _transport(self.cfg)
                self._conn = conn
                conn.connect(5.0)
            self._early = (request, self._conn.send(protocol.request(request.CMD, request.to_args()), self.timeout))
        except (Pmon3Error, OSError):
            self.close()
            return False
        return True

    def call(self, request: m.Request, timeout: Optional[float] = None, raw_data: bool = False) -> Any:
        """Send one request and return the reply's data, or raise the error it carries. With raw_data the data
        comes as the JSON text pmond wrote (for printing it: see `list_json`)."""
        from .ipc import protocol

        wait = timeout or self.timeout
        early, self._early = self._early, None
        try:
            reply = None
            if early is not None and early[0] == request:
                try:
                    reply = _result(early[1], wait, raw_data)
                except DaemonUnavailableError:
                    # Its pmond died after the request went: ask the one serving now (prefetch sends only
                    # requests that change nothing).
                    self.close()
            elif early is not None:
                early[1].close()
            if reply is None:
                if self._conn is not None and self._conn.stale():
                    self.close()  # its pmond died since the last call: this request goes to the one serving now
                if self._conn is None:
                    self._connect()
                reply = _result(self._conn.send(protocol.request(request.CMD, request.to_args()), wait), wait, raw_data)
        except (DaemonTimeoutError, DaemonUnavailableError, ProtocolError):
            # The connection is done for: bound to a pmond that died (the next call finds the one that
            # replaces it), or with a late reply still on its way. Never retried here: it may have taken effect.
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise DaemonUnavailableError(f"could not talk to pmond: {exc}") from None
        for warning in reply.get("warnings") or []:
            self.on_warning(str(warning))
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise from_reply(error.get("code"), str(error.get("message", "unknown error")))
        return reply.get("data")

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early[1].close()
            self._early = None

    def stop_timeout(self) -> float:
        """Long enough for a graceful stop that escalates to SIGKILL."""
        return self.cfg.restart.stop_timeout * 2 + 15

    # -- one method per command ------------------------------------------------------------------------------
    def version(self) -> m.VersionInfo:
        info: m.VersionInfo = self.call(m.Version())
        return info

    def list(self) -> Processes:
        procs: Processes = self.call(m.ListRequest())
        return procs

    def list_json(self) -> str:
        """`list()` as the compact JSON text pmond sent, not decoded: for passing the list on as JSON (what
        `pmon3 ls --json` prints, indented), without building and re-encoding every record."""
        text: str = self.call(m.ListRequest(), raw_data=True)
        return text

    def describe(self, key: Key) -> m.ProcessInfo:
        p: m.ProcessInfo = self.call(m.DescRequest(str(key)))
        return p

    def exec(
        self,
        file: str,
        *,
        name: str = "",
        args: Optional[Words] = None,
        argv: Optional[Sequence[str]] = None,
        env: Optional[Union[Sequence[str], dict[str, str]]] = None,
        env_file: Optional[str] = None,
        user: str = "",
        log: str = "",
        log_dir: str = "",
        no_auto_restart: bool = False,
        dependencies: Optional[Words] = None,
        groups: Optional[Words] = None,
        cwd: str = "",
        restart: Optional[str] = None,
        success_exit_codes: Optional[Union[str, Sequence[int]]] = None,
        min_uptime: Optional[Union[str, int]] = None,
        restart_delay: Optional[Union[str, int]] = None,
        max_restart_delay: Optional[Union[str, int]] = None,
        stop_signal: Optional[Union[str, int]] = None,
        stop_timeout: Optional[Union[str, int]] = None,
        strict_modes: Optional[bool] = None,
        listen: Optional[Sequence[str]] = None,
        ready: Optional[str] = None,
        ready_timeout: Optional[Union[str, int]] = None,
        watchdog: Optional[Union[str, int]] = None,
        instances: Optional[int] = None,
        limits: Union[None, str, Sequence[str], dict[str, Any]] = None,
        max_memory: Optional[Union[str, int]] = None,
        memory_max: Optional[Union[str, int]] = None,
        cpu_max: Optional[Union[str, int, float]] = None,
        pids_max: Optional[Union[str, int]] = None,
    ) -> m.ProcessInfo:
        """Start `file` (relative paths are taken from this process's working directory). An env file is read
        here, with the caller's own rights; `env` values win over it. `limits`: setrlimit limits such as
        "nofile=65536,core=0" (or a list of items, or {"nofile": 65536}); `max_memory`: restart when the tree's
        memory stays above it ("512M"); `memory_max`, `cpu_max`, `pids_max`: cgroup limits of the tree, where
        pmond has the controllers (see docs/operations.md)."""
        items: list[str] = []
        if env_file:
            from .procconfig import parse_env_file

            items = parse_env_file(os.path.abspath(env_file))
        if isinstance(env, dict):
            items += [f"{k}={v}" for k, v in env.items()]
        elif env:
            items += list(env)
        req = m.ExecRequest(
            file=os.path.abspath(file),
            name=name,
            args=_words(args),
            argv=list(argv) if argv is not None else None,
            env_vars=items,
            user=user,
            log=os.path.abspath(log) if log else "",
            log_dir=os.path.abspath(log_dir) if log_dir else "",
            no_auto_restart=no_auto_restart,
            dependencies=_words(dependencies),
            groups=_words(groups),
            cwd=os.path.abspath(cwd) if cwd else "",
            restart=restart,
            success_exit_codes=success_exit_codes
            if success_exit_codes is None or isinstance(success_exit_codes, str)
            else list(success_exit_codes),
            min_uptime=min_uptime,
            restart_delay=restart_delay,
            max_restart_delay=max_restart_delay,
            stop_signal=stop_signal,
            stop_timeout=stop_timeout,
            strict_modes=strict_modes,
            listen=list(listen or []),
            ready=ready,
            ready_timeout=ready_timeout,
            watchdog=watchdog,
            instances=instances,
            limits=limits if limits is None or isinstance(limits, (str, dict)) else list(limits),
            max_memory=max_memory,
            memory_max=memory_max,
            cpu_max=cpu_max,
            pids_max=pids_max,
        )
        p: m.ProcessInfo = self.call(req)
        return p

    def stop(self, key: Key, force: bool = False) -> m.ProcessInfo:
        p: m.ProcessInfo = self.call(m.StopRequest(str(key), force), self.stop_timeout())
        return p

    def kill(self, force: bool = False) -> Processes:
        procs: Processes = self.call(m.KillRequest(force), self.stop_timeout())
        return procs

    def _restart_flags(
        self, no_auto_restart: bool, user: str, log: str, log_dir: str, args: Optional[Words], deps: Optional[Words]
    ) -> dict[str, Any]:
        return m.RestartFlags(
            no_auto_restart=no_auto_restart,
            user=user,
            log=os.path.abspath(log) if log else "",
            log_dir=os.path.abspath(log_dir) if log_dir else "",
            args=args if isinstance(args, str) else " ".join(_quote(a) for a in (args or [])),
            dependencies=_words(deps),
        ).to_args()

    def restart(
        self,
        key: Key,
        *,
        no_auto_restart: bool = False,
        user: str = "",
        log: str = "",
        log_dir: str = "",
        args: Optional[Words] = None,
        dependencies: Optional[Words] = None,
    ) -> m.ProcessInfo:
        flags = self._restart_flags(no_auto_restart, user, log, log_dir, args, dependencies)
        p: m.ProcessInfo = self.call(m.RestartRequest(str(key), "restart", flags), self.stop_timeout())
        return p

    def start(
        self,
        key: Key,
        *,
        no_auto_restart: bool = False,
        user: str = "",
        log: str = "",
        log_dir: str = "",
        args: Optional[Words] = None,
        dependencies: Optional[Words] = None,
    ) -> m.ProcessInfo:
        """Like restart, but a running process is left alone (the reply then has a `message`)."""
        flags = self._restart_flags(no_auto_restart, user, log, log_dir, args, dependencies)
        p: m.ProcessInfo = self.call(m.RestartRequest(str(key), "start", flags), self.stop_timeout())
        return p

    def reload(
        self,
        key: Key,
        *,
        user: str = "",
        log: str = "",
        log_dir: str = "",
        args: Optional[Words] = None,
        dependencies: Optional[Words] = None,
    ) -> Processes:
        """Zero-downtime restart (instances one at a time); the old copy keeps serving if the new one fails."""
        flags = self._restart_flags(False, user, log, log_dir, args, dependencies)
        procs: Processes = self.call(m.ReloadRequest(str(key), flags), self.stop_timeout() + 120)
        return procs

    def scale(self, key: Key, instances: int) -> Processes:
        procs: Processes = self.call(m.ScaleRequest(str(key), instances), self.stop_timeout() * 2)
        return procs

    def group_reload(self, key: Key) -> m.GroupWithProcesses:
        g: m.GroupWithProcesses = self.call(m.GroupReloadRequest(str(key)), self.stop_timeout() * 4 + 120)
        return g

    def delete(self, key: Key, force: bool = False) -> m.ProcessInfo:
        p: m.ProcessInfo = self.call(m.DeleteRequest(str(key), force), self.stop_timeout())
        return p

    def drop(self, force: bool = False) -> Processes:
        procs: Processes = self.call(m.DropRequest(force), self.stop_timeout())
        return procs

    def init(self, process_config_only: bool = False, blocking: bool = False) -> Processes:
        procs: Processes = self.call(m.InitRequest(process_config_only, blocking), 180.0)
        return procs

    def dgraph(self, process_config_only: bool = False) -> m.DependencyGraph:
        graph: m.DependencyGraph = self.call(m.DgraphRequest(process_config_only))
        return graph

    def reset(self, key: Optional[Key] = None) -> Processes:
        procs: Processes = self.call(m.ResetRequest(str(key) if key is not None else ""))
        return procs

    def export(self, order: str = "id") -> Entries:
        entries: Entries = self.call(m.ExportRequest(order))
        return entries

    def apply(self, file: Optional[str] = None, *, dry_run: bool = False, prune: bool = False) -> m.ApplyPlan:
        """Make the caller's processes match a process config file (default: the configured
        `process_config_file`, else PMON3_PROCESS_CONF): create what is missing, change what differs
        (restarting a live process only when what it runs changed), leave the rest alone, and with `prune`
        delete the caller's processes the file does not list. `dry_run` only plans. The file and the env files
        it names are read here, with this process's rights; pmond gets the entries. Returns the plan (with each
        action's `result` when carried out; `ok` is false when one failed); an invalid file raises and changes
        nothing."""
        from . import procconfig
        from .errors import ProcessConfigError

        if file is None:
            if os.geteuid() != 0 and self.cfg.mode == "system":
                raise ProcessConfigError(
                    "the system pmond's process config file is root's: name your own (pmon3 apply FILE)"
                )
            named = self.cfg.process_config_file or os.environ.get("PMON3_PROCESS_CONF", "")
            file = named or procconfig.resolve_path("")  # a file named but missing is an error below
            if not file:
                raise ProcessConfigError(
                    "no process config file: name one (pmon3 apply FILE), or set process_config_file in "
                    f"{self.cfg.path} or PMON3_PROCESS_CONF"
                )
        path = os.path.abspath(file)
        entries = procconfig.load_for_apply(path)
        import json

        from .ipc.protocol import MAX_REQUEST

        size = len(json.dumps(entries).encode()) + len(path.encode())
        if size > MAX_REQUEST - 4096:  # pmond drops a larger request (and we would wait for an answer in vain)
            raise ProcessConfigError(
                f"{path}: {len(entries)} entries are {size} bytes, more than pmond takes in one request "
                f"({MAX_REQUEST} bytes): split the file"
            )
        # Restarts are sequential (dependencies first), each up to a graceful stop.
        timeout = 60.0 if dry_run else 60.0 + self.stop_timeout() * max(1, len(entries))
        plan: m.ApplyPlan = self.call(m.ApplyRequest(entries, dry_run, prune, path), timeout)
        return plan

    def history(self, key: Optional[Key] = None, limit: int = 20) -> Exits:
        """Exits of one process, or of all the caller's (root: everyone's), newest first."""
        records: Exits = self.call(m.HistoryRequest(str(key) if key is not None else "", limit))
        return records

    def metrics(self) -> str:
        """The Prometheus text exposition of pmond's metrics (root: exactly the endpoint's)."""
        data: dict[str, str] = self.call(m.MetricsRequest())
        return data["text"]

    def top(self) -> dict[str, Any]:
        data: dict[str, Any] = self.call(m.TopRequest())
        return data

    def daemon_status(self) -> m.DaemonStatus:
        status: m.DaemonStatus = self.call(m.DaemonStatusRequest())
        return status

    def daemon_stop(self) -> m.DaemonStatus:
        status: m.DaemonStatus = self.call(m.DaemonStopRequest(), self.stop_timeout() * 4)
        return status

    def daemon_restart(self) -> m.DaemonStatus:
        """pmond replaces itself by the installed version; every process keeps running."""
        status: m.DaemonStatus = self.call(m.DaemonRestartRequest())
        return status

    def group_list(self) -> Groups:
        groups: Groups = self.call(m.GroupListRequest())
        return groups

    def group_create(self, name: str) -> m.GroupInfo:
        g: m.GroupInfo = self.call(m.GroupCreateRequest(name))
        return g

    def group_delete(self, key: Key) -> m.GroupInfo:
        g: m.GroupInfo = self.call(m.GroupDeleteRequest(str(key)))
        return g

    def group_describe(self, key: Key) -> m.GroupWithProcesses:
        g: m.GroupWithProcesses = self.call(m.GroupDescRequest(str(key)))
        return g

    def group_assign(self, groups: Words, processes: Words) -> GroupsWithProcesses:
        data: GroupsWithProcesses = self.call(m.GroupAssignRequest(_csv(groups), _csv(processes)))
        return data

    def group_remove(self, groups: Words, processes: Words) -> GroupsWithProcesses:
        data: GroupsWithProcesses = self.call(m.GroupRemoveRequest(_csv(groups), _csv(processes)))
        return data

    def group_stop(self, key: Key, force: bool = False) -> m.GroupWithProcesses:
        g: m.GroupWithProcesses = self.call(m.GroupStopRequest(str(key), force), self.stop_timeout())
        return g

    def group_restart(
        self,
        key: Key,
        *,
        no_auto_restart: bool = False,
        user: str = "",
        log: str = "",
        log_dir: str = "",
        args: Optional[Words] = None,
    ) -> m.GroupWithProcesses:
        flags = self._restart_flags(no_auto_restart, user, log, log_dir, args, None)
        g: m.GroupWithProcesses = self.call(m.GroupRestartRequest(str(key), flags), self.stop_timeout() * 4)
        return g

    def group_drop(self, key: Key, force: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = self.call(m.GroupDropRequest(str(key), force), self.stop_timeout())
        return data


def _csv(value: Words) -> str:
    return value if isinstance(value, str) else ",".join(value)


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


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
    log_file = cfg.daemon_log or os.path.join(cfg.logs.directory, "pmond.log")
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
        raise DaemonUnavailableError(f"could not start pmond: {exc}") from None
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


__all__ = ["Client", "Pmon3Error", "load_config", "start_daemon"]
