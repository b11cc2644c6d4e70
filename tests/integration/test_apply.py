"""`pmon3 apply` against a real pmond: plans, idempotence, restarts of changed entries only, prune, invalid files,
a non-root user's apply, and the importers' output applied end to end."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, Pmond, environ, make_daemon, pid_alive, wait_for

DATA = Path(__file__).resolve().parents[1] / "unit" / "data" / "import"
USER = "pmon3test"


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pmon3-apply-"))
    path.chmod(0o755)  # an unprivileged test user must reach the config and their process config
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(root: Path) -> Iterator[Pmond]:
    yield from make_daemon(root, "restart:\n  stop_timeout: 1500ms\nwait:\n  dependent_process_enqueued: 50\n")


CONFIG = """processes:
  - file: /bin/sleep
    name: web
    args: "300"
    dependencies: [db, cache]
    groups: [front]
  - file: /bin/sleep
    name: db
    args: ["301"]
    min_uptime: 2s
  - file: /bin/sleep
    name: cache
    args: "302"
"""


def write(root: Path, text: str, name: str = "p.yaml") -> str:
    path = root / name
    path.write_text(text)
    path.chmod(0o644)
    return str(path)


def plan(d: Pmond, *args: str, user: str | None = None) -> dict[str, Any]:
    res = d.cli("apply", *args, "--json", user=user)
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def actions(data: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["action"] for a in data["actions"]}


def rows(d: Pmond) -> list[dict[str, Any]]:
    """Every stored field of root's processes (not the sampled CPU and memory)."""
    return [{k: v for k, v in p.items() if k not in ("cpu_usage", "memory_usage")} for p in d.json("ls")]


def pids(d: Pmond, user: str | None = None) -> dict[str, int]:
    return {p["name"]: p["pid"] for p in d.json("ls", user=user)}


def test_dry_run_plans_creates_and_changes_nothing(daemon, root):
    f = write(root, CONFIG)
    res = daemon.cli("apply", f, "--dry-run")
    assert res.stdout.splitlines()[0] == f"Plan for {f} (dry run: nothing changed):"
    assert "│ cache │ create │" in res.stdout and "3 to create, 0 to change" in res.stdout
    data = plan(daemon, f, "--dry-run")
    assert [(a["name"], a["action"]) for a in data["actions"]] == [
        ("cache", "create"),
        ("db", "create"),
        ("web", "create"),
    ]
    assert data["dry_run"] and data["ok"] and data["source"] == f
    assert daemon.json("ls") == []


def test_apply_creates_in_dependency_order_then_is_idempotent(daemon, root):
    f = write(root, CONFIG)
    data = plan(daemon, f)
    assert [(a["name"], a["result"]) for a in data["actions"]] == [
        ("cache", "created"),
        ("db", "created"),
        ("web", "created"),
    ]
    procs = {p["name"]: p for p in daemon.json("ls")}
    assert all(p["status"] == "running" and pid_alive(p["pid"]) for p in procs.values())
    assert [p["name"] for p in sorted(procs.values(), key=lambda p: p["id"])] == ["cache", "db", "web"]
    assert procs["web"]["groups"] == ["front"] and procs["db"]["policy"] == {"min_uptime": 2000}
    before = rows(daemon)
    time.sleep(1.1)  # updated_at has seconds: a row written again would show it
    again = daemon.cli("apply", f)
    assert "0 created, 0 changed (0 restarted), 0 deleted, 3 unchanged" in again.stdout
    assert set(actions(plan(daemon, f)).values()) == {"unchanged"}
    assert rows(daemon) == before  # not touched at all: same pids, not even updated_at


def test_editing_one_entry_restarts_only_that_entry(daemon, root):
    f = write(root, CONFIG)
    daemon.cli("apply", f)
    before = {p["name"]: p for p in daemon.json("ls")}
    f = write(root, CONFIG.replace('args: "302"', 'args: "303"'))
    dry = daemon.cli("apply", f, "--dry-run").stdout
    assert '│ cache │ change    │ yes     │ args: "302" → "303" │' in dry
    data = plan(daemon, f)
    assert actions(data) == {"cache": "change", "db": "unchanged", "web": "unchanged"}
    after = {p["name"]: p for p in daemon.json("ls")}
    assert after["cache"]["pid"] != before["cache"]["pid"] and after["cache"]["args"] == "303"
    assert not pid_alive(before["cache"]["pid"]) and pid_alive(after["cache"]["pid"])
    assert after["cache"]["restart_count"] == before["cache"]["restart_count"] + 1
    assert {n: p["pid"] for n, p in after.items() if n != "cache"} == {
        n: p["pid"] for n, p in before.items() if n != "cache"
    }


def test_groups_policy_and_dependency_changes_do_not_restart(daemon, root):
    f = write(root, CONFIG)
    daemon.cli("apply", f)
    before = pids(daemon)
    edited = CONFIG.replace("groups: [front]", "groups: [front, edge]").replace("min_uptime: 2s", "min_uptime: 5s")
    edited = edited.replace("dependencies: [db, cache]", "dependencies: [db]")
    data = plan(daemon, write(root, edited))
    changes = {a["name"]: [(c["field"], c["old"], c["new"]) for c in a["changes"]] for a in data["actions"]}
    assert changes == {
        "cache": [],
        "db": [("min_uptime", "2s", "5s")],
        "web": [("dependencies", ["db", "cache"], ["db"]), ("groups", ["front"], ["front", "edge"])],
    }
    assert [a["result"] for a in data["actions"] if a["changes"]] == ["updated", "updated"]
    assert pids(daemon) == before
    assert daemon.get("db")["policy"] == {"min_uptime": 5000}
    assert sorted(daemon.get("web")["groups"]) == ["edge", "front"]


def test_a_stopped_process_that_changed_is_updated_and_stays_stopped(daemon, root):
    f = write(root, CONFIG)
    daemon.cli("apply", f)
    daemon.cli("stop", "db")
    data = plan(daemon, write(root, CONFIG.replace('args: ["301"]', 'args: ["311"]')))
    (db,) = [a for a in data["actions"] if a["name"] == "db"]
    assert (db["action"], db["restart"], db["result"], db["status"]) == ("change", False, "updated", "stopped")
    p = daemon.get("db")
    assert p["status"] == "stopped" and p["args"] == "311"


def test_prune_deletes_only_what_the_file_does_not_list(daemon, root):
    f = write(root, CONFIG)
    daemon.cli("apply", f)
    daemon.cli("exec", "/bin/sleep", "--name", "extra", "-a", "300")
    before = pids(daemon)
    assert actions(plan(daemon, f)) == {"cache": "unchanged", "db": "unchanged", "web": "unchanged"}
    dry = plan(daemon, f, "--prune", "--dry-run")
    assert dry["actions"][0] == {**dry["actions"][0], "name": "extra", "action": "delete"}
    assert pids(daemon) == before
    res = daemon.cli("apply", f, "--prune")
    assert "│ extra │ delete    │         │        │ deleted   │" in res.stdout
    assert pids(daemon) == {k: v for k, v in before.items() if k != "extra"}
    assert not pid_alive(before["extra"])


def test_an_invalid_file_changes_nothing_and_names_the_place(daemon, root):
    f = write(root, CONFIG)
    daemon.cli("apply", f)
    before = rows(daemon)
    logs = root / "new-log-dir"
    broken = CONFIG.replace('args: "300"', f'args: "303"\n    log_dir: {logs}')  # valid, but must not happen
    broken = broken.replace("min_uptime: 2s", "min_uptime: 2s\n    cwd: /nonexistent/dir")
    f = write(root, broken)
    res = daemon.cli("apply", f, "--prune", check=False)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == f"{f}: processes[1] (db): cwd: working directory /nonexistent/dir does not exist\n"
    assert rows(daemon) == before and not logs.exists()
    res = daemon.cli(
        "apply", write(root, "processes:\n  - file: /bin/sleep\n    name: x\n    colour: red\n"), check=False
    )
    assert res.returncode == 1 and res.stderr.endswith("p.yaml: processes[0]: unknown key 'colour'\n")
    res = daemon.cli("apply", write(root, CONFIG.replace("[db, cache]", "[db, web]")), check=False)
    assert res.returncode == 1 and res.stderr.endswith(
        "processes[0] (web): dependencies: self-referential dependencies not allowed\n"
    )
    res = daemon.cli("apply", str(root / "missing.yaml"), "--prune", check=False)
    assert res.returncode == 1 and res.stderr == f"{root / 'missing.yaml'}: no such file\n"
    assert rows(daemon) == before


def test_default_file_is_the_configured_process_config(daemon, root):
    res = daemon.cli("apply", check=False)
    assert res.returncode == 1 and res.stderr.startswith("no process config file: name one")
    f = write(root, CONFIG)
    env = {**daemon.env, "PMON3_PROCESS_CONF": f}
    out = subprocess.run([str(BIN / "pmon3"), "apply", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["source"] == f and len(daemon.json("ls")) == 3


# -- instances ------------------------------------------------------------------------------------------------


def family(n: int, extra: str = "") -> str:
    return f'processes:\n  - file: /bin/sleep\n    name: s\n    args: "300"\n    instances: {n}\n{extra}'


STORED = ("name", "process_file", "argv", "env_vars", "username", "uid", "gid", "cwd", "auto_restart")
STORED += ("dependencies", "groups", "policy", "options", "status")


def stored(d: Pmond) -> dict[str, dict[str, Any]]:
    """What pmond stored for each process (the log relative to its log directory), not its run."""
    return {p["name"]: {**{k: p[k] for k in STORED}, "log": os.path.relpath(p["log"], d.logs)} for p in d.json("ls")}


def instance_of(pid: int) -> str:
    return next((e for e in environ(pid) if e.startswith("PMON3_INSTANCE=")), "")


def test_apply_creates_the_instances_init_creates_then_is_a_no_op(daemon, root, tmp_path):
    f = write(root, family(3, "    groups: [front]\n    min_uptime: 2s\n"))
    dry = daemon.cli("apply", f, "--dry-run").stdout
    assert "│ s@1  │ create │" in dry and "│ s@2  │ create │" in dry and "3 to create, 0 to change" in dry
    assert daemon.json("ls") == []
    data = plan(daemon, f)
    assert data["ok"] and [(a["name"], a["result"]) for a in data["actions"]] == [
        ("s", "created"),
        ("s@1", "created"),
        ("s@2", "created"),
    ]
    procs = {p["name"]: p for p in daemon.json("ls")}
    assert sorted(procs) == ["s", "s@1", "s@2"]
    assert all(p["status"] == "running" and pid_alive(p["pid"]) for p in procs.values())
    assert {n: instance_of(p["pid"]) for n, p in procs.items()} == {
        "s": "PMON3_INSTANCE=0",
        "s@1": "PMON3_INSTANCE=1",
        "s@2": "PMON3_INSTANCE=2",
    }
    # the same rows as pmond's boot and `init` make from the same file
    gen = make_daemon(tmp_path, f"process_config_file: {f}\n")
    other = next(gen)
    try:
        other.cli("init", "-c", "-b")
        assert stored(other) == stored(daemon)
    finally:
        gen.close()
    before = rows(daemon)
    time.sleep(1.1)  # updated_at has seconds: a row written again would show it
    again = plan(daemon, f)
    assert actions(again) == {"s": "unchanged", "s@1": "unchanged", "s@2": "unchanged"}
    assert all(a["changes"] == [] and not a["restart"] for a in again["actions"])
    assert rows(daemon) == before  # not touched at all: same pids, not even updated_at


def test_apply_after_scale_with_the_same_count_is_a_no_op(daemon, root):
    one = write(root, family(1))
    daemon.cli("apply", one)
    daemon.cli("scale", "s", "3")
    before = rows(daemon)
    assert [p["name"] for p in before] == ["s", "s@1", "s@2"]
    time.sleep(1.1)
    three = write(root, family(3), "three.yaml")
    dry = plan(daemon, three, "--dry-run")
    assert [(a["name"], a["action"], a["changes"]) for a in dry["actions"]] == [
        ("s", "unchanged", []),
        ("s@1", "unchanged", []),
        ("s@2", "unchanged", []),
    ]
    assert set(actions(plan(daemon, three)).values()) == {"unchanged"}
    # without `instances` the entry keeps the copies a scale made, as boot does
    without = write(root, family(1).replace("    instances: 1\n", ""), "without.yaml")
    assert actions(plan(daemon, without)) == {"s": "unchanged", "s@1": "unchanged", "s@2": "unchanged"}
    assert rows(daemon) == before


def test_changing_instances_in_the_file_scales_up_and_down(daemon, root):
    daemon.cli("apply", write(root, family(2)))
    first = pids(daemon)
    assert sorted(first) == ["s", "s@1"]
    f = write(root, family(4))
    dry = daemon.cli("apply", f, "--dry-run").stdout
    for line in ("│ s    │ unchanged │", "│ s@1  │ unchanged │", "│ s@2  │ create    │", "│ s@3  │ create    │"):
        assert line in dry, dry
    assert "2 to create, 0 to change (0 to restart), 0 to delete, 2 unchanged" in dry
    res = daemon.cli("apply", f)
    assert "2 created, 0 changed (0 restarted), 0 deleted, 2 unchanged" in res.stdout
    up = pids(daemon)
    assert sorted(up) == ["s", "s@1", "s@2", "s@3"] and all(pid_alive(p) for p in up.values())
    assert {n: up[n] for n in first} == first  # the ones there are not touched
    assert instance_of(up["s@3"]) == "PMON3_INSTANCE=3"
    f = write(root, family(2))
    dry = daemon.cli("apply", f, "--dry-run").stdout
    assert dry.index("│ s@3  │ delete    │") < dry.index("│ s@2  │ delete    │")  # the highest first, as scale
    assert "0 to create, 0 to change (0 to restart), 2 to delete, 2 unchanged" in dry
    assert sorted(pids(daemon)) == ["s", "s@1", "s@2", "s@3"]  # a dry run
    data = plan(daemon, f)
    assert [(a["name"], a["action"], a["result"]) for a in data["actions"]] == [
        ("s", "unchanged", "unchanged"),
        ("s@1", "unchanged", "unchanged"),
        ("s@3", "delete", "deleted"),
        ("s@2", "delete", "deleted"),
    ]
    assert pids(daemon) == first and not pid_alive(up["s@2"]) and not pid_alive(up["s@3"])
    data = plan(daemon, write(root, family(1)))
    assert [(a["name"], a["result"]) for a in data["actions"]] == [("s", "unchanged"), ("s@1", "deleted")]
    assert pids(daemon) == {"s": first["s"]}
    # a bad count is refused in one line, and nothing changes
    before = rows(daemon)
    for bad, why in (
        ("0", "expected 1 to 256, got 0"),
        ("-2", "expected 1 to 256, got -2"),
        ("257", "expected 1 to 256, got 257"),
        ("many", "must be an integer or null"),
        ("2.5", "must be an integer or null"),
    ):
        f = write(root, family(2).replace("instances: 2", f"instances: {bad}"), "bad.yaml")
        res = daemon.cli("apply", f, "--prune", check=False)
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr == f"{f}: processes[0] (s): instances: {why}\n"
    assert rows(daemon) == before


def test_an_edited_entry_changes_its_instances_too(daemon, root):
    daemon.cli("apply", write(root, family(3)))
    before = pids(daemon)
    f = write(root, family(3).replace('args: "300"', 'args: "301"'))
    dry = plan(daemon, f, "--dry-run")
    assert [(a["name"], a["action"], a["restart"]) for a in dry["actions"]] == [
        ("s", "change", True),
        ("s@1", "change", True),
        ("s@2", "change", True),
    ]
    assert all(
        [(c["field"], c["old"], c["new"]) for c in a["changes"]] == [("args", "300", "301")] for a in dry["actions"]
    )
    data = plan(daemon, f)
    assert [a["result"] for a in data["actions"]] == ["restarted", "restarted", "restarted"]
    procs = {p["name"]: p for p in daemon.json("ls")}
    assert all(p["args"] == "301" and p["pid"] != before[n] and pid_alive(p["pid"]) for n, p in procs.items())
    assert set(actions(plan(daemon, f)).values()) == {"unchanged"}


def test_prune_keeps_the_instances_of_an_entry_in_the_file(daemon, root):
    f = write(root, family(3))
    daemon.cli("apply", f)
    daemon.cli("exec", "/bin/sleep", "--name", "extra", "-a", "300")
    before = pids(daemon)
    data = plan(daemon, f, "--prune")
    assert actions(data) == {"extra": "delete", "s": "unchanged", "s@1": "unchanged", "s@2": "unchanged"}
    assert pids(daemon) == {k: v for k, v in before.items() if k != "extra"}
    # an entry gone from the file goes with its instances
    other = write(root, CONFIG, "other.yaml")
    dry = plan(daemon, other, "--prune", "--dry-run")
    assert {n for n, a in actions(dry).items() if a == "delete"} == {"s", "s@1", "s@2"}
    plan(daemon, other, "--prune")
    assert sorted(pids(daemon)) == ["cache", "db", "web"]


# -- a non-root user's apply ----------------------------------------------------------------------------------


def ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
        return pwd.getpwnam(name)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create users")
def test_a_users_apply_touches_only_their_own_processes(daemon, root):
    pw = ensure_user(USER)
    daemon.cli("apply", write(root, CONFIG))  # root's web, db, cache
    root_before = {p["name"]: p for p in daemon.json("ls")}
    daemon.cli("exec", "/bin/sleep", "--name", "theirs-extra", "-a", "300", user=USER)
    env = root / "user.env"
    env.write_text("FROM_FILE=1\n")
    env.chmod(0o600)
    os.chown(env, pw.pw_uid, pw.pw_gid)  # readable by the user only: the CLI reads it, not pmond
    mine = write(
        root, f'processes:\n  - file: /bin/sleep\n    name: web\n    args: "400"\n    env_file: {env}\n', "u.yaml"
    )
    dry = plan(daemon, mine, "--prune", "--dry-run", user=USER)
    assert [(a["name"], a["action"]) for a in dry["actions"]] == [("theirs-extra", "delete"), ("web", "create")]
    data = plan(daemon, mine, "--prune", user=USER)
    assert data["ok"] and [a["result"] for a in data["actions"]] == ["deleted", "created"]
    (theirs,) = daemon.json("ls", user=USER)
    assert (theirs["name"], theirs["owner"], theirs["uid"], theirs["args"]) == ("web", USER, pw.pw_uid, "400")
    assert theirs["env_vars"] == "FROM_FILE=1"
    root_after = {p["name"]: p for p in daemon.json("ls") if p["owner"] == "root"}
    assert {n: (p["pid"], p["args"]) for n, p in root_after.items()} == {
        n: (p["pid"], p["args"]) for n, p in root_before.items()
    }
    assert set(actions(plan(daemon, mine, "--prune", user=USER)).values()) == {"unchanged"}
    # What the user cannot read, the apply cannot use: the CLI reads with the user's rights.
    secret = write(root, CONFIG, "secret.yaml")
    os.chmod(secret, 0o600)
    res = daemon.cli("apply", secret, user=USER, check=False)
    assert res.returncode == 2 and f"'{secret}' is not readable" in res.stderr  # click's usage error
    other_env = write(
        root, f"processes:\n  - file: /bin/sleep\n    name: web\n    env_file: {root / 'root.env'}\n", "o.yaml"
    )
    (root / "root.env").write_text("SECRET=1\n")
    (root / "root.env").chmod(0o600)
    res = daemon.cli("apply", other_env, user=USER, check=False)
    assert (
        res.returncode == 1
        and "processes[0] (web): env_file: env file " in res.stderr
        and "Permission denied" in res.stderr
    )
    res = daemon.cli(
        "apply", write(root, CONFIG.replace("name: db", "name: db\n    user: root"), "r.yaml"), user=USER, check=False
    )
    assert res.returncode == 1 and "r.yaml: processes[1] (db): user: permission denied" in res.stderr
    assert [p["name"] for p in daemon.json("ls", user=USER)] == ["web"]


# -- the importers' output, applied ---------------------------------------------------------------------------


def free_ports(*ports: int) -> bool:
    try:
        for port in ports:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


def free_port_block(count: int, step: int) -> int:
    """A base port such that base, base + step, ... (count ports) are all free now."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + step * count < 65000 and free_ports(*(base + i * step for i in range(count))):
            return base
    raise AssertionError("no free ports")


def prepare(source: str, root: Path) -> list[str]:
    """A copy of the fixtures in `root` (logs are written beside them) on free ports; the import arguments."""
    if source == "pm2":
        shutil.copytree(DATA / "pm2", root / "pm2")
        eco = json.loads((root / "pm2" / "ecosystem.json").read_text())
        eco["apps"][0]["env"]["PORT"] = free_port_block(1, 1)
        (root / "pm2" / "ecosystem.json").write_text(json.dumps(eco))
        # api runs 4 copies (PM2's cluster mode): they share the port through the socket pmond holds, as the
        # import's warning asks (a second copy binding the port itself would fail with EADDRINUSE)
        (root / "pm2" / "server.js").write_text(
            'const http = require("http");\n'
            'const server = http.createServer((req, res) => res.end("ok\\n"));\n'
            "server.listen(process.env.LISTEN_FDS ? { fd: 3 } : process.env.PORT || 3000);\n"
        )
        return ["pm2", str(root / "pm2" / "ecosystem.json")]
    if source == "supervisord":
        shutil.copytree(DATA / "supervisord", root / "supervisord")
        # web_00..02 listen on 8000..8002: on P00..P02 here, three free ports
        prefix = next(p for p in range(200, 650) if free_ports(p * 100, p * 100 + 1, p * 100 + 2))
        programs = root / "supervisord" / "programs.conf"
        programs.write_text(programs.read_text().replace("80%(process_num)02d", f"{prefix}%(process_num)02d"))
        (root / "supervisord" / "logs").chmod(0o777)  # the worker runs as nobody and opens its own log
        main = root / "supervisord" / "supervisord.conf"
        main.write_text("[include]\nfiles = programs.conf conf.d/*.ini\n")
        return ["supervisord", str(main)]
    shutil.copytree(DATA / "procfile", root / "procfile")
    return ["procfile", str(root / "procfile" / "Procfile"), "--port-base", str(free_port_block(4, 100))]


@pytest.mark.parametrize("source", ["pm2", "supervisord", "procfile"])
def test_import_then_apply(daemon, root, source):
    args = prepare(source, root)
    out = root / "process.config.json"
    env = {**daemon.env, "PATH": "/usr/bin:/bin"}  # programs found where every user finds them
    res = subprocess.run([str(BIN / "pmon3"), "import", *args, "-o", str(out)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    entries = json.loads(out.read_text())["processes"]
    port = 0
    if source == "pm2":  # the edit the import's warning asks for: the copies share the socket pmond holds
        assert "a second one listening on the same port fails (EADDRINUSE). Add listen: tcp:0.0.0.0:" in res.stderr
        (api,) = [e for e in entries if e["name"] == "api"]
        port = int(next(v for v in api["env_vars"].split() if v.startswith("PORT=")).partition("=")[2])
        assert api["instances"] == 4 and "listen" not in api
        api["listen"] = f"tcp:127.0.0.1:{port}"
        out.write_text(json.dumps({"processes": entries}))
    # an entry with instances: N is NAME, NAME@1 ... NAME@N-1
    names = [e["name"] + (f"@{k}" if k else "") for e in entries for k in range(e.get("instances", 1))]
    dry = plan(daemon, str(out), "--dry-run")
    assert sorted(actions(dry).items()) == sorted((n, "create") for n in names)
    data = plan(daemon, str(out))
    assert data["ok"], data
    wait_for(
        lambda: all(p["status"] == "running" and pid_alive(p["pid"]) for p in daemon.json("ls")),
        10,
        f"the {source} processes running",
    )
    before = pids(daemon)
    assert sorted(before) == sorted(names)
    if source == "pm2":
        assert sorted(instance_of(before[n]) for n in names if n.startswith("api")) == [
            f"PMON3_INSTANCE={k}" for k in range(4)
        ]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer:
            assert answer.read() == b"ok\n"
    again = plan(daemon, str(out))
    assert set(actions(again).values()) == {"unchanged"}
    assert pids(daemon) == before
