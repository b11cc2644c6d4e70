"""Attacks 5, 6 and 7: exhaustion. Partial messages that announce 65535 frames from several users (mq), slow
and idle connections by the hundred (unix), floods of garbage frames and of requests whose answers cannot be
delivered: pmond's memory and descriptors stay bounded, root's commands keep answering at once, pmond can still
spawn, and pmond's log gets at most a few lines per sender per minute."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import Pmond, wait_for
from pmon3.ipc import transport
from secutil import (
    ATTACKER,
    OTHER,
    TRANSPORTS,
    Held,
    Latency,
    attack,
    cli_as,
    endpoints,
    fd_count,
    log_since,
    log_size,
    needs_root,
    no_traceback,
    pmond_pid,
    rss_kib,
    sec_daemon,
    uid_of,
)

pytestmark = needs_root
MIB = 1024  # in KiB, the unit of VmRSS
CAP = 16  # connections a user may hold (docs/security.md), written here so that changing the code fails the test


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("limits", request.param)


@pytest.fixture(scope="module")
def mq_daemon() -> Iterator[Pmond]:
    yield from sec_daemon("limits", "mq")


@pytest.fixture(scope="module")
def unix_daemon() -> Iterator[Pmond]:
    yield from sec_daemon("limits", "unix")


def warmed(d: Pmond) -> int:
    """pmond's RSS once it has served both users and root (their first requests allocate what later ones reuse)."""
    for user in (ATTACKER, OTHER):
        assert cli_as(d, user, ["ls"])[0].returncode == 0
    if "rootjob" not in {p["name"] for p in d.json("ls")}:
        d.json("exec", "/bin/sleep", "--name", "rootjob", "-a", "300")
    return rss_kib(pmond_pid(d))


def settled(d: Pmond, fds: int) -> int:
    """Until pmond has worked through the connections waiting in its listen backlog (it accepts them, then
    closes those over the per-user cap): how many descriptors it holds for the attacker then."""
    cap = CAP + 4
    return int(
        wait_for(lambda: (n := fd_count(pmond_pid(d)) - fds) <= cap and str(n), 30, "pmond's descriptors to settle")
    )


def in_parallel(*calls: Any) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        fn, *args = calls[i]
        results[i] = fn(*args)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_partial_messages_from_several_users_stay_bounded(mq_daemon: Pmond):
    """Each user sends 10,000 first frames of messages announcing 65535 frames (~2 KiB each, 40 MB in all if
    pmond kept them): pmond keeps at most MAX_PENDING_MESSAGES / MAX_PENDING_BYTES per user."""
    d = mq_daemon
    ep = endpoints(d)
    before = warmed(d)
    offset = log_size(d)
    with Latency(d) as lat:
        reports = in_parallel(
            *((lambda u: attack(d, u, "partial", n=10_000, **ep), user) for user in (ATTACKER, OTHER))
        )
    growth = rss_kib(pmond_pid(d)) - before
    print(f"partial frames: {sum(r['sent'] for r in reports)} sent, RSS +{growth} KiB, {lat}")
    assert growth < 16 * MIB, f"pmond grew by {growth} KiB"
    assert not lat.errors and lat.worst < 0.5, lat
    assert d.json("ls")  # still serving
    no_traceback(d, offset)


def test_slow_connections_holding_a_mebibyte_each_stay_bounded(unix_daemon: Pmond):
    d = unix_daemon
    ep = endpoints(d)
    before = warmed(d)
    fds = fd_count(pmond_pid(d))
    slow = Held(d, ATTACKER, "slow_conns", path=ep["path"], n=100, announce=1 << 20, send=(1 << 20) - 1)
    try:
        ready = slow.start()
        settled(d, fds)
        with Latency(d) as lat:
            growth = rss_kib(pmond_pid(d)) - before
            spawned = d.json("exec", "/bin/sleep", "--name", "spawned", "-a", "300")  # pmond can still spawn
            assert cli_as(d, OTHER, ["ls"])[0].returncode == 0  # and serve another user
        report = slow.finish()
    finally:
        slow.kill()
    print(f"slow connections: {ready}, RSS +{growth} KiB, {lat}, {report}")
    assert growth < 40 * MIB, f"pmond grew by {growth} KiB"
    assert report["still_open"] <= CAP, report
    assert spawned["status"] == "running"
    assert not lat.errors and lat.worst < 0.5, lat
    d.cli("del", "spawned", "-f")


def test_idle_connections_by_the_thousand_stay_bounded(unix_daemon: Pmond):
    d = unix_daemon
    ep = endpoints(d)
    before = warmed(d)
    fds = fd_count(pmond_pid(d))
    idle = Held(d, ATTACKER, "idle_conns", path=ep["path"], n=1200)
    try:
        ready = idle.start()
        held_fds = settled(d, fds)
        with Latency(d) as lat:
            growth = rss_kib(pmond_pid(d)) - before
            spawned = d.json("exec", "/bin/sleep", "--name", "spawned2", "-a", "300")  # no EMFILE
            assert cli_as(d, OTHER, ["ls"])[0].returncode == 0
        report = idle.finish()
    finally:
        idle.kill()
    print(f"idle connections: {ready}, pmond fds +{held_fds}, RSS +{growth} KiB, {lat}, {report}")
    assert ready["connected"] == 1200
    assert report["still_open"] <= CAP, report
    assert growth < 16 * MIB
    assert spawned["status"] == "running"
    assert not lat.errors and lat.worst < 0.5, lat
    d.cli("del", "spawned2", "-f")


def test_a_flood_of_garbage_writes_a_few_lines_per_sender(daemon: Pmond):
    """400,000 garbage frames on mq (half on the user's queue, half on the lobby); on unix each garbage message
    costs pmond an error reply (~0.1 ms on a loaded machine), so 100,000 there."""
    d = daemon
    ep = endpoints(d)
    warmed(d)
    offset = log_size(d)
    n = 400_000 if d.transport == "mq" else 100_000
    report = attack(d, ATTACKER, "flood", transport_=d.transport, n=n, timeout=300, **ep)
    assert report["sent"] == n
    lines = log_since(d, offset).splitlines()
    minutes = 1 + int(report["seconds"] // 60)
    print(f"flood: {report}, {len(lines)} lines in pmond's log")
    # per sender and kind of abuse (mq: the uid's queue, the lobby; unix: bad requests, closed connections)
    assert len(lines) <= 4 * minutes, "\n".join(lines[:20])
    assert d.json("ls")
    no_traceback(d, offset)


def test_requests_that_cannot_be_answered_write_a_few_lines(mq_daemon: Pmond):
    """Well-formed requests whose reply queue the sender filled itself: pmond gives up on each after
    SEND_TIMEOUT; that is logged once per sender per minute, not once per request."""
    d = mq_daemon
    ep = endpoints(d)
    warmed(d)
    offset = log_size(d)
    marker = f".r.{uid_of(ATTACKER)}."

    def held() -> int:
        count = 0
        for fd in os.listdir(f"/proc/{pmond_pid(d)}/fd"):
            try:
                count += marker in os.readlink(f"/proc/{pmond_pid(d)}/fd/{fd}")
            except OSError:
                pass
        return count

    n = transport.MAX_IN_FLIGHT
    attack(d, ATTACKER, "full_replies", n=n, **ep)
    wait_for(lambda: held() == n, 15, f"pmond to take the {n} requests")
    wait_for(lambda: held() == 0, 30, "pmond to give up on them")
    lines = [line for line in log_since(d, offset).splitlines() if re.search(r"reply|gone", line)]
    assert 1 <= len(lines) <= 2, "\n".join(lines)
    no_traceback(d, offset)
