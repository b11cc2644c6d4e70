"""The attacker's side of tests/security, run as a real unprivileged user (secutil.attack / secutil.Held):
`python -c <this file> OP '<json params>'`. It talks to the kernel objects directly (queues, sockets, files)
with pmon3's own framing, and prints one JSON report per line on stdout (an operation that holds something
prints `ready` first, then waits for a line on stdin before it reports).
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import resource
import select
import socket
import struct
import sys
import time
from typing import Any, Callable, Optional

from pmon3 import _native
from pmon3.ipc import protocol, transport

LEN = struct.Struct("!I")
OPS: dict[str, Callable[..., Any]] = {}


def op(fn: Callable[..., Any]) -> Callable[..., Any]:
    """An operation of this script; parameters it does not take (the tests pass all endpoints) are ignored."""
    import inspect

    known = set(inspect.signature(fn).parameters)

    def call(**params: Any) -> Any:
        return fn(**{k: v for k, v in params.items() if k in known})

    OPS[fn.__name__] = call
    return fn


def report(data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def wait_for_go() -> dict[str, Any]:
    line = sys.stdin.readline()
    return json.loads(line) if line.strip() else {}


def more_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- the CLI ---------------------------------------------------------------------------------------------------


@op
def cli(argvs: list[list[str]]) -> Any:
    """Each argv through the real CLI entry point (pmon3.cli.main), one after the other in this process: what
    `pmon3 ARGV` prints and its exit status, without an interpreter start per command."""
    from pmon3.cli import main as cli_main

    results = []
    for argv in argvs:
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape", write_through=True)
        err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape", write_through=True)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            cli_main(list(argv))
            rc = 0
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except BaseException as exc:  # noqa: BLE001 - reported, never hidden: a test asserts on it
            import traceback

            err.write("".join(traceback.format_exception(exc)))
            rc = 99
        finally:
            sys.stdout, sys.stderr = saved
        results.append(
            {
                "rc": rc,
                "out": out.buffer.getvalue().decode(errors="surrogateescape"),  # type: ignore[attr-defined]
                "err": err.buffer.getvalue().decode(errors="surrogateescape"),  # type: ignore[attr-defined]
            }
        )
    return results


# -- mq ------------------------------------------------------------------------------------------------------


def reply_queue(base: str) -> _native.MessageQueue:
    name = f"{transport.reply_queue_prefix(base, os.geteuid())}{os.getpid()}.{os.urandom(4).hex()}"
    return _native.MessageQueue(
        name, create=True, exclusive=True, mode=0o600, maxmsg=transport.REPLY_MAXMSG,
        msgsize=transport.REPLY_MSGSIZE,
    )  # fmt: skip


def own_queue(data: str, base: str) -> _native.MessageQueue:
    """The request queue pmond made for us, the way the real client gets it (hello on the lobby if needed)."""
    conn = transport.Connection(data, "mq", base, "")
    conn.connect(10)
    q: _native.MessageQueue = conn.inner.request_q
    conn.inner.request_q = None  # ours now
    conn.close()
    return q


def send_message(q: _native.MessageQueue, msg: dict[str, Any]) -> None:
    for frame in protocol.frames(msg["id"], protocol.encode(msg), q.msgsize):
        assert q.send_timeout(frame, 10), "pmond does not read its queue"


def receive_all(q: _native.MessageQueue, timeout: float = 0.0) -> list[dict[str, Any]]:
    """The replies on a reply queue (waiting up to `timeout` for the first one)."""
    out: list[dict[str, Any]] = []
    assembler = protocol.Reassembler()
    deadline = time.monotonic() + timeout
    while True:
        frame = q.receive()
        if frame is None:
            left = deadline - time.monotonic()
            if left <= 0 or out:
                return out
            frame = q.receive_timeout(left)
            if frame is None:
                return out
        payload = assembler.feed(frame)
        if payload is not None:
            out.append(protocol.decode(payload))


def barrier(target: _native.MessageQueue, base: str, lobby: bool) -> bool:
    """A request pmond answers after everything sent before it on `target` was handled: pmond reads a queue in
    order and starts one task per message in order; a dropped message is dropped before the next starts."""
    rq = reply_queue(base)
    try:
        msg = protocol.request("hello" if lobby else "version", reply_to=rq.name)
        send_message(target, msg)
        return any(r.get("id") == msg["id"] for r in receive_all(rq, 15))
    finally:
        try:
            _native.MessageQueue.unlink(rq.name)  # pmond unlinks the name of a queue it answers into
        except OSError:
            pass
        rq.close()


@op
def mq_send(data: str, base: str, messages: list[dict[str, Any]], lobby: bool = False, frames: Any = None) -> Any:
    """Send `messages` (their reply_to "own" becomes a fresh reply queue of ours, any other name is kept) on our
    request queue or the lobby, then a barrier; report what each of our reply queues received."""
    target = _native.MessageQueue(base, read=False) if lobby else own_queue(data, base)
    ours: list[Optional[_native.MessageQueue]] = []
    try:
        for hexed in frames or []:
            assert target.send_timeout(bytes.fromhex(hexed), 10)
        for msg in messages:
            msg = {**protocol.request("x"), **msg}
            rq = None
            if msg.get("reply_to") == "own":
                rq = reply_queue(base)
                msg["reply_to"] = rq.name
            ours.append(rq)
            body = protocol.encode(msg)
            if lobby:  # the lobby takes single frames only
                target.send_timeout(protocol.frames(msg["id"], body, 1 << 20)[0], 10)
            else:
                send_message(target, msg)
        answered = barrier(target, base, lobby)
        got = [receive_all(rq) if rq is not None else [] for rq in ours]
        return {"barrier": answered, "replies": got}
    finally:
        for rq in ours:
            if rq is not None:
                try:
                    _native.MessageQueue.unlink(rq.name)
                except OSError:
                    pass
                rq.close()
        target.close()


@op
def mq_raw(data: str, base: str, bodies: list[str], lobby: bool = False, expect: Optional[list[bool]] = None) -> Any:
    """Each body (text in which `{reply}` becomes a fresh reply queue of ours) framed as one message on our
    request queue or the lobby, then a barrier: what each reply queue received (waiting for the answers
    `expect` says should come; the barrier proves the others were dropped)."""
    target = _native.MessageQueue(base, read=False) if lobby else own_queue(data, base)
    ours: list[_native.MessageQueue] = []
    try:
        for body in bodies:
            rq = reply_queue(base)
            ours.append(rq)
            raw = body.replace("{reply}", rq.name).encode()
            for frame in protocol.frames(os.urandom(16).hex(), raw, target.msgsize):
                assert target.send_timeout(frame, 10), "pmond does not read its queue"
        answered = barrier(target, base, lobby)
        waits = expect or [False] * len(ours)
        return {"barrier": answered, "replies": [receive_all(rq, 10.0 if w else 0.0) for rq, w in zip(ours, waits)]}
    finally:
        for rq in ours:
            try:
                _native.MessageQueue.unlink(rq.name)
            except OSError:
                pass
            rq.close()
        target.close()


@op
def squat_mq(name: str, mode: int = 0o666) -> Any:
    """Create `name` before its owner does, hold it, then report what was written to it."""
    q = _native.MessageQueue(name, create=True, exclusive=True, mode=mode, maxmsg=4, msgsize=2048)
    report({"ready": True, "owner": list(q.owner())})
    wait_for_go()
    got = []
    while (m := q.receive()) is not None:
        got.append(m.decode(errors="replace"))
    try:
        probe = _native.MessageQueue(name, read=False)
        a, b = os.fstat(q.fileno()), os.fstat(probe.fileno())
        still = (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
        probe.close()
    except OSError:
        still = False
    if still:
        _native.MessageQueue.unlink(name)
    q.close()
    return {"received": len(got), "messages": got, "still_ours": still}


@op
def squat_sock(path: str) -> Any:
    """Listen on `path` (someone else's endpoint), then report how many connected to us."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(64)
    ino = os.lstat(path).st_ino
    report({"ready": True})
    wait_for_go()
    s.setblocking(False)
    accepted = 0
    data = b""
    while True:
        try:
            c, _ = s.accept()
        except BlockingIOError:
            break
        accepted += 1
        c.settimeout(0.5)
        try:
            data += c.recv(65536)
        except OSError:
            pass
        c.close()
    try:
        still = os.lstat(path).st_ino == ino
    except OSError:
        still = False
    s.close()
    return {"accepted": accepted, "data": data.decode(errors="replace"), "still_ours": still}


@op
def squat_abstract(names: list[str]) -> Any:
    """Bind datagram sockets at abstract names pmond might use later, then report what they received."""
    socks = []
    for name in names:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind("\0" + name)
            socks.append(s)
        except OSError:
            s.close()
    report({"ready": True, "bound": len(socks)})
    wait_for_go()
    received = 0
    for s in socks:
        s.setblocking(False)
        while True:
            try:
                s.recv(4096)
                received += 1
            except OSError:
                break
        s.close()
    return {"received": received}


@op
def create(paths: list[str], directory: bool = False) -> Any:
    """Try to create a file (or a directory) at each path: its errno name, "" when it worked."""
    out = []
    for path in paths:
        try:
            if directory:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            out.append("")
        except OSError as exc:
            out.append(errno.errorcode.get(exc.errno or 0, "?"))
    return out


# -- unix ------------------------------------------------------------------------------------------------------


def sock_call(path: str, body: bytes, timeout: float = 15) -> Any:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(LEN.pack(len(body)) + body)
        head = recv_exactly(s, LEN.size)
        if head is None:
            return None  # closed by pmond
        data = recv_exactly(s, LEN.unpack(head)[0])
        return json.loads(data) if data is not None else None


def recv_exactly(s: socket.socket, n: int) -> Optional[bytes]:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


@op
def sock_send(path: str, bodies: list[str]) -> Any:
    """Each body (text, sent as UTF-8) as one length-prefixed message on a connection of its own: the replies
    (None where pmond closed the connection)."""
    return {"replies": [sock_call(path, b.encode()) for b in bodies]}


@op
def slow_conns(path: str, n: int, announce: int, send: int) -> Any:
    """`n` connections each announcing a message of `announce` bytes and sending `send` of them, then holding."""
    more_files()
    conns: list[socket.socket] = []
    refused = 0
    chunk = b"x" * send
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            s.settimeout(2)
            s.sendall(LEN.pack(announce) + chunk)
            conns.append(s)
        except OSError:
            refused += 1
            s.close()
    report({"ready": True, "sent": len(conns), "refused_at_once": refused})
    wait_for_go()
    return {"still_open": sum(1 for s in conns if open_by_peer(s)), "held": len(conns)}


@op
def idle_conns(path: str, n: int) -> Any:
    """`n` connections that never send anything."""
    more_files()
    conns: list[socket.socket] = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            conns.append(s)
        except OSError:
            s.close()
    report({"ready": True, "connected": len(conns)})
    wait_for_go()
    return {"still_open": sum(1 for s in conns if open_by_peer(s)), "connected": len(conns)}


def open_by_peer(s: socket.socket) -> bool:
    try:
        s.setblocking(False)
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


# -- volume ----------------------------------------------------------------------------------------------------


@op
def partial(data: str, base: str, n: int, count: int = 65535) -> Any:
    """`n` first frames of messages announcing `count` frames, each message a new id, on our request queue."""
    q = own_queue(data, base)
    room = q.msgsize - protocol.FRAME_HEADER
    t0 = time.monotonic()
    for _ in range(n):
        frame = struct.pack("!2sBHH16s", b"P3", protocol.PROTOCOL_VERSION, 0, count, os.urandom(16))
        assert q.send_timeout(frame + os.urandom(room), 30), "pmond stopped reading"
    q.close()
    return {"sent": n, "seconds": time.monotonic() - t0}


@op
def full_replies(data: str, base: str, n: int) -> Any:
    """`n` well-formed requests, each naming a reply queue of ours that we filled: pmond cannot answer them."""
    q = own_queue(data, base)
    for _ in range(n):
        rq = reply_queue(base)
        while rq.send(b"full"):
            pass
        send_message(q, protocol.request("version", reply_to=rq.name))
        rq.close()  # pmond holds it (and has unlinked its name once it took the request)
    q.close()
    return {"sent": n}


@op
def flood(transport_: str, data: str, base: str, path: str, n: int) -> Any:
    """`n` garbage frames: on mq half on our request queue and half on the lobby; on unix small garbage messages
    on one connection whose answers we read (reconnecting when pmond closes it)."""
    rng = random.Random(7)
    t0 = time.monotonic()
    if transport_ == "mq":
        own = own_queue(data, base)
        lobby = _native.MessageQueue(base, read=False)
        for i in range(n):
            junk = rng.randbytes(rng.randrange(1, 64))
            assert (own if i % 2 else lobby).send_timeout(junk, 30), "pmond stopped reading"
        own.close()
        lobby.close()
        return {"sent": n, "seconds": time.monotonic() - t0}
    sent = 0
    while sent < n:
        sent += _garbage_connection(path, n - sent, rng)
    return {"sent": sent, "seconds": time.monotonic() - t0}


def _garbage_connection(path: str, n: int, rng: random.Random) -> int:
    """Pipeline up to `n` garbage messages on one connection, reading the error replies as they come."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.setblocking(False)
    sent = 0
    out = b""
    try:
        while sent < n or out:
            if not out and sent < n:
                batch = min(256, n - sent)
                out = b"".join(_junk(rng) for _ in range(batch))
                sent += batch
            r, w, _ = select.select([s], [s] if out else [], [], 10)
            if not r and not w:
                raise AssertionError("pmond neither reads nor answers")
            if r:
                try:
                    if s.recv(1 << 20) == b"":
                        return sent
                except ConnectionResetError:
                    return sent
            if w and out:
                try:
                    out = out[s.send(out) :]
                except (BrokenPipeError, ConnectionResetError):
                    return sent
        return sent
    finally:
        s.close()


def _junk(rng: random.Random) -> bytes:
    body = rng.randbytes(rng.randrange(1, 48))
    return LEN.pack(len(body)) + body


# -- the fuzzer ------------------------------------------------------------------------------------------------

WEIRD: list[Any] = [
    "", "²", "١٢", "9" * 40, "9" * 19, "-1", "a\x00b", "root/x", "0/x", "99999999999999999999/x", "²/x", "a\x00b/x",
    "\x1b[2J\x9b31m", "../../etc", "a" * 10000, "/", "/nonexistent/x", "relative", "x" * 129, "fz-1", "1", "0",
    None, True, False, -1, 0, 2**63, 10**30, 1.5, float("inf"), [], {}, [1, [2]], ["a", None], {"a": {"b": {}}},
    "\u202e", "\ufffd", "root", "pmon3other", "nobody", "SIGKILL", "1s", "-5ms",
]  # fmt: skip


def request_fields() -> dict[str, dict[str, Any]]:
    """Every command pmond knows, with the fields of its request (ipc/messages.py): name -> type hint."""
    import typing

    from pmon3.ipc import messages

    found: dict[str, dict[str, Any]] = {}
    todo = list(messages.Request.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.CMD and not cls.CMD.startswith("("):
            hints = typing.get_type_hints(cls, vars(messages))
            found[cls.CMD] = {f.name: hints[f.name] for f in cls.FIELDS}
    flags = {f.name: Any for f in messages.RestartFlags.FIELDS}
    for fields in found.values():
        if "flags" in fields:
            fields["flags"] = flags
    return found


class Fuzzer:
    """Random and mutated frames: garbage, wrong headers, partial and oversized messages, deep JSON, huge
    numbers, wrong versions, and well-formed requests of every command with plausible and bad fields (the
    request types of ipc/messages.py). Never a request that would create a process: an `exec` or an apply
    entry always names a file that does not exist."""

    def __init__(self, seed: int, reply_to: Callable[[], str]) -> None:
        self.rng = random.Random(seed)
        self.reply_to = reply_to
        self.commands = request_fields()
        self.names = sorted(self.commands) + ["frobnicate"]

    def value(self, hint: Any) -> Any:
        rng = self.rng
        if rng.random() < 0.5:
            return rng.choice(WEIRD)
        if hint is bool:
            return rng.choice([True, False])
        if hint is int:
            return rng.choice([0, 1, 7, 2**31, 2**62])
        if isinstance(hint, dict):  # restart flags
            return {k: self.value(Any) for k in rng.sample(sorted(hint), rng.randrange(0, len(hint) + 1))}
        if "list" in str(hint) and rng.random() < 0.5:
            return [rng.choice(WEIRD) for _ in range(rng.randrange(0, 3))]
        return rng.choice(["fz-1", "1", "2", "root/fz", "pmon3other/fz", "fz-1,fz-2", "", "json", "name"])

    def request(self) -> dict[str, Any]:
        rng = self.rng
        cmd = rng.choice(self.names)
        fields = self.commands.get(cmd, {})
        args: dict[str, Any] = {k: self.value(h) for k, h in fields.items() if rng.random() < 0.6}
        if rng.random() < 0.1:
            args[rng.choice(["bogus", "id", "name", "file", "__class__"])] = rng.choice(WEIRD)
        if cmd == "exec":
            args["file"] = "/nonexistent/" + str(rng.choice(WEIRD))[:100]
        if cmd == "apply" and "entries" in args:
            args["entries"] = [
                {"file": "/nonexistent/y", **{rng.choice(list(self.commands["exec"])): rng.choice(WEIRD)}}
                for _ in range(rng.randrange(0, 3))
            ] + [rng.choice(WEIRD) for _ in range(rng.randrange(0, 2))]
        msg: dict[str, Any] = {"v": 1, "id": os.urandom(16).hex(), "cmd": cmd, "args": args}
        reply_to = self.reply_to()
        if reply_to:
            msg["reply_to"] = reply_to
        roll = rng.random()
        if roll < 0.05:
            msg["v"] = rng.choice([0, 2, 99, "1", None, 1.0])
        elif roll < 0.10:
            msg["id"] = rng.choice(WEIRD)
        elif roll < 0.14:
            msg["args"] = rng.choice(WEIRD)
        elif roll < 0.17:
            msg["cmd"] = rng.choice(WEIRD)
        elif roll < 0.20:
            msg["reply_to"] = rng.choice(["", "/etc/passwd", reply_to + "x", 5, None])
        return msg

    def body(self) -> bytes:
        """One message body: mostly mutations of well-formed requests."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return protocol.encode(self.request())
        if roll < 0.75:
            data = bytearray(protocol.encode(self.request()))
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(data))
                choice = rng.random()
                if choice < 0.4:
                    data[i] = rng.randrange(256)
                elif choice < 0.7:
                    del data[i : i + rng.randrange(1, 8)]
                else:
                    data[i:i] = rng.choice([b"{", b"[", b'"', b"\\u0000", b"9" * 20, b"\xff", b"\x00", b"}"])
            return bytes(data)
        if roll < 0.80:
            depth = rng.choice([50, 500, 5000, 50000])
            return b'{"v":1,"id":"d","cmd":"list","args":' + b"[" * depth + b"]" * depth + b"}"
        if roll < 0.85:
            return b'{"v":1,"id":"n","cmd":"desc","args":{"id":' + b"7" * rng.choice([4301, 5000, 20000]) + b"}}"
        if roll < 0.88:
            return b'{"v":' + b"1" * 5000 + b',"id":"x","cmd":"list"}'
        return rng.randbytes(rng.randrange(0, 200))

    def mq_frames(self, msgsize: int) -> list[bytes]:
        """Frames for one message on an mq queue: whole, partial, with wrong counts or headers, or garbage."""
        rng = self.rng
        body = self.body()
        key = os.urandom(16)
        room = msgsize - protocol.FRAME_HEADER
        roll = rng.random()
        if roll < 0.55:  # well framed
            parts = [body[i : i + room] for i in range(0, len(body), room)] or [b""]
            return [self._head(i, len(parts), key) + p for i, p in enumerate(parts)]
        if roll < 0.70:  # partial: announces more frames than it sends
            count = rng.choice([2, 3, 1000, 65535])
            return [self._head(i, count, key) + body[:room] for i in range(rng.randrange(1, 3))]
        if roll < 0.80:  # inconsistent counts, duplicates, indexes past the count
            return [
                self._head(rng.randrange(0, 5), rng.choice([0, 1, 2, 5, 65535]), key) + body[:room]
                for _ in range(rng.randrange(1, 4))
            ]
        if roll < 0.90:  # wrong magic or version
            magic = rng.choice([b"P3", b"XX", b"\x00\x00"])
            ver = rng.choice([0, 2, 255])
            return [struct.pack("!2sBHH16s", magic, ver, 0, 1, key) + body[:room]]
        if roll < 0.91:  # a whole oversized message (over 1 MiB in ~520 frames: rare, or it is most frames)
            count = (protocol.MAX_REQUEST // room) + 2
            return [self._head(i, count, key) + b"x" * room for i in range(count)]
        return [rng.randbytes(rng.randrange(0, min(msgsize, 64)))]  # garbage, short frames

    @staticmethod
    def _head(index: int, count: int, key: bytes) -> bytes:
        return struct.pack("!2sBHH16s", b"P3", protocol.PROTOCOL_VERSION, index, count, key)


@op
def fuzz(transport_: str, data: str, base: str, path: str, frames: int, seconds: float, seed: int) -> Any:
    """At least `frames` frames in at most `seconds` (whichever first), the way described in Fuzzer."""
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    if transport_ == "mq":
        sent, on_lobby, replies = _fuzz_mq(data, base, frames, deadline, seed)
        return {"frames": sent, "lobby_frames": on_lobby, "reply_frames": replies, "seconds": time.monotonic() - t0}
    sent, conns, received = _fuzz_unix(path, frames, deadline, seed)
    return {"frames": sent, "connections": conns, "reply_bytes": received, "seconds": time.monotonic() - t0}


class ReplyQueues:
    """A fresh reply queue per request, as the real client makes (pmond unlinks the name of one it answers); the
    last few stay open so that pmond can answer into them, older ones are drained and removed."""

    KEEP = 12

    def __init__(self, base: str) -> None:
        self.base = base
        self.open: list[_native.MessageQueue] = []
        self.received = 0  # reply frames pmond sent us: the requests that reached a handler (or hello)

    def new(self) -> str:
        while len(self.open) >= self.KEEP:
            self._drop(self.open.pop(0))
        try:
            q = reply_queue(self.base)
        except OSError:  # out of queue memory for a moment (pmond still holds some): reuse the newest name
            return self.open[-1].name if self.open else ""
        self.open.append(q)
        return q.name

    def drain(self) -> None:
        for q in self.open:
            while q.receive() is not None:
                self.received += 1

    def _drop(self, q: _native.MessageQueue) -> None:
        while q.receive() is not None:
            self.received += 1
        try:
            _native.MessageQueue.unlink(q.name)
        except OSError:
            pass
        q.close()

    def close(self) -> None:
        for q in self.open:
            self._drop(q)
        self.open = []


def _fuzz_mq(data: str, base: str, frames: int, deadline: float, seed: int) -> tuple[int, int, int]:
    own = own_queue(data, base)
    lobby = _native.MessageQueue(base, read=False)
    replies = ReplyQueues(base)  # pmond's replies land there and are thrown away
    fz = Fuzzer(seed, replies.new)
    sent = on_lobby = 0
    try:
        while sent < frames and time.monotonic() < deadline:
            to_lobby = fz.rng.random() < 0.1
            target = lobby if to_lobby else own
            for frame in fz.mq_frames(target.msgsize):
                while not target.send(frame):
                    replies.drain()
                    select.select([], [target.fileno()], [], 0.05)  # room, or drain our replies again
                    if time.monotonic() > deadline + 30:
                        raise AssertionError("pmond stopped reading its queues")
                sent += 1
                on_lobby += to_lobby
    finally:
        replies.close()
        own.close()
        lobby.close()
    return sent, on_lobby, replies.received


def _fuzz_unix(path: str, frames: int, deadline: float, seed: int) -> tuple[int, int, int]:
    fz = Fuzzer(seed, lambda: "")
    sent = conns = 0
    received = [0]
    while sent < frames and time.monotonic() < deadline:
        conns += 1
        sent += _fuzz_connection(path, fz, frames - sent, deadline, received)
    return sent, conns, received[0]


def _fuzz_connection(path: str, fz: Fuzzer, n: int, deadline: float, received: list[int]) -> int:
    """Pipeline messages on one connection, reading answers as they come; pmond may close it (an oversized
    length, a slow body): then a new one."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.setblocking(False)
    sent = 0
    out = b""
    try:
        while sent < n and time.monotonic() < deadline:
            if not out:
                roll = fz.rng.random()
                body = fz.body()
                if roll < 0.01:  # an absurd length: pmond closes the connection
                    out = LEN.pack(fz.rng.choice([protocol.MAX_REQUEST + 1, 2**31, 2**32 - 1])) + body
                elif roll < 0.02:  # a length larger than what follows, then a new message (framing lost)
                    out = LEN.pack(len(body) + 10) + body
                else:
                    out = LEN.pack(len(body)) + body
                sent += 1
            r, w, _ = select.select([s], [s], [], 5)
            if not r and not w:
                return sent  # pmond waits for bytes we will not send: a new connection
            if r:
                try:
                    got = s.recv(1 << 20)
                except ConnectionResetError:
                    return sent
                if not got:
                    return sent
                received[0] += len(got)
            if w:
                try:
                    out = out[s.send(out) :]
                except (BrokenPipeError, ConnectionResetError):
                    return sent
        return sent
    finally:
        s.close()


def main() -> None:
    name = sys.argv[1]
    params = json.loads(sys.stdin.read() if sys.argv[2] == "-" else sys.argv[2])
    report(OPS[name](**params))


if __name__ == "__main__":
    main()
