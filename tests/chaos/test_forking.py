"""Programs that fork away from their leader end completely on `stop` and on `del`: one that double-forks (a
classic daemonize: fork, setsid, fork, the middle one exits, so the daemon's parent is gone and it sits in a
session of its own) and one whose child calls setsid while its parent lives. Also after pmond was killed with
SIGKILL in between, when the new pmond has adopted them.

With cgroup trees (root, or a delegated cgroup) both always end. With session trees (the fallback, e.g. a user's
pmond) the setsid child does too; a double-forked daemon cannot be found there (no parent, another session:
trees.py says so), so that pair is not run in session mode."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    Pmond,
    cmdline,
    live_copies,
    make_daemon,
    pid_alive,
    reap_orphans,
    script,
    set_subreaper,
    unique,
    wait_for,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroup trees need root")

PROGRAMS = {
    # the leader keeps running; its daemon is a grandchild in its own session whose parent has exited
    "doublefork": "( setsid /bin/sh -c '/bin/sleep 3600 & exit 0' & )\nexec /bin/sleep 3600\n",
    # a child that calls setsid while its parent (the leader) lives
    "setsidchild": "setsid /bin/sleep 3600 &\nexec /bin/sleep 3600\n",
}


@pytest.fixture(scope="module", autouse=True)
def reaper() -> Iterator[None]:
    set_subreaper(True)
    yield
    set_subreaper(False)
    reap_orphans()


@pytest.fixture(scope="module")
def daemon(request: pytest.FixtureRequest, tmp_root: Path) -> Iterator[Pmond]:
    root = tmp_root / request.param
    root.mkdir(exist_ok=True)
    root.chmod(0o755)
    d_ = make_daemon(root, f"process_trees: {request.param}\nrestart:\n  stop_timeout: 2s\n")
    d = next(d_)
    if request.param == "cgroup" and d.json("daemon", "status")["process_trees"] != "cgroup":
        d_.close()
        pytest.skip("no cgroup v2 here")
    yield d
    d_.close()


def _sleeps(pid: int) -> bool:
    return cmdline(pid)[:1] == ["/bin/sleep"]


def session_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[3])


@pytest.mark.parametrize("crash", [False, True], ids=["", "after-crash"])
@pytest.mark.parametrize("verb", ["stop", "del"])
@pytest.mark.parametrize(
    ("daemon", "kind"),
    [("cgroup", "doublefork"), ("cgroup", "setsidchild"), ("session", "setsidchild")],
    indirect=["daemon"],
)
def test_a_forking_program_ends_completely(daemon: Pmond, kind: str, verb: str, crash: bool):
    name = unique(f"{kind}-{verb}{'-crash' if crash else ''}-{daemon.root.name}")
    p = daemon.json("exec", script(daemon.root, f"{name}.sh", PROGRAMS[kind]), "--name", name)
    # both sleeps: the doublefork's intermediate `sh -c` (with the name in its environment too) lives a moment
    # beside the leader before it forks the daemon and exits, and must not be taken for it
    both = wait_for(
        lambda: (found := live_copies(name)) and len(found) == 2 and all(_sleeps(pid) for pid in found) and found,
        what="leader and daemon",
    )
    other = next(pid for pid in both if pid != p["pid"])
    assert session_of(other) != session_of(p["pid"])  # it really left the leader's session
    if crash:
        daemon.stop(signal.SIGKILL)
        daemon.start()
        daemon.wait_booted()
        q = daemon.get(name)
        assert q["pid"] == p["pid"] and sorted(live_copies(name)) == sorted(both)  # adopted, nothing restarted
    daemon.cli(verb, name)  # answered once the whole tree is gone
    assert live_copies(name) == [] and not any(pid_alive(pid) for pid in both)
    if verb == "stop":
        assert daemon.get(name)["status"] == "stopped"
        daemon.cli("del", name)
