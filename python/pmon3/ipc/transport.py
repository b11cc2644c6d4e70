"""The two transports of the protocol: POSIX message queues (default) and a unix stream socket.

Identity always comes from the kernel. MQ: the daemon creates one request queue per uid, owned by that uid
with mode 0600, so whatever arrives on it was written by that uid (or root). A world-writable lobby queue only
lets a client ask for its queue: the client names a reply queue it created, and the daemon takes the caller's
uid from that queue's owner (fstat), never from the message. Socket: SO_PEERCRED.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import _native
from ..errors import DaemonTimeoutError, DaemonUnavailableError, ProtocolError
from . import protocol

if TYPE_CHECKING:  # the CLI uses only the clients: asyncio would cost it ~70 ms of start-up
    import asyncio


def _log() -> Any:
    import logging  # server side only: the CLI does not pay for it

    return logging.getLogger("pmond.ipc")


Handler = Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]
# Queue memory is charged to the creating user against RLIMIT_MSGQUEUE (800 KiB by default, often not
# raisable): pmond pays 8 KiB per user's request queue (room for ~90 users), a client 16 KiB for its reply
# queue while a command runs. Bigger messages are framed, so small queues only cost round trips.
LOBBY_MAXMSG, LOBBY_MSGSIZE = 4, 1024
MQ_MAXMSG, MQ_MSGSIZE = 4, 2048
REPLY_MAXMSG, REPLY_MSGSIZE = 4, 4096
SEND_TIMEOUT = 5.0
_LEN = struct.Struct("!I")


def request_queue_name(base: str, uid: int) -> str:
    return f"{base}.{uid}"


def reply_queue_prefix(base: str, uid: int) -> str:
    return f"{base}.r.{uid}."


# ---------------------------------------------------------------------------------------------------------
# server side (pmond)


class MQServer:
    def __init__(self, base: str, handler: Handler, loop: asyncio.AbstractEventLoop) -> None:
        self.base = base
        self.handler = handler
        self.loop = loop
        self.own_uid = os.geteuid()
        self.queues: dict[int, _native.MessageQueue] = {}
        self.lobby: Optional[_native.MessageQueue] = None
        self.assembler = protocol.Reassembler()
        self.tasks: set[asyncio.Task[None]] = set()

    def _create(self, name: str, mode: int, maxmsg: int = MQ_MAXMSG, msgsize: int = MQ_MSGSIZE) -> _native.MessageQueue:
        try:  # a queue left by a dead daemon: we hold the instance lock, so it is ours to replace
            _native.MessageQueue.unlink(name)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        return _native.MessageQueue(
            name, create=True, exclusive=True, mode=mode, maxmsg=maxmsg, msgsize=msgsize, write=False
        )

    def start(self) -> None:
        # Others may only write to the lobby; its messages are never trusted for identity.
        self.lobby = self._create(self.base, 0o622 if self.own_uid == 0 else 0o600, LOBBY_MAXMSG, LOBBY_MSGSIZE)
        self.loop.add_reader(self.lobby.fileno(), self._drain, self.lobby, None)
        self._queue_for(self.own_uid)

    def _queue_for(self, uid: int) -> str:
        if uid not in self.queues:
            if uid != self.own_uid and self.own_uid != 0:
                raise PermissionError("this pmond serves only its own user")
            name = request_queue_name(self.base, uid)
            q = self._create(name, 0o600)
            if uid != self.own_uid:
                q.fchown(uid, _primary_gid(uid))
            self.queues[uid] = q
            self.loop.add_reader(q.fileno(), self._drain, q, uid)
        return request_queue_name(self.base, uid)

    def close(self) -> None:
        for q in [self.lobby, *self.queues.values()]:
            if q is None:
                continue
            self.loop.remove_reader(q.fileno())
            try:
                _native.MessageQueue.unlink(q.name)
            except OSError:
                pass
            q.close()
        self.queues.clear()
        self.lobby = None

    def _drain(self, q: _native.MessageQueue, uid: Optional[int]) -> None:
        while True:
            try:
                frame = q.receive()
            except OSError as exc:
                _log().error("receive on %s failed: %s", q.name, exc)
                return
            if frame is None:
                return
            try:
                payload = self.assembler.feed(frame)
                if payload is None:
                    continue
                msg = protocol.decode(payload, protocol.MAX_REQUEST)
                protocol.validate_request(msg)
            except ProtocolError as exc:
                _log().warning("dropped a message on %s: %s", q.name, exc)
                continue
            task = self.loop.create_task(self._serve(msg, uid))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _open_reply(self, msg: dict[str, Any]) -> tuple[_native.MessageQueue, int]:
        name = msg.get("reply_to")
        if not isinstance(name, str) or not name.startswith(self.base + ".r."):
            raise ProtocolError("request without a valid reply_to queue")
        q = _native.MessageQueue(name, read=False, write=True)
        owner = q.owner()
        return q, owner[0]

    async def _serve(self, msg: dict[str, Any], uid: Optional[int]) -> None:
        try:
            reply_q, owner = self._open_reply(msg)
        except (OSError, ProtocolError) as exc:
            _log().warning("cannot answer request %s: %s", msg.get("id"), exc)
            return
        try:
            if uid is None:  # lobby: the only thing one may ask there is one's own queue
                if msg.get("cmd") != "hello":
                    return
                try:
                    reply = protocol.ok(msg["id"], {"queue": self._queue_for(owner)})
                except OSError as exc:  # PermissionError included
                    text = str(exc)
                    if exc.errno == errno.EMFILE:
                        text = "pmond is out of POSIX message queue memory (RLIMIT_MSGQUEUE); set ipc.transport: unix"
                    _log().error("no request queue for uid %s: %s", owner, text)
                    reply = protocol.error(msg["id"], "denied", text)
            elif owner != uid:
                _log().warning("uid %s named a reply queue owned by uid %s; dropped", uid, owner)
                return
            else:
                reply = await self.handler(uid, msg)
            await self._send(reply_q, reply)
        except Exception:  # never let one request take the server down or leave a client waiting blind
            _log().exception("request %s failed", msg.get("id"))
        finally:
            reply_q.close()

    async def _send(self, q: _native.MessageQueue, reply: dict[str, Any]) -> None:
        for frame in protocol.frames(reply["id"], protocol.encode(reply), q.msgsize):
            deadline = time.monotonic() + SEND_TIMEOUT
            while not q.send(frame):
                if time.monotonic() > deadline or not await _writable(self.loop, q.fileno(), deadline):
                    _log().warning("client gone: reply %s dropped", reply["id"])
                    return


def _primary_gid(uid: int) -> int:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return os.getegid()  # the queue is 0600: its group grants nothing


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, deadline: float) -> bool:
    import asyncio

    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_writer(fd)


class UnixServer:
    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.server: Optional[asyncio.AbstractServer] = None

    async def start(self) -> None:
        if os.path.exists(self.path):  # stale: we hold the instance lock
            os.unlink(self.path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        old = os.umask(0o111)  # anyone may connect; SO_PEERCRED decides what they may do
        try:
            import asyncio

            self.server = await asyncio.start_unix_server(self._client, path=self.path)
        finally:
            os.umask(old)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        try:
            while True:
                size = _LEN.unpack(await reader.readexactly(_LEN.size))[0]
                if size > protocol.MAX_REQUEST:
                    _log().warning("uid %s sent an oversized request; closing", uid)
                    return
                try:
                    msg = protocol.decode(await reader.readexactly(size), protocol.MAX_REQUEST)
                    protocol.validate_request(msg)
                except ProtocolError as exc:
                    reply = protocol.error("", "protocol", str(exc))
                else:
                    reply = await self.handler(uid, msg)
                data = protocol.encode(reply)
                writer.write(_LEN.pack(len(data)) + data)
                await writer.drain()
        except (EOFError, ConnectionError):  # asyncio.IncompleteReadError is an EOFError
            pass
        finally:
            writer.close()


# ---------------------------------------------------------------------------------------------------------
# client side (pmon3)


class MQClient:
    def __init__(self, base: str) -> None:
        self.base = base
        self.uid = os.geteuid()
        self.request_q: Optional[_native.MessageQueue] = None

    def connect(self, timeout: float) -> None:
        try:
            self._connect(timeout)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise DaemonUnavailableError(
                    "out of POSIX message queue memory for this user (RLIMIT_MSGQUEUE, see ulimit -q): "
                    "too many pmon3 clients at once, or set ipc.transport: unix"
                ) from None
            raise

    def _connect(self, timeout: float) -> None:
        """Open our request queue, asking the daemon's lobby for it when it does not exist yet."""
        name = request_queue_name(self.base, self.uid)
        try:
            self.request_q = _native.MessageQueue(name, read=False)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES):
                raise DaemonUnavailableError(f"could not open {name}: {exc.strerror}") from None
        try:
            lobby = _native.MessageQueue(self.base, read=False)
        except OSError as exc:
            raise DaemonUnavailableError(f"pmond is not running (no queue {self.base}: {exc.strerror})") from None
        try:
            data = self._exchange(lobby, protocol.request("hello"), timeout)["data"]
        finally:
            lobby.close()
        try:
            self.request_q = _native.MessageQueue(str(data["queue"]), read=False)
        except OSError as exc:
            raise DaemonUnavailableError(f"could not open {data['queue']}: {exc.strerror}") from None

    def call(self, msg: dict[str, Any], timeout: float) -> Any:
        if self.request_q is None:
            self.connect(timeout)
        assert self.request_q is not None
        return self._exchange(self.request_q, msg, timeout)

    def _exchange(self, q: _native.MessageQueue, msg: dict[str, Any], timeout: float) -> Any:
        """One request, one reply, on a reply queue of our own made for this exchange."""
        name = f"{reply_queue_prefix(self.base, self.uid)}{os.getpid()}.{os.urandom(4).hex()}"
        reply_q = _native.MessageQueue(
            name, create=True, exclusive=True, mode=0o600, maxmsg=REPLY_MAXMSG, msgsize=REPLY_MSGSIZE, write=False
        )
        linked = True
        try:
            msg["reply_to"] = name
            deadline = time.monotonic() + timeout
            for frame in protocol.frames(msg["id"], protocol.encode(msg), q.msgsize):
                if not q.send_timeout(frame, min(SEND_TIMEOUT, max(0.0, deadline - time.monotonic()))):
                    raise DaemonTimeoutError("timed out sending the request: is pmond alive?")
            assembler = protocol.Reassembler()
            while True:
                left = deadline - time.monotonic()
                got = reply_q.receive_timeout(left) if left > 0 else None
                if got is None:
                    raise DaemonTimeoutError(f"no answer from pmond within {timeout:.0f} s")
                frame = got
                if linked:  # pmond holds the queue open now: drop the name so a killed client leaves nothing
                    _unlink(name)
                    linked = False
                payload = assembler.feed(frame)
                if payload is None:
                    continue
                reply = protocol.decode(payload)
                if reply.get("id") == msg["id"]:
                    return reply
        finally:
            if linked:
                _unlink(name)
            reply_q.close()

    def close(self) -> None:
        if self.request_q is not None:
            self.request_q.close()
            self.request_q = None


def _unlink(name: str) -> None:
    try:
        _native.MessageQueue.unlink(name)
    except OSError:
        pass


class UnixClient:
    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: Optional[socket.socket] = None

    def connect(self, timeout: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise DaemonUnavailableError(
                f"pmond is not running (cannot connect to {self.path}: {exc.strerror})"
            ) from None
        self.sock = sock

    def call(self, msg: dict[str, Any], timeout: float) -> Any:
        if self.sock is None:
            self.connect(timeout)
        assert self.sock is not None
        self.sock.settimeout(timeout)
        data = protocol.encode(msg)
        try:
            self.sock.sendall(_LEN.pack(len(data)) + data)
            size = _LEN.unpack(self._read(_LEN.size))[0]
            return protocol.decode(self._read(size))
        except socket.timeout:
            raise DaemonTimeoutError(f"no answer from pmond within {timeout:.0f} s") from None

    def _read(self, n: int) -> bytes:
        assert self.sock is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise DaemonUnavailableError("pmond closed the connection")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
