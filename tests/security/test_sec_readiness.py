"""Readiness and held sockets, as users set them with exec (--ready, --listen): what a user's readiness check
makes root's pmond read, compute or bind.

- `--ready log:REGEX` must not be an oracle on files the user cannot read: the log is read with the run user's
  rights, so a log path swapped for a link to root's file (or under a directory swapped for a link) matches
  nothing, and the answer is the same whether the secret matches or not.
- the regular expression must not freeze pmond: `^(a+)+$` against `aaaa...a!` backtracks exponentially in
  Python's `re`; pmond matches in linear time, and root's commands keep answering.
- `--ready notify`: the abstract NOTIFY_SOCKET a process gets must not be predictable, or a user binds it first
  and root's process cannot start.
- `--listen`: no privileged port, no unix socket where the user cannot create files, no `owner=`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RUN, Pmond, environ, script, wait_for
from secutil import (
    ATTACKER,
    TRANSPORTS,
    Held,
    Latency,
    cli_as,
    log_since,
    log_size,
    needs_root,
    no_traceback,
    sec_daemon,
    uid_of,
)

pytestmark = needs_root
SECRET = f"TOPSECRET-{RUN}"


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("ready", request.param)


@pytest.fixture(scope="module")
def own(daemon: Pmond) -> Path:
    """The attacker's directory, and root's secret (0600) beside it."""
    directory = daemon.root / f"own-{RUN}"
    directory.mkdir()
    shutil.chown(directory, ATTACKER, ATTACKER)
    secret = daemon.root / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    secret.chmod(0o600)
    return directory


def swapper(own: Path, name: str, body: str) -> str:
    path = script(own, f"{name}.sh", body)
    shutil.chown(path, ATTACKER, ATTACKER)
    return path


def outcome(d: Pmond, name: str, offset: int) -> str:
    """What pmond decided about the first copy of `name`: ready, or not ready (its own log says which)."""
    line = wait_for(
        lambda: next((ln for ln in log_since(d, offset).splitlines() if f"{name} (pid " in ln and "ready" in ln), ""),
        30,
        f"pmond to decide whether {name} is ready",
    )
    return "ready" if line.endswith("is ready") else "not ready"


def test_a_log_readiness_check_is_no_oracle_on_roots_files(daemon: Pmond, own: Path):
    d = daemon
    secret = d.root / "secret.txt"
    offset = log_size(d)
    ok = swapper(own, "ok", f"while :; do echo READY-{RUN}; sleep 0.2; done\n")  # lines after pmond's offset
    # the process, running as the user, swaps its own log for a link to root's secret (or the directory of its
    # log for a link to root's directory) once pmond has started to watch the log
    attempts: dict[str, list[str]] = {}
    for yes, guess in (("yes", SECRET), ("no", "NOT-THERE")):
        log = f"{own}/f-{yes}.log"
        prog = swapper(own, f"file-{yes}", f"sleep 1; rm -f {log}; ln -s {secret} {log}\nexec sleep 300\n")
        attempts[f"file-{yes}"] = [prog, log, guess]
        directory = own / f"d-{yes}"
        directory.mkdir(exist_ok=True)
        shutil.chown(directory, ATTACKER, ATTACKER)
        prog = swapper(own, f"dir-{yes}", f"sleep 1; rm -rf {directory}; ln -s {d.root} {directory}\nexec sleep 300\n")
        attempts[f"dir-{yes}"] = [prog, f"{directory}/secret.txt", guess]
    try:
        results = cli_as(
            d, ATTACKER, ["exec", ok, "--name", "ok", "--log", f"{own}/ok.log", "--ready", f"log:READY-{RUN}"],
            *(["exec", prog, "--name", name, "--log", log, "--ready", f"log:{guess}", "--ready-timeout", "3s", "-n"]
              for name, (prog, log, guess) in attempts.items()),
        )  # fmt: skip
        for res in results:
            assert res.returncode == 0, res
        assert outcome(d, "ok", offset) == "ready"  # readiness on its own log works
        for name in attempts:  # the same answer whether the guess is right or not: no oracle
            assert outcome(d, name, offset) == "not ready", name
    finally:
        cli_as(d, ATTACKER, ["drop", "-f"])


def test_a_log_readiness_regex_cannot_freeze_pmond(daemon: Pmond, own: Path):
    """`^(a+)+$` against 27 a's and a `!` takes Python's re ~15 s of backtracking (doubling with each a)."""
    d = daemon
    offset = log_size(d)
    prog = swapper(own, "redos", f"while :; do printf '{'a' * 27}!\\n'; sleep 0.2; done\n")
    try:
        with Latency(d, every=0.05) as lat:
            (res,) = cli_as(d, ATTACKER, ["exec", prog, "--name", "redos", "--ready", "log:^(a+)+$",
                                          "--ready-timeout", "2s", "-n"])  # fmt: skip
            assert res.returncode == 0, res
            assert outcome(d, "redos", offset) == "not ready"
        assert not lat.errors and lat.worst < 0.5, lat
        no_traceback(d, offset)
    finally:
        cli_as(d, ATTACKER, ["drop", "-f"])


def test_notify_sockets_cannot_be_bound_first(daemon: Pmond):
    d = daemon
    probe = d.json("exec", "/bin/sleep", "--name", "idprobe", "-a", "300")
    suffix = f"_{d.suffix}"
    names = [f"pmon3{suffix}/notify/p{i}{leaf}" for i in range(probe["id"] + 1, probe["id"] + 40) for leaf in "ab"]
    squat = Held(d, ATTACKER, "squat_abstract", names=names)
    try:
        assert squat.start()["bound"] == len(names)
        notify = "import os, socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        notify += "s.sendto(b'READY=1', '\\0' + os.environ['NOTIFY_SOCKET'][1:]); time.sleep(300)"
        p = d.json("exec", "/usr/bin/python3", "--name", "notified", "--ready", "notify", "-a", f'-c "{notify}"')
        p = d.wait_status("notified", "running")  # its READY=1 reached pmond
        report = squat.finish()
    finally:
        squat.kill()
    env = [e for e in environ(p["pid"]) if e.startswith("NOTIFY_SOCKET=")]
    assert env and env[0].removeprefix("NOTIFY_SOCKET=@") not in names
    assert report["received"] == 0, report
    d.cli("del", "notified", "-f")
    d.cli("del", "idprobe", "-f")


def test_a_user_gets_no_privileged_port_nor_a_socket_where_it_cannot_write(daemon: Pmond, own: Path):
    d = daemon
    try:
        check_listen(d, own)
    finally:
        cli_as(d, ATTACKER, ["drop", "-f"])


def check_listen(d: Pmond, own: Path) -> None:
    results = cli_as(
        d,
        ATTACKER,
        ["exec", "/bin/sleep", "--name", "web", "--listen", f"unix:{own}/web.sock", "-a", "300", "--json"],
        ["exec", "/bin/sleep", "--name", "p80", "--listen", "tcp:127.0.0.1:80", "-a", "300"],
        ["exec", "/bin/sleep", "--name", "p443", "--listen", "tcp6:[::1]:443", "-a", "300"],
        ["exec", "/bin/sleep", "--name", "rootsock", "--listen", f"unix:{d.root}/root.sock", "-a", "300"],
        ["exec", "/bin/sleep", "--name", "logsock", "--listen", f"unix:{d.logs}/x.sock", "-a", "300"],
        ["exec", "/bin/sleep", "--name", "owned", "--listen", f"unix:{own}/o.sock,owner=root", "-a", "300"],
        ["ls", "--json"],
    )
    assert results[0].json()["status"] == "running"
    assert (own / "web.sock").lstat().st_uid == uid_of(ATTACKER)  # bound as the user
    for res in results[1:3]:
        assert res.returncode == 1 and "needs root" in res.stderr, res
    for res in results[3:5]:
        assert res.returncode == 1 and "Permission denied" in res.stderr, res
    assert results[5].returncode == 1 and "only root may set a socket's owner" in results[5].stderr
    assert not (d.root / "root.sock").exists() and not (d.logs / "x.sock").exists()
    assert [p["name"] for p in results[-1].json()] == ["web"]
