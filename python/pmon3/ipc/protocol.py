"""The request/response vocabulary shared by pmond and pmon3: message shapes, versioning, framing, chunking.

A message is one JSON object. Requests: {"v", "id", "cmd", "args"}; replies: {"v", "id", "ok", "data"} or
{"v", "id", "ok": false, "error": {"code", "message"}}. On a transport with a small message size a message is
cut into frames; each frame is a fixed header followed by a slice of the UTF-8 JSON.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional, Union

from .. import fastjson
from ..errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1
MAX_MESSAGE = 16 * 1024 * 1024  # a reassembled message larger than this is refused
MAX_REQUEST = 1024 * 1024

# magic (2 bytes), protocol version (1), frame index (2, big-endian), frame count (2), message id (16). Packed by
# hand: the struct module is a shared library that every CLI command would load for it (~0.4 ms).
_MAGIC = b"P3"
_PREFIX = _MAGIC + bytes((PROTOCOL_VERSION,))
FRAME_HEADER = 23


def _header(frame: bytes) -> tuple[bytes, int, int, int, bytes]:
    """magic, version, index, count, id of a frame at least FRAME_HEADER long."""
    return frame[:2], frame[2], int.from_bytes(frame[3:5], "big"), int.from_bytes(frame[5:7], "big"), frame[7:23]


def new_id() -> str:
    return os.urandom(16).hex()


def request(cmd: str, args: Optional[dict[str, Any]] = None, reply_to: str = "") -> dict[str, Any]:
    msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "id": new_id(), "cmd": cmd, "args": args or {}}
    if reply_to:
        msg["reply_to"] = reply_to
    return msg


def ok(req_id: str, data: Any = None) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": req_id, "ok": True, "data": data}


def error(req_id: str, code: Union[ErrorCode, str], message: str) -> dict[str, Any]:
    text = code.value if isinstance(code, ErrorCode) else code
    return {"v": PROTOCOL_VERSION, "id": req_id, "ok": False, "error": {"code": text, "message": message}}


def encode(msg: dict[str, Any]) -> bytes:
    return fastjson.dumps(msg).encode()


def decode(data: bytes, limit: int = MAX_MESSAGE) -> dict[str, Any]:
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {limit}")
    try:
        msg = fastjson.loads(data)
    # Deep nesting (RecursionError) and integers past int_max_str_digits (ValueError) are bad frames too.
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"malformed message: {type(exc).__name__}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("id"), str):
        raise ProtocolError("malformed message: not an object with an id")
    if msg.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {msg.get('v')!r} is not supported (this side speaks {PROTOCOL_VERSION})")
    return msg


def validate_request(msg: dict[str, Any]) -> None:
    if not isinstance(msg.get("cmd"), str) or not isinstance(msg.get("args", {}), dict):
        raise ProtocolError("malformed request: cmd must be a string and args an object")


def frames(msg_id: str, payload: bytes, frame_size: int) -> list[bytes]:
    """Cut `payload` into frames no larger than `frame_size` bytes."""
    room = frame_size - FRAME_HEADER
    if room <= 0:
        raise ProtocolError("frame size too small")
    count = max(1, -(-len(payload) // room))
    if count > 0xFFFF:
        raise ProtocolError("message too large to frame")
    tail = count.to_bytes(2, "big") + _id_bytes(msg_id)
    return [_PREFIX + i.to_bytes(2, "big") + tail + payload[i * room : (i + 1) * room] for i in range(count)]


def _id_bytes(msg_id: str) -> bytes:
    try:
        raw = bytes.fromhex(msg_id)
    except ValueError:
        raw = msg_id.encode()
    return raw[:16].ljust(16, b"\0")


def single_frame(frame: bytes) -> bytes:
    """The body of a message that must fit in one frame (the lobby reassembles nothing for strangers)."""
    if len(frame) < FRAME_HEADER:
        raise ProtocolError("short frame")
    magic, version, index, count, _key = _header(frame)
    if magic != _MAGIC or version != PROTOCOL_VERSION or count != 1 or index != 0:
        raise ProtocolError("bad frame header (only single-frame messages here)")
    return frame[FRAME_HEADER:]


class _Pending:
    __slots__ = ("count", "parts", "size", "since")

    def __init__(self, count: int, since: float) -> None:
        self.count = count
        self.parts: dict[int, bytes] = {}
        self.size = 0
        self.since = since


class Reassembler:
    """Collects frames per message id; returns the whole payload once its last frame arrives.

    Bounded whatever a sender does: at most `max_pending` half-sent messages and `max_bytes` held for them
    (the oldest are forgotten first), each complete within `expiry` seconds, and nothing is allocated
    for frames that were announced but not sent."""

    def __init__(
        self,
        limit: int = MAX_MESSAGE,
        max_pending: int = 64,
        max_bytes: Optional[int] = None,
        expiry: Optional[float] = None,
    ) -> None:
        self.limit = limit
        self.max_pending = max_pending
        self.max_bytes = max_bytes if max_bytes is not None else limit * 2
        self.expiry = expiry
        self.pending: dict[bytes, _Pending] = {}
        self.held = 0

    def _drop(self, key: bytes) -> None:
        gone = self.pending.pop(key, None)
        if gone is not None:
            self.held -= gone.size

    def _expire(self, now: float) -> None:
        if self.expiry is None:
            return
        while self.pending:
            key, oldest = next(iter(self.pending.items()))
            if now - oldest.since < self.expiry:
                return
            self._drop(key)

    def feed(self, frame: bytes) -> Optional[bytes]:
        if len(frame) < FRAME_HEADER:
            raise ProtocolError("short frame")
        magic, version, index, count, key = _header(frame)
        if magic != _MAGIC or version != PROTOCOL_VERSION or count == 0 or index >= count:
            raise ProtocolError("bad frame header")
        body = frame[FRAME_HEADER:]
        if count == 1:
            return body
        now = time.monotonic()
        self._expire(now)
        entry = self.pending.get(key)
        if entry is None:
            while len(self.pending) >= self.max_pending:
                self._drop(next(iter(self.pending)))  # forget the oldest half-sent message
            entry = self.pending[key] = _Pending(count, now)
        if entry.count != count:
            self._drop(key)
            raise ProtocolError("inconsistent frame count")
        if index in entry.parts:
            self._drop(key)
            raise ProtocolError("duplicate frame")
        entry.parts[index] = body
        entry.size += len(body)
        self.held += len(body)
        if entry.size > self.limit:
            self._drop(key)
            raise ProtocolError("message exceeds the size limit")
        while self.held > self.max_bytes and len(self.pending) > 1:
            oldest = next(iter(self.pending))
            if oldest == key:
                break
            self._drop(oldest)
        if self.held > self.max_bytes:
            self._drop(key)
            raise ProtocolError("too much in flight from this sender")
        if len(entry.parts) < entry.count:
            return None
        self._drop(key)
        return b"".join(entry.parts[i] for i in range(entry.count))
