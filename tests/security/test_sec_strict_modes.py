"""StrictModes and held sockets. pmond refuses to run, as uid X, an executable that a user other than X and
root could replace (the file, a directory above it, where a symlink leads), with a one-line error naming the
path, unless the process opts out (`--no-strict-modes`, `strict_modes: false`); a sticky world-writable
directory such as /tmp does not count against an entry below it owned by X or root. Held sockets are bound
with the caller's rights: no privileged port and no unix socket where the caller cannot create files."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RUN, Pmond, pid_alive, script
from pmon3.daemon import accounts
from pmon3.daemon.sockets import Sockets
from pmon3.errors import PermissionDeniedError, Pmon3Error
from secutil import ATTACKER, OTHER, TRANSPORTS, cli_as, needs_root, sec_daemon, uid_of

pytestmark = needs_root


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("strict", request.param)


@pytest.fixture(scope="module")
def tree(daemon: Pmond) -> dict[str, Path]:
    """Executables that write a marker when they run, in places others can or cannot change."""
    base = daemon.root / f"strict-{RUN}"
    base.mkdir()
    marker = base / "ran"

    def prog(directory: Path, name: str = "prog") -> Path:
        directory.mkdir(exist_ok=True)
        return Path(script(directory, name, f"echo {directory.name}/{name} >> {marker}\nexec sleep 300\n"))

    paths: dict[str, Path] = {"marker": marker}
    paths["users_dir"] = prog(base / "users_dir")  # a root-owned program in a directory the attacker owns
    shutil.chown(base / "users_dir", ATTACKER, ATTACKER)
    paths["users_file"] = prog(base / "rootdir", "users_file")  # the attacker's file in root's directory
    shutil.chown(paths["users_file"], ATTACKER, ATTACKER)
    paths["group_file"] = prog(base / "rootdir", "group_file")  # writable by the attacker's group
    shutil.chown(paths["group_file"], "root", ATTACKER)
    paths["group_file"].chmod(0o775)
    paths["world_file"] = prog(base / "rootdir", "world_file")
    paths["world_file"].chmod(0o777)
    paths["world_dir"] = prog(base / "world_dir")  # root's file in a world-writable directory without sticky bit
    (base / "world_dir").chmod(0o777)
    paths["sticky_ok"] = prog(base / "sticky")  # root's file in a sticky world-writable directory (like /tmp)
    (base / "sticky").chmod(0o1777)
    paths["sticky_users"] = prog(base / "sticky", "users")  # the attacker's file there
    shutil.chown(paths["sticky_users"], ATTACKER, ATTACKER)
    paths["link"] = base / "rootdir" / "link"  # root's symlink to the program in the attacker's directory
    paths["link"].symlink_to(paths["users_dir"])
    paths["root_ok"] = prog(base / "rootdir", "root_ok")
    paths["own_attacker"] = prog(base / "attackers", "own")  # the attacker's own, in its own directory
    shutil.chown(base / "attackers", ATTACKER, ATTACKER)
    shutil.chown(paths["own_attacker"], ATTACKER, ATTACKER)
    paths["others"] = prog(base / "others", "others")  # pmon3other's file
    shutil.chown(base / "others", OTHER, OTHER)
    shutil.chown(paths["others"], OTHER, OTHER)
    return paths


def ran(tree: dict[str, Path]) -> list[str]:
    return tree["marker"].read_text().split() if tree["marker"].exists() else []


REFUSED_AS_ROOT = {  # program -> the path the error must name
    "users_dir": "users_dir",
    "users_file": "users_file",
    "group_file": "group_file",
    "world_file": "world_file",
    "world_dir": "world_dir",
    "sticky_users": "users",
    "link": "users_dir",
}


def test_root_never_runs_what_a_user_could_replace(daemon: Pmond, tree: dict[str, Path]):
    d = daemon
    names = list(REFUSED_AS_ROOT)
    ok_first, *refused, ok_sticky = cli_as(
        d,
        "root",
        ["exec", str(tree["root_ok"]), "--name", "root_ok", "--json"],  # the same command works for a safe file
        *(["exec", str(tree[n]), "--name", f"s-{n}"] for n in names),
        ["exec", str(tree["sticky_ok"]), "--name", "sticky_ok", "--json"],
    )
    assert ok_first.json()["status"] == "running" and ok_sticky.json()["status"] == "running"
    for name, res in zip(names, refused):
        assert res.returncode == 1, res
        assert res.stderr.count("\n") == 1 and "refusing to run" in res.stderr, res
        assert REFUSED_AS_ROOT[name] in res.stderr.split("refusing to run", 1)[1].split(" as ", 1)[1], res
    assert sorted(ran(tree)) == sorted(["rootdir/root_ok", "sticky/prog"])  # nothing refused ever ran
    assert not {f"s-{n}" for n in names} & {p["name"] for p in d.json("ls")}
    for name in ("root_ok", "sticky_ok"):
        d.cli("del", name, "-f")


def test_a_user_runs_its_own_files_but_not_another_users(daemon: Pmond, tree: dict[str, Path]):
    d = daemon
    own, as_user, other = cli_as(
        d,
        ATTACKER,
        ["exec", str(tree["own_attacker"]), "--name", "own", "--json"],
        ["exec", str(tree["sticky_users"]), "--name", "sticky_users", "--json"],  # its own file below /tmp-like
        ["exec", str(tree["others"]), "--name", "others"],
    )
    assert own.json()["status"] == "running" and as_user.json()["status"] == "running"
    assert other.returncode == 1 and f"{tree['others'].parent} is owned by {OTHER}" in other.stderr, other
    rooted = d.json("exec", str(tree["own_attacker"]), "--name", "rooted", "-u", ATTACKER)  # root, run as its owner
    assert rooted["status"] == "running"
    cli_as(d, ATTACKER, ["del", "own", "-f"], ["del", "sticky_users", "-f"])
    d.cli("del", "rooted", "-f")


def test_a_file_that_became_replaceable_is_refused_at_its_next_start(daemon: Pmond, tree: dict[str, Path]):
    d = daemon
    safe = tree["root_ok"].parent.parent / "later"
    safe.mkdir()
    p = d.json("exec", script(safe, "prog", "exec sleep 300\n"), "--name", "later")
    try:
        shutil.chown(safe, ATTACKER, ATTACKER)  # now the attacker could swap the program
        res = d.cli("restart", "later", check=False)
        assert res.returncode == 1 and f"{safe} is owned by {ATTACKER}" in res.stderr, res.stderr
        assert d.get("later")["status"] == "failed" and not pid_alive(p["pid"])
    finally:
        shutil.chown(safe, "root", "root")
        d.cli("del", "later", "-f")


def test_strict_modes_can_be_turned_off_per_process(daemon: Pmond, tree: dict[str, Path]):
    d = daemon
    conf = d.root / f"strict-off-{RUN}.yaml"
    conf.write_text(f"processes:\n  - file: {tree['world_file']}\n    name: off_apply\n    strict_modes: false\n")
    flag, applied = cli_as(
        d, "root", ["exec", str(tree["users_dir"]), "--name", "off_flag", "--no-strict-modes", "--json"],
        ["apply", str(conf)],
    )  # fmt: skip
    assert flag.json()["status"] == "running", flag
    assert applied.returncode == 0, applied
    assert d.get("off_apply")["status"] == "running" and d.get("off_apply")["options"] == {"strict_modes": False}
    for name in ("off_flag", "off_apply"):
        d.cli("del", name, "-f")


# -- held sockets: what pmond binds for a process is bound with the rights of the process's owner ------------


@pytest.fixture
def attacker_account() -> accounts.RunAs:
    return accounts.resolve_user(ATTACKER)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_user_gets_no_privileged_port(attacker_account: accounts.RunAs):
    """pmond's Sockets.ensure as spawn calls it for a user's process (no request carries --listen yet)."""
    sockets = Sockets()
    key = (attacker_account.uid, "web")
    try:
        port = free_port()
        sockets.ensure(key, [f"tcp:127.0.0.1:{port}"], attacker_account.uid, attacker_account)  # its own works
        assert len(sockets.fds(key)) == 1
        with pytest.raises(PermissionDeniedError, match="needs root"):
            sockets.ensure(key, ["tcp:127.0.0.1:80"], attacker_account.uid, attacker_account)
        with pytest.raises(PermissionDeniedError, match="needs root"):
            sockets.ensure(key, ["tcp6:[::1]:443"], attacker_account.uid, attacker_account)
        assert len(sockets.fds(key)) == 1  # a failed ensure changes nothing
    finally:
        sockets.close()


def test_a_user_binds_unix_sockets_only_where_it_may_create_files(daemon: Pmond, attacker_account: accounts.RunAs):
    sockets = Sockets()
    key = (attacker_account.uid, "web")
    own = daemon.root / f"socks-{RUN}"
    own.mkdir()
    shutil.chown(own, ATTACKER, ATTACKER)
    try:
        sockets.ensure(key, [f"unix:{own}/app.sock"], attacker_account.uid, attacker_account)
        assert os.lstat(own / "app.sock").st_uid == uid_of(ATTACKER)  # created as the user
        for path in (daemon.root / "root.sock", daemon.logs / "x.sock", Path("/run") / f"pmon3-{RUN}.sock"):
            with pytest.raises(Pmon3Error, match="Permission denied"):
                sockets.ensure(key, [f"unix:{path}"], attacker_account.uid, attacker_account)
            assert not path.exists()
        with pytest.raises(PermissionDeniedError, match="only root may set a socket's owner"):
            sockets.ensure(key, [f"unix:{own}/b.sock,owner=root"], attacker_account.uid, attacker_account)
    finally:
        sockets.close()
        shutil.rmtree(own, ignore_errors=True)
