"""The two transports of the protocol (POSIX message queues, the default, and a unix stream socket), and how a
client knows that pmond is alive and that an endpoint really is pmond's.

Identity always comes from the kernel. MQ: pmond creates one request queue per uid, owned by that uid with
mode 0600, so whatever arrives on it was written by that uid (or root). A world-writable lobby queue only lets
a client ask for its queue (single-frame `hello` messages, nothing else); the client names a reply queue it
created, and pmond takes the caller's uid from that queue's owner (fstat), never from the message. Socket:
SO_PEERCRED.

Liveness comes from the kernel too, never from an IPC name existing: pmond writes `<data>/pmond.pid`
(pid, start time, state) once it holds the instance lock, and the client checks the pid is alive with that
start time and watches a pidfd of it while it waits, so a dead pmond is an error at once, never a hang.
Endpoints are trusted only when owned by pmond's uid (the pid file's owner, which must be root or the caller).

Limits per sender (docs/security.md): frames and bytes being reassembled, requests in flight, connections;
a half-sent message expires; abuse is logged at most once a minute per sender.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # no stub; see _Cleanup
import errno
import os
import select
import stat
import time
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import _native, fastjson
from ..errors import DaemonTimeoutError, DaemonUnavailableError, ProtocolError
from . import protocol

if TYPE_CHECKING:  # the CLI uses only the clients: asyncio would cost it ~70 ms of start-up
    import asyncio
    import socket
    from typing import Union

    Exchange = Union["_MQExchange", "_UnixExchange"]  # a request sent, its reply to read (Connection.send)


def _log() -> Any:
    import logging  # server side only: the CLI does not pay for it

    return logging.getLogger("pmond.ipc")


Handler = Callable[[int, dict[str, Any]], Awaitable[dict[str, Any]]]
# Queue memory is charged to the creating user against RLIMIT_MSGQUEUE (800 KiB by default, often not
# raisable): pmond pays 8 KiB per user's request queue (room for ~90 users; a root pmond lifts its own limit).
# Bigger messages are framed. A client's reply queue, while a command runs, takes 80 KiB if it can, the most
# an unprivileged user may ask (fs.mqueue msg_max 10, msgsize_max 8192): room for the whole `ls` of ~150
# processes, so that a reply pmond wrote during the CLI's start-up is all there, instead of pmond being
# woken for each 16 KiB (1-5 ms on a VM whose other vCPU sleeps). With the user's queue memory short (nine
# commands at once) or lower system limits, 16 KiB, which only costs round trips.
LOBBY_MAXMSG, LOBBY_MSGSIZE = 4, 1024
MQ_MAXMSG, MQ_MSGSIZE = 4, 2048
REPLY_MAXMSG, REPLY_MSGSIZE = 10, 8192
REPLY_SMALL_MAXMSG, REPLY_SMALL_MSGSIZE = 4, 4096
SEND_TIMEOUT = 5.0
LEN_SIZE = 4  # the unix transport's length prefix: big-endian, unsigned


def _len_prefix(n: int) -> bytes:
    return n.to_bytes(LEN_SIZE, "big")


def _len_of(header: bytes) -> int:
    return int.from_bytes(header, "big")


# Per sender (uid): what pmond holds for it at most.
MAX_IN_FLIGHT = 8  # requests being handled; its queue is not read meanwhile (back-pressure)
MAX_PENDING_MESSAGES = 4  # half-reassembled messages
MAX_PENDING_BYTES = 2 * protocol.MAX_REQUEST
REASSEMBLY_EXPIRY = 10.0  # seconds for all frames of one message to arrive
FRAMES_PER_WAKE = 16  # frames read from one queue before the loop serves the others
MAX_CONNECTIONS_PER_UID = 16
MAX_CONNECTIONS = 256  # root always gets one more
IDLE_TIMEOUT = 60.0  # a connection with no request in this long is closed
BODY_TIMEOUT = 10.0  # a message's bytes must arrive within this once its length did
ABUSE_LOG_INTERVAL = 60.0
RECLAIM_INTERVAL = 300.0  # seconds between looks for reply queues of dead clients
PID_FILE = "pmond.pid"


def request_queue_name(base: str, uid: int) -> str:
    return f"{base}.{uid}"


def reply_queue_prefix(base: str, uid: int) -> str:
    return f"{base}.r.{uid}."


class AbuseLog:
    """At most one warning per sender per minute, with the count of what was suppressed meanwhile."""

    def __init__(self, interval: float = ABUSE_LOG_INTERVAL) -> None:
        self.interval = interval
        self.last: dict[Any, float] = {}
        self.suppressed: dict[Any, int] = {}

    def warn(self, sender: Any, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self.last.get(sender, -self.interval) < self.interval:
            self.suppressed[sender] = self.suppressed.get(sender, 0) + 1
            return
        self.last[sender] = now
        more = self.suppressed.pop(sender, 0)
        suffix = f" ({more} more from this sender in the last minute)" if more else ""
        _log().warning(message + "%s", *args, suffix)


# ---------------------------------------------------------------------------------------------------------
# pmond's instance file: what a client needs to know that pmond is alive


def write_pid_file(data_directory: str, state: str, transport: str, endpoint: str) -> None:
    """Atomically (rename) so a reader never sees half a file; mode 0644 so that users' CLIs can read it. It
    names the endpoint, so that a client whose config would compute another default still finds pmond."""
    info = {
        "pid": os.getpid(),
        "start_time": _native.proc_start_time(os.getpid()),
        "uid": os.geteuid(),
        "state": state,
        "transport": transport,
        "endpoint": endpoint,
    }
    path = os.path.join(data_directory, PID_FILE)
    tmp = f"{path}.{os.getpid()}"
    data = fastjson.dumps(info).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        os.write(fd, data)
    except OSError as exc:
        os.close(fd)
        os.unlink(tmp)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        _rewrite_in_place(path, data)  # the disk is full: the old file's block is still ours to reuse
        return
    os.close(fd)
    os.replace(tmp, path)


def _rewrite_in_place(path: str, data: bytes) -> None:
    """Overwrite the existing pid file (no new block needed, so it works on a full disk) and cut it to size; a
    reader in between sees a broken file, i.e. no pmond, for a moment."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
            raise OSError(errno.EPERM, f"{path} is not pmond's pid file")
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def remove_pid_file(data_directory: str) -> None:
    try:
        os.unlink(os.path.join(data_directory, PID_FILE))
    except OSError:
        pass


class Instance:
    """A live pmond as its pid file names it, with a pidfd that says when it dies."""

    def __init__(self, pid: int, uid: int, pidfd: int, state: str, transport: str = "", endpoint: str = "") -> None:
        self.pid = pid
        self.uid = uid
        self.pidfd = pidfd
        self.state = state
        self.transport = transport
        self.endpoint = endpoint

    def alive(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


def find_instance(data_directory: str) -> Optional[Instance]:
    """The pmond serving this data directory, or None. Trusted only if the file is owned by root or by the
    caller and nobody else can write it (so another user cannot name a pid of their choosing)."""
    path = os.path.join(data_directory, PID_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022:
            return None
        info = fastjson.loads(os.read(fd, 4096) or b"{}")
        pid, start = int(info["pid"]), int(info["start_time"])
        state = str(info.get("state", "ready"))
        kind, endpoint = str(info.get("transport", "")), str(info.get("endpoint", ""))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    finally:
        os.close(fd)
    try:
        pidfd = _native.pidfd_open(pid)
    except OSError:
        return None
    try:  # checked after the pidfd is held: from now on the pid cannot be reused under us
        same = _native.proc_start_time(pid) == start
    except OSError:
        same = False
    if not same:
        os.close(pidfd)
        return None
    return Instance(pid, st.st_uid, pidfd, state, kind, endpoint)


def wait_for_instance(data_directory: str, timeout: float) -> Optional[Instance]:
    """A pmond that is starting (or about to write its pid file) becomes ready within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        inst = find_instance(data_directory)
        if inst is not None and inst.state == "ready":
            return inst
        if inst is not None:
            inst.close()
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.01)  # a starting pmond needs milliseconds; the deadline bounds it


# ---------------------------------------------------------------------------------------------------------
# server side (pmond)


class _Sender:
    """What pmond holds for one uid: its half-sent messages and the requests it has in flight."""

    def __init__(self) -> None:
        self.assembler = protocol.Reassembler(
            protocol.MAX_REQUEST, MAX_PENDING_MESSAGES, MAX_PENDING_BYTES, REASSEMBLY_EXPIRY
        )
        self.in_flight = 0


class MQServer:
    def __init__(
        self,
        base: str,
        handler: Handler,
        loop: asyncio.AbstractEventLoop,
        known_uids: Iterable[int] = (),
        remember_uid: Callable[[int], None] = lambda uid: None,
    ) -> None:
        self.base = base
        self.handler = handler
        self.loop = loop
        self.own_uid = os.geteuid()
        self.queues: dict[int, _native.MessageQueue] = {}
        self.lobby: Optional[_native.MessageQueue] = None
        self.senders: dict[int, _Sender] = {}
        self.known_uids = list(known_uids)
        self.remember_uid = remember_uid
        self.abuse = AbuseLog()
        self.tasks: set[asyncio.Task[None]] = set()
        self.reclaim_handle: Optional[asyncio.TimerHandle] = None

    def _create(self, name: str, mode: int, maxmsg: int = MQ_MAXMSG, msgsize: int = MQ_MSGSIZE) -> _native.MessageQueue:
        try:  # whatever has this name (a dead pmond's queue, a squatter's) is replaced: we hold the instance lock
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
        # Every user who had a queue gets a fresh one now, so nobody is left talking to a dead pmond's queue.
        for uid in sorted({self.own_uid, *self.known_uids}):
            try:
                self._queue_for(uid, fresh=True)
            except OSError as exc:
                _log().error("could not recreate the request queue of uid %d: %s", uid, exc)
        self.reclaim_reply_queues()

    def reclaim_reply_queues(self) -> int:
        """Remove reply queues whose client died before pmond saw its request (a CLI killed by SIGKILL at the
        wrong moment): found by listing the queues (root only), judged by whether the client's pid lives.
        Repeated every RECLAIM_INTERVAL; returns how many went."""
        if self.reclaim_handle is not None:
            self.reclaim_handle.cancel()
        self.reclaim_handle = self.loop.call_later(RECLAIM_INTERVAL, self.reclaim_reply_queues)
        try:
            names = _native.mq_list()
        except OSError:
            return 0  # not root: each client removes its own (and SIGTERM/SIGINT/SIGHUP still do)
        prefix = self.base.lstrip("/") + ".r."
        gone = 0
        for name in names:
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix) :].split(".")
            if len(parts) != 3 or not parts[1].isdigit():
                continue
            try:
                os.kill(int(parts[1]), 0)
                continue  # its client lives (or the pid is someone else's now: taken next time)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            _unlink("/" + name)
            gone += 1
        if gone:
            _log().info("removed %d reply queues of clients that died", gone)
        return gone

    def _still_ours(self, uid: int) -> bool:
        """Whether the name still leads to the queue we hold (nobody unlinked it and put another there)."""
        q = self.queues[uid]
        try:
            probe = _native.MessageQueue(q.name, read=False)
        except OSError:
            return False
        try:
            a, b = os.fstat(q.fileno()), os.fstat(probe.fileno())
            return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        finally:
            probe.close()

    def _queue_for(self, uid: int, fresh: bool = False) -> str:
        if uid in self.queues and not fresh and self._still_ours(uid):
            return request_queue_name(self.base, uid)
        if uid != self.own_uid and self.own_uid != 0:
            raise PermissionError(errno.EPERM, "this pmond serves only its own user")
        old = self.queues.pop(uid, None)
        if old is not None:
            self.loop.remove_reader(old.fileno())
            old.close()
        name = request_queue_name(self.base, uid)
        if uid not in self.known_uids and uid != self.own_uid:
            self.remember_uid(uid)  # before it exists: a crash right after still leaves it to reclaim
            self.known_uids.append(uid)
        q = self._create(name, 0o600)
        if uid != self.own_uid:
            q.fchown(uid, _primary_gid(uid))
        self.queues[uid] = q
        self.loop.add_reader(q.fileno(), self._drain, q, uid)
        return name

    async def drain(self, timeout: float) -> None:
        """Let requests being handled finish (bounded), so that their replies go out before we close."""
        import asyncio

        current = asyncio.current_task()
        pending = [t for t in self.tasks if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        if self.reclaim_handle is not None:
            self.reclaim_handle.cancel()
        for q in [self.lobby, *self.queues.values()]:
            if q is None:
                continue
            try:
                self.loop.remove_reader(q.fileno())
            except OSError:
                pass
            try:
                _native.MessageQueue.unlink(q.name)
            except OSError:
                pass
            q.close()
        self.queues.clear()
        self.lobby = None

    def _sender(self, uid: int) -> _Sender:
        sender = self.senders.get(uid)
        if sender is None:
            sender = self.senders[uid] = _Sender()
        return sender

    def _drain(self, q: _native.MessageQueue, uid: Optional[int]) -> None:
        """Read a bounded number of frames, so that one busy sender cannot starve the others."""
        for _ in range(FRAMES_PER_WAKE):
            try:
                frame = q.receive()
            except OSError as exc:
                _log().error("receive on %s failed: %s", q.name, exc)
                return
            if frame is None:
                return
            try:
                # the lobby: only single-frame hellos, nothing is reassembled for strangers
                payload = protocol.single_frame(frame) if uid is None else self._sender(uid).assembler.feed(frame)
                if payload is None:
                    continue
                msg = protocol.decode(payload, protocol.MAX_REQUEST)
                protocol.validate_request(msg)
            except ProtocolError as exc:
                self.abuse.warn(("mq", uid), "dropped a message on %s: %s", q.name, exc)
                continue
            self._dispatch(msg, uid, q)

    def _dispatch(self, msg: dict[str, Any], uid: Optional[int], q: _native.MessageQueue) -> None:
        if uid is not None:
            sender = self._sender(uid)
            sender.in_flight += 1
            if sender.in_flight >= MAX_IN_FLIGHT:  # back-pressure: stop reading its queue for now
                self.loop.remove_reader(q.fileno())
        task = self.loop.create_task(self._serve(msg, uid))
        self.tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, uid, q))

    def _done(self, task: asyncio.Task[None], uid: Optional[int], q: _native.MessageQueue) -> None:
        self.tasks.discard(task)
        if uid is None:
            return
        sender = self._sender(uid)
        sender.in_flight -= 1
        if sender.in_flight == MAX_IN_FLIGHT - 1 and self.queues.get(uid) is q:
            self.loop.add_reader(q.fileno(), self._drain, q, uid)

    def _open_reply(self, msg: dict[str, Any], uid: Optional[int]) -> tuple[_native.MessageQueue, int]:
        name = msg.get("reply_to")
        if not isinstance(name, str) or not name.startswith(self.base + ".r."):
            raise ProtocolError("request without a valid reply_to queue")
        q = _native.MessageQueue(name, read=False, write=True)
        owner = q.owner()[0]
        if uid is not None and owner == uid:
            # pmond holds it open now: the name goes, so a client killed from here on leaves nothing behind.
            try:
                _native.MessageQueue.unlink(name)
            except OSError:
                pass
        return q, owner

    async def _serve(self, msg: dict[str, Any], uid: Optional[int]) -> None:
        try:
            reply_q, owner = self._open_reply(msg, uid)
        except (OSError, ProtocolError) as exc:
            self.abuse.warn(("reply", uid), "cannot answer a request of uid %s: %s", uid, exc)
            return
        try:
            if uid is None:  # lobby: the only thing one may ask there is one's own queue
                if msg.get("cmd") != "hello":
                    self.abuse.warn(("lobby", owner), "uid %s sent %r on the lobby; dropped", owner, msg.get("cmd"))
                    return
                try:
                    reply = protocol.ok(msg["id"], {"queue": self._queue_for(owner)})
                except OSError as exc:  # PermissionError included
                    text = str(exc)
                    if exc.errno == errno.EMFILE:
                        text = "pmond is out of POSIX message queue memory (RLIMIT_MSGQUEUE); set ipc.transport: unix"
                    self.abuse.warn(("hello", owner), "no request queue for uid %s: %s", owner, text)
                    reply = protocol.error(msg["id"], "denied", text)
            elif owner != uid:
                self.abuse.warn(("owner", uid), "uid %s named a reply queue owned by uid %s; dropped", uid, owner)
                return
            else:
                reply = await self.handler(uid, msg)
            await self._send(reply_q, reply, owner)
        except Exception:  # never let one request take the server down or leave a client waiting blind
            _log().exception("request %s failed", msg.get("id"))
        finally:
            reply_q.close()

    async def _send(self, q: _native.MessageQueue, reply: dict[str, Any], owner: int) -> None:
        for frame in protocol.frames(reply["id"], protocol.encode(reply), q.msgsize):
            deadline = time.monotonic() + SEND_TIMEOUT
            while not q.send(frame):
                if time.monotonic() > deadline or not await _writable(self.loop, q.fileno(), deadline):
                    # a client that never reads (or fills its own reply queue) must not write our log per request
                    self.abuse.warn(
                        ("gone", owner), "uid %s does not read its replies: reply %s dropped", owner, reply["id"]
                    )
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
        self.connections: dict[int, int] = {}  # uid -> open connections
        self.abuse = AbuseLog()
        self.busy = 0  # requests being handled or answered

    async def start(self) -> None:
        import asyncio

        try:  # whatever is at our path (a dead pmond's socket, a squatter's file) is replaced
            st = os.lstat(self.path)
            if stat.S_ISDIR(st.st_mode):
                raise OSError(errno.EISDIR, f"{self.path} is a directory")
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        old = os.umask(0o111)  # anyone may connect; SO_PEERCRED decides what they may do
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path, limit=protocol.MAX_REQUEST)
        finally:
            os.umask(old)

    async def drain(self, timeout: float) -> None:
        import asyncio

        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.005)  # a reply being written: milliseconds, bounded by the deadline

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _admit(self, uid: int) -> bool:
        total = sum(self.connections.values())
        mine = self.connections.get(uid, 0)
        if uid != 0 and (mine >= MAX_CONNECTIONS_PER_UID or total >= MAX_CONNECTIONS):
            return False
        if uid == 0 and total >= MAX_CONNECTIONS + 1 + mine:  # root is never locked out by others
            return False
        self.connections[uid] = mine + 1
        return True

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio
        import socket  # here: the CLI's MQ path never needs them (~5 ms of its start-up)
        import struct

        sock = writer.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if not self._admit(uid):
            self.abuse.warn(("conn", uid), "uid %s has too many connections; refused", uid)
            writer.close()
            return
        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(LEN_SIZE), IDLE_TIMEOUT)
                size = _len_of(header)
                if size > protocol.MAX_REQUEST:
                    self.abuse.warn(("size", uid), "uid %s sent an oversized request; closing", uid)
                    return
                body = await asyncio.wait_for(reader.readexactly(size), BODY_TIMEOUT)
                try:
                    msg = protocol.decode(body, protocol.MAX_REQUEST)
                    protocol.validate_request(msg)
                except ProtocolError as exc:
                    self.abuse.warn(("bad", uid), "uid %s sent a bad request: %s", uid, exc)
                    reply = protocol.error("", "protocol", str(exc))
                else:
                    self.busy += 1
                    try:
                        reply = await self.handler(uid, msg)
                        data = protocol.encode(reply)
                        writer.write(_len_prefix(len(data)) + data)
                        await asyncio.wait_for(writer.drain(), SEND_TIMEOUT)
                    finally:
                        self.busy -= 1
                    continue
                data = protocol.encode(reply)
                writer.write(_len_prefix(len(data)) + data)
                await asyncio.wait_for(writer.drain(), SEND_TIMEOUT)
        except (EOFError, ConnectionError, asyncio.TimeoutError):  # IncompleteReadError is an EOFError
            pass
        finally:
            self.connections[uid] -= 1
            if not self.connections[uid]:
                del self.connections[uid]
            writer.close()


# ---------------------------------------------------------------------------------------------------------
# client side (pmon3)


class _Cleanup:
    """While a reply queue of ours exists, SIGTERM/SIGINT/SIGHUP unwind through `finally` (which removes it)
    instead of killing us on the spot. Through `_signal`, the C module under `signal`: importing `signal`
    builds its enums (~0.9 ms of every CLI command); plain numbers and handlers are all this needs."""

    SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGQUIT)

    def __enter__(self) -> _Cleanup:
        self.saved: dict[int, Any] = {}
        try:
            for sig in self.SIGNALS:
                self.saved[sig] = _signal.signal(sig, self._raise)
        except ValueError:  # not the main thread: signals stay as they are
            pass
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt if signum == _signal.SIGINT else SystemExit(128 + signum)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            _signal.signal(sig, handler)


def _dead(name: str) -> DaemonUnavailableError:
    return DaemonUnavailableError(f"pmond died while handling the request ({name})")


class Connection:
    """A client of the pmond serving a data directory, on the transport and endpoint its pid file names (the
    config's are the fallback): what the CLI and pmon3.Client hold."""

    def __init__(self, data_directory: str, transport: str, mq_base: str, socket_path: str) -> None:
        self.data_directory = data_directory
        self.transport = transport
        self.endpoints = {"mq": mq_base, "unix": socket_path}
        self.inner: Any = None

    def connect(self, timeout: float) -> None:
        inst = require_instance(self.data_directory, timeout)
        kind = inst.transport if inst.transport in self.endpoints else self.transport
        endpoint = inst.endpoint or self.endpoints[kind]
        self.inner = MQClient(endpoint, inst) if kind == "mq" else UnixClient(endpoint, inst)
        self.inner.connect(timeout)

    def send(self, msg: dict[str, Any], timeout: float) -> Exchange:
        """Send `msg` now and read its reply later: `result(timeout)` then `close()`, or `close()` alone to
        drop it."""
        if self.inner is None:
            self.connect(timeout)
        exchange: Exchange = self.inner.send(msg, timeout)
        return exchange

    def stale(self) -> bool:
        """Whether the pmond this connection was made to has died (nothing sent yet can have reached it)."""
        instance = getattr(self.inner, "instance", None)
        return instance is not None and not instance.alive()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
            self.inner = None


class MQClient:
    def __init__(self, base: str, instance: Instance) -> None:
        self.base = base
        self.uid = os.geteuid()
        self.request_q: Optional[_native.MessageQueue] = None
        self.instance: Optional[Instance] = instance

    def connect(self, timeout: float) -> None:
        try:
            self._connect(timeout)
        except OSError as exc:
            if exc.errno == errno.EMFILE:
                raise _out_of_queue_memory() from None
            raise

    def _trusted(self, q: _native.MessageQueue, owner: int, modes: tuple[int, ...]) -> bool:
        uid, _gid, mode = q.owner()
        return uid == owner and (mode & 0o777) in modes

    def _connect(self, timeout: float) -> None:
        """Open our request queue if pmond made it (owned by us, 0600); else ask the lobby, which must be
        pmond's, for a fresh one. A queue somebody else made under our name is never written to."""
        assert self.instance is not None
        name = request_queue_name(self.base, self.uid)
        try:
            q = _native.MessageQueue(name, read=False)
            if self._trusted(q, self.uid, (0o600,)):
                self.request_q = q
                return
            q.close()
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.EACCES):
                raise DaemonUnavailableError(f"could not open {name}: {exc.strerror}") from None
        try:
            lobby = _native.MessageQueue(self.base, read=False)
        except OSError:
            raise DaemonUnavailableError("pmond must be running (its queue is missing: restart pmond)") from None
        try:
            if not self._trusted(lobby, self.instance.uid, (0o622, 0o600)):
                raise DaemonUnavailableError(f"{self.base} is not pmond's queue: refusing to use it")
            data = self._exchange(lobby, protocol.request("hello"), timeout)["data"]
        finally:
            lobby.close()
        try:
            q = _native.MessageQueue(str(data["queue"]), read=False)
        except OSError as exc:
            raise DaemonUnavailableError(f"could not open {data['queue']}: {exc.strerror}") from None
        if not self._trusted(q, self.uid, (0o600,)):
            q.close()
            raise DaemonUnavailableError(f"{data['queue']} is not pmond's queue: refusing to use it")
        self.request_q = q

    def send(self, msg: dict[str, Any], timeout: float) -> _MQExchange:
        """Send `msg` now; its reply is read by the exchange's `result`, later (the caller must `close` it)."""
        if self.request_q is None:
            self.connect(timeout)
        assert self.request_q is not None
        return _MQExchange(self, self.request_q, msg, timeout)

    def _exchange(self, q: _native.MessageQueue, msg: dict[str, Any], timeout: float) -> Any:
        exchange = _MQExchange(self, q, msg, timeout)
        try:
            return exchange.result(timeout)
        finally:
            exchange.close()

    def close(self) -> None:
        if self.request_q is not None:
            self.request_q.close()
            self.request_q = None
        if self.instance is not None:
            self.instance.close()
            self.instance = None


class _MQExchange:
    """One request sent, its reply still to come, on a reply queue of our own made for this exchange (removed
    by `close`, which every sender calls: until then SIGTERM/SIGINT/SIGHUP unwind instead of killing us)."""

    def __init__(self, client: MQClient, q: _native.MessageQueue, msg: dict[str, Any], timeout: float) -> None:
        assert client.instance is not None
        self.instance = client.instance
        self.msg = msg
        self.name = f"{reply_queue_prefix(client.base, client.uid)}{os.getpid()}.{os.urandom(4).hex()}"
        self.cleanup: Optional[_Cleanup] = _Cleanup().__enter__()
        self.reply_q: Optional[_native.MessageQueue] = None
        try:
            self.reply_q = _reply_queue(self.name)
            msg["reply_to"] = self.name
            deadline = time.monotonic() + timeout
            for frame in protocol.frames(msg["id"], protocol.encode(msg), q.msgsize):
                while not q.send(frame):
                    if not _wait(
                        q.fileno(), select.POLLOUT, self.instance.pidfd, min(deadline, time.monotonic() + SEND_TIMEOUT)
                    ):
                        if not self.instance.alive():
                            raise _dead(msg.get("cmd", "?"))
                        raise DaemonTimeoutError("timed out sending the request: is pmond stuck?")
        except BaseException:
            self.close()
            raise

    def result(self, timeout: float, raw_data: bool = False) -> Any:
        """The reply (`data` as pmond's JSON text with raw_data, see decode_raw_data)."""
        assert self.reply_q is not None
        deadline = time.monotonic() + timeout
        assembler = protocol.Reassembler()
        while True:
            got = self.reply_q.receive()
            if got is None:
                if not _wait(self.reply_q.fileno(), select.POLLIN, self.instance.pidfd, deadline):
                    if not self.instance.alive():
                        raise _dead(self.msg.get("cmd", "?"))
                    raise DaemonTimeoutError(f"no answer from pmond within {timeout:.0f} s")
                continue
            payload = assembler.feed(got)
            if payload is None:
                continue
            reply = _decode(payload, raw_data)
            if reply.get("id") == self.msg["id"]:
                return reply

    def close(self) -> None:
        if self.reply_q is not None:
            _unlink(self.name)
            self.reply_q.close()
            self.reply_q = None
        if self.cleanup is not None:
            self.cleanup.__exit__()
            self.cleanup = None


class _UnixExchange:
    """One request sent on a pmond socket, its reply still to come. Closed unread, it closes the socket: the
    reply must not be taken for the answer to the next request."""

    def __init__(self, client: UnixClient) -> None:
        self.client = client
        self.done = False

    def result(self, timeout: float, raw_data: bool = False) -> Any:
        """The reply (`data` as pmond's JSON text with raw_data, see decode_raw_data)."""
        deadline = time.monotonic() + timeout
        size = _len_of(self.client._read(LEN_SIZE, deadline))
        reply = _decode(self.client._read(size, deadline), raw_data)
        self.done = True
        return reply

    def close(self) -> None:
        if not self.done and self.client.sock is not None:
            self.client.sock.close()
            self.client.sock = None


def _reply_queue(name: str) -> _native.MessageQueue:
    """A new reply queue, 0600: the big one, else the small one (see REPLY_MAXMSG)."""

    def make(maxmsg: int, msgsize: int) -> _native.MessageQueue:
        return _native.MessageQueue(
            name, create=True, exclusive=True, mode=0o600, maxmsg=maxmsg, msgsize=msgsize, write=False
        )

    try:
        return make(REPLY_MAXMSG, REPLY_MSGSIZE)
    except OSError as exc:
        # EMFILE: over RLIMIT_MSGQUEUE (or out of descriptors, which the small one reports the same way);
        # EINVAL: over the system's msg_max or msgsize_max.
        if exc.errno not in (errno.EMFILE, errno.EINVAL):
            raise
    try:
        return make(REPLY_SMALL_MAXMSG, REPLY_SMALL_MSGSIZE)
    except OSError as exc:
        if exc.errno == errno.EMFILE:
            raise _out_of_queue_memory() from None
        raise


def _out_of_queue_memory() -> DaemonUnavailableError:
    return DaemonUnavailableError(
        "out of POSIX message queue memory for this user (RLIMIT_MSGQUEUE, see ulimit -q): "
        "too many pmon3 clients at once, or set ipc.transport: unix"
    )


def decode_raw_data(data: bytes, limit: int = protocol.MAX_MESSAGE) -> tuple[dict[str, Any], Optional[str]]:
    """A reply whose `data` is wanted as JSON text, only to be printed: the envelope decoded and checked as
    `protocol.decode` does, `data` left as pmond wrote it (the compact text `json.dumps(..., separators=(",", ":"))`
    gives). Decoding 10,000 records only to encode them again costs `ls --json` a fifth of its time. The
    text is None when the reply has no `data`."""
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {limit}")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise ProtocolError("malformed message: UnicodeDecodeError") from None
    split = _native.json_take(text, "data")
    if split is None:  # no `data`, or written in a way the scan does not take (an escaped name)
        msg = protocol.decode(data, limit)
        return msg, fastjson.dumps(msg.pop("data")) if "data" in msg else None
    return protocol.decode(split[0].encode(), limit), split[1]


def _decode(payload: bytes, raw_data: bool) -> dict[str, Any]:
    if not raw_data:
        return protocol.decode(payload)
    reply, text = decode_raw_data(payload)
    reply["data"] = text
    return reply


def _wait(fd: int, event: int, pidfd: int, deadline: float) -> bool:
    """Until `fd` is ready (True), pmond dies or the deadline passes (False)."""
    poller = select.poll()
    poller.register(fd, event)
    poller.register(pidfd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        ready = dict(poller.poll(left * 1000))
        if pidfd in ready:
            return False
        if fd in ready:
            return True


def _wait_dead(instance: Instance, timeout: float) -> bool:
    """A dying pmond closes its sockets a moment before its pidfd says so."""
    return bool(select.select([instance.pidfd], [], [], timeout)[0])


def _unlink(name: str) -> None:
    try:
        _native.MessageQueue.unlink(name)
    except OSError:
        pass


def require_instance(data_directory: str, timeout: float) -> Instance:
    inst = find_instance(data_directory)
    if inst is not None and inst.state != "ready":
        inst.close()
        inst = wait_for_instance(data_directory, min(timeout, 15.0))
    if inst is None:
        raise DaemonUnavailableError("pmond must be running")
    return inst


class UnixClient:
    def __init__(self, path: str, instance: Instance) -> None:
        self.path = path
        self.sock: Optional[socket.socket] = None
        self.instance: Optional[Instance] = instance

    def connect(self, timeout: float) -> None:
        assert self.instance is not None
        try:
            st = os.lstat(self.path)
        except OSError:
            raise DaemonUnavailableError("pmond must be running (its socket is missing: restart pmond)") from None
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != self.instance.uid:
            raise DaemonUnavailableError(f"{self.path} is not pmond's socket: refusing to use it")
        import socket  # here: the CLI's MQ path never needs them (~5 ms of its start-up)
        import struct

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise DaemonUnavailableError(
                f"pmond must be running (cannot connect to {self.path}: {exc.strerror})"
            ) from None
        # The file checked above could have been replaced before connect (pmond restarting in a shared
        # directory): the kernel says who listens, and nothing is sent unless it is pmond itself.
        pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        if (pid, uid) != (self.instance.pid, self.instance.uid):
            sock.close()
            raise DaemonUnavailableError(f"{self.path} is not pmond's socket: refusing to use it")
        self.sock = sock

    def send(self, msg: dict[str, Any], timeout: float) -> _UnixExchange:
        """Send `msg` now; its reply is read by the exchange's `result`, later (the caller must `close` it)."""
        if self.sock is None:
            self.connect(timeout)
        assert self.sock is not None
        import socket

        data = protocol.encode(msg)
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(_len_prefix(len(data)) + data)
        except socket.timeout:
            raise DaemonTimeoutError(f"no answer from pmond within {timeout:.0f} s") from None
        return _UnixExchange(self)

    def _read(self, n: int, deadline: float) -> bytes:
        assert self.sock is not None and self.instance is not None
        buf = bytearray()
        while len(buf) < n:
            if not _wait(self.sock.fileno(), select.POLLIN, self.instance.pidfd, deadline):
                if not self.instance.alive():
                    raise _dead("socket")
                raise DaemonTimeoutError("no answer from pmond in time")
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                if not _wait_dead(self.instance, 1.0):
                    raise DaemonUnavailableError("pmond closed the connection")
                raise _dead("socket")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.instance is not None:
            self.instance.close()
            self.instance = None
