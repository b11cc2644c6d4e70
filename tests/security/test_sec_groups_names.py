"""Attacks 3 and 9 (and the group part of 10): code run as root through a group, names that would block or
reveal root's and other users' names, group names as an injection vector. On both transports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RUN, Pmond, pid_alive, script, wait_for
from secutil import ATTACKER, OTHER, TRANSPORTS, cli_as, client, needs_root, ok_as, row_state, sec_daemon, uid_of

pytestmark = needs_root


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    # root's process config: no file until a test writes it
    yield from sec_daemon("groups", request.param, "process_config_file: {root}/process.config.yaml\n")


@pytest.fixture(scope="module")
def attacker_dir(daemon: Pmond) -> Path:
    """A directory of the attacker's own, with a script that appends the uid it runs as to a marker."""
    directory = daemon.root / f"attacker-{RUN}"
    directory.mkdir(exist_ok=True)
    shutil.chown(directory, ATTACKER, ATTACKER)
    path = script(directory, "job.sh", f"id -u >> {directory / 'ran-as'}\nexec sleep 300\n")
    shutil.chown(path, ATTACKER, ATTACKER)
    return directory


@pytest.fixture(scope="module")
def rootgrp(daemon: Pmond) -> dict[str, Any]:
    """root's group `rootgrp` holding root's process `rootproc`."""
    d = daemon
    p = d.json("exec", "/bin/sleep", "--name", "rootproc", "-g", "rootgrp", "-a", "300")
    return {"proc": p, "group": d.json("group", "desc", "rootgrp")["group"]}


def members(d: Pmond, group: str) -> list[tuple[str, str]]:
    return [(p["owner"], p["name"]) for p in d.json("group", "desc", group)["processes"]]


def ran_as(directory: Path) -> list[str]:
    marker = directory / "ran-as"
    return marker.read_text().split() if marker.exists() else []


def test_a_user_cannot_join_roots_group(daemon: Pmond, rootgrp: dict[str, Any], attacker_dir: Path):
    d = daemon
    gid, pid_ = str(rootgrp["group"]["id"]), str(rootgrp["proc"]["id"])
    own, assign, *attacks = cli_as(
        d,
        ATTACKER,
        ["exec", str(attacker_dir / "job.sh"), "--name", "ujob", "-g", "rootgrp", "--json"],
        ["group", "assign", "rootgrp", "ujob", "--json"],  # its own assign works
        ["group", "assign", "root/rootgrp", "ujob"],
        ["group", "assign", gid, "ujob"],
        ["group", "assign", "0/rootgrp", "ujob"],
        ["group", "assign", "rootgrp", pid_],  # nor can it pull root's process into its own group
        ["group", "assign", "rootgrp", "root/rootproc"],
    )
    assert own.json()["groups"] == ["rootgrp"]  # the user's own group of that name: a different group
    assert assign.returncode == 0, assign
    for res in attacks:
        assert res.returncode == 1 and "does not exist" in res.stderr, res
    assert members(d, "rootgrp") == [("root", "rootproc")]
    assert members(d, f"{ATTACKER}/rootgrp") == [(ATTACKER, "ujob")]
    owners = sorted(g["owner"] for g in d.json("group", "ls") if g["name"] == "rootgrp")
    assert owners == sorted(["root", ATTACKER])
    d.cli("del", f"{ATTACKER}/ujob", "-f")


def test_roots_group_restart_never_runs_the_users_script_as_root(
    daemon: Pmond, rootgrp: dict[str, Any], attacker_dir: Path
):
    d = daemon
    mine = ok_as(d, ATTACKER, "exec", str(attacker_dir / "job.sh"), "--name", "ujob2", "-g", "rootgrp")
    wait_for(lambda: ran_as(attacker_dir), 10, "the user's script to run")
    res = d.cli("group", "assign", "rootgrp", f"{ATTACKER}/ujob2", check=False)  # not even root mixes owners
    assert res.returncode == 1 and "a group holds only its owner's processes" in res.stderr, res.stderr
    before = d.get("rootproc")
    after = d.json("group", "restart", "rootgrp", "-u", "root")
    assert [p["name"] for p in after["processes"]] == ["rootproc"]
    assert d.get("rootproc")["pid"] != before["pid"]  # root's group restart did restart root's process
    theirs = d.get(f"{ATTACKER}/ujob2")
    assert theirs["pid"] == mine["pid"] and theirs["username"] == ATTACKER
    assert set(ran_as(attacker_dir)) == {str(uid_of(ATTACKER))}
    d.cli("del", f"{ATTACKER}/ujob2", "-f")


def test_root_cannot_hand_root_to_a_users_process(daemon: Pmond, attacker_dir: Path):
    """root naming a user's group (or process) with -u root: the user's row would run as root, and its owner
    could then choose what runs as root (restart -a). A user's process runs as that user only."""
    d = daemon
    marker = attacker_dir / "sh-ran-as"
    ok_as(d, ATTACKER, "exec", "/bin/sh", "--name", "shjob", "-g", "ugrp", "-a", '-c "exec sleep 300"')
    for cmd in (["group", "restart", f"{ATTACKER}/ugrp", "-u", "root"], ["restart", f"{ATTACKER}/shjob", "-u", "root"]):
        res = d.cli(*cmd, check=False)
        assert res.returncode == 1 and "permission denied" in res.stderr, (cmd, res.stdout, res.stderr)
    p = d.get(f"{ATTACKER}/shjob")
    assert p["username"] == ATTACKER and p["status"] == "running"
    (res,) = cli_as(d, ATTACKER, ["restart", "shjob", "-a", f'-c "id -u > {marker}; exec sleep 300"'])
    assert res.returncode == 0, res
    wait_for(marker.exists, 10, "the user's restarted process to run")
    assert marker.read_text().split() == [str(uid_of(ATTACKER))]
    d.cli("del", f"{ATTACKER}/shjob", "-f")


def test_group_ls_shows_only_the_users_own_groups(daemon: Pmond, rootgrp: dict[str, Any]):
    d = daemon
    ok_as(d, OTHER, "group", "create", "othergrp")
    ok_as(d, ATTACKER, "group", "create", "mygrp")
    everyone = [g for g in d.json("group", "ls") if g["owner"] != ATTACKER]
    assert {"root", OTHER} <= {g["owner"] for g in everyone}
    mine, *attacks = cli_as(
        d, ATTACKER, ["group", "ls", "--json"], *(["group", "desc", str(g["id"])] for g in everyone)
    )
    assert {g["owner"] for g in mine.json()} == {ATTACKER} and "mygrp" in {g["name"] for g in mine.json()}
    for g, res in zip(everyone, attacks):
        assert res.returncode == 1 and res.stderr.strip() == f"Group ({g['id']}) does not exist", res


def test_group_names_are_validated(daemon: Pmond):
    d = daemon
    bads = ["g" * 10_000, "\x1b[31mred", "a\x9bb", "x\ny"]
    own, gone, *attacks, ls = cli_as(
        d,
        ATTACKER,
        ["exec", "/bin/sleep", "--name", "grpok", "-g", "okgrp", "-a", "300", "--json"],
        ["del", "grpok", "-f"],
        *(
            cmd
            for bad in bads
            for cmd in (
                ["exec", "/bin/sleep", "--name", "grpbad", "-g", bad, "-a", "300"],
                ["group", "create", bad],
                ["group", "assign", bad, "grpbad"],
            )
        ),
        ["ls", "--json"],
    )
    assert own.json()["groups"] == ["okgrp"] and gone.returncode == 0
    for res in attacks:
        assert res.returncode == 1, res
        assert "\x1b" not in res.stderr and "\x9b" not in res.stderr and len(res.stderr) < 20_500, res
        assert res.stderr.count("\n") == 1, res  # one escaped line
    assert "grpbad" not in {p["name"] for p in ls.json()}
    assert not set(bads) & {g["name"] for g in d.json("group", "ls")}


def test_a_users_name_never_blocks_roots_configured_process(daemon: Pmond):
    d = daemon
    theirs = ok_as(d, ATTACKER, "exec", "/bin/sleep", "--name", "api", "-a", "300")
    other = ok_as(d, OTHER, "exec", "/bin/sleep", "--name", "api", "-a", "300")
    (d.root / "process.config.yaml").write_text("processes:\n  - file: /bin/sleep\n    name: api\n    args: '301'\n")
    try:
        d.json("init", "-b")  # root's configured api is created and started beside the users' ones
        root_api = d.get("api")
        assert root_api["owner"] == "root" and root_api["argv"] == ["301"] and pid_alive(root_api["pid"])
        assert d.get(f"{ATTACKER}/api")["pid"] == theirs["pid"] and d.get(f"{OTHER}/api")["pid"] == other["pid"]
        # at boot too: a pmond started with the users' `api` rows in place creates root's from the config
        d.cli("del", "api", "-f")
        d.stop()
        d.start()
        d.wait_booted()
        root_api = d.get("api")
        assert root_api["owner"] == "root" and root_api["status"] == "running" and root_api["argv"] == ["301"]
        for user in (ATTACKER, OTHER):  # the users' ones are back as they were (stopped with pmond, revived)
            p = d.get(f"{user}/api")
            assert p["status"] == "running" and p["username"] == user and p["argv"] == ["300"]
    finally:
        (d.root / "process.config.yaml").unlink()
        for name in ("api", f"{ATTACKER}/api", f"{OTHER}/api"):
            d.cli("del", name, "-f", check=False)


def test_name_errors_never_reveal_other_users_names(daemon: Pmond):
    d = daemon
    secret, hidden, free = f"secret{RUN}", f"hidden{RUN}", f"nobody{RUN}"
    d.json("exec", "/bin/sleep", "--name", secret, "-a", "300")
    ok_as(d, OTHER, "exec", "/bin/sleep", "--name", hidden, "-a", "300")
    with client(d) as c:
        victims = {p["id"]: row_state(p) for p in c.list()}
    verbs = (["desc"], ["stop"], ["restart"], ["del"], ["log"], ["reset"], ["start"], ["group", "desc"])
    results = cli_as(d, ATTACKER, *([*verb, name] for name in (secret, hidden, free) for verb in verbs))
    by_name = [results[i * len(verbs) : (i + 1) * len(verbs)] for i in range(3)]
    for taken, res_taken in ((secret, by_name[0]), (hidden, by_name[1])):
        for a, b in zip(res_taken, by_name[2]):
            assert a.returncode == b.returncode == 1, (a, b)
            assert a.stderr.replace(taken, "X") == b.stderr.replace(free, "X"), (a, b)
    # "name taken" only ever means the caller's own name: the user gets its own process of that name
    mine, again, gone = cli_as(
        d,
        ATTACKER,
        ["exec", "/bin/sleep", "--name", secret, "-a", "300", "--json"],
        ["exec", "/bin/sleep", "--name", secret, "-a", "300"],
        ["del", secret, "-f"],
    )
    assert mine.json()["owner"] == ATTACKER and gone.returncode == 0
    assert again.returncode == 1 and again.stderr.strip() == f"process already running with the name provided: {secret}"
    with client(d) as c:
        assert {p["id"]: row_state(p) for p in c.list() if p["id"] in victims} == victims
    d.cli("del", secret, "-f")
    d.cli("del", f"{OTHER}/{hidden}", "-f")
