"""Attack 4: endpoint squatting. A user creates another user's (or root's) request queue, pmond's lobby, or a
socket at pmond's unix path before the victim talks to pmond: the victim's request (with a secret in -e)
must never reach the squatter, and the victim's command must still work (pmond replaces what it did not make;
the client refuses an endpoint that is not pmond's)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RUN, Pmond, environ, make_daemon
from pmon3 import _native
from secutil import ATTACKER, OTHER, Held, attack, cli_as, needs_root, sec_root, uid_of

pytestmark = needs_root
SECRET = f"SECRET=hunter2-{RUN}"


def exec_with_secret(d: Pmond, user: str, name: str) -> dict[str, object]:
    (res,) = cli_as(d, user, ["exec", "/bin/sleep", "--name", name, "-e", SECRET, "-a", "300", "--json"])
    p = res.json()
    assert p["status"] == "running" and SECRET in environ(p["pid"])
    return p


def not_leaked(report: dict[str, object]) -> None:
    assert report["received"] == 0 if "received" in report else report["accepted"] == 0, report
    assert SECRET.split("=")[1] not in str(report)


@pytest.fixture
def mq_daemon() -> Iterator[Pmond]:
    root = sec_root("squat-mq")
    yield from make_daemon(root)


def test_a_squatted_request_queue_is_replaced_before_the_victims_first_command(mq_daemon: Pmond):
    d = mq_daemon
    name = f"/pmon3_{d.suffix}.{uid_of(OTHER)}"
    squat = Held(d, ATTACKER, "squat_mq", name=name, mode=0o666)
    try:
        assert squat.start()["ready"]
        exec_with_secret(d, OTHER, "victim")  # the victim's first command: it works
        report = squat.finish()
    finally:
        squat.kill()
    not_leaked(report)
    assert report["still_ours"] is False  # pmond put its own queue under that name
    q = _native.MessageQueue(name, read=False)
    try:
        assert q.owner()[0] == uid_of(OTHER) and q.owner()[2] & 0o777 == 0o600
    finally:
        q.close()


def test_roots_queue_and_the_lobby_squatted_before_pmond_starts_are_replaced():
    root = sec_root("squat-boot")
    d = Pmond(root)
    squats = [Held(d, ATTACKER, "squat_mq", name=n, mode=0o666) for n in (f"/pmon3_{d.suffix}", f"/pmon3_{d.suffix}.0")]
    try:
        for s in squats:
            assert s.start()["ready"]
        d.start()
        try:
            p = d.json("exec", "/bin/sleep", "--name", "rootjob", "-e", SECRET, "-a", "300")
            assert SECRET in environ(p["pid"])
            exec_with_secret(d, OTHER, "victim")  # a user's hello goes to pmond's lobby, not the squatter's
            reports = [s.finish() for s in squats]
        finally:
            d.stop()
    finally:
        for s in squats:
            s.kill()
    for report in reports:
        not_leaked(report)
        assert report["still_ours"] is False


def test_a_squatted_lobby_is_refused_by_the_client(mq_daemon: Pmond):
    """pmond's lobby gone (removed by hand) and a user's queue in its place: a client that needs the lobby
    refuses it (its owner is not pmond's uid) and sends nothing there."""
    d = mq_daemon
    assert cli_as(d, ATTACKER, ["ls"])[0].returncode == 0
    lobby = f"/pmon3_{d.suffix}"
    _native.MessageQueue.unlink(lobby)
    squat = Held(d, ATTACKER, "squat_mq", name=lobby, mode=0o666)
    try:
        assert squat.start()["ready"]
        (res,) = cli_as(d, OTHER, ["exec", "/bin/sleep", "--name", "victim", "-e", SECRET, "-a", "300"])
        report = squat.finish()
    finally:
        squat.kill()
    assert res.returncode == 1 and f"{lobby} is not pmond's queue: refusing to use it" in res.stderr, res
    not_leaked(report)
    assert "victim" not in {p["name"] for p in d.json("ls")}


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A sticky world-writable directory (like /tmp) where an admin put pmond's socket."""
    root = sec_root("squat-unix")
    shared = root / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    yield shared


def unix_pmond(shared: Path) -> Pmond:
    d = Pmond(shared.parent, transport="unix")
    d.conf.write_text(d.conf.read_text().replace("ipc:\n", f"ipc:\n  socket: {shared / 'pmond.sock'}\n"))
    return d


def test_a_socket_squatted_before_pmond_starts_is_replaced(shared_dir: Path):
    d = unix_pmond(shared_dir)
    squat = Held(d, ATTACKER, "squat_sock", path=str(shared_dir / "pmond.sock"))
    try:
        assert squat.start()["ready"]
        d.start()
        try:
            exec_with_secret(d, OTHER, "victim")
            report = squat.finish()
        finally:
            d.stop()
    finally:
        squat.kill()
    not_leaked(report)
    assert report["still_ours"] is False


def test_a_fake_socket_or_file_at_the_unix_path_is_refused(shared_dir: Path):
    d = unix_pmond(shared_dir)
    path = shared_dir / "pmond.sock"
    d.start()
    try:
        assert cli_as(d, OTHER, ["ls"])[0].returncode == 0
        os.unlink(path)  # pmond's socket gone (a tmp cleaner), the attacker listens there now
        squat = Held(d, ATTACKER, "squat_sock", path=str(path))
        try:
            assert squat.start()["ready"]
            (res,) = cli_as(d, OTHER, ["exec", "/bin/sleep", "--name", "victim", "-e", SECRET, "-a", "300"])
            report = squat.finish()
        finally:
            squat.kill()
        assert res.returncode == 1 and f"{path} is not pmond's socket: refusing to use it" in res.stderr, res
        not_leaked(report)
        os.unlink(path)
        assert attack(d, ATTACKER, "create", paths=[str(path)]) == [""]  # a plain file of the attacker's
        (res,) = cli_as(d, OTHER, ["ls"])
        assert res.returncode == 1 and "is not pmond's socket" in res.stderr, res
    finally:
        d.stop()


def test_a_root_owned_socket_that_is_not_pmonds_is_refused(shared_dir: Path):
    """What the client checks after connecting (SO_PEERCRED): the peer is pmond's pid, whatever the socket file
    says. Here the impostor's file is root's (as one would be that took pmond's path in a restart race)."""
    d = unix_pmond(shared_dir)
    path = shared_dir / "pmond.sock"
    d.start()
    impostor = socket.socket(socket.AF_UNIX)
    got: list[bytes] = []
    try:
        os.unlink(path)
        impostor.bind(str(path))
        os.chmod(path, 0o666)
        impostor.listen(8)

        def serve() -> None:
            impostor.settimeout(30)
            try:
                conn, _ = impostor.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                got.append(conn.recv(65536))
            except OSError:
                pass
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        (res,) = cli_as(d, OTHER, ["exec", "/bin/sleep", "--name", "victim", "-e", SECRET, "-a", "300"])
        impostor.close()
        t.join()
        assert res.returncode == 1 and "is not pmond's socket" in res.stderr, res
        assert b"".join(got) == b"", got  # not one byte of the request
    finally:
        impostor.close()
        d.stop()
