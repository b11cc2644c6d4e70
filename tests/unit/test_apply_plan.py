"""apply's planner: pure (stored rows + validated specs -> actions) and the validation that feeds it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pmon3 import procconfig
from pmon3.config import from_mapping
from pmon3.daemon import apply, spec
from pmon3.daemon.authz import Authz, Caller
from pmon3.errors import DependencyError, InvalidRequestError, ProcessConfigError
from pmon3.models import Process
from pmon3.states import Status

ME = Caller(os.geteuid())


@pytest.fixture
def applier(tmp_path: Path) -> apply.Applier:
    cfg = from_mapping({"logs": {"directory": str(tmp_path / "logs")}}, str(tmp_path / "c.yml"), "user")
    return apply.Applier(None, cfg, Authz(None, cfg), None)  # type: ignore[arg-type]  # validate() needs neither


def specs(applier: apply.Applier, *entries: dict[str, Any]) -> list[apply.Desired]:
    return applier.validate(ME, [dict(e) for e in entries], "p.yaml", create_dirs=False)


def stored(applier: apply.Applier, entry: dict[str, Any], pid: int, status: Status = Status.RUNNING) -> Process:
    """A stored row as pmond would have made it from `entry`."""
    p = specs(applier, entry)[0].spec
    p.id, p.pid, p.status = pid, pid * 100, status
    return p


def sleep(name: str, **keys: Any) -> dict[str, Any]:
    return {"file": "/bin/sleep", "name": name, "args": "300", **keys}


def kinds(plan: apply.Plan) -> list[tuple[str, str]]:
    return [(a.name, a.action) for a in plan.actions]


def test_create_change_unchanged_and_delete_in_execution_order(applier):
    rows = [stored(applier, sleep("db"), 1), stored(applier, sleep("web"), 2), stored(applier, sleep("old"), 3)]
    rows.append(stored(applier, sleep("older", dependencies=["old"]), 4))
    desired = specs(applier, sleep("web", args="301", dependencies=["db"]), sleep("db"), sleep("cache"))
    plan = apply.compute(desired, rows, alive={1, 2, 3, 4}, prune=True)
    # deletions first, a dependent before what it depends on; then dependencies first, the rest by name
    assert kinds(plan) == [
        ("older", "delete"),
        ("old", "delete"),
        ("db", "unchanged"),
        ("web", "change"),
        ("cache", "create"),
    ]
    web = plan.actions[3]
    assert web.restart and [(c.field, c.old, c.new) for c in web.changes] == [
        ("args", "300", "301"),
        ("dependencies", [], ["db"]),
    ]
    assert plan.depended == {"db"}
    without_prune = apply.compute(desired, rows, alive={1, 2, 3, 4}, prune=False)
    assert [k for k in kinds(without_prune) if k[1] == "delete"] == []


def test_equivalent_spellings_are_unchanged(applier, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    row = stored(
        applier,
        sleep(
            "api",
            args=["--port", "80", "--msg", "a b"],
            env_vars="A=1 B=2",
            dependencies=["db", "cache"],
            groups=["front", "back"],
            min_uptime="1s",
            stop_timeout="1500ms",
            success_exit_codes="0,2",
            stop_signal="TERM",
            cwd=f"{cwd}/",
        ),
        1,
    )
    same = sleep(
        "api",
        args="--port 80 --msg 'a b'",
        env_vars=["B=2", "A=1"],
        dependencies="cache,db",
        groups=["back", "front"],
        min_uptime=1000,
        stop_timeout="1.5s",
        success_exit_codes=[2, 0],
        stop_signal=15,
        cwd=str(cwd),
    )
    plan = apply.compute(specs(applier, same), [row], alive={1}, prune=False)
    assert kinds(plan) == [("api", "unchanged")], plan.actions[0].changes


@pytest.mark.parametrize(
    ("edit", "field", "old", "new", "restart"),
    [
        ({"args": "301"}, "args", "300", "301", True),
        ({"file": "/bin/true"}, "file", "/bin/sleep", "/bin/true", True),
        ({"env_vars": "A=1 B=3 C=x"}, "env_vars", "B=2", "B=3 C=x", True),
        ({"log": "/tmp/x.log"}, "log", None, "/tmp/x.log", True),
        ({"cwd": "/tmp"}, "cwd", "", "/tmp", True),
        ({"groups": ["other"]}, "groups", ["front"], ["other"], False),
        ({"min_uptime": "5s"}, "min_uptime", None, "5s", False),
        ({"stop_signal": "INT"}, "stop_signal", None, "SIGINT", False),
        ({"no_auto_restart": True}, "no_auto_restart", False, True, False),
        ({"dependencies": ["db"]}, "dependencies", [], ["db"], False),
        ({"strict_modes": False}, "strict_modes", None, False, False),
    ],
)
def test_what_a_change_restarts(applier, edit, field, old, new, restart):
    row = stored(applier, sleep("api", env_vars="A=1 B=2", groups=["front"]), 1)
    plan = apply.compute(specs(applier, {**sleep("api", env_vars="A=1 B=2"), **edit}), [row], {1}, False)
    (action,) = plan.actions
    (change,) = action.changes
    old = row.log if field == "log" else old
    assert (action.action, change.field, change.old, change.new) == ("change", field, old, new)
    assert change.restart is restart and action.restart is restart
    # what a process runs changed, but it is not running: updated, not restarted
    stopped = apply.compute(specs(applier, {**sleep("api", env_vars="A=1 B=2"), **edit}), [row], set(), False)
    assert stopped.actions[0].action == "change" and stopped.actions[0].restart is False


def test_an_entry_without_groups_keeps_the_assigned_ones(applier):
    row = stored(applier, sleep("api", groups=["assigned"]), 1)
    assert kinds(apply.compute(specs(applier, sleep("api")), [row], {1}, False)) == [("api", "unchanged")]


def test_only_the_given_rows_are_compared(applier):
    """compute gets the caller's own rows: a same-named row of someone else is never passed, so never
    changed or pruned (Applier.plan lists store rows by the caller's uid)."""
    mine = stored(applier, sleep("mine"), 1)
    plan = apply.compute(specs(applier, sleep("api")), [mine], {1}, prune=True)
    assert kinds(plan) == [("mine", "delete"), ("api", "create")]


def test_dependency_warnings_and_cycles(applier):
    row = stored(applier, sleep("db"), 1)
    plan = apply.compute(specs(applier, sleep("web", dependencies=["db", "ghost"])), [row], {1}, prune=False)
    assert plan.warnings == ["web: dependency ghost is neither in the file nor a stored process"]
    plan = apply.compute(specs(applier, sleep("web", dependencies=["db"])), [row], {1}, prune=True)
    assert plan.warnings == ["web: dependency db is deleted by --prune"]
    with pytest.raises(DependencyError):
        apply.compute(specs(applier, sleep("a", dependencies=["b"]), sleep("b", dependencies=["a"])), [], set(), False)


def family_rows(applier: apply.Applier, entry: dict[str, Any], n: int) -> list[Process]:
    """The rows `scale NAME n` leaves: NAME (instance 0) and its copies, ids 1 ... n, all running."""
    head = stored(applier, entry, 1)
    head.options.update(family=head.name, instance=0)
    out = [head]
    for k in range(1, n):
        name = f"{head.name}@{k}"
        twin = spec.instance_spec(head, k, spec.instance_log(head, name, applier.authz.is_managed_log(head)))
        twin.id, twin.pid, twin.status = k + 1, (k + 1) * 100, Status.RUNNING
        out.append(twin)
    return out


def test_instances_are_an_action_each_and_their_place_is_no_change(applier):
    rows = family_rows(applier, sleep("s", groups=["front"]), 3)
    same = apply.compute(specs(applier, sleep("s", groups=["front"], instances=3)), rows, {1, 2, 3}, False)
    assert kinds(same) == [("s", "unchanged"), ("s@1", "unchanged"), ("s@2", "unchanged")]
    assert same.actions[0].scale is None  # nothing to scale: the rows are not touched
    without = apply.compute(specs(applier, sleep("s", groups=["front"])), rows, {1, 2, 3}, False)
    assert kinds(without) == kinds(same)  # no instances: the copies a scale made stay
    up = apply.compute(specs(applier, sleep("s", groups=["front"], instances=5)), rows, {1, 2, 3}, False)
    assert kinds(up)[3:] == [("s@3", "create"), ("s@4", "create")] and up.actions[0].scale == 5
    assert [(a.copy_of, a.instance) for a in up.actions] == [("", 0), ("s", 1), ("s", 2), ("s", 3), ("s", 4)]
    down = apply.compute(specs(applier, sleep("s", groups=["front"], instances=1)), rows, {1, 2, 3}, True)
    assert kinds(down) == [("s", "unchanged"), ("s@2", "delete"), ("s@1", "delete")]  # the highest first
    assert down.actions[0].scale == 1
    edited = apply.compute(specs(applier, sleep("s", args="301", instances=3)), rows, {1, 3}, False)
    assert [(a.name, a.action, a.restart, [c.field for c in a.changes]) for a in edited.actions] == [
        ("s", "change", True, ["args"]),
        ("s@1", "change", False, ["args"]),  # not alive: updated, not started
        ("s@2", "change", True, ["args"]),
    ]


def test_prune_counts_the_copies_of_a_listed_entry_as_listed(applier):
    rows = family_rows(applier, sleep("s"), 3) + family_rows(applier, sleep("gone"), 2)
    rows[3].id, rows[4].id = 11, 12
    plan = apply.compute(specs(applier, sleep("s", instances=3)), rows, set(), prune=True)
    assert sorted(kinds(plan)[:2]) == [("gone", "delete"), ("gone@1", "delete")]
    assert kinds(plan)[2:] == [("s", "unchanged"), ("s@1", "unchanged"), ("s@2", "unchanged")]


def test_an_entry_named_as_a_copy_of_another_is_refused(applier):
    with pytest.raises(InvalidRequestError) as exc:
        apply.compute(specs(applier, sleep("s", instances=3), sleep("s@2")), [], set(), False, "p.yaml")
    assert exc.value.message == "p.yaml: processes[1] (s@2): name: s@2 is instance 2 of s (3 instances): rename one"
    other = stored(applier, sleep("s@1"), 7)  # a process of its own where a copy goes
    plan = apply.compute(specs(applier, sleep("s", instances=2)), [other], set(), False)
    assert kinds(plan) == [("s", "create"), ("s@1", "create")]
    assert plan.warnings == [
        "s: s@1 is a process of its own, not an instance of it: the instances cannot be created (--prune deletes it)"
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"args": 3}, "p.yaml: processes[1] (bad): args: must be a string or a list of a strings"),
        ({"cwd": "/nonexistent"}, "p.yaml: processes[1] (bad): cwd: working directory /nonexistent does not exist"),
        ({"min_uptime": "5x"}, "p.yaml: processes[1] (bad): min_uptime: invalid duration '5x'"),
        ({"user": "nosuchuser-xyz"}, "p.yaml: processes[1] (bad): user: unknown user nosuchuser-xyz"),
        ({"env_vars": "NOEQUALS"}, "p.yaml: processes[1] (bad): env_vars: invalid env var 'NOEQUALS'"),
        ({"dependencies": ["bad"]}, "p.yaml: processes[1] (bad): dependencies: self-referential"),
        ({"groups": ["123"]}, "p.yaml: processes[1] (bad): groups: invalid group name '123'"),
        ({"file": "relative/bin"}, "p.yaml: processes[1] (bad): file: command error: file argument error"),
        ({"log_dir": "relative"}, "p.yaml: processes[1] (bad): log_dir: log directory must be absolute"),
        ({"bogus": 1}, "p.yaml: processes[1]: unknown key 'bogus'"),
    ],
)
def test_the_first_error_names_file_entry_and_key(applier, entry, message):
    with pytest.raises(InvalidRequestError) as err:
        specs(applier, sleep("good"), {**sleep("bad"), **entry}, {"file": "/bin/sleep", "name": "bad name"})
    assert err.value.message.startswith(message), err.value.message


def test_validation_creates_no_log_directory(applier, tmp_path):
    where = tmp_path / "new-logs"
    if os.geteuid() == 0:  # only root's missing log directory is created, and only when carried out
        (d,) = specs(applier, sleep("api", log_dir=str(where)))
        assert d.spec.log == str(where / "api.log")
    else:
        with pytest.raises(InvalidRequestError, match="log_dir: log directory .* does not exist"):
            specs(applier, sleep("api", log_dir=str(where)))
    assert not where.exists()


def test_load_for_apply_reads_env_files_here(tmp_path):
    env = tmp_path / "app.env"
    env.write_text("A=from-file\nB=from-file\n")
    conf = tmp_path / "p.yaml"
    conf.write_text(f"processes:\n  - file: /bin/sleep\n    name: api\n    env_file: {env}\n    env_vars: B=own C=3\n")
    (entry,) = procconfig.load_for_apply(str(conf))
    assert "env_file" not in entry and entry["env_vars"] == ["A=from-file", "B=from-file", "B=own", "C=3"]
    conf.write_text("processes:\n  - file: /bin/sleep\n    name: api\n    env_file: app.env\n")
    with pytest.raises(ProcessConfigError, match=r"p.yaml: processes\[0\] \(api\): env_file: must be an absolute"):
        procconfig.load_for_apply(str(conf))
    conf.write_text(f"processes:\n  - file: /bin/sleep\n    name: api\n    env_file: {tmp_path / 'none.env'}\n")
    with pytest.raises(ProcessConfigError, match=r"processes\[0\] \(api\): env_file: env file .*none.env"):
        procconfig.load_for_apply(str(conf))
    with pytest.raises(ProcessConfigError, match="no such file"):  # never an empty file: --prune would delete all
        procconfig.load_for_apply(str(tmp_path / "missing.yaml"))


def test_a_file_too_large_for_one_request_is_refused_before_sending(tmp_path):
    from pmon3.client import Client

    conf = tmp_path / "p.json"
    long_args = "x" * 2000
    conf.write_text(json.dumps({"processes": [sleep(f"s{i}", args=long_args) for i in range(600)]}))
    cfg = from_mapping({"data": {"directory": str(tmp_path)}}, str(tmp_path / "c.yml"), "user")
    with Client(cfg) as c, pytest.raises(ProcessConfigError, match=r"600 entries are \d+ bytes, more than pmond takes"):
        c.apply(str(conf), dry_run=True)  # no pmond runs here: the error comes before any IPC


def test_the_plan_table_escapes_what_users_wrote(capsys):
    from pmon3.cli.commands.apply import show_plan

    change = {"field": "args", "old": "a\x9b31mb", "new": "c\x1b[2Jd", "restart": True}
    action = {"name": "api", "action": "change", "changes": [change], "restart": True, "status": "running"}
    show_plan({"source": "/tmp/p\x1b]0;x\x07.yaml", "dry_run": True, "actions": [action], "warnings": ["w\x9bx"]})
    out, err = capsys.readouterr()
    assert not any(ch in out + err for ch in "\x1b\x9b\x07"), (out, err)
    assert "a\\x9b31mb" in out and "u001b[2Jd" in out and "p\\x1b]0;x\\x07.yaml" in out and "w\\x9bx" in err
