"""Attacks 1 and 2: a user tries to make root's pmond write, create, take over or delete somebody else's log file
(another user's, root's, pmond's own) through --log, --log-dir, restart -l and del. On both transports."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RUN, Pmond, wait_for
from secutil import (
    ATTACKER,
    OTHER,
    TRANSPORTS,
    FileState,
    attack,
    cli_as,
    needs_root,
    ok_as,
    sec_daemon,
    states,
    uid_of,
)

pytestmark = needs_root
MARK = f"STOLEN-{RUN}"  # what the attacker's process prints into whatever log it gets
CHATTY = ["-a", f'-c "echo {MARK}; exec sleep 1000"']


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("logs", request.param)


@pytest.fixture(scope="module")
def victims(daemon: Pmond) -> dict[str, Path]:
    """Files of others: another user's and root's default logs (with content), pmond's own log, and paths that
    do not exist yet but would be root's or another user's default logs."""
    d = daemon
    rootjob = Path(d.json("exec", "/bin/sleep", "--name", "rootjob", "-a", "300")["log"])
    victim = Path(ok_as(d, OTHER, "exec", "/bin/sleep", "--name", "victim", "-a", "300")["log"])
    for path, text in ((rootjob, "root's secret\n"), (victim, "pmon3other's secret\n")):
        with open(path, "a") as fh:  # content that a takeover would expose or clobber; owner and mode kept
            fh.write(text)
    return {
        "other": victim,
        "root": rootjob,
        "pmond": d.stderr_path,  # pmond's log as the tests run it (its stderr)
        "pmond_configured": d.root / "pmond.log",  # daemon.log of the config: pmond logs to stderr here
        "root_future": d.logs / "api.log",
        "other_future": d.logs / OTHER / "later.log",
    }


def unchanged(before: dict[Path, FileState], victims: dict[str, Path]) -> None:
    after = states(list(victims.values()))
    for path, state in before.items():
        if path == victims["pmond"]:  # pmond keeps logging: its owner, mode and inode must not change
            assert state.stat and after[path].stat and state.stat[:4] == after[path].stat[:4], path
        else:
            assert after[path] == state, f"{path} changed: {state} -> {after[path]}"
        if path.is_file():
            assert MARK not in path.read_text(errors="replace"), f"the attacker's output reached {path}"


def test_exec_log_cannot_take_over_anothers_file(daemon: Pmond, victims: dict[str, Path]):
    d = daemon
    before = states(list(victims.values()))
    own, *attacks, ls = cli_as(
        d,
        ATTACKER,
        ["exec", "/bin/sh", "--name", "ownlog", *CHATTY, "--json"],  # the user's own exec works
        *(["exec", "/bin/sh", "--name", "steal", "--log", str(path), *CHATTY] for path in victims.values()),
        ["ls", "--json"],
    )
    mine = own.json()
    assert Path(mine["log"]) == d.logs / ATTACKER / "ownlog.log"
    wait_for(lambda: MARK in Path(mine["log"]).read_text(), 10, "the user's own process to write its own log")
    for res in attacks:
        assert res.returncode == 1, res
    assert [p["name"] for p in ls.json()] == ["ownlog"]  # a failed start leaves no row behind
    d.cli("del", f"{ATTACKER}/ownlog")
    unchanged(before, victims)


def test_exec_log_dir_cannot_reach_anothers_default_log(daemon: Pmond, victims: dict[str, Path]):
    d = daemon
    before = states(list(victims.values()))
    own = d.root / f"attackerlogs-{RUN}"
    own.mkdir(exist_ok=True)
    shutil.chown(own, ATTACKER, ATTACKER)
    targets = [victims[t] for t in ("other", "root", "root_future", "other_future")]
    mine, *attacks, ls = cli_as(
        d,
        ATTACKER,
        ["exec", "/bin/sh", "--name", "owndir", "--log-dir", str(own), *CHATTY, "--json"],
        *(
            ["exec", "/bin/sh", "--name", p.name.removesuffix(".log"), "--log-dir", str(p.parent), *CHATTY]
            for p in targets
        ),
        ["ls", "--json"],
    )
    assert mine.json()["log"] == str(own / "owndir.log")  # --log-dir works for a directory of the user's
    for res in attacks:
        assert res.returncode == 1, res
    assert [p["name"] for p in ls.json()] == ["owndir"]
    d.cli("del", f"{ATTACKER}/owndir")
    unchanged(before, victims)


def test_restart_log_cannot_take_over_anothers_file_and_del_leaves_it(daemon: Pmond, victims: dict[str, Path]):
    d = daemon
    before = states(list(victims.values()))
    for target in ("other", "root", "pmond", "root_future"):
        path = victims[target]
        own, again, by_log, by_dir, gone = cli_as(
            d,
            ATTACKER,
            ["exec", "/bin/sh", "--name", "relog", *CHATTY, "--json"],
            ["restart", "relog", "--json"],  # the user's own restart works
            ["restart", "relog", "-l", str(path)],
            ["restart", "relog", "--log-dir", str(path.parent)],
            ["del", "relog", "-f"],  # its row names the victim's file now: del must not unlink it
        )
        assert own.json()["status"] == again.json()["status"] == "running"
        assert by_log.returncode == 1, by_log
        assert by_dir.returncode == 1 and not (path.parent / "relog.log").exists(), by_dir
        assert gone.returncode == 0, gone
        unchanged(before, victims)


def test_nobody_can_plant_a_file_in_pmonds_log_directories(daemon: Pmond, victims: dict[str, Path]):
    """The variant where a user pre-creates root's future `<logs>/api.log`: the logs directory and the
    per-user directories are pmond's; a user's own default log lands in `<logs>/<user>/`."""
    d = daemon
    ok_as(d, ATTACKER, "exec", "/bin/sleep", "--name", "warmup", "-a", "300")  # its own directory exists now
    files = [d.logs / "api.log", d.logs / OTHER / "planted.log", d.logs / ATTACKER / "api.log"]  # even its own
    assert attack(d, ATTACKER, "create", paths=[str(p) for p in files]) == ["EACCES"] * 3
    assert attack(d, ATTACKER, "create", paths=[str(d.logs / f"newuser{RUN}")], directory=True) == ["EACCES"]
    assert not any(p.exists() for p in [*files, d.logs / f"newuser{RUN}"])
    root_api = d.json("exec", "/bin/sleep", "--name", "api", "-a", "300")
    st = os.lstat(root_api["log"])
    assert Path(root_api["log"]) == d.logs / "api.log" and (st.st_uid, st.st_nlink) == (0, 1)
    theirs = ok_as(d, ATTACKER, "exec", "/bin/sleep", "--name", "api", "-a", "300")
    assert Path(theirs["log"]) == d.logs / ATTACKER / "api.log"
    assert os.lstat(theirs["log"]).st_uid == uid_of(ATTACKER)
    own_dir = os.lstat(d.logs / ATTACKER)
    assert own_dir.st_uid == 0 and own_dir.st_mode & 0o022 == 0  # pmond's: the user cannot plant or swap files
    for res in cli_as(d, ATTACKER, ["del", "api", "-f"], ["del", "warmup", "-f"]):
        assert res.returncode == 0, res
    assert Path(root_api["log"]).exists() and d.get("api")["pid"] == root_api["pid"]
    d.cli("del", "api", "-f")


@pytest.fixture
def shared_file(daemon: Pmond) -> Iterator[Path]:
    """A log pmon3other keeps in a directory of its own, writable by everyone, with rotated copies."""
    directory = daemon.root / f"otherdir-{RUN}"
    directory.mkdir()
    shutil.chown(directory, OTHER, OTHER)
    for name in ("other.log", "other.log.1", "other.log.2.gz"):
        (directory / name).write_text(f"{name} of pmon3other\n")
        shutil.chown(directory / name, OTHER, OTHER)
    (directory / "other.log").chmod(0o666)
    yield directory / "other.log"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("who", ["attacker", "root"])
def test_del_never_unlinks_a_log_pmond_did_not_create(
    daemon: Pmond, victims: dict[str, Path], shared_file: Path, who: str
):
    d = daemon
    others = states(list(victims.values()))
    files = [shared_file, shared_file.with_name("other.log.1"), shared_file.with_name("other.log.2.gz")]
    p = ok_as(d, ATTACKER, "exec", "/bin/sleep", "--name", "eater", "--log", str(shared_file), "-a", "300")
    assert p["status"] == "running" and p["log"] == str(shared_file)  # the user may write there, so it runs
    before: dict[Path, Any] = states(files)
    if who == "attacker":
        (res,) = cli_as(d, ATTACKER, ["del", "eater"])
        assert res.returncode == 0, res
    else:
        d.cli("del", f"{ATTACKER}/eater")
    assert "eater" not in {q["name"] for q in d.json("ls")}
    assert states(files) == before
    unchanged(others, victims)
