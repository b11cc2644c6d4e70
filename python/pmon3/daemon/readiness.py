"""Readiness: when a started process is ready to serve, so that reloads, restarts of dependencies and boot wait
for it (a process shows `starting` until then).

`--ready` (`ready:` in a process config):
- `none` (default): ready once it has exec'd, as before.
- `notify`: the sd_notify protocol. The process gets a NOTIFY_SOCKET of its own (an abstract unix datagram
  socket); `READY=1` makes it ready, `STATUS=...` is shown in `desc`, `STOPPING=1` is noted, `WATCHDOG=1` pings
  (with `watchdog:` a process that stops pinging is killed and restarted), `MAINPID=n` names a new main process
  (for programs that re-exec). A datagram counts only if the kernel says (SO_PASSCRED) it comes from a process of
  that process's own tree: a process can only speak for itself.
- `tcp` / `tcp:PORT` / `tcp:HOST:PORT`: a TCP connection succeeds (to a port the process binds itself: a socket
  held by pmond accepts connections in the kernel whoever listens).
- `http:PATH` / `http://HOST:PORT/PATH`: a GET answers 2xx or 3xx (PORT defaults to the first held tcp socket).
- `log:REGEX`: a line of its log matches.
- `delay:DURATION`: it is still alive after that long.
`ready_timeout` (default 60 s) bounds the wait; a process that is not ready by then is stopped and handled like
one that crashed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import socket
import struct
import time
from typing import Callable, Optional

from .. import _native
from ..config import parse_duration_ms
from ..errors import ConfigError, InvalidRequestError
from . import fsas

log = logging.getLogger("pmond.readiness")
DEFAULT_TIMEOUT = 60.0
KINDS = "none, notify, tcp[:PORT], http:PATH, log:REGEX or delay:DURATION"
PROBE_INTERVAL = 0.05  # tcp/http/log probes: how often a not-yet-ready process is asked again


@dataclasses.dataclass(frozen=True)
class ReadySpec:
    kind: str = "none"
    host: str = "127.0.0.1"
    port: int = 0
    path: str = "/"
    pattern: str = ""
    delay: float = 0.0

    def text(self) -> str:
        if self.kind in ("none", "notify"):
            return self.kind
        if self.kind == "tcp":
            return f"tcp:{self.host}:{self.port}" if self.port else "tcp"
        if self.kind == "http":
            return f"http://{self.host}:{self.port}{self.path}" if self.port else f"http:{self.path}"
        if self.kind == "log":
            return f"log:{self.pattern}"
        return f"delay:{int(self.delay * 1000)}ms"


def parse(text: str) -> ReadySpec:
    if not isinstance(text, str) or not text:
        raise InvalidRequestError(f"ready: expected {KINDS}")
    kind, _, rest = text.partition(":")
    if text in ("none", "notify", "tcp"):
        return ReadySpec(text)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise InvalidRequestError(f"ready {text!r}: expected tcp:PORT or tcp:HOST:PORT")
        return ReadySpec("tcp", host=host or "127.0.0.1", port=int(port))
    if kind == "http":
        m = re.fullmatch(r"//([^/:]+):(\d+)(/.*)?", rest)
        if m:
            return ReadySpec("http", host=m.group(1), port=int(m.group(2)), path=m.group(3) or "/")
        if rest.startswith("/") and not any(c.isspace() for c in rest):
            return ReadySpec("http", path=rest)
        raise InvalidRequestError(f"ready {text!r}: expected http:/PATH or http://HOST:PORT/PATH")
    if kind == "log":
        try:
            _native.Regex(rest)
        except ValueError as exc:
            raise InvalidRequestError(f"ready {text!r}: bad regular expression: {' '.join(str(exc).split())}") from None
        if not rest:
            raise InvalidRequestError("ready log: needs a regular expression, e.g. log:listening on")
        return ReadySpec("log", pattern=rest)
    if kind == "delay":
        try:
            return ReadySpec("delay", delay=parse_duration_ms(rest, "ready delay") / 1000)
        except ConfigError as exc:
            raise InvalidRequestError(str(exc)) from None
    raise InvalidRequestError(f"ready {text!r}: expected {KINDS}")


class NotReady(Exception):
    """Why a process did not become ready (one line)."""


# -- sd_notify ---------------------------------------------------------------------------------------------


class Notifier:
    """One process copy's NOTIFY_SOCKET. `accept(pid)` says whether a sender belongs to the copy's tree."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        name: str,
        accept: Callable[[int], bool],
        on_message: Callable[[dict[str, str], int], None],
    ) -> None:
        self.loop = loop
        self.name = name
        self.accept = accept
        self.on_message = on_message
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + name)
        loop.add_reader(self.sock.fileno(), self._read)

    @property
    def env(self) -> str:
        return f"NOTIFY_SOCKET=@{self.name}"

    def _read(self) -> None:
        for _ in range(64):  # bounded per wake: a chatty process cannot starve the loop
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("notify socket %s: %s", self.name, exc)
                return
            pid = 0
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[: struct.calcsize("3i")])[0]
            if not pid or not self.accept(pid):
                log.debug("notify socket %s: a message from pid %d, not of this process: ignored", self.name, pid)
                continue
            fields: dict[str, str] = {}
            for line in data.decode(errors="replace").split("\n"):
                key, sep, value = line.partition("=")
                if sep:
                    fields[key] = value
            self.on_message(fields, pid)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


# -- the checks ----------------------------------------------------------------------------------------------


async def wait_ready(
    spec: ReadySpec,
    *,
    timeout: float,
    alive: Callable[[], bool],
    notified: Optional[asyncio.Event] = None,
    log_path: str = "",
    log_offset: int = 0,
    log_uid: int = -1,
    default_port: int = 0,
) -> None:
    """Until the process is ready; NotReady with the reason if it dies first or `timeout` passes."""
    deadline = time.monotonic() + timeout

    async def until(cond: Callable[[], asyncio.Future[bool] | bool]) -> None:
        while True:
            if not alive():
                raise NotReady("it exited before it was ready")
            result = cond()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            if time.monotonic() >= deadline:
                raise NotReady(f"not ready within {timeout:g} s ({spec.text()})")
            await asyncio.sleep(PROBE_INTERVAL)

    if spec.kind == "none":
        return
    if spec.kind == "delay":
        end = time.monotonic() + spec.delay
        await until(lambda: time.monotonic() >= end)
        return
    if spec.kind == "notify":
        assert notified is not None
        while not notified.is_set():
            if not alive():
                raise NotReady("it exited before it sent READY=1")
            left = deadline - time.monotonic()
            if left <= 0:
                raise NotReady(f"no READY=1 within {timeout:g} s")
            try:
                await asyncio.wait_for(asyncio.shield(_event_waiter(notified)), min(left, 0.5))
            except asyncio.TimeoutError:
                pass
        return
    if spec.kind in ("tcp", "http"):
        port = spec.port or default_port
        if not port:
            raise NotReady(f"{spec.text()}: no port to check (give one, or hold a tcp socket with --listen)")
        probe = _tcp_probe if spec.kind == "tcp" else _http_probe
        await until(lambda: asyncio.ensure_future(probe(spec.host, port, spec.path)))
        return
    if spec.kind == "log":
        # Linear time whatever the pattern (a backtracking `^(a+)+$` would freeze pmond), and the log read with
        # the run user's rights (a path that leads elsewhere must not make the pattern an oracle on root's files).
        pattern = _native.Regex(spec.pattern)
        state = {"offset": log_offset, "partial": b""}
        await until(lambda: _log_matches(log_path, pattern, state, log_uid))
        return
    raise NotReady(f"unknown readiness {spec.kind}")


async def _event_waiter(event: asyncio.Event) -> bool:
    await event.wait()
    return True


async def _tcp_probe(host: str, port: int, _path: str) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


async def _http_probe(host: str, port: int, path: str) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1.0)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 2.0)
        parts = line.split()
        return len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()


def _log_matches(path: str, pattern: _native.Regex, state: dict[str, object], uid: int = -1) -> bool:
    """New complete lines of the log since the start of this copy; a truncated or rotated file starts over. The
    file is opened as `uid` (the process's run user; -1: pmond's own rights)."""
    try:
        fd = (
            fsas.open_as(uid, path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            if uid >= 0
            else os.open(path, os.O_RDONLY)
        )
        with open(fd, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            offset = int(state["offset"])  # type: ignore[call-overload]
            if size < offset:
                offset = 0
            fh.seek(offset)
            data = fh.read(1 << 20)
    except OSError:
        return False
    state["offset"] = offset + len(data)
    text = bytes(state["partial"]) + data  # type: ignore[call-overload]
    *lines, rest = text.split(b"\n")
    state["partial"] = rest[-65536:]
    return any(pattern.search(line) for line in lines)
