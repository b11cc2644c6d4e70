"""The request/response vocabulary shared by pmond and pmon3: message shapes, versioning, framing, chunking.

A message is one JSON object. Requests: {"v", "id", "cmd", "args"}; replies: {"v", "id", "ok", "data"} or
{"v", "id", "ok": false, "error": {"code", "message"}}. On a transport with a small message size a message is
cut into frames; each frame is a fixed header followed by a slice of the UTF-8 JSON.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Optional, Union

from ..errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1
MAX_MESSAGE = 16 * 1024 * 1024  # a reassembled message larger than this is refused
MAX_REQUEST = 1024 * 1024

# magic, protocol version, frame index, frame count, 16-byte message id
_FRAME = struct.Struct("!2sBHH16s")
_MAGIC = b"P3"
FRAME_HEADER = _FRAME.size


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
    return json.dumps(msg, separators=(",", ":")).encode()


def decode(data: bytes, limit: int = MAX_MESSAGE) -> dict[str, Any]:
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {limit}")
    try:
        msg = json.loads(data)
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
    key = _id_bytes(msg_id)
    return [
        _FRAME.pack(_MAGIC, PROTOCOL_VERSION, i, count, key) + payload[i * room : (i + 1) * room] for i in range(count)
    ]


def _id_bytes(msg_id: str) -> bytes:
    try:
        raw = bytes.fromhex(msg_id)
    except ValueError:
        raw = msg_id.encode()
    return raw[:16].ljust(16, b"\0")


class Reassembler:
    """Collects frames per message id; returns the whole payload once its last frame arrives."""

    def __init__(self, limit: int = MAX_MESSAGE, max_pending: int = 64) -> None:
        self.limit = limit
        self.max_pending = max_pending
        self.pending: dict[bytes, list[Optional[bytes]]] = {}

    def feed(self, frame: bytes) -> Optional[bytes]:
        if len(frame) < FRAME_HEADER:
            raise ProtocolError("short frame")
        magic, version, index, count, key = _FRAME.unpack_from(frame)
        if magic != _MAGIC or version != PROTOCOL_VERSION or count == 0 or index >= count:
            raise ProtocolError("bad frame header")
        body = frame[FRAME_HEADER:]
        if count == 1:
            return body
        parts = self.pending.get(key)
        if parts is None:
            if len(self.pending) >= self.max_pending:
                self.pending.pop(next(iter(self.pending)))  # forget the oldest half-sent message
            parts = self.pending[key] = [None] * count
        if len(parts) != count:
            del self.pending[key]
            raise ProtocolError("inconsistent frame count")
        parts[index] = body
        if sum(len(p) for p in parts if p is not None) > self.limit:
            del self.pending[key]
            raise ProtocolError("message exceeds the size limit")
        if any(p is None for p in parts):
            return None
        del self.pending[key]
        return b"".join(p for p in parts if p is not None)
