"""Process config files at boot and on init, dependency order, dgraph, export round trip, groups, env."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, pid_alive, script, wait_for


def _proc_env(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        items = [i.decode() for i in fh.read().split(b"\0") if i]
    return dict(i.split("=", 1) for i in items)


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    pconf = tmp_root / "process.config.yaml"
    pconf.write_text(
        "processes:\n"
        "  - file: /bin/sleep\n    name: web\n    args: '300'\n    dependencies: [db, cache]\n    groups: [front]\n"
        "  - file: /bin/sleep\n    name: cache\n    args: '300'\n"
        "  - file: /bin/sleep\n    name: db\n    args: '300'\n    env_vars: 'MODE=\"read write\" LEVEL=3'\n"
        "  - file: /bin/sleep\n    name: loner\n    args: '300'\n    no_auto_restart: true\n"
    )
    gen = make_daemon(tmp_root, f"process_config_file: {pconf}\nwait:\n  dependent_process_enqueued: 200\n")
    d = next(gen)
    d.wait_booted()  # the config's processes are there for every test, also one run alone
    yield d
    gen.close()


def test_boot_starts_config_entries_in_dependency_order(daemon: Pmond):
    procs = wait_for(
        lambda: (ps := daemon.json("ls")) and len(ps) == 4 and all(p["status"] == "running" for p in ps) and ps,
        timeout=15,
        what="4 config processes running",
    )
    by_name = {p["name"]: p for p in procs}
    # ids are given in start order: cache and db (by name) before web, then the independent one
    assert [p["name"] for p in sorted(procs, key=lambda p: p["id"])] == ["cache", "db", "web", "loner"]
    assert by_name["web"]["dependencies"] == ["db", "cache"] and by_name["web"]["groups"] == ["front"]
    assert by_name["loner"]["auto_restart"] is False
    env = _proc_env(by_name["db"]["pid"])
    assert env["MODE"] == "read write" and env["LEVEL"] == "3"
    assert env["HOME"] and env["USER"] == "root" and "PMON3_CONF" not in env  # clean base, not pmond's env


def test_dgraph_prints_pmon3_text_and_json(daemon: Pmond):
    out = daemon.cli("dgraph").stdout
    assert out == (
        "Queue Order\n\t0: cache\n\t1: db\n\t2: web\n\t3: loner\n"
        "Dependency Graph Order\n\t0: cache\n\t1: db\n\t2: web\n"
    )
    assert daemon.json("order", "-c") == {
        "queue": ["cache", "db", "web", "loner"],
        "dependency_order": ["cache", "db", "web"],
    }


def test_init_never_duplicates_a_live_process(daemon: Pmond):
    before = {p["name"]: p["pid"] for p in daemon.json("ls")}
    daemon.cli("init", "--blocking")
    daemon.cli("init", "-c", "-b")
    assert {p["name"]: p["pid"] for p in daemon.json("ls")} == before


def test_restart_of_a_deleted_config_entry_recreates_it(daemon: Pmond):
    daemon.cli("del", "loner")
    p = daemon.json("restart", "loner")
    assert p["status"] == "running" and p["auto_restart"] is False and pid_alive(p["pid"])


def test_export_round_trip_recreates_the_same_processes(daemon: Pmond, tmp_path: Path):
    exported = daemon.cli("export", "yaml", "-o", "name").stdout
    assert exported.startswith("processes:\n    - file: /bin/sleep\n      user: root\n")
    as_json = json.loads(daemon.cli("export").stdout)
    assert [e["name"] for e in as_json["processes"]] == [p["name"] for p in daemon.json("ls")]
    assert daemon.cli("export", "xml", check=False).stderr.strip() == "accepted formats: json, toml or yaml"
    bad_order = daemon.cli("export", "-o", "name; DROP TABLE processes", check=False)
    assert bad_order.returncode == 1 and "cannot order by" in bad_order.stderr
    # Feed the export to a second, empty daemon as its process config: same processes come up.
    other_conf = tmp_path / "p.toml"
    other_conf.write_text(daemon.cli("export", "toml").stdout)
    gen = make_daemon(tmp_path, f"process_config_file: {other_conf}\nwait:\n  dependent_process_enqueued: 0\n")
    other = next(gen)
    try:
        got = wait_for(lambda: (ps := other.json("ls")) and len(ps) == 4 and ps, timeout=15, what="re-created")
        fields = ("name", "process_file", "args", "env_vars", "username", "auto_restart", "dependencies", "groups")
        mine = {p["name"]: tuple(p[f] for f in fields) for p in daemon.json("ls")}
        assert {p["name"]: tuple(p[f] for f in fields) for p in got} == mine
        assert other.cli("export", "toml").stdout == daemon.cli("export", "toml").stdout
    finally:
        gen.close()


def test_config_with_a_cycle_is_refused(daemon: Pmond, tmp_path: Path):
    cyc = tmp_path / "cycle.json"
    cyc.write_text(
        json.dumps(
            {
                "processes": [
                    {"file": "/bin/sleep", "name": "a", "dependencies": ["b"]},
                    {"file": "/bin/sleep", "name": "b", "dependencies": ["a"]},
                ]
            }
        )
    )
    # Point a fresh daemon at it: it serves, logs the cycle, starts nothing from the config.
    gen = make_daemon(tmp_path, f"process_config_file: {cyc}\n")
    other = next(gen)
    try:
        res = other.cli("dgraph", "-c", check=False)
        wording = "command error: could not get graph: circular dependencies not allowed"  # pmon3's
        assert res.returncode == 1 and res.stderr.strip() == wording
        res = other.cli("init", "-c", check=False)
        assert res.returncode == 1 and "circular dependencies not allowed" in res.stderr
        assert other.json("ls") == []
    finally:
        gen.close()


def test_unknown_user_in_config_is_an_error_not_root(tmp_path: Path):
    pconf = tmp_path / "p.json"
    pconf.write_text(
        json.dumps({"processes": [{"file": "/bin/sleep", "name": "ghost", "args": "300", "user": "no-such-user-xyz"}]})
    )
    gen = make_daemon(tmp_path, f"process_config_file: {pconf}\n")
    d = next(gen)
    try:
        res = d.cli("init", "-c", "-b", check=False)
        assert res.returncode == 1 and "unknown user no-such-user-xyz" in res.stderr
        assert d.json("ls") == []
    finally:
        gen.close()


def test_groups_lifecycle(daemon: Pmond):
    daemon.cli("group", "create", "back")
    assert "already exists" in daemon.cli("group", "create", "back", check=False).stderr
    daemon.cli("group", "assign", "back,front", "db,cache")
    desc = daemon.json("group", "desc", "back")
    assert desc["group"]["name"] == "back" and sorted(p["name"] for p in desc["processes"]) == ["cache", "db"]
    assert sorted(daemon.get("db")["groups"]) == ["back", "front"]
    daemon.cli("group", "remove", "front", "db")
    assert daemon.get("db")["groups"] == ["back"]
    res = daemon.cli("group", "assign", "back,nope", "db", check=False)  # all or nothing
    assert res.returncode == 1 and "Group (nope) does not exist" in res.stderr
    stopped = daemon.json("group", "stop", "back")
    assert all(p["status"] == "stopped" for p in stopped["processes"])
    restarted = daemon.json("group", "restart", "back")
    assert all(p["status"] == "running" and p["restart_count"] == 1 for p in restarted["processes"])
    groups = {g["name"] for g in daemon.json("group", "ls")}
    assert {"front", "back"} <= groups
    daemon.cli("groups", "del", "back")  # the group goes, its processes stay
    assert "back" not in {g["name"] for g in daemon.json("group", "list")}
    assert daemon.get("db")["groups"] == [] and daemon.get("db")["status"] == "running"
    assert daemon.cli("group", "show", "back", check=False).stderr.strip() == "Group (back) does not exist"


def test_group_drop_deletes_members_and_keeps_the_group(daemon: Pmond):
    daemon.cli("exec", "/bin/sleep", "--name", "g1", "-a", "300", "-g", "tmpgrp")
    daemon.cli("exec", "/bin/sleep", "--name", "g2", "-a", "300", "-g", "tmpgrp")
    dropped = daemon.json("group", "drop", "tmpgrp", "-f")
    assert sorted(p["name"] for p in dropped["processes"]) == ["g1", "g2"]
    names = {p["name"] for p in daemon.json("ls")}
    assert not {"g1", "g2"} & names
    assert daemon.json("group", "desc", "tmpgrp")["processes"] == []


def test_env_vars_quotes_env_file_and_cwd(daemon: Pmond, tmp_root: Path):
    envf = tmp_root / "app.env"
    envf.write_text('FROM_FILE="file value"\nSHARED=file\n')
    work = tmp_root / "workdir"
    work.mkdir(exist_ok=True)
    out = tmp_root / "cwd.out"
    prog = script(tmp_root, "pwd.sh", f"pwd > {out}\nexec sleep 300\n")
    p = daemon.json(
        "exec", prog, "--name", "envy", "-e", 'A="x y"', "-e", "SHARED=cli", "--env-file", str(envf), "--cwd", str(work)
    )
    env = _proc_env(p["pid"])
    assert env["A"] == "x y" and env["FROM_FILE"] == "file value" and env["SHARED"] == "cli"
    wait_for(lambda: out.exists() and out.read_text().strip(), what="pwd output")
    assert out.read_text().strip() == str(work)
    assert "does not exist" in daemon.cli("exec", prog, "--name", "envy2", "--cwd", "/no/such", check=False).stderr


def test_start_and_restart_flags(daemon: Pmond):
    p = daemon.json("exec", "/bin/sleep", "--name", "flags", "-a", "300")
    r = daemon.json("restart", "flags", "-a", "200", "-n", "-d", "db")
    assert r["argv"] == ["200"] and r["auto_restart"] is False and r["dependencies"] == ["db"]
    assert r["pid"] != p["pid"] and not pid_alive(p["pid"])
    os.kill(r["pid"], signal.SIGKILL)
    daemon.wait_status("flags", "failed")


def test_topn_shows_the_live_processes_and_quits_on_q(daemon: Pmond):
    import pty
    import select
    import subprocess

    from helpers import BIN

    web = daemon.wait_status("web", "running", timeout=15)
    main, sub = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "pmon3"), "topn", "-s", "0.2"],
        env={**daemon.env, "COLUMNS": "200"},
        stdin=sub,
        stdout=sub,
        stderr=sub,
        close_fds=True,
    )
    os.close(sub)
    seen = b""
    try:

        def screen_has_web() -> bool:
            nonlocal seen
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                seen += os.read(main, 65536)
            return str(web["pid"]).encode() in seen and b"Press ESC or q to quit" in seen

        wait_for(screen_has_web, timeout=15, what="topn to draw the process table")
        os.write(main, b"q")
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
