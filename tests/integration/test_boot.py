"""What a booting pmond does with what the previous one left behind: adopt what is really the same
process, exactly once; refuse what only looks like it; start what is gone."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    Pmond,
    edit_db,
    group_script,
    kill_and_reap,
    leave_pmonds_cgroup,
    live_copies,
    make_daemon,
    pid_alive,
    reap_orphans,
    running_daemon,
    script,
    set_subreaper,
    unique,
    wait_for,
)


@pytest.fixture(scope="module", autouse=True)
def reaper() -> Iterator[None]:
    """Children of a pmond killed with SIGKILL are re-parented to us, as they would be to systemd: we reap
    them, so that a process killed while pmond is down is really gone (not a zombie with its pid)."""
    set_subreaper(True)
    yield
    set_subreaper(False)
    reap_orphans()


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(tmp_root)


SURVIVOR, PARKED = unique("survivor"), unique("parked")


def test_kill9_of_pmond_then_adoption_without_duplicates(daemon: Pmond):
    a = daemon.json("exec", "/bin/sleep", "--name", SURVIVOR, "-a", "300")
    b = daemon.json("exec", "/bin/sleep", "--name", PARKED, "-a", "300")
    daemon.cli("stop", PARKED)
    daemon.stop(signal.SIGKILL)
    assert pid_alive(a["pid"])  # children live on in their own sessions
    daemon.start()
    daemon.wait_booted()  # a duplicate would be started by the background boot: look after it
    again = daemon.get(SURVIVOR)
    assert again["status"] == "running" and again["pid"] == a["pid"]  # adopted, not started twice
    assert live_copies(SURVIVOR) == [a["pid"]]
    assert daemon.get(PARKED)["status"] == "stopped" and not pid_alive(b["pid"]) and live_copies(PARKED) == []
    # An adopted process is supervised like any other: its death is seen and it comes back.
    kill_and_reap(a["pid"])
    new = daemon.wait_restarted(SURVIVOR, a["pid"])
    assert live_copies(SURVIVOR) == [new["pid"]]


def test_graceful_shutdown_records_closed_and_boot_brings_them_back(daemon: Pmond):
    closed, parked = unique("closed"), unique("parked2")
    before = daemon.json("exec", "/bin/sleep", "--name", closed, "-a", "300")
    daemon.cli("exec", "/bin/sleep", "--name", parked, "-a", "300")
    daemon.cli("stop", parked)
    assert daemon.stop(signal.SIGTERM) == 0
    assert not pid_alive(before["pid"])  # handle_interrupts: true stops children
    daemon.start()
    after = daemon.wait_status(closed, "running")  # boot brings closed rows back in the background
    assert after["pid"] != before["pid"] and pid_alive(after["pid"])
    daemon.wait_booted()
    assert live_copies(closed) == [after["pid"]]
    assert daemon.get(parked)["status"] == "stopped" and live_copies(parked) == []


def test_handle_interrupts_false_leaves_children_for_the_next_pmond(tmp_path: Path):
    name = unique("lasting")
    with running_daemon(tmp_path, "handle_interrupts: false\n") as d:
        p = d.json("exec", "/bin/sleep", "--name", name, "-a", "300")
        assert d.stop(signal.SIGTERM) == 0
        assert pid_alive(p["pid"])
        d.start()
        d.wait_booted()
        q = d.get(name)
        assert q["pid"] == p["pid"] and q["status"] == "running" and live_copies(name) == [p["pid"]]


def test_stop_ends_an_adopted_process_and_its_group(tmp_path: Path):
    """An adopted process is not pmond's child: stop signals its group through the pidfd's guard."""
    name, marker = unique("adoptee"), tmp_path / "got-term"
    with running_daemon(tmp_path, "restart:\n  stop_timeout: 10s\n") as d:
        prog = group_script(tmp_path, "adoptee", marker)
        p = d.json("exec", prog, "--name", name)
        child = int(wait_for(lambda: Path(f"{marker}.child").exists() and Path(f"{marker}.child").read_text()))
        d.stop(signal.SIGKILL)
        d.start()
        d.wait_booted()
        assert d.get(name)["pid"] == p["pid"] and live_copies(prog) == [p["pid"]]  # adopted
        try:
            stopped = d.json("stop", name)
            assert stopped["status"] == "stopped" and not pid_alive(p["pid"])
            wait_for(lambda: sorted(marker.read_text().split()) == ["child", "parent"], what="TERM for both")
            wait_for(lambda: not pid_alive(child), what="the child to end")
        finally:
            kill_and_reap(child)


def _left_behind(d: Pmond, name: str) -> dict:
    """Start a sleeper and kill pmond with SIGKILL: the sleeper lives on, its row says running. It stands for
    a stranger that got the recorded pid, so it leaves the process's cgroup (a stranger is not in it)."""
    p = d.json("exec", "/bin/sleep", "--name", name, "-a", "300")
    d.stop(signal.SIGKILL)
    assert pid_alive(p["pid"])
    leave_pmonds_cgroup(p["pid"])
    return p


def _boot_refuses(d: Pmond, name: str, stranger: int) -> None:
    """After a boot that must not adopt `stranger`: a new copy runs, the stranger is never signalled."""
    d.start()
    d.wait_booted()
    p = d.get(name)
    assert p["status"] == "running" and p["pid"] != stranger and pid_alive(p["pid"])  # a new copy
    assert sorted(live_copies(name)) == sorted([stranger, p["pid"]])
    d.cli("stop", name)  # stops what pmond started, and only that
    assert not pid_alive(p["pid"]) and pid_alive(stranger)


def test_a_reused_pid_is_neither_adopted_nor_signalled(tmp_path: Path):
    name = unique("reused")
    with running_daemon(tmp_path) as d:
        a = _left_behind(d, name)
        try:
            # While pmond is down the pid "goes to another process": same pid, another start time.
            edit_db(d, "UPDATE processes SET pid_start_time = pid_start_time - 100 WHERE name = ?", name)
            _boot_refuses(d, name, a["pid"])
        finally:
            alive = pid_alive(a["pid"])
    try:
        assert alive and pid_alive(a["pid"])  # not even pmond's shutdown touched it
    finally:
        kill_and_reap(a["pid"])


def test_a_row_from_another_boot_is_not_adopted(tmp_path: Path):
    name = unique("oldboot")
    with running_daemon(tmp_path) as d:
        a = _left_behind(d, name)
        try:
            edit_db(d, "UPDATE meta SET value = 'another-boot' WHERE key = 'boot_id'")
            _boot_refuses(d, name, a["pid"])
        finally:
            alive = pid_alive(a["pid"])
    try:
        assert alive and pid_alive(a["pid"])
    finally:
        kill_and_reap(a["pid"])


def test_a_process_that_died_while_pmond_was_down_is_started_again(tmp_path: Path):
    name = unique("gone")
    with running_daemon(tmp_path) as d:
        a = _left_behind(d, name)
        kill_and_reap(a["pid"])  # dead and reaped while no pmond watched
        d.start()
        d.wait_booted()
        p = d.get(name)
        assert p["status"] == "running" and p["pid"] != a["pid"] and live_copies(name) == [p["pid"]]


def test_second_pmond_on_the_same_data_refuses(daemon: Pmond):
    res = subprocess.run(
        [sys.executable, "-m", "pmon3.daemon", "--foreground"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1 and "pmond is already running" in res.stderr


def test_shutdown_stops_dependents_before_their_dependencies(tmp_path: Path):
    order = tmp_path / "order"
    with running_daemon(tmp_path) as d:
        for name in ("db", "cache", "app"):
            prog = script(
                tmp_path, f"{name}.sh", f"trap 'echo {name} >> {order}; exit 0' TERM\nwhile :; do sleep 0.05; done\n"
            )
            deps = {"app": ["-d", "db,cache"], "cache": ["-d", "db"]}.get(name, [])
            d.cli("exec", prog, "--name", name, *deps)
        assert d.stop(signal.SIGTERM) == 0
        assert order.read_text().split() == ["app", "cache", "db"]


def _cgroup_of(d: Pmond, name: str) -> Path:
    tree = d.get(name)["tree"]
    if not tree.startswith("cgroup "):
        pytest.skip("pmond uses no cgroups here: a crashed pmond's untracked processes cannot be found")
    return Path(tree.removeprefix("cgroup "))


def test_orphans_of_a_leader_that_died_while_pmond_was_down_are_ended_before_it_starts_again(tmp_path: Path):
    name = unique("orphaner")
    with running_daemon(tmp_path) as d:
        p = d.json("exec", script(tmp_path, "orphaner.sh", "/bin/sleep 300 &\nwait\n"), "--name", name)
        _cgroup_of(d, name)
        old = wait_for(lambda: (found := live_copies(name)) and len(found) == 2 and found, what="leader and child")
        d.stop(signal.SIGKILL)
        kill_and_reap(p["pid"])  # the leader dies unwatched; its child lives on, nobody's
        assert any(pid_alive(pid) for pid in old)
        d.start()
        d.wait_booted()
        q = d.get(name)
        assert q["status"] == "running" and q["pid"] not in old
        assert not any(pid_alive(pid) for pid in old)  # ended, not left beside the new copy
        new = wait_for(lambda: (found := live_copies(name)) and len(found) == 2 and found, what="the new copy's tree")
        assert q["pid"] in new and not set(new) & set(old)


def test_a_copy_started_just_before_a_crash_is_not_left_running_untracked(tmp_path: Path):
    """pmond died between spawning a copy and writing its pid: the row says stopped, the copy runs in the
    process's cgroup (here a stand-in moved there). The next pmond ends it; the row stays stopped."""
    name = unique("unrecorded")
    with running_daemon(tmp_path) as d:
        d.cli("exec", "/bin/sleep", "--name", name, "-a", "300")
        cgroup = _cgroup_of(d, name)
        d.cli("stop", name)
        d.stop(signal.SIGKILL)
        stand_in = subprocess.Popen(["/bin/sleep", "300"], env={"PMON3_NAME": name}, start_new_session=True)
        try:
            (cgroup / "cgroup.procs").write_text(str(stand_in.pid))
            assert live_copies(name) == [stand_in.pid]
            d.start()
            assert stand_in.poll() == -signal.SIGKILL  # ended before pmond answered anyone
            d.wait_booted()
            assert d.get(name)["status"] == "stopped" and live_copies(name) == []
        finally:
            stand_in.kill()
            stand_in.wait()
