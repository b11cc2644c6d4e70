"""Restart policy, flap detection, event hooks and config reload on a real daemon."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    BIN,
    Pmond,
    boot_seconds,
    death_time,
    live_copies,
    make_daemon,
    pid_alive,
    running_daemon,
    script,
    stamps,
    started_at,
    unique,
    uptime_stamp,
    wait_for,
    wait_uptime,
)

HOOK_DIR_NAME = "hook-out"
INITIALIZATION_PERIOD = 5  # s, the shortest pmond accepts


def events(root: Path, event: str) -> list[dict]:
    f = root / HOOK_DIR_NAME / f"{event}.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


def base_config(root: Path, hook: str, extra: str = "") -> str:
    return (
        "process_monitor_interval: 100\n"
        f"initialization_period: {INITIALIZATION_PERIOD}\n"
        "restart:\n  min_uptime: 500ms\n  restart_delay: 50ms\n  max_restart_delay: 200ms\n  stop_timeout: 2s\n"
        "flap_detection:\n  is_enabled: true\n  threshold_restarted: 3\n  threshold_countdown: 20\n"
        "  threshold_decrement: 4\n"
        "event_handling:\n"
        f"  process_restart: {hook} restart\n"
        f"  process_failure: {hook} failure\n"
        f"  process_backoff: {hook} backoff\n"
        "  timeout: 1s\n" + extra
    )


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    out = tmp_root / HOOK_DIR_NAME
    out.mkdir()
    hook = script(tmp_root, "hook.sh", f'printf "%s\\n" "$2" >> {out}/"$1".jsonl\n')
    gen = make_daemon(tmp_root, base_config(tmp_root, hook))
    d = next(gen)
    d.started_at = time.monotonic()  # type: ignore[attr-defined]  # after pmond's own start: never too early
    d.hook = hook  # type: ignore[attr-defined]
    yield d
    gen.close()


def after_initialization_period(daemon: Pmond) -> None:
    """Restart hooks run only after `initialization_period` (5 s here) since pmond started: a property of
    time that no event announces, so one sleep for whatever is left of it (nothing once the module ran
    a while; the whole period when the test runs alone)."""
    left = daemon.started_at + INITIALIZATION_PERIOD + 0.2 - time.monotonic()  # type: ignore[attr-defined]
    if left > 0:
        time.sleep(left)


def test_failure_hook_gets_json_and_nothing_is_run_by_a_shell(daemon: Pmond, tmp_root: Path):
    marker = tmp_root / "pwned"
    prog = script(tmp_root, "fails.sh", "exit 7\n")
    daemon.cli("exec", prog, "--name", "fails", "-n", "-a", f"$(touch {marker}) `touch {marker}`")
    daemon.wait_status("fails", "failed")
    got = wait_for(lambda: events(tmp_root, "failure"), what="failure hook")
    assert len(got) == 1
    ev = got[0]
    assert ev["name"] == "fails" and ev["status"] == 2 and ev["auto_restart"] is False
    assert list(ev)[:4] == ["created_at", "updated_at", "log", "name"] and "restart_count" in ev
    assert "$(touch" in ev["args"]
    assert not marker.exists()


def test_on_failure_mode_and_success_codes(daemon: Pmond, tmp_root: Path):
    ok = script(tmp_root, "ok.sh", "exit 2\n")
    daemon.cli("exec", ok, "--name", "okexit", "--restart", "on-failure", "--success-exit-codes", "0,2")
    p = daemon.wait_status("okexit", "stopped")
    assert p["restart_count"] == 0 and p["last_exit_code"] == 2
    bad = script(tmp_root, "bad.sh", "exit 3\n")
    daemon.cli("exec", bad, "--name", "badexit", "--restart", "on-failure", "--min-uptime", "0")
    wait_for(lambda: daemon.get("badexit")["restart_count"] >= 2, what="on-failure restarts")
    daemon.cli("stop", "badexit")
    res = daemon.cli("exec", bad, "--name", "bogus", "--restart", "sometimes", check=False)
    assert res.returncode == 2  # click rejects it before anything is sent


def test_backoff_then_recovery(daemon: Pmond, tmp_root: Path):
    flag = tmp_root / "healthy"
    prog = script(tmp_root, "flappy.sh", f"[ -f {flag} ] && exec sleep 300\nexit 1\n")
    daemon.cli("exec", prog, "--name", "flappy")
    p = daemon.wait_status("flappy", "backoff", timeout=10)
    assert p["restart_count"] >= 3
    assert [e["name"] for e in events(tmp_root, "backoff")].count("flappy") >= 1
    flag.write_text("ok")
    p = daemon.wait_status("flappy", "running", timeout=10)  # retried after the decrement
    wait_uptime(p["pid"], 0.6)  # up past min_uptime
    q = daemon.get("flappy")
    assert q["status"] == "running" and q["pid"] == p["pid"]  # recovered: out of backoff and staying up
    daemon.cli("stop", "flappy")


def test_reset_clears_backoff_at_once(tmp_path: Path):
    """reset zeroes the counter, forgets the flap history and retries a backed-off process at once. Here
    a backoff lasts 30 s and 3 restarts inside 60 s mean backoff: a failing process is started 4 times
    (exec + 3 restarts) and backs off; after reset, 3 restarts and backoff again. If reset did nothing it
    would stay backed off for 30 s; had it kept the history, one try would send it back (5 starts); had it
    kept the counter, that would read 6."""
    starts = tmp_path / "starts"
    with running_daemon(
        tmp_path,
        "process_monitor_interval: 100\nrestart:\n  restart_delay: 10ms\n  max_restart_delay: 20ms\n"
        "flap_detection:\n  is_enabled: true\n  threshold_restarted: 3\n  threshold_countdown: 600\n"
        "  threshold_decrement: 300\n",
    ) as d:
        prog = script(tmp_path, "fails.sh", f"echo x >> {starts}\nexit 1\n")
        d.cli("exec", prog, "--name", "flops")
        p = d.wait_status("flops", "backoff")
        assert p["restart_count"] == 3 and len(starts.read_text().split()) == 4
        reset = {q["name"]: q for q in d.json("reset", "flops")}["flops"]
        assert reset["restart_count"] == 0 and reset["status"] != "backoff"  # the reply: counter zeroed, retry due
        # Retried at once (well inside the 30 s backoff), with a clean history: 3 more restarts, then backoff.
        q = wait_for(
            lambda: (q := d.get("flops"))["status"] == "backoff" and len(starts.read_text().split()) > 4 and q,
            timeout=15,
            what="a retry after reset and the next backoff",
        )
        assert len(starts.read_text().split()) == 7 and q["restart_count"] == 3


def test_stop_signal_and_stop_timeout(daemon: Pmond, tmp_root: Path):
    got = tmp_root / "got-int"
    polite = script(tmp_root, "int.sh", f"trap 'echo INT > {got}; exit 0' INT\nwhile :; do sleep 0.05; done\n")
    daemon.cli("exec", polite, "--name", "wantsint", "--stop-signal", "INT", "--stop-timeout", "5s")
    p = daemon.json("stop", "wantsint")
    assert got.read_text().strip() == "INT" and p["last_exit_code"] == 0
    # It gets SIGINT (recorded by its trap, which keeps it running), and SIGKILL its own 300 ms later, not
    # after the daemon's stop_timeout of 2 s. Both ends by the kernel's clock, no CLI start-up in between.
    ints = tmp_root / "ints"
    stubborn = script(tmp_root, "noint.sh", f"trap '{uptime_stamp(ints)}' INT\nwhile :; do sleep 0.05; done\n")
    q = daemon.json("exec", stubborn, "--name", "ignoresint", "--stop-signal", "SIGINT", "--stop-timeout", "300ms")
    stop = subprocess.Popen(
        [str(BIN / "pmon3"), "stop", "ignoresint", "--json"], env=daemon.env, stdout=subprocess.PIPE
    )
    died = death_time(q["pid"])
    p = json.loads(stop.communicate(timeout=60)[0])
    assert p["last_exit_signal"] == signal.SIGKILL and p["status"] == "stopped"
    waited = died - stamps(ints)[0]  # the trap runs once the current `sleep 0.05` is over
    assert 0.2 <= waited < 1.5, waited


def test_restart_hook_fires_once_per_restart_after_the_initialization_period(daemon: Pmond, tmp_root: Path):
    p = daemon.json("exec", "/bin/sleep", "--name", "hooked", "-a", "300")
    after_initialization_period(daemon)
    wait_uptime(p["pid"], 0.6)  # past min_uptime: an immediate restart
    os.kill(p["pid"], signal.SIGKILL)
    ev = wait_for(lambda: [e for e in events(tmp_root, "restart") if e["name"] == "hooked"], what="restart hook")
    assert len(ev) == 1 and ev[0]["pid"] == p["pid"] and ev[0]["status"] == 2 and ev[0]["restart_count"] == 1


def test_a_hanging_hook_is_killed_and_never_delays_a_restart(daemon: Pmond, tmp_root: Path):
    hang = script(tmp_root, "hang.sh", "sleep 1000\n")
    daemon.conf.write_text(
        daemon.conf.read_text().replace(f"process_restart: {daemon.hook} restart", f"process_restart: {hang}")
    )
    name = unique("slowhook")
    p = daemon.json("exec", "/bin/sleep", "--name", name, "-a", "300")  # this command reloads the config
    after_initialization_period(daemon)  # else no hook runs at all (this test failed when run alone)
    wait_uptime(p["pid"], 0.6)
    os.kill(p["pid"], signal.SIGKILL)
    # The restart runs the hanging hook (killed after the 1 s hook timeout). Kill the new process while
    # that hook still hangs (found in /proc, no CLI round trip): its restart, a quick death's 50 ms later,
    # must not wait for the hook.
    second = wait_for(lambda: [q for q in live_copies(name) if q != p["pid"]], timeout=5, what="first restart")[0]
    killed_at = boot_seconds()
    os.kill(second, signal.SIGKILL)
    third = daemon.wait_restarted(name, second)
    assert pid_alive(third["pid"])
    latency = started_at(third["pid"]) - killed_at  # kernel clocks: no CLI start-up in it
    assert latency < 0.8, latency
    log = daemon.root / "pmond.stderr"
    wait_for(lambda: f"hang.sh for {name} timed out: killed" in log.read_text(), timeout=10, what="hook killed")
    assert log.read_text().count(f"hang.sh for {name} timed out: killed") >= 1


def test_broken_config_is_reported_and_the_last_good_one_stays(daemon: Pmond, tmp_root: Path):
    from pmon3 import config
    from pmon3.client import Client

    good = daemon.conf.read_text()
    good_cfg = config.load(str(daemon.conf))
    stubborn = script(tmp_root, "stub3.sh", "trap '' TERM\nwhile :; do sleep 0.05; done\n")
    daemon.cli("exec", stubborn, "--name", "stub3")
    daemon.conf.write_text(good + "restart: [oops\n")
    try:
        res = daemon.cli("ls", check=False)  # the CLI reads the file too, and says what is wrong
        assert res.returncode == 1 and "invalid YAML" in res.stderr and len(res.stderr.splitlines()) == 1
        daemon.proc.send_signal(signal.SIGHUP)
        log = daemon.root / "pmond.stderr"
        wait_for(lambda: "last good config stays in force" in log.read_text(), what="reload error in the log")
        with Client(good_cfg) as c:  # a client that still knows the endpoint
            t0 = time.monotonic()
            c.stop("stub3")
        # stop_timeout 2 s still in force, not the default 10 s (an in-process call: no CLI start-up)
        assert time.monotonic() - t0 < 8
    finally:
        daemon.conf.write_text(good)
    assert daemon.cli("ls").stderr == ""


def test_flap_state_survives_a_daemon_restart(tmp_path: Path):
    gen = make_daemon(
        tmp_path,
        "process_monitor_interval: 100\nrestart:\n  restart_delay: 10ms\n  max_restart_delay: 20ms\n"
        "flap_detection:\n  is_enabled: true\n  threshold_restarted: 2\n  threshold_countdown: 600\n"
        "  threshold_decrement: 300\n",
    )
    d = next(gen)
    try:
        d.cli("exec", "/bin/false", "--name", "flops")
        p = d.wait_status("flops", "backoff")
        d.stop(signal.SIGKILL)
        d.start()
        q = d.get("flops")  # still backing off: 30 s retry time, not started again at boot
        assert q["status"] == "backoff" and q["restart_count"] == p["restart_count"]
    finally:
        gen.close()


def test_a_storm_of_restart_hooks_runs_at_most_eight_at_once_and_loses_none(tmp_path: Path):
    """24 processes killed at once: 24 restart hooks, each 0.4 s long. Never more than 8 run at the same time
    (1000 restarts must not start 1000 hook processes beside the restarted ones), and every one runs."""
    from pmon3.daemon.hooks import MAX_RUNNING

    n = 24
    out = tmp_path / "hook-runs"
    # $$: the hook's own pid; the clock is CLOCK_REALTIME in ns, the same for every hook
    hook = script(
        tmp_path, "slow.sh", f'echo "S $(date +%s%N) $$" >> {out}\nsleep 0.4\necho "E $(date +%s%N) $$" >> {out}\n'
    )
    config = base_config(tmp_path, hook).replace("  timeout: 1s\n", "  timeout: 5s\n")
    with running_daemon(tmp_path, config) as d:
        started = time.monotonic()
        pids = [d.json("exec", "/bin/sleep", "--name", f"h{i}", "-a", "300")["pid"] for i in range(n)]
        left = started + INITIALIZATION_PERIOD + 0.2 - time.monotonic()
        if left > 0:  # restart hooks run only after initialization_period: a property of time, no event
            time.sleep(left)
        for pid in pids:
            wait_uptime(pid, 0.6)  # past min_uptime: each is restarted at once
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

        def ended() -> list[str]:
            return [line for line in out.read_text().splitlines() if line.startswith("E")] if out.exists() else []

        wait_for(lambda: len(ended()) >= n, timeout=30, what=f"{n} restart hooks to finish")
    events_ = sorted(
        (int(t), 1 if kind == "S" else -1) for kind, t, _pid in (line.split() for line in out.read_text().splitlines())
    )
    running = peak = 0
    for _t, step in events_:  # at equal times an end sorts first (-1 < 1): no false overlap
        running += step
        peak = max(peak, running)
    assert sum(step == 1 for _t, step in events_) == n  # none lost, none twice
    assert 2 <= peak <= MAX_RUNNING == 8, peak
