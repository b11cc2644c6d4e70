"""The privilege rules, run for real as an unprivileged user created for the test."""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Pmond, make_daemon, pid_alive

USER = "pmon3test"
OTHER = "pmon3other"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create users")


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    ensure_user(USER)
    ensure_user(OTHER)
    yield from make_daemon(tmp_root)


def status_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.split(":\t", 1) for line in fh.read().splitlines() if ":\t" in line)


def test_user_runs_processes_as_themselves(daemon: Pmond):
    pw = pwd.getpwnam(USER)
    p = daemon.json("exec", "/bin/sleep", "--name", "userjob", "-a", "300", user=USER)
    assert p["username"] == USER and p["uid"] == pw.pw_uid
    assert status_of(p["pid"])["Uid"].split()[0] == str(pw.pw_uid)
    st = os.stat(p["log"])
    assert st.st_uid == pw.pw_uid  # log handed to the run user


def test_root_may_run_as_another_user(daemon: Pmond):
    pw = pwd.getpwnam(OTHER)
    p = daemon.json("exec", "/bin/sleep", "--name", "rootmade", "-a", "300", "-u", OTHER)
    assert status_of(p["pid"])["Uid"].split()[0] == str(pw.pw_uid)
    groups = status_of(p["pid"])["Groups"].split()
    assert "0" not in groups  # root's supplementary groups are dropped


def test_user_cannot_run_as_someone_else(daemon: Pmond):
    res = daemon.cli("exec", "/bin/sleep", "--name", "sneaky", "-u", OTHER, user=USER, check=False)
    assert res.returncode == 1 and "permission denied" in res.stderr
    res = daemon.cli("exec", "/bin/sleep", "--name", "sneaky", "-u", "root", user=USER, check=False)
    assert res.returncode == 1 and "cannot set process user to root without sudo" in res.stderr


def test_user_sees_and_touches_only_their_own(daemon: Pmond):
    daemon.json("exec", "/bin/sleep", "--name", "seen-root", "-a", "300")
    daemon.json("exec", "/bin/sleep", "--name", "seen-user", "-a", "300", user=USER)
    mine = daemon.json("ls", user=USER)
    assert "seen-user" in {p["name"] for p in mine} and {p["owner"] for p in mine} == {USER}
    root_view = {p["name"] for p in daemon.json("ls")}
    assert {"seen-user", "seen-root"} <= root_view
    victim = daemon.get("seen-root")
    for cmd in (["stop", "seen-root"], ["del", "seen-root"], ["restart", str(victim["id"])], ["desc", "seen-root"]):
        res = daemon.cli(*cmd, user=USER, check=False)
        assert res.returncode == 1 and ("does not exist" in res.stderr or "could not find" in res.stderr), cmd
    assert pid_alive(victim["pid"]) and daemon.get("seen-root")["pid"] == victim["pid"]
    # Names are per owner: the user's own `seen-root` is a second process; root's stays as it was.
    theirs = daemon.json("exec", "/bin/sleep", "--name", "seen-root", "-a", "300", user=USER)
    assert theirs["id"] != victim["id"] and theirs["owner"] == USER
    assert daemon.get("seen-root")["pid"] == victim["pid"]
    assert daemon.get(f"{USER}/seen-root")["pid"] == theirs["pid"]
    daemon.cli("del", "seen-root", user=USER)
    daemon.cli("stop", "seen-user", user=USER)
    assert daemon.get(f"{USER}/seen-user")["status"] == "stopped"


def test_user_log_path_is_opened_with_the_users_rights(daemon: Pmond, tmp_root: Path):
    target = tmp_root / "rootonly"
    target.mkdir(mode=0o700, exist_ok=True)
    res = daemon.cli("exec", "/bin/sleep", "--name", "logsneak", "-l", str(target / "x.log"), user=USER, check=False)
    assert res.returncode == 1 and "Permission denied" in res.stderr
    assert not (target / "x.log").exists()
    assert "logsneak" not in {p["name"] for p in daemon.json("ls")}


def test_queues_are_owned_per_uid(daemon: Pmond):
    from pmon3 import _native

    pw = pwd.getpwnam(USER)
    daemon.cli("ls", user=USER)  # the user's first request makes pmond create its queue
    q = _native.MessageQueue(f"/pmon3_{daemon.suffix}.{pw.pw_uid}", read=False)
    try:
        assert q.owner()[0] == pw.pw_uid and q.owner()[2] == 0o600
    finally:
        q.close()


def test_env_file_is_read_with_the_callers_rights(daemon: Pmond):
    res = daemon.cli("exec", "/bin/sleep", "--name", "envsneak", "--env-file", "/etc/shadow", user=USER, check=False)
    assert res.returncode == 2 and "'/etc/shadow' is not readable" in res.stderr  # click's usage error
    assert "envsneak" not in {p["name"] for p in daemon.json("ls")}
