"""A real pmond, real processes, real signals: the life of a supervised process through the CLI."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

from helpers import (
    BIN,
    SHARED_USERS,
    Pmond,
    boot_seconds,
    death_time,
    group_script,
    pid_alive,
    script,
    stamps,
    started_at,
    uptime_stamp,
    wait_for,
    wait_uptime,
)


def test_exec_returns_a_running_process(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "sleeper", "-a", "300")
    assert p["status"] == "running" and isinstance(p["pid"], int) and pid_alive(p["pid"])
    assert p["name"] == "sleeper" and p["restart_count"] == 0
    with open(f"/proc/{p['pid']}/cmdline", "rb") as fh:
        assert fh.read().split(b"\0")[:2] == [b"/bin/sleep", b"300"]  # argv[0] is the program as given, as pmon3
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
    wait_uptime(old, 1.1)  # up for min_uptime, so the restart is immediate rather than delayed
    killed_at = boot_seconds()
    os.kill(old, signal.SIGKILL)
    new = pmond.wait_restarted("victim", old)
    assert pid_alive(new["pid"]) and new["restart_count"] == 1
    # From the kill to the new process's start, both by the kernel's clock: no CLI start-up in it. About 2 ms
    # (benches/ measures it); a second is a margin for a loaded machine, still 10x the first quick-death delay.
    latency = started_at(new["pid"]) - killed_at
    assert latency < 1.0, latency


def test_crash_loop_is_damped(pmond: Pmond, tmp_root):
    starts = tmp_root / "crashes"
    prog = script(tmp_root, "crasher.sh", f"{uptime_stamp(starts)}\nexit 3\n")
    pmond.cli("exec", prog, "--name", "crasher")
    wait_for(lambda: len(stamps(starts)) >= 5, timeout=20, what="5 starts")
    # Each quick death doubles the delay from 100 ms: the gaps between starts grow as 0.1, 0.2, 0.4, 0.8 s
    # (lower bounds: a slow machine only makes them longer; /proc/uptime ticks are 10 ms).
    t = stamps(starts)[:5]
    gaps = [b - a for a, b in zip(t, t[1:])]
    for i, gap in enumerate(gaps):
        assert gap >= 0.1 * 2**i - 0.03, gaps
    p = pmond.get("crasher")
    assert p["status"] in ("restarting", "running") and p["restart_count"] >= 4
    pmond.cli("stop", "crasher")
    assert pmond.get("crasher")["status"] == "stopped"


def test_stop_is_graceful_then_forced(pmond: Pmond, tmp_root):
    term = tmp_root / "stubborn.term"
    prog = script(tmp_root, "stubborn.sh", f"trap '{uptime_stamp(term)}' TERM\nwhile :; do sleep 0.05; done\n")
    p = pmond.json("exec", prog, "--name", "stubborn")
    stop = subprocess.Popen([str(BIN / "pmon3"), "stop", "stubborn", "--json"], env=pmond.env, stdout=subprocess.PIPE)
    died = death_time(p["pid"])
    stopped = json.loads(stop.communicate(timeout=60)[0])
    assert stopped["status"] == "stopped" and stopped["last_exit_signal"] == signal.SIGKILL
    assert not pid_alive(p["pid"])  # recorded stopped only once really gone
    # TERM first (the trap saw it), SIGKILL stop_timeout later: 1.5 s in this daemon's config (default 10 s).
    # Both ends by the kernel's clock; the trap runs once the current `sleep 0.05` is over.
    waited = died - stamps(term)[0]
    assert 1.4 <= waited < 5, waited


def test_stop_force_kills_at_once(pmond: Pmond, tmp_root):
    term = tmp_root / "stubborn2.term"
    prog = script(tmp_root, "stubborn2.sh", f"trap '{uptime_stamp(term)}' TERM\nwhile :; do sleep 0.05; done\n")
    p = pmond.json("exec", prog, "--name", "stubborn2")
    stopped = pmond.json("stop", "stubborn2", "-f")
    assert stopped["status"] == "stopped" and stopped["last_exit_signal"] == signal.SIGKILL
    assert not pid_alive(p["pid"]) and not term.exists()  # SIGKILL at once: the polite signal never came


def test_stop_terminates_a_polite_process_quickly(pmond: Pmond):
    p = pmond.json("exec", "/bin/sleep", "--name", "polite", "-a", "300")
    stopped = pmond.json("stop", "polite")
    assert stopped["status"] == "stopped" and stopped["last_exit_signal"] == signal.SIGTERM
    assert not pid_alive(p["pid"])


def test_stopping_a_stopped_process_answers_stopped(pmond: Pmond):
    pmond.cli("exec", "/bin/sleep", "--name", "twice", "-a", "300")
    pmond.cli("stop", "twice")
    for force in ([], ["-f"]):  # once more: nothing to do, and no internal error
        assert pmond.json("stop", "twice", *force)["status"] == "stopped"
    pmond.cli("group", "create", "twicegroup")
    pmond.cli("group", "assign", "twicegroup", "twice")
    assert [p["status"] for p in pmond.json("group", "stop", "twicegroup")["processes"]] == ["stopped"]
    pmond.cli("group", "drop", "twicegroup")


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
    again = pmond.json("restart", "counted")
    assert again["restart_count"] == 1
    reset = {p["name"]: p for p in pmond.json("reset", "counted")}["counted"]
    assert reset["restart_count"] == 0 and pmond.get("counted")["restart_count"] == 0  # zeroed, and stored
    assert reset["pid"] == again["pid"] and reset["status"] == "running" and pid_alive(again["pid"])  # not restarted


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
    pmond.cli("exec", "/bin/sleep", "--name", "taken", "-a", "300")
    before = {p["name"]: p["pid"] for p in pmond.json("ls")}
    res = pmond.cli("exec", "/no/such/binary", check=False)
    assert res.returncode == 1
    assert "does not exist" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    notexec = tmp_root / "plain.txt"
    notexec.write_text("x")
    assert "not executable" in pmond.cli("exec", str(notexec), check=False).stderr
    assert "invalid process name" in pmond.cli("exec", "/bin/sleep", "--name", "../evil", check=False).stderr
    assert "unknown user" in pmond.cli("exec", "/bin/sleep", "-u", "no-such-user-xyz", check=False).stderr
    dup = pmond.cli("exec", "/bin/sleep", "--name", "taken", "-a", "1", check=False)
    assert "process already running with the name provided: taken" in dup.stderr
    assert {p["name"]: p["pid"] for p in pmond.json("ls")} == before  # nothing stored, nothing restarted


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


def test_pmonds_database_is_owner_only(pmond: Pmond):
    for f in (pmond.db_path, Path(f"{pmond.db_path}-wal")):  # it holds env vars
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


def test_stop_signal_reaches_the_whole_process_group(pmond: Pmond, tmp_root):
    marker = tmp_root / "group-term"
    p = pmond.json("exec", group_script(tmp_root, "grouped", marker), "--name", "grouped")
    child = int(wait_for(lambda: Path(f"{marker}.child").exists() and Path(f"{marker}.child").read_text()))
    assert os.getpgid(child) == p["pid"]  # the forked child is in the process's group
    try:
        stopped = pmond.json("stop", "grouped")
        assert stopped["status"] == "stopped" and stopped["last_exit_signal"] is None  # it exited on its trap
        wait_for(lambda: sorted(marker.read_text().split()) == ["child", "parent"], what="TERM for both")
        wait_for(lambda: not pid_alive(child), what="the child to end")
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_symlink_at_the_log_path_is_refused(pmond: Pmond, tmp_root):
    """Logs are opened with O_NOFOLLOW: by pmond in its own log directory (then handed to the run user, so
    following the link would give the target away: run as another user where we can), by the child, as
    the run user, elsewhere (as root there, so that only O_NOFOLLOW stands in the way)."""
    target = tmp_root / "precious"
    target.write_text("precious\n")
    target.chmod(0o600)
    elsewhere = tmp_root / "elsewhere"
    elsewhere.mkdir()
    as_user = ["-u", SHARED_USERS[0]] if os.geteuid() == 0 else []
    cases = [
        ("linked", pmond.logs / "linked.log", as_user),
        ("linked2", elsewhere / "linked2.log", ["--log", str(elsewhere / "linked2.log")]),
    ]
    for name, log, extra in cases:
        log.symlink_to(target)
        res = pmond.cli("exec", "/bin/sleep", "--name", name, "-a", "300", *extra, check=False)
        assert res.returncode == 1 and res.stdout == "", res
        assert f"log {log}" in res.stderr and "symbolic links" in res.stderr and len(res.stderr.splitlines()) == 1
        assert name not in {p["name"] for p in pmond.json("ls")}  # a failed start leaves no row
        assert target.read_text() == "precious\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
        assert target.stat().st_uid == os.geteuid() and log.is_symlink()


def test_ls_shows_live_cpu_and_memory(pmond: Pmond, tmp_root):
    """CPU is the share since the previous look at that process (the first shows 0.0%), memory its RSS."""
    busy = pmond.json("exec", script(tmp_root, "busy.sh", "while :; do :; done\n"), "--name", "busy")
    idle = pmond.json("exec", "/bin/sleep", "--name", "idle", "-a", "300")

    def share(name: str) -> float:
        row = next(p for p in pmond.json("ls") if p["name"] == name)
        assert row["memory_usage"].endswith((" KB", " MB")), row["memory_usage"]
        return float(row["cpu_usage"].rstrip("%"))

    try:
        # a busy loop uses most of a core between two looks (well above 20% even on a loaded 2-CPU machine)
        wait_for(lambda: share("busy") > 20, timeout=15, what="the busy loop's CPU share")
        assert share("idle") == 0.0
    finally:  # never leave the busy loop burning a CPU under the rest of the module
        for p in (busy, idle):
            pmond.cli("del", "-f", str(p["id"]))
