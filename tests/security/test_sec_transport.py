"""The mq transport's own checks, reached for real (issue 16): a request on a user's queue naming a properly
prefixed reply queue that another uid owns gets no answer (the owner check, not the prefix check, refuses it),
and the lobby answers nothing but hello, whatever else arrives there (garbage, multi-frame messages, other
commands with a valid reply queue of the sender's own)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from helpers import RUN, Pmond, make_daemon
from pmon3 import _native
from pmon3.ipc import protocol, transport
from secutil import (
    ATTACKER,
    OTHER,
    attack,
    cli_as,
    endpoints,
    gid_of,
    log_size,
    needs_root,
    no_traceback,
    sec_root,
    uid_of,
    wait_log,
)

pytestmark = needs_root


@pytest.fixture(scope="module")
def daemon() -> Iterator[Pmond]:
    yield from make_daemon(sec_root("transport-mq"))


def victim_queue(d: Pmond, uid: int) -> _native.MessageQueue:
    """A reply queue of `uid` named exactly as that uid's client names one (so the prefix check passes)."""
    name = f"{transport.reply_queue_prefix(f'/pmon3_{d.suffix}', uid)}{os.getpid()}.{RUN}"
    q = _native.MessageQueue(
        name, create=True, exclusive=True, mode=0o600, maxmsg=transport.REPLY_MAXMSG, msgsize=transport.REPLY_MSGSIZE
    )
    if uid != 0:
        q.fchown(uid, gid_of(OTHER) if uid == uid_of(OTHER) else 0)
    return q


@pytest.mark.parametrize("victim", ["root", OTHER])
def test_a_request_naming_another_uids_reply_queue_gets_no_answer(daemon: Pmond, victim: str):
    d = daemon
    ep = endpoints(d)
    offset = log_size(d)
    q = victim_queue(d, uid_of(victim) if victim != "root" else 0)
    try:
        assert q.owner()[0] == (uid_of(victim) if victim != "root" else 0)
        report = attack(
            d, ATTACKER, "mq_send", messages=[{"cmd": "list", "reply_to": "own"}, {"cmd": "list", "reply_to": q.name}],
            **ep,
        )  # fmt: skip
        assert report["barrier"], report
        assert report["replies"][0] and report["replies"][0][0]["ok"], report  # its own reply queue is answered
        assert q.receive() is None  # the victim's got nothing
        wait_log(d, "named a reply queue owned by uid")  # logged once a minute per sender: maybe by the other case
    finally:
        try:
            _native.MessageQueue.unlink(q.name)
        except OSError:
            pass
        q.close()
    no_traceback(d, offset)


def test_the_lobby_answers_only_hello(daemon: Pmond):
    d = daemon
    ep = endpoints(d)
    (own,) = cli_as(d, ATTACKER, ["exec", "/bin/sleep", "--name", "lobbyvictim", "-a", "300", "--json"])
    pid = own.json()["pid"]
    offset = log_size(d)
    junk = [
        b"",
        b"garbage",
        b"P3" + b"\xff" * 40,
        protocol.frames("aa" * 16, b"{}", 1024)[0],
        *protocol.frames("bb" * 16, protocol.encode(protocol.request("hello")) + b" " * 2000, 1024),  # 2 frames
    ]
    report = attack(
        d,
        ATTACKER,
        "mq_send",
        lobby=True,
        frames=[f.hex() for f in junk],
        messages=[
            {"cmd": "drop", "args": {"force": True}, "reply_to": "own"},
            {"cmd": "list", "reply_to": "own"},
            {"cmd": "exec", "args": {"file": "/bin/sleep", "name": "fromlobby", "args": "300"}, "reply_to": "own"},
        ],
        **ep,
    )
    assert report["barrier"], report  # a hello after them was answered: everything before was handled
    assert report["replies"] == [[], [], []], report
    wait_log(d, "sent 'drop' on the lobby; dropped", offset)
    procs = {p["name"]: p for p in cli_as(d, ATTACKER, ["ls", "--json"])[0].json()}
    assert set(procs) == {"lobbyvictim"} and procs["lobbyvictim"]["pid"] == pid  # nothing was dropped or made
    no_traceback(d, offset)
    cli_as(d, ATTACKER, ["del", "lobbyvictim", "-f"])
