"""Both transports carry the protocol; malformed or hostile traffic never hurts the daemon. The mq checks
against other users (the owner of a reply queue, hello-only lobby) are proved as real users in
tests/security/test_sec_transport.py."""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, pid_alive
from pmon3.ipc import protocol


@pytest.fixture(scope="module")
def unix_daemon(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(tmp_root, transport="unix")


@pytest.fixture(scope="module")
def mq_daemon(tmp_path_factory) -> Iterator[Pmond]:
    root = tmp_path_factory.mktemp("mq")
    yield from make_daemon(root)


def test_unix_socket_transport_end_to_end(unix_daemon: Pmond):
    p = unix_daemon.json("exec", "/bin/sleep", "--name", "viasock", "-a", "300")
    assert p["status"] == "running" and pid_alive(p["pid"])
    assert [q["name"] for q in unix_daemon.json("ls")] == ["viasock"]
    assert unix_daemon.json("stop", "viasock")["status"] == "stopped"
    sock = Path(f"/run/pmon3_{unix_daemon.suffix}.sock")  # system mode; the suffix keeps daemons apart
    assert sock.exists() and (sock.stat().st_mode & 0o777) == 0o666  # SO_PEERCRED decides, not the mode


def _sock_call(path: str, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(struct.pack("!I", len(payload)) + payload)
        size = struct.unpack("!I", s.recv(4))[0]
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
    return json.loads(data)


def test_socket_survives_garbage_and_unknown_commands(unix_daemon: Pmond):
    path = f"/run/pmon3_{unix_daemon.suffix}.sock"
    bad = _sock_call(path, b"{not json")
    assert bad["ok"] is False and bad["error"]["code"] == "protocol"
    old = _sock_call(path, json.dumps({"v": 99, "id": "x", "cmd": "list"}).encode())
    assert old["ok"] is False and "protocol version" in old["error"]["message"]
    unknown = _sock_call(path, protocol.encode(protocol.request("frobnicate")))
    assert unknown["ok"] is False and unknown["error"]["code"] == "unknown_command"
    with socket.socket(socket.AF_UNIX) as s:  # an absurd length prefix just closes that connection
        s.connect(path)
        s.sendall(struct.pack("!I", 2**31))
        s.settimeout(10)
        assert s.recv(10) == b""
    assert isinstance(unix_daemon.json("ls"), list)  # still serving


def test_large_replies_are_chunked_over_mq(mq_daemon: Pmond):
    long_args = " ".join(f"arg{i:05d}" for i in range(3000))  # ~27 KB per process, several MQ messages
    for i in range(4):
        mq_daemon.cli("exec", "/bin/sleep", "--name", f"big{i}", "-a", "300 " + long_args)
    procs = mq_daemon.json("ls")
    assert len(procs) == 4 and all(len(p["argv"]) == 3001 for p in procs)
