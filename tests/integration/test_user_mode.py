"""User mode: an unprivileged user with no config gets their own pmond, started on demand."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest
from helpers import cli_command_for_others, pid_alive, run_user, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a user")


def system_daemon_listening() -> bool:
    from pmon3 import config
    from pmon3.client import _listening

    return _listening(config.load(config.SYSTEM_CONFIG, "system"))


def test_cli_autostarts_a_user_daemon_in_xdg_paths(tmp_root: Path):
    if system_daemon_listening():
        pytest.skip("a system pmond is running on this machine: users talk to it, not to their own")
    # A user of this run only: a user daemon's IPC names come from its uid (/pmon3_u<uid>), so two runs
    # sharing one user would share one daemon's endpoints.
    pw = run_user("u")
    user = pw.pw_name
    tmp_path = tmp_root / "usermode"
    tmp_path.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, pw.pw_uid, pw.pw_gid)
    cmd, extra = cli_command_for_others()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMON3_", "XDG_"))}
    env.update(extra, HOME=str(home), USER=user, LOGNAME=user)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args], env=env, user=user, capture_output=True, text=True, timeout=60, cwd=home)

    state = home / ".local" / "state" / "pmon3"
    res = cli("exec", "/bin/sleep", "--name", "mine", "-a", "300", "--json")
    assert res.returncode == 0, res.stderr
    p = json.loads(res.stdout)
    try:
        assert p["status"] == "running" and p["username"] == user and p["uid"] == pw.pw_uid
        assert p["log"] == str(state / "logs" / "mine.log")
        assert (state / "data.db").exists()
        lock = state / "pmond.lock"
        daemon_pid = int(lock.read_text())
        with open(f"/proc/{daemon_pid}/status") as fh:
            assert f"Uid:\t{pw.pw_uid}" in fh.read()  # the daemon runs as the user, not root
        again = cli("ls", "--json")  # the second call finds the running daemon
        assert [q["name"] for q in json.loads(again.stdout)] == ["mine"]
    finally:
        if (state / "pmond.lock").exists():
            daemon_pid = int((state / "pmond.lock").read_text())
            os.kill(daemon_pid, signal.SIGTERM)
            wait_for(lambda: not pid_alive(daemon_pid), timeout=30, what="user pmond to exit")
    assert not pid_alive(p["pid"])  # handle_interrupts stopped its child


def test_a_user_daemon_holds_unix_sockets_with_the_users_rights(tmp_root: Path):
    """A user's own pmond (not root) binds a held unix socket itself: the file is the user's, with the mode asked
    for; a privileged port is refused."""
    if system_daemon_listening():
        pytest.skip("a system pmond is running on this machine: users talk to it, not to their own")
    pw = run_user("s")
    user = pw.pw_name
    home = tmp_root / "usermode-sockets"
    home.mkdir()
    os.chown(home, pw.pw_uid, pw.pw_gid)
    cmd, extra = cli_command_for_others()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMON3_", "XDG_"))}
    env.update(extra, HOME=str(home), USER=user, LOGNAME=user)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cmd, *args], env=env, user=user, capture_output=True, text=True, timeout=60, cwd=home)

    state = home / ".local" / "state" / "pmon3"
    sock = home / "web.sock"
    try:
        res = cli("exec", "/bin/sleep", "--name", "web", "-a", "300", "--listen", f"unix:{sock},mode=0600", "--json")
        assert res.returncode == 0, res.stderr
        st = sock.lstat()
        assert stat.S_ISSOCK(st.st_mode) and st.st_uid == pw.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
        res = cli("exec", "/bin/sleep", "--name", "low", "-a", "300", "--listen", "tcp:127.0.0.1:80")
        assert res.returncode == 1 and "port 80 needs root" in res.stderr, res.stderr
    finally:
        if (state / "pmond.lock").exists():
            daemon_pid = int((state / "pmond.lock").read_text())
            os.kill(daemon_pid, signal.SIGTERM)
            wait_for(lambda: not pid_alive(daemon_pid), timeout=30, what="user pmond to exit")
