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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BIN, Pmond, make_daemon, pid_alive, wait_for

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
    names = [e["name"] for e in json.loads(out.read_text())["processes"]]
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
    again = plan(daemon, str(out))
    assert set(actions(again).values()) == {"unchanged"}
    assert pids(daemon) == before
