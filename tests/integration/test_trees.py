"""A process is its whole tree: workers, orphans of a dead leader and setsid escapers end with it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, pid_alive, script, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups and other users need root")


def tagged(tag: str) -> set[int]:
    """Live processes whose command line holds `tag` (each test uses its own)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if tag.encode() in fh.read().split(b"\0") and pid_alive(int(name)):
                    found.add(int(name))
        except OSError:
            continue
    return found


def forker(root: Path, name: str, tag: str, leader_waits: bool = True) -> str:
    """Two workers in its group, one that leaves for a session of its own (its parent gone), one that calls
    setsid while its parent lives."""
    return script(
        root,
        name,
        f"sleep {tag} &\nsleep {tag} &\n( setsid sleep {tag} & )\nsetsid sleep {tag} &\n"
        + ("wait\n" if leader_waits else "exec sleep 100000\n"),
    )


@pytest.fixture(scope="module")
def cg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pmond]:
    root = tmp_path_factory.mktemp("trees")
    root.chmod(0o755)
    yield from make_daemon(root, "restart:\n  stop_timeout: 2s\n")


@pytest.fixture(scope="module")
def sess(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pmond]:
    root = tmp_path_factory.mktemp("trees-session")
    root.chmod(0o755)
    yield from make_daemon(root, "process_trees: session\nrestart:\n  stop_timeout: 2s\n")


def test_stop_ends_workers_and_setsid_escapers(cg: Pmond):
    tag = "4101"
    cg.cli("exec", forker(cg.root, "forker1.sh", tag), "--name", "forker1")
    wait_for(lambda: len(tagged(tag)) == 4, what="four workers")
    assert cg.get("forker1")["tree"].startswith("cgroup ")
    cg.cli("stop", "forker1")
    assert tagged(tag) == set()  # answered only once the whole tree is gone


def test_a_dead_leaders_tree_is_ended_before_the_restart(cg: Pmond):
    tag = "4102"
    p = cg.json("exec", forker(cg.root, "forker2.sh", tag), "--name", "forker2")
    old = wait_for(lambda: (t := tagged(tag)) and len(t) == 4 and t, what="four workers")
    os.kill(p["pid"], signal.SIGKILL)  # the leader only: its workers are orphaned
    new = cg.wait_restarted("forker2", p["pid"], timeout=10)
    assert not any(pid_alive(pid) for pid in old)
    wait_for(lambda: len(tagged(tag)) == 4, what="four workers of the new copy")
    assert tagged(tag).isdisjoint(old) and pid_alive(new["pid"])
    cg.cli("del", "forker2")
    assert tagged(tag) == set()


def test_delete_removes_the_cgroup(cg: Pmond):
    p = cg.json("exec", "/bin/sleep", "--name", "cgone", "-a", "300")
    path = cg.get("cgone")["tree"].removeprefix("cgroup ")
    assert os.path.isdir(path) and str(p["pid"]) in Path(path, "cgroup.procs").read_text().split()
    cg.cli("del", "cgone")
    assert not os.path.exists(path)


def test_the_tree_stays_tracked_across_a_pmond_crash(cg: Pmond):
    tag = "4103"
    cg.cli("exec", forker(cg.root, "forker3.sh", tag), "--name", "forker3")
    wait_for(lambda: len(tagged(tag)) == 4, what="four workers")
    cg.stop(signal.SIGKILL)
    cg.start()
    assert len(tagged(tag)) == 4  # adopted, not restarted
    cg.cli("stop", "forker3")
    assert tagged(tag) == set()


def test_leftovers_of_a_leader_that_exits_are_stopped(cg: Pmond):
    tag = "4104"
    cg.cli(
        "exec",
        script(cg.root, "daemonize.sh", f"sleep {tag} &\nsleep {tag} &\nexit 0\n"),
        "--name",
        "daemonize",
        "--restart",
        "on-failure",
    )
    wait_for(lambda: cg.get("daemonize")["status"] == "stopped", what="the leader to exit")
    wait_for(lambda: not tagged(tag), what="its workers to be stopped")


def test_session_trees_when_no_cgroup(sess: Pmond):
    tag = "4105"
    sess.cli(
        "exec",
        script(sess.root, "sforker.sh", f"sleep {tag} &\nsleep {tag} &\nsetsid sleep {tag} &\nwait\n"),
        "--name",
        "sforker",
    )
    wait_for(lambda: len(tagged(tag)) == 3, what="three workers")
    assert sess.get("sforker")["tree"].startswith("session")
    sess.cli("stop", "sforker")
    assert tagged(tag) == set()


def test_a_process_force_stopped_starts_again(cg: Pmond):
    """`stop -f` ends the tree with cgroup.kill; the kernel would then kill whatever is born into that cgroup,
    so pmond renews it: the next start runs."""
    p = cg.json("exec", "/bin/sleep", "--name", "forced", "-a", "300")
    cg.cli("stop", "forced", "-f")
    assert not pid_alive(p["pid"])
    again = cg.json("start", "forced")
    wait_for(lambda: pid_alive(again["pid"]), what="the new copy")
    cg.cli("exec", "/bin/true", "--name", "probe", "--restart", "never")  # some loop turns later
    assert pid_alive(again["pid"]) and cg.get("forced")["status"] == "running"
    os.kill(again["pid"], signal.SIGKILL)  # and a crash restart after that works too
    third = cg.wait_restarted("forced", again["pid"])
    cg.cli("exec", "/bin/true", "--name", "probe2", "--restart", "never")
    assert pid_alive(third["pid"])
    cg.cli("del", "forced")


def test_a_cgroup_a_crashed_pmond_killed_is_renewed_by_the_next(cg: Pmond):
    """The cgroup a pmond ended with cgroup.kill before it died is poisoned the same way for the next pmond,
    which does not know: it renews every copy cgroup it starts something in for the first time."""
    births = cg.root / "reborn.births"
    prog = script(cg.root, "reborn.sh", f"echo $$ >> {births}\nexec sleep 300\n")

    def born(n: int) -> None:
        wait_for(lambda: births.exists() and len(births.read_text().split()) == n, what=f"start #{n} to run")

    cg.cli("exec", prog, "--name", "reborn")
    born(1)
    cg.cli("stop", "-f", "reborn")  # SIGKILL through cgroup.kill
    cg.stop(signal.SIGKILL)
    cg.start()
    cg.cli("restart", "reborn")
    born(2)
    p = cg.get("reborn")
    assert p["status"] == "running" and pid_alive(p["pid"])
    cg.cli("del", "reborn")


@pytest.mark.parametrize("mode", ["cg", "sess"])
def test_stop_signals_every_process_of_the_tree_once(mode: str, request: pytest.FixtureRequest):
    """A leader and its worker (same process group) count the SIGTERMs they get after the first: one each,
    also for the worker that outlives its leader. A second SIGTERM is "quit now, skip the cleanup" to some
    programs (pmond sent the stop signal to the tree, to the leader's group, and again to what was left once
    the leader had gone)."""
    d: Pmond = request.getfixturevalue(mode)
    out = d.root / f"terms-{mode}"
    prog = d.root / f"counts-{mode}.py"
    prog.write_text(
        "#!/usr/bin/python3\nimport os, signal, sys, time\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda *_: got.append(1))\n"
        "role = 'leader' if os.fork() else 'worker'\n"
        f"open('{out}.' + role, 'w').close()\n"
        "while not got:\n    time.sleep(0.01)\n"
        "time.sleep(0.1 if role == 'leader' else 1.0)  # the worker outlives the leader: is it signalled again?\n"
        f"with open('{out}', 'a') as fh:\n    fh.write(f'{{role}} {{len(got)}}\\n')\n"
        "sys.exit(0)\n"
    )
    prog.chmod(0o755)
    name = f"counts-{mode}"
    d.cli("exec", str(prog), "--name", name)
    wait_for(lambda: os.path.exists(f"{out}.leader") and os.path.exists(f"{out}.worker"), what="both running")
    d.cli("stop", name)
    wait_for(lambda: out.exists() and len(out.read_text().split("\n")) == 3, what="both to report")
    assert sorted(out.read_text().split("\n")[:2]) == ["leader 1", "worker 1"]
    d.cli("del", name)
