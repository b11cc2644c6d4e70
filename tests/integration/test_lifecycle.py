"""A real pmond, real processes, real signals: the life of a supervised process through the CLI."""

from __future__ import annotations

import os
import signal
import time

from helpers import Pmond, pid_alive, script, uptime, wait_for


def test_exec_returns_a_running_process(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "sleeper", "-a", "300")
    assert p["status"] == "running" and isinstance(p["pid"], int) and pid_alive(p["pid"])
    assert p["name"] == "sleeper" and p["restart_count"] == 0
    with open(f"/proc/{p['pid']}/cmdline", "rb") as fh:
        assert fh.read().split(b"\0")[:2] == [b"sleeper", b"300"]  # argv[0] is the name, as pmon3
    listed = {q["name"]: q for q in pmond.json("ls")}
    assert listed["sleeper"]["pid"] == p["pid"]
    assert isinstance(listed["sleeper"]["groups"], list) and isinstance(listed["sleeper"]["dependencies"], list)
    assert pmond.get(p["id"])["name"] == "sleeper"  # id or name


def test_exec_with_dashdash_args_and_quoting(pmond: Pmond, tmp_root):
    out = tmp_root / "args.out"
    prog = script(tmp_root, "echoargs.sh", f'printf "%s|" "$@" > {out}\nexec sleep 300\n')
    pmond.cli("exec", prog, "--name", "echoargs", "--", "a b", "--flag", "c")
    wait_for(lambda: out.exists() and out.read_text(), what="args file")
    assert out.read_text() == "a b|--flag|c|"


def test_log_file_gets_output_and_log_command_reads_it(pmond: Pmond, tmp_root):
    prog = script(
        tmp_root,
        "talker.sh",
        'for i in $(seq 1 12); do echo "line $i"; done\necho oops >&2\nexec sleep 300\n',
    )
    p = pmond.json("exec", prog, "--name", "talker")
    assert p["log"] == str(pmond.logs / "talker.log")
    wait_for(lambda: "oops" in pmond.cli("log", "talker").stdout, what="log output")
    tail = pmond.cli("log", "talker", "-n", "3").stdout.splitlines()
    assert tail == ["line 11", "line 12", "oops"]


def test_killed_process_is_restarted_at_once(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "victim", "-a", "300")
    old = p["pid"]
    # Let it be up for min_uptime so the restart is immediate rather than delayed.
    wait_for(lambda: uptime(old) >= 1.1, timeout=5, what="min_uptime")
    t0 = time.monotonic()
    os.kill(old, signal.SIGKILL)
    new = pmond.wait_restarted("victim", old)
    elapsed = time.monotonic() - t0
    assert pid_alive(new["pid"]) and new["restart_count"] == 1
    assert elapsed < 2.0, elapsed


def test_crash_loop_is_damped(pmond: Pmond, tmp_root):
    counter = tmp_root / "crashes"
    prog = script(tmp_root, "crasher.sh", f"echo x >> {counter}\nexit 3\n")
    pmond.cli("exec", prog, "--name", "crasher")
    wait_for(lambda: counter.exists() and len(counter.read_text().split()) >= 4, timeout=10, what="4 crashes")
    # Delays double from 100 ms: in 1.5 s at most ~5 attempts, not hundreds.
    t_end = time.monotonic() + 1.5
    wait_for(lambda: time.monotonic() > t_end, timeout=3, what="observation window")
    assert len(counter.read_text().split()) < 12
    p = pmond.get("crasher")
    assert p["status"] in ("restarting", "running") and p["restart_count"] >= 3
    pmond.cli("stop", "crasher")
    assert pmond.get("crasher")["status"] == "stopped"


def test_stop_is_graceful_then_forced(pmond: Pmond, tmp_root):
    prog = script(tmp_root, "stubborn.sh", "trap '' TERM\nwhile :; do sleep 1; done\n")
    p = pmond.json("exec", prog, "--name", "stubborn")
    t0 = time.monotonic()
    stopped = pmond.json("stop", "stubborn")
    elapsed = time.monotonic() - t0
    assert stopped["status"] == "stopped"
    assert not pid_alive(p["pid"])  # recorded stopped only once really gone
    assert 1.4 <= elapsed < 6, elapsed  # stop_timeout is 1.5 s in this daemon's config
    assert stopped["last_exit_signal"] == signal.SIGKILL


def test_stop_force_kills_at_once(pmond: Pmond, tmp_root):
    prog = script(tmp_root, "stubborn2.sh", "trap '' TERM\nwhile :; do sleep 1; done\n")
    pmond.cli("exec", prog, "--name", "stubborn2")
    t0 = time.monotonic()
    assert pmond.json("stop", "stubborn2", "-f")["status"] == "stopped"
    assert time.monotonic() - t0 < 1.4


def test_stop_terminates_a_polite_process_quickly(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "polite", "-a", "300")
    stopped = pmond.json("stop", "polite")
    assert stopped["status"] == "stopped" and stopped["last_exit_signal"] == signal.SIGTERM
    assert not pid_alive(p["pid"])


def test_no_autorestart_process_ends_failed(pmond: Pmond, tmp_root):
    prog = script(tmp_root, "once.sh", "exit 4\n")
    pmond.cli("exec", prog, "--name", "once", "-n")
    p = pmond.wait_status("once", "failed")
    assert p["auto_restart"] is False and p["restart_count"] == 0 and p["last_exit_code"] == 4


def test_restart_counts_and_start_of_running_is_a_noop(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "counted", "-a", "300")
    r1 = pmond.json("restart", "counted")
    r2 = pmond.json("restart", "counted")
    assert r2["restart_count"] == 2 and r1["pid"] != p["pid"] and r2["pid"] != r1["pid"]
    assert not pid_alive(p["pid"])
    res = pmond.cli("start", "counted")
    assert "already running" in res.stdout
    assert pmond.get("counted")["pid"] == r2["pid"]
    pmond.cli("stop", "counted")
    started = pmond.json("start", "counted")
    assert started["status"] == "running" and started["restart_count"] == 0  # stop reset it, start does not count
    pmond.cli("reset", "counted")


def test_restart_with_bad_flag_leaves_process_untouched(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "keepme", "-a", "300")
    res = pmond.cli("restart", "keepme", "-u", "no-such-user-xyz", check=False)
    assert res.returncode == 1 and "unknown user no-such-user-xyz" in res.stderr
    q = pmond.get("keepme")
    assert q["pid"] == p["pid"] and q["status"] == "running" and pid_alive(p["pid"])


def test_unknown_ids_give_pmon3_errors(pmond: Pmond):
    for cmd in ("desc", "stop", "del", "log", "reset"):
        res = pmond.cli(cmd, "nope-404", check=False)
        assert res.returncode == 1, cmd
        assert res.stderr.strip() == "process (nope-404) does not exist", (cmd, res.stderr)
        assert res.stdout == ""
    for cmd in ("restart", "start"):  # pmon3 looks in the process config for these
        res = pmond.cli(cmd, "nope-404", check=False)
        assert res.returncode == 1
        assert res.stderr.strip() == (
            "command error: start process error: could not find process in Process Config with name nope-404"
        )


def test_bad_exec_input_is_refused_and_nothing_is_stored(pmond: Pmond, tmp_root):
    before = pmond.json("ls")
    res = pmond.cli("exec", "/no/such/binary", check=False)
    assert res.returncode == 1
    assert "does not exist" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    notexec = tmp_root / "plain.txt"
    notexec.write_text("x")
    assert "not executable" in pmond.cli("exec", str(notexec), check=False).stderr
    assert "invalid process name" in pmond.cli("exec", "/bin/sleep", "--name", "../evil", check=False).stderr
    assert "unknown user" in pmond.cli("exec", "/bin/sleep", "-u", "no-such-user-xyz", check=False).stderr
    dup = pmond.cli("exec", "/bin/sleep", "--name", "sleeper", "-a", "1", check=False)
    assert "process already running with the name provided: sleeper" in dup.stderr
    assert pmond.json("ls") == before or [p["name"] for p in pmond.json("ls")] == [p["name"] for p in before]


def test_delete_removes_process_and_its_log(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "doomed", "-a", "300")
    log = p["log"]
    wait_for(lambda: os.path.exists(log), what="log file")
    pmond.cli("del", "doomed")
    assert not pid_alive(p["pid"]) and not os.path.exists(log)
    assert "doomed" not in [q["name"] for q in pmond.json("ls")]


def test_kill_stops_everything_running(pmond: Pmond):
    pmond.cli("exec", "/bin/sleep", "--name", "k1", "-a", "300")
    procs = pmond.json("kill", "-f")
    assert all(p["status"] != "running" for p in procs)
    assert pmond.cli("kill", check=False).stderr.strip() == "could not find running processes"
