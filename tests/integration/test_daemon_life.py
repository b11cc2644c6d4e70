"""pmond's own life: a crash costs users nothing but the restart (no hang, no lockout), `daemon status`,
`daemon stop`, and `daemon restart` keeping every process running."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BIN, Pmond, make_daemon, pid_alive, script, wait_for
from test_privileges import USER, ensure_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a user")
# A CLI facing a dead pmond must fail at once; this bound only has to separate "at once" from the 30 s
# hang of a client waiting on a dead daemon's queue, on a loaded 2-core machine.
NO_HANG = 5.0


@pytest.fixture(params=["mq", "unix"])
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    ensure_user(USER)
    root = Path(tempfile.mkdtemp(prefix=f"pmon3-life-{request.param}-"))
    root.chmod(0o755)  # the user's CLI reads the config and pmond's pid file there
    try:
        yield from make_daemon(root, "restart:\n  stop_timeout: 20s\n", transport=request.param)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def timed(d: Pmond, *args: str, user: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    res = d.cli(*args, check=False, user=user)
    return res, time.monotonic() - t0


def test_a_crashed_pmond_is_reported_at_once_and_a_new_one_serves_everyone(daemon: Pmond):
    mine = daemon.json("exec", "/bin/sleep", "--name", "survivor", "-a", "300")
    assert daemon.json("ls", user=USER) == []  # the user's CLI works before anything else is claimed
    theirs = daemon.json("exec", "/bin/sleep", "--name", "theirs", "-a", "300", user=USER)
    daemon.stop(signal.SIGKILL)
    for user in (None, USER):
        res, took = timed(daemon, "ls", user=user)
        assert res.returncode == 1 and res.stderr.strip().startswith("pmond must be running"), res.stderr
        assert took < NO_HANG
    daemon.start()
    for user, name, p in ((None, "survivor", mine), (USER, "theirs", theirs)):
        res, took = timed(daemon, "ls", "--json", user=user)
        assert res.returncode == 0, res.stderr  # nobody is locked out by the dead pmond's endpoints
        procs = {q["name"]: q for q in json.loads(res.stdout)}
        assert procs[name]["pid"] == p["pid"] and took < NO_HANG


def test_a_client_object_outlives_a_crashed_pmond(daemon: Pmond):
    """A long-lived pmon3.Client (a script, a web UI) reports the dead pmond at once and then talks to the one
    that replaces it, instead of staying bound to the dead one's endpoints."""
    from pmon3 import Client
    from pmon3.errors import DaemonUnavailableError

    with Client(str(daemon.conf), timeout=10) as c:
        p = c.exec("/bin/sleep", name="longlived", args="300")
        daemon.stop(signal.SIGKILL)
        for _ in range(2):  # down: every call says so at once
            t0 = time.monotonic()
            with pytest.raises(DaemonUnavailableError):
                c.list()
            assert time.monotonic() - t0 < NO_HANG
        daemon.start()
        assert [(q["name"], q["pid"]) for q in c.list()] == [("longlived", p["pid"])]
        daemon.stop(signal.SIGKILL)
        daemon.start()  # unnoticed: nothing was sent to the dead pmond, so the next request goes to this one
        assert [q["name"] for q in c.list()] == ["longlived"]
        c.delete("longlived")


def test_a_command_in_flight_when_pmond_dies_returns_at_once(daemon: Pmond):
    stubborn = script(daemon.root, "stubborn.sh", "trap '' TERM\nwhile :; do sleep 0.05; done\n")
    daemon.cli("exec", stubborn, "--name", "stubborn")
    proc = subprocess.Popen([str(BIN / "pmon3"), "stop", "stubborn"], env=daemon.env, stderr=subprocess.PIPE, text=True)
    pid = daemon.get("stubborn")["pid"]
    log = daemon.root / "pmond.stderr"
    wait_for(lambda: f"stopping pid {pid}: SIGTERM" in log.read_text(), what="pmond to be inside the stop")
    assert proc.poll() is None  # waiting for its stop_timeout of 20 s
    t0 = time.monotonic()
    daemon.stop(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "pmond died" in err and time.monotonic() - t0 < NO_HANG
    daemon.start()
    daemon.cli("del", "stubborn", "-f")


def test_daemon_status_stop_and_restart(daemon: Pmond):
    p = daemon.json("exec", "/bin/sleep", "--name", "keeper", "-a", "300")
    status = daemon.json("daemon", "status")
    assert status["pid"] == daemon.proc.pid and status["config"] == str(daemon.conf)
    assert status["processes"] == status["alive"] == 1 and status["by_status"] == {"running": 1}
    assert status["process_trees"] in ("cgroup", "session") and status["transport"] == daemon.transport
    text = daemon.cli("daemon", "status").stdout
    assert str(daemon.proc.pid) in text and "1 running" in text

    res = daemon.cli("daemon", "stop", user=USER, check=False)
    assert res.returncode == 1 and "only root may stop pmond" in res.stderr
    res = daemon.cli("daemon", "restart", user=USER, check=False)
    assert res.returncode == 1 and "only root may restart pmond" in res.stderr

    daemon.cli("daemon", "restart")  # the same pid, a new pmond in it; the process keeps running
    after = daemon.json("daemon", "status")
    assert after["pid"] == daemon.proc.pid and after["uptime"] < status["uptime"] + 60
    assert daemon.get("keeper")["pid"] == p["pid"] and pid_alive(p["pid"])
    os.kill(p["pid"], signal.SIGKILL)  # still pmond's child: the exit status is known
    again = daemon.wait_restarted("keeper", p["pid"])
    assert again["last_exit_signal"] == signal.SIGKILL

    daemon.cli("daemon", "stop")
    assert daemon.proc.wait(30) == 0
    daemon.proc = None
    assert not pid_alive(again["pid"])  # handle_interrupts: stopped with pmond
    res, took = timed(daemon, "ls")
    assert res.returncode == 1 and "pmond must be running" in res.stderr and took < NO_HANG
    daemon.start()
    assert daemon.get("keeper")["status"] == "running"  # closed by the shutdown, back at boot


def test_autostart_replaces_a_crashed_pmond(tmp_path: Path):
    tmp_path.chmod(0o755)
    gen = make_daemon(tmp_path, "")
    d = next(gen)
    try:
        d.conf.write_text(d.conf.read_text().replace("autostart: false", "autostart: true"))
        old = d.proc.pid
        d.stop(signal.SIGKILL)
        res, took = timed(d, "ls", "--json")
        assert res.returncode == 0 and json.loads(res.stdout) == [], res.stderr
        status = d.json("daemon", "status")
        assert status["pid"] != old and pid_alive(status["pid"])
        d.cli("daemon", "stop")
        wait_for(lambda: not pid_alive(status["pid"]), what="the autostarted pmond to stop")
    finally:
        gen.close()


def _queues(d: Pmond) -> set[str]:
    from pmon3 import _native

    return {n for n in _native.mq_list() if n.startswith(f"pmon3_{d.suffix}.r.")}


def test_reply_queues_of_dead_clients_are_reclaimed(daemon: Pmond):
    if daemon.transport != "mq":
        pytest.skip("reply queues exist on the mq transport only")
    from pmon3 import _native

    gone = subprocess.Popen(["/bin/true"])
    gone.wait()  # a pid that no longer runs: a client SIGKILLed before pmond saw its request
    name = f"/pmon3_{daemon.suffix}.r.0.{gone.pid}.deadbeef"
    _native.MessageQueue(name, create=True, exclusive=True, mode=0o600, maxmsg=4, msgsize=4096).close()
    live = f"/pmon3_{daemon.suffix}.r.0.{os.getpid()}.cafecafe"  # a client still alive: kept
    _native.MessageQueue(live, create=True, exclusive=True, mode=0o600, maxmsg=4, msgsize=4096).close()
    try:
        assert {name[1:], live[1:]} <= _queues(daemon)
        daemon.cli("daemon", "restart")  # pmond looks at start, then every few minutes
        assert name[1:] not in _queues(daemon) and live[1:] in _queues(daemon)
    finally:
        for n in (name, live):
            try:
                _native.MessageQueue.unlink(n)
            except OSError:
                pass


def test_a_cli_stopped_by_sigterm_leaves_no_reply_queue(daemon: Pmond):
    if daemon.transport != "mq":
        pytest.skip("reply queues exist on the mq transport only")
    stubborn = script(daemon.root, "stubborn2.sh", "trap '' TERM\nwhile :; do sleep 0.05; done\n")
    daemon.cli("exec", stubborn, "--name", "stubborn2")
    before = _queues(daemon)
    proc = subprocess.Popen([str(BIN / "pmon3"), "stop", "stubborn2"], env=daemon.env, stderr=subprocess.PIPE)
    pid = daemon.get("stubborn2")["pid"]
    log = daemon.root / "pmond.stderr"
    wait_for(lambda: f"stopping pid {pid}: SIGTERM" in log.read_text(), what="pmond to be inside the stop")
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    assert _queues(daemon) <= before  # pmond dropped the name as soon as it held the queue
    # pmond frozen: nobody takes the request, so the CLI itself must remove its queue when told to stop
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        proc = subprocess.Popen([str(BIN / "pmon3"), "ls"], env=daemon.env, stderr=subprocess.PIPE)
        wait_for(lambda: len(_queues(daemon)) > len(before), what="the CLI's reply queue")
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert _queues(daemon) <= before
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    os.kill(pid, signal.SIGKILL)  # ends the first stop, still waiting inside pmond
    daemon.cli("del", "stubborn2", "-f")


def test_a_storm_of_exits_is_no_traceback_in_pmonds_log(tmp_path: Path) -> None:
    """600 children ending at once (pmond stopping them all) fill asyncio's signal wake-up pipe with SIGCHLDs.
    A full pipe already means that the loop will wake up: not worth a Python traceback per signal on stderr
    (there were hundreds)."""
    n = 600
    procs = tmp_path / "procs.json"
    procs.write_text(
        json.dumps({"processes": [{"file": "/bin/sleep", "name": f"s{i}", "args": "1000"} for i in range(n)]})
    )
    d = Pmond(tmp_path, f"process_config_file: {procs}\nrestart:\n  stop_timeout: 20s\n")
    d.start()
    try:
        d.wait_booted(120)
        rows = json.loads(d.cli("ls", "--json").stdout)
        assert sum(r["status"] == "running" for r in rows) == n
        pids = [int(r["pid"]) for r in rows]
    finally:
        assert d.stop(timeout=120) == 0
    assert not any(pid_alive(p) for p in pids)
    err = d.stderr_path.read_text()
    assert "stopping pid" in err  # it did stop them itself
    assert "Traceback" not in err and "signal wakeup fd" not in err, err[-2000:]
