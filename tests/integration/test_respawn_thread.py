"""pmond's native respawn thread (rust/respawn.rs) against what pmond decides: a crash loop the thread keeps
restarting ends for good at a stop, a restart or a delete, and a config reload's restart settings reach copies
the thread holds already."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, live_copies, make_daemon, script, unique, wait_for

CYCLES = 8  # stop/start rounds per test: each one is a chance for a respawn behind the stop's back


@pytest.fixture(scope="module")
def d(tmp_root: Path) -> Iterator[Pmond]:
    root = tmp_root / "respawn"
    root.mkdir()
    # min_uptime 0: every death is restarted at once, by the thread
    yield from make_daemon(root, "restart:\n  min_uptime: 0s\n")


def thread_runs(d: Pmond) -> int:
    """How many times pmond's respawn thread has been on a CPU (/proc/<pid>/task/<tid>/schedstat)."""
    assert d.proc is not None
    for tid in os.listdir(f"/proc/{d.proc.pid}/task"):
        with open(f"/proc/{d.proc.pid}/task/{tid}/comm") as fh:
            if fh.read().strip() == "pmond-respawn":
                with open(f"/proc/{d.proc.pid}/task/{tid}/schedstat") as fh:
                    return int(fh.read().split()[2])
    raise AssertionError("pmond has no respawn thread")


def crash_loop(d: Pmond, name: str) -> str:
    """A program that dies 20 ms after it starts, started under `name`, restarted a few times already."""
    prog = script(d.root, f"{name}.sh", "sleep 0.02\nexit 3\n")
    d.cli("exec", prog, "--name", name)
    wait_for(lambda: d.get(name)["restart_count"] >= 3, what=f"{name} to crash and be restarted")
    return prog


def test_stop_during_a_crash_loop_is_final(d: Pmond) -> None:
    name = unique("loop-stop")
    before = thread_runs(d)
    prog = crash_loop(d, name)
    assert thread_runs(d) > before  # the thread did the restarts
    for _ in range(CYCLES):
        d.cli("stop", name)
        p = d.get(name)
        assert p["status"] == "stopped" and not live_copies(prog), p
        # A respawn after the stop would be running by now or make this start fail ("already running").
        d.cli("start", name)
        wait_for(lambda: d.get(name)["restart_count"] >= 2, what="the crash loop again")
    d.cli("del", "-f", name)
    assert not live_copies(prog)


def test_restart_during_a_crash_loop_leaves_one_copy(d: Pmond) -> None:
    name = unique("loop-restart")
    prog = script(d.root, "loop-restart.sh", "sleep 0.05\nexit 3\n")
    d.cli("exec", prog, "--name", name)
    for _ in range(CYCLES):
        wait_for(lambda: d.get(name)["restart_count"] >= 2, what="the crash loop")
        d.cli("restart", name)
        # one generation at a time: never two copies of the program alive
        assert len(live_copies(prog)) <= 1
    d.cli("del", "-f", name)
    assert not live_copies(prog)
    assert name not in d.cli("ls").stdout


def test_config_reload_reaches_copies_already_armed(d: Pmond) -> None:
    name = unique("reload-rule")
    p = d.json("exec", "/bin/sleep", "--name", name, "-a", "300")
    os.kill(p["pid"], signal.SIGKILL)
    p = d.wait_restarted(name, p["pid"])  # restarted at once, as configured
    # by the thread, which blocks every signal for itself: not for the program it starts
    with open(f"/proc/{p['pid']}/status") as fh:
        masks = dict(line.split(":\t", 1) for line in fh if line.startswith(("SigBlk", "SigIgn")))
    assert {k: int(v, 16) for k, v in masks.items()} == {"SigBlk": 0, "SigIgn": 0}
    original = d.conf.read_text()
    try:
        d.conf.write_text(original.replace("restart:\n  min_uptime: 0s\n", "restart:\n  mode: never\n"))
        d.cli("ls")  # every command re-reads a changed config.yml
        os.kill(p["pid"], signal.SIGKILL)

        def down() -> dict[str, object]:
            q = d.get(name)
            return q if q["status"] != "running" else {}

        q = wait_for(down, what=f"{name} to stay down")
        assert q["pid"] in (0, p["pid"]) and q["restart_count"] == p["restart_count"], q
    finally:
        d.conf.write_text(original)
        d.cli("ls")
        d.cli("del", "-f", name)


def test_on_failure_rule_in_the_thread(d: Pmond) -> None:
    """The thread's rule is policy.restarts_at_once: with on-failure a success code is not restarted, another
    code is (both run long enough to be armed, past the exec's row lock)."""
    ok, failing = unique("onf-ok"), unique("onf-fail")
    d.cli("exec", script(d.root, "onf-ok.sh", "sleep 0.3\nexit 0\n"), "--name", ok, "--restart", "on-failure")
    d.cli("exec", script(d.root, "onf-fail.sh", "sleep 0.3\nexit 3\n"), "--name", failing, "--restart", "on-failure")
    wait_for(lambda: d.get(failing)["restart_count"] >= 2, what="the failing one restarted")
    p = d.wait_status(ok, "stopped")
    assert p["restart_count"] == 0 and p["last_exit_code"] == 0, p
    d.cli("del", "-f", ok)
    d.cli("del", "-f", failing)
