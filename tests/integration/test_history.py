"""The history of exits on a real daemon: what ended how, after how long, and what pmond did next."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    Pmond,
    death_time,
    make_daemon,
    running_daemon,
    script,
    started_at,
    unique,
    wait_for,
    wait_uptime,
)

RETAIN = 5
USER = "pmon3test"
INITIALIZATION_PERIOD = 5  # s, the shortest pmond accepts: restart hooks run only after it


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    out = tmp_root / "hooks"
    out.mkdir()
    hook = script(tmp_root, "hook.sh", f'printf "%s\\n" "$2" >> {out}/"$1".jsonl\n')
    gen = make_daemon(
        tmp_root,
        f"initialization_period: {INITIALIZATION_PERIOD}\n"
        "restart:\n  min_uptime: 300ms\n  restart_delay: 50ms\n  max_restart_delay: 200ms\n  stop_timeout: 2s\n"
        f"history:\n  retain: {RETAIN}\n"
        f"event_handling:\n  process_restart: {hook} restart\n  process_failure: {hook} failure\n",
    )
    d = next(gen)
    d.started_at = time.monotonic()  # type: ignore[attr-defined]  # after pmond's own start: never too early
    yield d
    gen.close()


def history(d: Pmond, key: str = "", n: int = 100, user: str | None = None) -> list[dict]:
    args = ["history", *([key] if key else []), "-n", str(n)]
    return d.json(*args, user=user)


def wait_records(d: Pmond, key: str, count: int, timeout: float = 15) -> list[dict]:
    def enough() -> list[dict] | None:
        recs = history(d, key)
        return recs if len(recs) >= count else None

    return wait_for(enough, timeout, f"{count} exits of {key}")


def test_a_crash_is_recorded_with_its_signal_uptime_and_restart(daemon: Pmond):
    p = daemon.json("exec", "/bin/sleep", "--name", "crash", "-a", "300")
    wait_uptime(p["pid"], 0.4)  # past min_uptime: restarted at once, by the hot path
    born = started_at(p["pid"])
    os.kill(p["pid"], signal.SIGKILL)
    died = death_time(p["pid"])
    q = daemon.wait_restarted("crash", p["pid"])
    rec = wait_records(daemon, "crash", 1)[0]
    assert (rec["pid"], rec["code"], rec["signal"], rec["signal_name"]) == (p["pid"], None, 9, "SIGKILL")
    assert rec["reason"] == "signal" and rec["action"] == "restarted" and rec["detected"] == "child"
    assert rec["name"] == "crash" and rec["core_dumped"] is False
    # the uptime pmond measured is the kernel's (start time in ticks of 10 ms, death seen by a pidfd here)
    assert abs(rec["uptime"] - (died - born)) < 0.3
    assert 0 <= rec["delay_ms"] < 1000 and rec["cpu_seconds"] is not None
    assert rec["summary"].startswith("killed by SIGKILL after ") and ", restarted in " in rec["summary"]
    desc = daemon.cli("desc", "crash").stdout
    assert "last exit" in desc and "killed by SIGKILL after" in desc
    assert daemon.get("crash")["last_exit"] == rec["summary"]
    daemon.cli("stop", "crash")
    rec = wait_records(daemon, "crash", 2)[0]
    assert (rec["pid"], rec["reason"], rec["action"], rec["signal_name"]) == (q["pid"], "stop", "stopped", "SIGTERM")


def test_quick_deaths_record_their_code_and_the_delay(daemon: Pmond, tmp_root: Path):
    prog = script(tmp_root, "exit3.sh", "exit 3\n")
    daemon.cli("exec", prog, "--name", "quick")
    recs = wait_records(daemon, "quick", 3)
    daemon.cli("stop", "quick")
    oldest_first = list(reversed(recs))[:3]
    assert all((r["code"], r["signal"], r["reason"]) == (3, None, "exit") for r in oldest_first)
    assert [r["action"] for r in oldest_first] == ["scheduled"] * 3
    assert [r["delay_ms"] for r in oldest_first] == [50, 100, 200]  # restart_delay doubled, capped
    assert oldest_first[0]["summary"] == f"exited with code 3 after {oldest_first[0]['summary'].split(' after ')[1]}"
    assert "restart in 50ms" in oldest_first[0]["summary"]


def test_no_restart_is_failed_and_a_success_is_stopped(daemon: Pmond, tmp_root: Path):
    daemon.cli("exec", script(tmp_root, "fail.sh", "exit 4\n"), "--name", "gives-up", "-n")
    daemon.cli("exec", script(tmp_root, "ok.sh", "exit 0\n"), "--name", "done", "--restart", "on-failure")
    failed = wait_records(daemon, "gives-up", 1)[0]
    done = wait_records(daemon, "done", 1)[0]
    assert (failed["code"], failed["action"]) == (4, "failed")
    assert (done["code"], done["action"]) == (0, "stopped")
    assert "not restarted (failed)" in failed["summary"]


def test_a_user_restart_is_recorded_as_a_stop_then_restart(daemon: Pmond):
    p = daemon.json("exec", "/bin/sleep", "--name", "restarted", "-a", "300")
    daemon.cli("restart", "restarted")
    rec = wait_records(daemon, "restarted", 1)[0]
    assert (rec["pid"], rec["reason"], rec["action"]) == (p["pid"], "stop", "restarted")
    daemon.cli("stop", "restarted")


def test_a_core_dump_is_recorded(daemon: Pmond, tmp_path: Path):
    import resource

    if Path("/proc/sys/kernel/core_pattern").read_text().startswith("|"):
        pytest.skip("core_pattern pipes to a helper that decides by itself whether a core is made")
    if resource.getrlimit(resource.RLIMIT_CORE)[1] == 0:
        pytest.skip("no core dumps allowed here (hard RLIMIT_CORE 0)")
    tmp_path.chmod(0o755)
    dumps = script(tmp_path, "segv.sh", "ulimit -c unlimited\nkill -SEGV $$\n")
    daemon.cli("exec", dumps, "--name", "dumps", "-n", "--cwd", str(tmp_path))
    rec = wait_records(daemon, "dumps", 1)[0]
    assert (rec["signal_name"], rec["core_dumped"], rec["action"]) == ("SIGSEGV", True, "failed")
    assert "killed by SIGSEGV (core dumped)" in rec["summary"]
    nodump = script(tmp_path, "segv0.sh", "ulimit -c 0\nkill -SEGV $$\n")
    daemon.cli("exec", nodump, "--name", "nodump", "-n", "--cwd", str(tmp_path))
    rec = wait_records(daemon, "nodump", 1)[0]
    assert (rec["signal_name"], rec["core_dumped"]) == ("SIGSEGV", False)


def test_history_keeps_retain_rows_per_process(daemon: Pmond, tmp_root: Path):
    prog = script(tmp_root, "loop.sh", "exit 1\n")
    daemon.cli("exec", prog, "--name", "capped", "--restart-delay", "10ms", "--max-restart-delay", "10ms")
    wait_for(lambda: daemon.get("capped")["restart_count"] >= RETAIN + 3, what="a few more exits than retain")
    daemon.cli("stop", "capped")
    recs = history(daemon, "capped")
    assert len(recs) == RETAIN
    assert [r["id"] for r in recs] == sorted((r["id"] for r in recs), reverse=True)  # newest first
    pid = daemon.get("capped")["id"]
    with sqlite3.connect(f"file:{daemon.db_path}?mode=ro", uri=True) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM exits WHERE process_id = ?", (pid,)).fetchone()
    assert rows == RETAIN  # trimmed in the database, not only in the answer


def test_restart_hook_json_carries_the_exit(daemon: Pmond, tmp_root: Path):
    p = daemon.json("exec", "/bin/sleep", "--name", "hooked", "-a", "300")
    wait_uptime(p["pid"], 0.4)
    # Restart hooks run only after the initialization period: a property of time no event announces.
    left = daemon.started_at + INITIALIZATION_PERIOD + 0.2 - time.monotonic()  # type: ignore[attr-defined]
    if left > 0:
        time.sleep(left)
    os.kill(p["pid"], signal.SIGKILL)
    daemon.wait_restarted("hooked", p["pid"])
    out = tmp_root / "hooks" / "restart.jsonl"

    def event() -> dict | None:
        lines = out.read_text().splitlines() if out.exists() else []
        found = [e for e in map(json.loads, lines) if e["name"] == "hooked"]
        return found[-1] if found else None

    ev = wait_for(event, what="the restart hook")
    assert ev["exit"]["signal_name"] == "SIGKILL" and ev["exit"]["pid"] == p["pid"]
    assert ev["exit"]["reason"] == "signal" and ev["exit"]["action"] == "restarted"
    assert ev["exit"]["uptime"] >= 0.4 and "killed by SIGKILL" in ev["exit"]["summary"]
    daemon.cli("stop", "hooked")


def test_history_survives_a_pmond_restart(tmp_path: Path):
    tmp_path.chmod(0o755)
    with running_daemon(tmp_path, "restart:\n  min_uptime: 100ms\n") as d:
        p = d.json("exec", "/bin/sleep", "--name", "kept", "-a", "300")
        wait_uptime(p["pid"], 0.2)
        os.kill(p["pid"], signal.SIGKILL)
        d.wait_restarted("kept", p["pid"])
        before = wait_records(d, "kept", 1)
        d.stop()
        d.start()
        d.wait_booted()
        after = history(d, "kept")
        assert after[1] == before[0] and after[1]["pid"] == p["pid"]
        assert (after[0]["reason"], after[0]["action"], after[0]["signal_name"]) == ("shutdown", "closed", "SIGTERM")
        # read back from the database by the new pmond
        assert d.get("kept")["last_exit"].startswith("stopped at pmond's shutdown (killed by SIGTERM) after ")


def test_retain_0_writes_no_history(tmp_path: Path):
    tmp_path.chmod(0o755)
    with running_daemon(tmp_path, "history:\n  retain: 0\nrestart:\n  min_uptime: 100ms\n") as d:
        p = d.json("exec", "/bin/sleep", "--name", "unrecorded", "-a", "300")
        wait_uptime(p["pid"], 0.2)
        os.kill(p["pid"], signal.SIGKILL)
        d.wait_restarted("unrecorded", p["pid"])
        assert wait_for(lambda: d.get("unrecorded").get("last_exit"), what="desc's last exit (kept in memory)")
        assert history(d, "unrecorded") == []
        with sqlite3.connect(f"file:{d.db_path}?mode=ro", uri=True) as db:
            assert db.execute("SELECT COUNT(*) FROM exits").fetchone() == (0,)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for another user")
def test_users_see_their_own_history_and_root_sees_everyones(daemon: Pmond, tmp_root: Path):
    name = unique("mine")
    prog = script(tmp_root, "userexit.sh", "exit 5\n")
    daemon.cli("exec", prog, "--name", name, "-n", user=USER)
    mine = wait_for(lambda: history(daemon, name, user=USER), what="the user's exit")
    assert mine[0]["code"] == 5 and mine[0]["owner"] == USER
    theirs = history(daemon, user=USER)
    assert {r["owner"] for r in theirs} == {USER}  # root's processes' exits are not shown to the user
    res = daemon.cli("history", "crash", user=USER, check=False)
    assert res.returncode == 1 and "does not exist" in res.stderr
    everyone = history(daemon)
    assert {"root", USER} <= {r["owner"] for r in everyone}
    table = daemon.cli("history").stdout
    assert f"{USER}/{name}" in table  # root sees user/name
    daemon.cli("del", f"{USER}/{name}")
    assert all(r["name"] != name for r in history(daemon, user=USER))  # its history went with it


def _v1_memory_cgroup() -> Path | None:
    """A cgroup v1 memory hierarchy of ours where a child cgroup with a limit can be made (root only)."""
    if os.geteuid() != 0:
        return None
    try:
        own = next(
            line.split(":", 2)[2].strip()
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.split(":")[1] == "memory"
        )
    except StopIteration:
        return None
    base = Path("/sys/fs/cgroup/memory") / own.lstrip("/")
    return base if (base / "memory.limit_in_bytes").exists() and os.access(base, os.W_OK) else None


@pytest.mark.skipif(_v1_memory_cgroup() is None, reason="no cgroup v1 memory hierarchy to cause an OOM kill in")
def test_an_oom_kill_is_told_apart_from_a_sigkill(daemon: Pmond, tmp_root: Path):
    """A real OOM kill, kept inside a 48 MiB cgroup v1 memory limit the process moves itself into."""
    base = _v1_memory_cgroup()
    assert base is not None
    cg = base / f"pmon3-oom-{unique('t')}"
    cg.mkdir()
    try:
        (cg / "memory.limit_in_bytes").write_text(str(48 << 20))
        if (cg / "memory.memsw.limit_in_bytes").exists():
            (cg / "memory.memsw.limit_in_bytes").write_text(str(48 << 20))
        hog = "import time; a = b'x' * (200 << 20); time.sleep(60)"
        prog = script(tmp_root, "hog.sh", f'echo $$ > {cg}/cgroup.procs\nexec {sys.executable} -c "{hog}"\n')
        daemon.cli("exec", prog, "--name", "hog", "-n")
        rec = wait_records(daemon, "hog", 1, timeout=30)[0]
        assert rec["signal_name"] == "SIGKILL"
        assert rec["reason"] == "oom" and rec["oom_kill"] is True, rec
        assert rec["oom_source"] in ("kmsg", "cgroup")
        assert "(OOM killer)" in rec["summary"]
        # and a SIGKILL from someone else is not one
        p = daemon.json("exec", "/bin/sleep", "--name", "notoom", "-a", "300", "-n")
        os.kill(p["pid"], signal.SIGKILL)
        rec = wait_records(daemon, "notoom", 1)[0]
        assert rec["reason"] == "signal" and rec["oom_kill"] is not True
    finally:
        wait_for(lambda: not (cg / "cgroup.procs").read_text().strip(), what="the OOM cgroup to empty")
        cg.rmdir()


def test_history_of_an_unknown_process_fails(daemon: Pmond):
    res = daemon.cli("history", "nosuch", check=False)
    assert res.returncode == 1 and res.stderr.strip() == "process (nosuch) does not exist"
    res = daemon.cli("history", "-n", "0", check=False)
    assert res.returncode == 2


def test_a_reload_records_the_old_copy_as_replaced(daemon: Pmond):
    p = daemon.json("exec", "/bin/sleep", "--name", "reloaded", "-a", "300", "--ready", "delay:100ms")
    daemon.wait_status("reloaded", "running")
    daemon.cli("reload", "reloaded")
    rec = wait_records(daemon, "reloaded", 1)[0]
    assert (rec["pid"], rec["reason"], rec["action"], rec["signal_name"]) == (p["pid"], "reload", "replaced", "SIGTERM")
    assert rec["summary"].startswith("replaced by a reload (killed by SIGTERM) after ")
    daemon.cli("stop", "reloaded")


def test_a_copy_that_is_never_ready_is_recorded_as_not_ready(daemon: Pmond):
    """notify readiness from a program that never says READY=1: pmond kills it after ready_timeout."""
    p = daemon.json(
        "exec", "/bin/sleep", "--name", "unready", "-a", "300", "--ready", "notify", "--ready-timeout", "300ms", "-n"
    )
    rec = wait_records(daemon, "unready", 1)[0]
    assert (rec["pid"], rec["reason"], rec["signal_name"]) == (p["pid"], "not_ready", "SIGKILL")
    assert rec["summary"].startswith("killed by SIGKILL by pmond (") and rec["note"]
