"""Resource limits on a real daemon: rlimits in /proc/<pid>/limits, max_memory restarts, cgroup limits refused
where pmond has no controllers."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, script, wait_for, wait_uptime

CHECK_MS = 200


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(
        tmp_root,
        f"restart:\n  min_uptime: 200ms\n  stop_timeout: 2s\nlimits:\n  memory_check_interval: {CHECK_MS}ms\n",
    )


def limits_of(pid: int) -> dict[str, tuple[str, str]]:
    """/proc/<pid>/limits: {"Max open files": (soft, hard), ...}."""
    out = {}
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines()[1:]:
        name, soft, hard = line[:26].strip(), line[26:47].strip(), line[47:68].strip()
        out[name] = (soft, hard)
    return out


def test_exec_limits_are_set_in_the_process_and_kept_on_restart(daemon: Pmond):
    p = daemon.json(
        "exec", "/bin/sleep", "--name", "limited", "-a", "300",
        "--limit", "nofile=1000:2000,core=0", "--limit", "nproc=500,as=unlimited", "--limit", "stack=8M:unlimited",
    )  # fmt: skip
    want = {
        "Max open files": ("1000", "2000"),
        "Max core file size": ("0", "0"),
        "Max processes": ("500", "500"),
        "Max address space": ("unlimited", "unlimited"),
        "Max stack size": (str(8 << 20), "unlimited"),
    }
    assert {k: limits_of(p["pid"])[k] for k in want} == want
    assert p["options"]["limits"] == {
        "as": [-1, -1], "core": [0, 0], "nofile": [1000, 2000], "nproc": [500, 500], "stack": [8 << 20, -1]
    }  # fmt: skip
    wait_uptime(p["pid"], 0.3)
    os.kill(p["pid"], signal.SIGKILL)  # the hot path respawns from what it kept: the limits too
    q = daemon.wait_restarted("limited", p["pid"])
    assert {k: limits_of(q["pid"])[k] for k in want} == want
    daemon.cli("restart", "limited")  # and the general way
    r = daemon.get("limited")
    assert {k: limits_of(r["pid"])[k] for k in want} == want
    daemon.cli("stop", "limited")


def test_bad_limits_are_refused_and_nothing_is_created(daemon: Pmond):
    for flag, message in (
        (["--limit", "nofile=lots"], "limits: nofile: expected a number or unlimited"),
        (["--limit", "files=10"], "limits: unknown limit 'files'"),
        (["--limit", "nofile=20:10"], "limits: nofile: the soft limit is above the hard one"),
        (["--max-memory", "huge"], "max_memory: expected a size such as 512M"),
        (["--cpu-max", "fast"], "cpu_max: expected a share of one CPU"),
    ):
        res = daemon.cli("exec", "/bin/sleep", "--name", "refused", *flag, check=False)
        assert res.returncode == 1 and res.stderr.startswith(message) and res.stderr.count("\n") == 1, res.stderr
        assert daemon.cli("desc", "refused", check=False).returncode == 1


def _has_controller(name: str) -> bool:
    """Whether pmond could get the controller: offered to the cgroup it runs in (here: the test's)."""
    own = Path("/proc/self/cgroup").read_text().split("0::", 1)[-1].split("\n", 1)[0]
    mounts = [
        line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines() if " - cgroup2 " in line
    ]
    return bool(mounts) and name in (Path(mounts[0]) / own.lstrip("/") / "cgroup.controllers").read_text().split()


@pytest.mark.skipif(_has_controller("memory"), reason="the memory controller is delegated here")
def test_cgroup_limits_without_the_controller_fail_whole(daemon: Pmond):
    for flag in (["--memory-max", "1G"], ["--pids-max", "64"], ["--cpu-max", "50%"]):
        res = daemon.cli("exec", "/bin/sleep", "--name", "caged", "-a", "300", *flag, check=False)
        assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
        assert "controller is not delegated to pmond" in res.stderr or "by session" in res.stderr, res.stderr
        assert daemon.cli("desc", "caged", check=False).returncode == 1  # nothing half-applied
    # an existing process that is given one through apply is refused as well, and left as it was
    daemon.cli("exec", "/bin/sleep", "--name", "kept", "-a", "300")
    before = daemon.get("kept")
    conf = daemon.root / "caged.yaml"
    conf.write_text("processes:\n  - file: /bin/sleep\n    name: kept\n    args: '300'\n    pids_max: 64\n")
    res = daemon.cli("apply", str(conf), check=False)
    assert res.returncode == 1 and "pids_max" in res.stdout + res.stderr
    after = daemon.get("kept")
    assert (after["pid"], after["options"]) == (before["pid"], before["options"])
    daemon.cli("del", "kept")


def test_limits_from_a_process_config_and_export(daemon: Pmond):
    conf = daemon.root / "limits.yaml"
    conf.write_text(
        "processes:\n  - file: /bin/sleep\n    name: fromconf\n    args: '300'\n"
        "    limits:\n      nofile: 4096\n      core: unlimited\n    max_memory: 1G\n"
    )
    daemon.cli("apply", str(conf))
    p = daemon.get("fromconf")
    assert limits_of(p["pid"])["Max open files"] == ("4096", "4096")
    assert limits_of(p["pid"])["Max core file size"] == ("unlimited", "unlimited")
    exported = daemon.cli("export", "yaml").stdout
    assert "limits: core=unlimited,nofile=4096" in exported and "max_memory: 1G" in exported
    # the exported spelling is the same process: applying it changes nothing
    (daemon.root / "exported.yaml").write_text(exported)
    plan = daemon.json("apply", str(daemon.root / "exported.yaml"), "--dry-run")
    assert {a["name"]: a["action"] for a in plan["actions"]}["fromconf"] == "unchanged"
    daemon.cli("del", "fromconf")


def test_a_tree_over_max_memory_is_restarted_and_recorded(daemon: Pmond, tmp_root: Path):
    """The leader is small; its child holds 64 MiB: only the whole tree is over the 32M limit."""
    hog = f"{sys.executable} -c \"import time; a = b'x' * (64 << 20); time.sleep(300)\""
    prog = script(tmp_root, "tree.sh", f"{hog} &\nexec sleep 300\n")
    p = daemon.json("exec", prog, "--name", "fat", "--max-memory", "32M")
    small = daemon.json("exec", "/bin/sleep", "--name", "thin", "-a", "300", "--max-memory", "32M")
    q = daemon.wait_restarted("fat", p["pid"], timeout=30)
    assert q["restart_count"] >= 1  # (the new copy grows past the limit again, and so on)
    rec = wait_for(lambda: daemon.json("history", "fat"), what="the max_memory exit")[-1]
    assert (rec["pid"], rec["reason"], rec["action"]) == (p["pid"], "max_memory", "restarted")
    assert "> max_memory 32.0 MiB" in rec["note"] and "over" not in rec["summary"].split("(")[0]
    assert rec["summary"].startswith("killed by SIGTERM by pmond (tree memory ")
    thin = daemon.get("thin")
    assert (thin["pid"], thin["restart_count"]) == (small["pid"], 0)  # under its limit all along
    daemon.cli("stop", "fat")
    daemon.cli("stop", "thin")


def test_max_memory_follows_a_process_that_named_another_main_pid(daemon: Pmond, tmp_root: Path):
    """A program that hands over to a child (MAINPID=) is supervised through that child: its max_memory too."""
    prog = tmp_root / "handover_fat.py"
    prog.write_text(
        "#!/usr/bin/python3\nimport os, socket, time\n"
        "where = os.environ['NOTIFY_SOCKET']\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "if os.fork() == 0:\n"
        "    s.sendto(f'MAINPID={os.getpid()}\\nREADY=1'.encode(), '\\0' + where[1:])\n"
        "    time.sleep(2)\n"  # grows once supervision has moved to it (the first process exits at 1 s)
        "    a = b'x' * (64 << 20)\n"
        "    time.sleep(300)\n"
        "time.sleep(1)\n"
        "os._exit(0)\n"
    )
    prog.chmod(0o755)
    p = daemon.json("exec", str(prog), "--name", "handfat", "--ready", "notify", "--max-memory", "32M")
    moved = wait_for(lambda: (q := daemon.get("handfat"))["pid"] != p["pid"] and q, what="the named main pid")
    assert moved["restart_count"] == 0  # followed, not restarted
    q = daemon.wait_restarted("handfat", moved["pid"], timeout=30)  # the followed child is over the limit
    assert q["restart_count"] >= 1
    rec = wait_for(
        lambda: [r for r in daemon.json("history", "handfat") if r["reason"] == "max_memory"], what="the exit"
    )
    assert rec[0]["pid"] == moved["pid"]
    daemon.cli("stop", "handfat")
