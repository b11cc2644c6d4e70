"""The privilege matrix: every command, run by an unprivileged user against root's and another user's processes,
groups and files, on both transports. Each case first runs the user's OWN equivalent command, which must succeed
(so that no case passes because the user's CLI could not start or talk to pmond); then the attacks, which must
fail (or, for commands that act on all of the caller's processes, act on the user's own only and reveal
nothing); then root checks that nothing of the victims changed."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RUN, Pmond, cli_command_for_others, pid_alive, wait_for
from pmon3.errors import NotFoundError
from secutil import ATTACKER, OTHER, TRANSPORTS, FileState, cli_as, client, needs_root, ok_as, row_state, sec_daemon

pytestmark = needs_root

RP, OP = f"rootproc-{RUN}", f"otherproc-{RUN}"
RG, OG = f"rootgrp-{RUN}", f"othergrp-{RUN}"


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("matrix", request.param)


@pytest.fixture(scope="module")
def world(daemon: Pmond) -> dict[str, str]:
    """The victims: root's process in root's group, another user's process in its group, each restarted once
    (so that a reset would show) and each with its log; the placeholders the cases use."""
    d = daemon
    rp = d.json("exec", "/bin/sh", "--name", RP, "-g", RG, "-a", f'-c "echo {RP}; exec sleep 600"')
    op = ok_as(d, OTHER, "exec", "/bin/sh", "--name", OP, "-g", OG, "-a", f'-c "echo {OP}; exec sleep 600"')
    rp = d.json("restart", RP)
    op = ok_as(d, OTHER, "restart", OP)
    files = d.root / f"matrix-{RUN}"
    files.mkdir()
    files.chmod(0o755)
    (files / "own.yaml").write_text("processes:\n  - file: /bin/sleep\n    name: m-apply\n    args: '300'\n")
    (files / "asroot.yaml").write_text("processes:\n  - file: /bin/sleep\n    name: m-x\n    user: root\n")
    (files / "rootlog.yaml").write_text(f"processes:\n  - file: /bin/sleep\n    name: m-y\n    log: {rp['log']}\n")
    (files / "empty.yaml").write_text("processes: []\n")
    with client(d) as c:
        groups = {g["name"]: g for g in c.group_list()}
    return {
        "rp": RP, "rp_id": str(rp["id"]), "rp_log": rp["log"], "rp_pid": str(rp["pid"]),
        "op": OP, "op_id": str(op["id"]), "op_log": op["log"], "op_pid": str(op["pid"]),
        "rg": RG, "rg_id": str(groups[RG]["id"]), "og": OG, "og_id": str(groups[OG]["id"]),
        "other": OTHER, "files": str(files),
    }  # fmt: skip


@dataclasses.dataclass
class Case:
    own: list[list[str]]  # the user's own equivalent: every command must succeed
    fail: list[list[str]] = dataclasses.field(default_factory=list)  # must exit 1, revealing nothing
    blind: list[list[str]] = dataclasses.field(default_factory=list)  # may succeed: act on its own, reveal nothing


def m(name: str, *extra: str) -> list[str]:
    return ["exec", "/bin/sleep", "--name", name, *extra, "-a", "300"]


ON_ROOTS = ["{rp}", "{rp_id}", "root/{rp}", "0/{rp}"]
ON_OTHERS = ["{op_id}", "{other}/{op}"]
ON_VICTIMS = ON_ROOTS + ON_OTHERS
ON_GROUPS = ["{rg}", "{rg_id}", "root/{rg}", "{og_id}", "{other}/{og}"]

CASES: dict[str, Case] = {
    "exec": Case(
        own=[m("m-exec")],
        fail=[
            m("m-e1", "-u", "root"),
            m("m-e2", "-u", "{other}"),
            m("m-e3", "-l", "{rp_log}"),
            m("m-e4", "-l", "{op_log}"),
            m("m-e5", "--log-dir", "{files}/../logs"),
            m("m-e6", "-d", "{rp}", "-u", "{other}"),
        ],
    ),  # fmt: skip
    "ls": Case(own=[m("m-ls"), ["ls"]], blind=[["ls"], ["ls", "--json"], ["list"]]),
    "desc": Case(own=[m("m-desc"), ["desc", "m-desc"]], fail=[["desc", v] for v in ON_VICTIMS]),
    "stop": Case(
        own=[m("m-stop"), ["stop", "m-stop"]], fail=[["stop", v, *f] for v in ON_VICTIMS for f in ([], ["-f"])]
    ),
    "restart": Case(
        own=[m("m-restart"), ["restart", "m-restart"]],
        fail=[["restart", v] for v in ON_VICTIMS]
        + [["restart", "{rp_id}", "-a", "1"], ["restart", "{op_id}", "-l", "/tmp/x"]],
    ),  # fmt: skip
    "start": Case(
        own=[m("m-start"), ["stop", "m-start"], ["start", "m-start"]], fail=[["start", v] for v in ON_VICTIMS]
    ),
    "reload": Case(
        own=[m("m-reload"), ["reload", "m-reload"]],
        fail=[["reload", v] for v in ON_VICTIMS]
        + [["reload", "{rp_id}", "-a", "1"], ["reload", "{op_id}", "-u", "{other}"]],
    ),  # fmt: skip
    "scale": Case(own=[m("m-scale"), ["scale", "m-scale", "2"]], fail=[["scale", v, "3"] for v in ON_VICTIMS]),
    "del": Case(own=[m("m-del"), ["del", "m-del"]], fail=[["del", v, *f] for v in ON_VICTIMS for f in ([], ["-f"])]),
    "kill": Case(own=[m("m-kill"), ["kill"]], blind=[["kill"], ["kill", "-f"]]),
    "drop": Case(own=[m("m-drop"), ["drop", "-f"]], blind=[["drop"], ["drop", "-f"]]),
    "init": Case(own=[m("m-init"), ["init", "-b"]], blind=[["init"], ["init", "-b"], ["init", "-c", "-b"]]),
    "reset": Case(own=[m("m-reset"), ["reset", "m-reset"]], fail=[["reset", v] for v in ON_VICTIMS], blind=[["reset"]]),
    "log": Case(own=[m("m-log"), ["log", "m-log"]], fail=[["log", v, *f] for v in ON_VICTIMS for f in ([], ["-a"])]),
    "logf": Case(own=[m("m-logf")], fail=[["logf", v] for v in ON_VICTIMS]),  # own logf follows: test_logf_own
    "export": Case(own=[m("m-export"), ["export"]], blind=[["export", f] for f in ("json", "yaml", "toml")]),
    "dgraph": Case(own=[m("m-dgraph"), ["dgraph"]], blind=[["dgraph"], ["dgraph", "--json"], ["order", "-c"]]),
    "group create": Case(own=[["group", "create", "mg-create"]], blind=[["group", "create", "{rg}"]]),
    "group ls": Case(own=[["group", "create", "mg-ls"], ["group", "ls"]], blind=[["group", "ls", "--json"]]),
    "group desc": Case(
        own=[["group", "create", "mg-desc"], ["group", "desc", "mg-desc"]],
        fail=[["group", "desc", g] for g in ON_GROUPS],
    ),
    "group assign": Case(
        own=[m("m-assign"), ["group", "create", "mg-assign"], ["group", "assign", "mg-assign", "m-assign"]],
        fail=[["group", "assign", g, "m-assign"] for g in ON_GROUPS[1:]]
        + [["group", "assign", "mg-assign", v] for v in ON_VICTIMS],
    ),
    "group remove": Case(
        own=[m("m-remove", "-g", "mg-remove"), ["group", "remove", "mg-remove", "m-remove"]],
        fail=[["group", "remove", g, v] for g in ON_GROUPS[1:] for v in ("{rp_id}", "{op_id}", "root/{rp}")],
    ),
    "group stop": Case(
        own=[m("m-gstop", "-g", "mg-stop"), ["group", "stop", "mg-stop"]],
        fail=[["group", "stop", g, *f] for g in ON_GROUPS for f in ([], ["-f"])],
    ),
    "group restart": Case(
        own=[m("m-grestart", "-g", "mg-restart"), ["group", "restart", "mg-restart"]],
        fail=[["group", "restart", g] for g in ON_GROUPS] + [["group", "restart", "{rg_id}", "-a", "1"]],
    ),
    "group reload": Case(
        own=[m("m-greload", "-g", "mg-reload"), ["group", "reload", "mg-reload"]],
        fail=[["group", "reload", g] for g in ON_GROUPS],
    ),
    "group drop": Case(
        own=[m("m-gdrop", "-g", "mg-drop"), ["group", "drop", "mg-drop"]],
        fail=[["group", "drop", g, *f] for g in ON_GROUPS for f in ([], ["-f"])],
    ),
    "group del": Case(
        own=[["group", "create", "mg-del"], ["group", "del", "mg-del"]], fail=[["group", "del", g] for g in ON_GROUPS]
    ),
    "apply": Case(
        own=[["apply", "{files}/own.yaml"]],
        fail=[["apply", "{files}/asroot.yaml"], ["apply", "{files}/rootlog.yaml"]],
        blind=[["apply", "--prune", "{files}/empty.yaml"], ["apply", "--prune", "--dry-run", "{files}/empty.yaml"]],
    ),
    "daemon status": Case(own=[m("m-status"), ["daemon", "status"]], blind=[["daemon", "status", "--json"]]),
    "daemon stop": Case(own=[["daemon", "status"]], fail=[["daemon", "stop"]]),
    "daemon restart": Case(own=[["daemon", "status"]], fail=[["daemon", "restart"]]),
}


def fill(argv: list[str], world: dict[str, str]) -> list[str]:
    return [a.format(**world) for a in argv]


def snapshot(d: Pmond, world: dict[str, str]) -> Any:
    """Everything of the victims a command could change, as root sees it."""
    with client(d) as c:
        procs = {p["id"]: row_state(p) for p in c.list() if p["owner"] != ATTACKER}
        groups = {
            g["id"]: (g["owner"], g["name"], [p["id"] for p in c.group_describe(g["id"])["processes"]])
            for g in c.group_list()
            if g["owner"] != ATTACKER
        }
        pid = c.daemon_status()["pid"]
    files = {p: FileState(Path(world[p])) for p in ("rp_log", "op_log")}
    return procs, groups, pid, files


def secrets(world: dict[str, str]) -> list[str]:
    """What no output to the user may contain: the victims' names, logs and pids."""
    return [world[k] for k in ("rp", "op", "rg", "og", "rp_log", "op_log")] + [
        f" {world['rp_pid']} ",
        f" {world['op_pid']} ",
    ]


def typed(argv: list[str], world: dict[str, str]) -> str:
    """What the user wrote: its command line and the files of its own that it names."""
    files = [Path(a).read_text() for a in argv if a.startswith(world["files"]) and Path(a).is_file()]
    return " ".join([*argv, *files])


def clean_up(d: Pmond) -> None:
    with client(d) as c:
        for p in c.list():
            if p["owner"] == ATTACKER:
                with contextlib.suppress(NotFoundError):  # an instance goes with its head
                    c.delete(p["id"], force=True)
        for g in c.group_list():
            if g["owner"] == ATTACKER:
                c.group_delete(g["id"])


@pytest.mark.parametrize("name", list(CASES))
def test_matrix(daemon: Pmond, world: dict[str, str], name: str):
    d = daemon
    case = CASES[name]
    before = snapshot(d, world)
    own = [fill(a, world) for a in case.own]
    fail = [fill(a, world) for a in case.fail]
    blind = [fill(a, world) for a in case.blind]
    try:
        results = cli_as(d, ATTACKER, *own, *fail, *blind)
        for res in results[: len(own)]:
            assert res.returncode == 0, f"the user's own command failed:\n{res}"
        for res in results[len(own) : len(own) + len(fail)]:
            assert res.returncode == 1, res
        for res in results[len(own) :]:
            for secret in secrets(world):
                if secret.strip() not in typed(res.argv, world):  # the user may be told what it wrote
                    assert secret not in res.stdout + res.stderr, f"{secret!r} revealed:\n{res}"
        assert snapshot(d, world) == before
        assert all(pid_alive(int(world[k])) for k in ("rp_pid", "op_pid"))
    finally:
        clean_up(d)


def test_logf_own_follows_and_others_are_refused(daemon: Pmond, world: dict[str, str]):
    """logf follows until interrupted, so the user's own runs as a real `pmon3 logf` that must print its
    process's output and keep following; the attacks on others' are in test_matrix[logf]."""
    d = daemon
    marker = f"logf-{RUN}"
    ok_as(d, ATTACKER, "exec", "/bin/sh", "--name", "m-logf", "-a", f'-c "echo {marker}; exec sleep 300"')
    prefix, extra = cli_command_for_others()
    proc = subprocess.Popen(
        [*prefix, "logf", "m-logf"], env={**d.env, **extra, "HOME": "/"}, user=ATTACKER, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, cwd="/",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        seen = bytearray()

        def printed() -> bool:
            try:
                seen.extend(os.read(fd, 65536))
            except BlockingIOError:
                pass
            return marker.encode() in seen

        wait_for(printed, 20, "logf to print the process's output")
        assert proc.poll() is None  # and keeps following
    finally:
        proc.kill()
        proc.communicate()
        clean_up(d)


def test_running_as_someone_else_is_refused_by_pmond_not_only_by_the_cli(daemon: Pmond, world: dict[str, str]):
    """The CLI refuses `-u root` itself; pmond must refuse it too, for a client that is not the CLI."""
    import json

    from secutil import attack, endpoints

    d = daemon
    ep = endpoints(d)
    before = snapshot(d, world)
    requests = [
        {"cmd": "exec", "args": {"file": "/bin/sleep", "name": f"as-{user}", "args": "300", "user": user}}
        for user in ("root", OTHER)
    ] + [{"cmd": "restart", "args": {"id": "m-own", "flags": {"user": user}}} for user in ("root", OTHER)]
    ok_as(d, ATTACKER, "exec", "/bin/sleep", "--name", "m-own", "-a", "300")
    try:
        if d.transport == "unix":
            bodies = [json.dumps({"v": 1, "id": f"r{i}", **r}) for i, r in enumerate(requests)]
            replies = attack(d, ATTACKER, "sock_send", bodies=bodies, **ep)["replies"]
        else:
            report = attack(d, ATTACKER, "mq_send", messages=[{**r, "reply_to": "own"} for r in requests], **ep)
            replies = [r[0] if r else None for r in report["replies"]]
        for request, reply in zip(requests, replies):
            assert reply is not None and reply["ok"] is False, (request, reply)
            assert "permission denied" in reply["error"]["message"], (request, reply)
        with client(d) as c:
            assert {p["username"] for p in c.list() if p["owner"] == ATTACKER} == {ATTACKER}
        assert snapshot(d, world) == before
    finally:
        clean_up(d)
