"""Prometheus metrics: `/metrics` on `metrics.listen` (TCP or a unix socket), served by pmond's event loop, and
the same text for `pmon3 metrics`.

The text exposition format (0.0.4) is written here rather than with prometheus_client: importing it costs
pmond 40-125 ms on a loaded 2-core machine (measured), for a format of a few lines. Rendering yields to the
loop every RENDER_CHUNK processes, so that a scrape of thousands never holds a restart back for long.

Who is shown: the endpoint has no authentication, and names, owners and counts of other users' processes are
theirs to publish, so by default (`metrics.users: root`) it shows pmond's own user's processes only (root's,
in the system daemon); `all` shows everyone's. `pmon3 metrics` as root prints exactly the endpoint's text; as
another user, the same metrics for that user's own processes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from typing import Any, Optional

from .. import __version__
from ..config import Config, check_listen
from ..states import Status
from ..store import Store, Summary
from ..text import escape
from .authz import Authz, Caller
from .sampling import TreeUsage, cgroup_cpu, sample
from .supervisor import Supervisor
from .trees import Copy

log = logging.getLogger("pmond.metrics")

RENDER_CHUNK = 100
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_HEAD = 16384
READ_TIMEOUT = 10.0


def _escape(value: str) -> str:
    """A label value: controls are shown as escapes first (text.escape; the text reaches terminals through
    `pmon3 metrics`), then the format's own escapes for backslash and double quote."""
    return escape(value).replace("\\", "\\\\").replace('"', '\\"')


def _num(value: float) -> str:
    if type(value) is int:
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Family:
    """One metric family: its HELP and TYPE lines, then its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name = name
        self.lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def add(self, labels: str, value: float) -> None:
        self.lines.append(f"{self.name}{{{labels}}} {_num(value)}" if labels else f"{self.name} {_num(value)}")


class Metrics:
    def __init__(self, cfg: Config, authz: Authz, supervisor: Supervisor, store: Store) -> None:
        self.cfg = cfg
        self.authz = authz
        self.store = store  # read only: Store.summaries
        self.supervisor = supervisor
        self.requests: dict[tuple[str, str], int] = {}
        self.scrapes = 0
        self.absent: set[Copy] = set()  # copy cgroups that do not exist (sampling.cgroup_cpu)
        self.render_seconds = 0.0  # the previous render's, pauses for the loop included
        self.server: Optional[asyncio.AbstractServer] = None
        self.socket_path = ""

    # -- counting ---------------------------------------------------------------------------------------------
    def count_request(self, command: str, result: str) -> None:
        key = (command, result)
        self.requests[key] = self.requests.get(key, 0) + 1

    # -- rendering --------------------------------------------------------------------------------------------
    def rows_for(self, caller: Optional[Caller]) -> list[Summary]:
        """The endpoint's processes (caller None, or root), or a user's own (as authz.visible shows them)."""
        own = self.authz.own_uid
        if caller is not None and not caller.is_root:
            return self.store.summaries(caller.uid)
        if self.cfg.metrics_users == "all":
            return self.store.summaries(None if Caller(own).is_root else own)
        return self.store.summaries(own)

    async def render(self, caller: Optional[Caller] = None) -> str:
        t0 = time.perf_counter()
        rows = self.rows_for(caller)
        sup = self.supervisor
        fams = {
            "up": Family("pmon3_process_up", "gauge", "Whether the process runs (1) or not (0)."),
            "status": Family(
                "pmon3_process_status", "gauge", "The process's status: 1 for the status it has, 0 for the others."
            ),
            "restarts": Family(
                "pmon3_process_restarts_total",
                "counter",
                "Restarts of the process (its restart count: a stop resets it, as pmon3 does).",
            ),
            "exits": Family(
                "pmon3_process_exits_total",
                "counter",
                "Exits of the process since pmond started, by reason (see docs/operations.md).",
            ),
            "code": Family("pmon3_process_last_exit_code", "gauge", "Exit code of the last exit (when it had one)."),
            "signal": Family(
                "pmon3_process_last_exit_signal", "gauge", "Signal that ended the last run (when one did)."
            ),
            "cpu": Family(
                "pmon3_process_cpu_seconds_total",
                "counter",
                "CPU time of the process's tree (cgroup mode: every run; session mode: since pmond started).",
            ),
            "rss": Family(
                "pmon3_process_resident_memory_bytes", "gauge", "Resident memory of the process's whole tree."
            ),
            "start": Family(
                "pmon3_process_start_time_seconds", "gauge", "When the current (or last) run started, Unix time."
            ),
            "max_memory": Family(
                "pmon3_process_max_memory_bytes", "gauge", "max_memory of the process: restarted above it."
            ),
        }
        statuses = [s.label for s in Status]
        usage: dict[int, TreeUsage] = {}
        owners: dict[int, str] = {}  # one passwd lookup per owner and render
        if sup.trees.base is None:  # session mode: one pass over /proc finds every tree at once
            usage = sample(sup.trees, self._leaders(rows))
        for start in range(0, len(rows), RENDER_CHUNK):
            chunk = rows[start : start + RENDER_CHUNK]
            if sup.trees.base is not None:  # cgroup mode: each tree's own files, a chunk at a time
                usage = sample(sup.trees, self._leaders(chunk), self.absent)
            for p in chunk:
                if p.owner not in owners:
                    owners[p.owner] = _escape(self.authz.owner_name(p.owner))
                self._process(fams, p, usage.get(p.id), statuses, owners[p.owner])
            if start + RENDER_CHUNK < len(rows):
                await asyncio.sleep(0)  # let deaths and requests in between chunks
        out = [line for fam in fams.values() for line in fam.lines]
        out += self._daemon()
        self.render_seconds = time.perf_counter() - t0
        return "\n".join(out) + "\n"

    def _leaders(self, rows: list[Summary]) -> dict[int, tuple[int, Any]]:
        runtimes = self.supervisor.runtimes
        return {p.id: (rt.pid, rt.copy) for p in rows if (rt := runtimes.get(p.id)) is not None}

    def _process(
        self, fams: dict[str, Family], p: Summary, usage: Optional[TreeUsage], statuses: list[str], owner: str
    ) -> None:
        sup = self.supervisor
        labels = f'id="{p.id}",name="{_escape(p.name)}",owner="{owner}"'
        alive = sup.is_alive(p.id)
        fams["up"].add(labels, 1 if alive else 0)
        current = p.status.label
        for label in statuses:
            fams["status"].add(f'{labels},status="{label}"', 1 if current == label else 0)
        fams["restarts"].add(labels, p.restart_count)
        for reason, n in sorted(sup.history.reasons.get(p.id, {}).items()):
            fams["exits"].add(f'{labels},reason="{reason}"', n)
        if p.last_exit_code is not None:
            fams["code"].add(labels, p.last_exit_code)
        if p.last_exit_signal is not None:
            fams["signal"].add(labels, p.last_exit_signal)
        cpu = usage.cpu if usage is not None else None
        if sup.trees.base is None:  # session mode: ended runs since pmond started + the live tree
            cpu = sup.history.ended_cpu.get(p.id, 0.0) + (cpu or 0.0)
        elif cpu is None:  # not running: what its cgroups counted
            cpu = cgroup_cpu(sup.trees, p.id, self.absent)
        if cpu is not None:
            fams["cpu"].add(labels, round(cpu, 6))
        fams["rss"].add(labels, usage.rss if usage is not None and alive else 0)
        if p.started_at:
            fams["start"].add(labels, round(p.started_at, 3))
        if p.max_memory:
            fams["max_memory"].add(labels, p.max_memory)

    def _daemon(self) -> list[str]:
        """pmond's own process_* metrics (the names prometheus_client's ProcessCollector uses) and its IPC."""
        out: list[str] = []

        def one(name: str, kind: str, help_text: str, value: float, labels: str = "") -> None:
            fam = Family(name, kind, help_text)
            fam.add(labels, value)
            out.extend(fam.lines)

        times = os.times()
        one("process_cpu_seconds_total", "counter", "pmond's user and system CPU time.", times.user + times.system)
        vsize, rss, start = _own_stat()
        one("process_virtual_memory_bytes", "gauge", "pmond's virtual memory size.", vsize)
        one("process_resident_memory_bytes", "gauge", "pmond's resident memory size.", rss)
        one("process_start_time_seconds", "gauge", "When pmond started, Unix time.", start)
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = 0
        one("process_open_fds", "gauge", "pmond's open file descriptors.", fds)
        one("process_max_fds", "gauge", "pmond's limit of open file descriptors.", resource.getrlimit(7)[0])
        info = Family("pmon3_daemon_info", "gauge", "pmond's version, mode and way of tracking process trees.")
        info.add(f'version="{_escape(__version__)}",mode="{self.cfg.mode}",trees="{self.supervisor.trees.mode}"', 1)
        out += info.lines
        one(
            "pmon3_metrics_render_seconds",
            "gauge",
            "How long pmond took to render the previous metrics text (the loop's other work in between included).",
            round(self.render_seconds, 6),
        )
        req = Family("pmon3_ipc_requests_total", "counter", "Requests pmond answered, by command and result.")
        for (command, result), n in sorted(self.requests.items()):
            req.add(f'command="{_escape(command)}",result="{_escape(result)}"', n)
        out += req.lines
        return out

    # -- the endpoint -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on metrics.listen; an address that cannot be used is logged and pmond runs on without it."""
        listen = self.cfg.metrics_listen
        if not listen:
            return
        host, port = check_listen(listen, "metrics.listen")
        try:
            if port == 0:
                self.socket_path = host
                try:
                    os.unlink(host)
                except FileNotFoundError:
                    pass
                old = os.umask(0o177)  # 0600: the socket's permissions are its only guard
                try:
                    self.server = await asyncio.start_unix_server(self._serve, host)
                finally:
                    os.umask(old)
            else:
                self.server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            log.error("metrics: cannot listen on %s: %s", listen, exc.strerror or exc)
            return
        log.info("metrics on %s", f"unix:{host}" if port == 0 else listen)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
            if self.socket_path:
                try:
                    os.unlink(self.socket_path)
                except OSError:
                    pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
            writer.close()
            return
        try:
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                await self._reply(writer, 400, "bad request\n")
            elif parts[0] not in ("GET", "HEAD"):
                await self._reply(writer, 405, "only GET and HEAD\n", extra="Allow: GET, HEAD\r\n")
            elif parts[1].split("?", 1)[0] == "/metrics":
                self.scrapes += 1
                await self._reply(writer, 200, await self.render(None), head_only=parts[0] == "HEAD")
            elif parts[1] == "/":
                await self._reply(writer, 200, "pmond: metrics at /metrics\n", head_only=parts[0] == "HEAD")
            else:
                await self._reply(writer, 404, "not found: try /metrics\n")
        except Exception:  # a scrape must never take pmond down
            log.exception("metrics request failed")
        finally:
            writer.close()

    @staticmethod
    async def _reply(
        writer: asyncio.StreamWriter, code: int, text: str, head_only: bool = False, extra: str = ""
    ) -> None:
        reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        body = text.encode()
        writer.write(
            (
                f"HTTP/1.1 {code} {reasons[code]}\r\nContent-Type: {CONTENT_TYPE}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n"
            ).encode()
        )
        if not head_only:
            writer.write(body)
        try:
            await writer.drain()
        except OSError:
            pass


def _own_stat() -> tuple[int, int, float]:
    """(virtual bytes, resident bytes, start Unix time) of pmond from /proc/self/stat."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime") as fh:
            up = float(fh.read().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        start = time.time() - up + int(fields[19]) / tick
        return int(fields[20]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), round(start, 2)
    except (OSError, ValueError, IndexError):
        return 0, 0, 0.0


def result_of(reply: dict[str, Any]) -> str:
    """ok, or the error code of a reply (a fixed vocabulary: safe as a label)."""
    if reply.get("ok"):
        return "ok"
    return str((reply.get("error") or {}).get("code") or "error")
