"""What a booting pmond does with what the previous one left behind."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, pid_alive


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(tmp_root)


def test_kill9_of_pmond_then_adoption_without_duplicates(daemon: Pmond):
    a = daemon.json("exec", "/bin/sleep", "--name", "survivor", "-a", "300")
    b = daemon.json("exec", "/bin/sleep", "--name", "parked", "-a", "300")
    daemon.cli("stop", "parked")
    daemon.stop(signal.SIGKILL)
    assert pid_alive(a["pid"])  # children live on in their own sessions
    daemon.start()
    again = daemon.get("survivor")
    assert again["status"] == "running" and again["pid"] == a["pid"]  # adopted, not started twice
    assert daemon.get("parked")["status"] == "stopped" and not pid_alive(b["pid"])
    # An adopted process is supervised like any other: its death is seen and it comes back.
    t0 = time.monotonic()
    os.kill(a["pid"], signal.SIGKILL)
    new = daemon.wait_restarted("survivor", a["pid"])
    assert pid_alive(new["pid"]) and time.monotonic() - t0 < 5


def test_graceful_shutdown_records_closed_and_boot_brings_them_back(daemon: Pmond):
    before = daemon.get("survivor")
    assert daemon.stop(signal.SIGTERM) == 0
    assert not pid_alive(before["pid"])  # handle_interrupts: true stops children
    daemon.start()
    after = daemon.wait_status("survivor", "running")  # boot brings closed rows back in the background
    assert after["pid"] != before["pid"] and pid_alive(after["pid"])
    assert daemon.get("parked")["status"] == "stopped"


def test_handle_interrupts_false_leaves_children_for_the_next_pmond(tmp_path: Path):
    gen = make_daemon(tmp_path, "handle_interrupts: false\n")
    d = next(gen)
    try:
        p = d.json("exec", "/bin/sleep", "--name", "lasting", "-a", "300")
        assert d.stop(signal.SIGTERM) == 0
        assert pid_alive(p["pid"])
        d.start()
        q = d.get("lasting")
        assert q["pid"] == p["pid"] and q["status"] == "running"
    finally:
        gen.close()


def test_second_pmond_on_the_same_data_refuses(daemon: Pmond):
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "pmon3.daemon", "--foreground"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1 and "pmond is already running" in res.stderr


def test_shutdown_stops_dependents_before_their_dependencies(tmp_path: Path):
    from helpers import script

    order = tmp_path / "order"
    gen = make_daemon(tmp_path)
    d = next(gen)
    try:
        for name in ("db", "cache", "app"):
            prog = script(
                tmp_path, f"{name}.sh", f"trap 'echo {name} >> {order}; exit 0' TERM\nwhile :; do sleep 0.05; done\n"
            )
            deps = {"app": ["-d", "db,cache"], "cache": ["-d", "db"]}.get(name, [])
            d.cli("exec", prog, "--name", name, *deps)
        assert d.stop(signal.SIGTERM) == 0
        assert order.read_text().split() == ["app", "cache", "db"]
    finally:
        gen.close()
