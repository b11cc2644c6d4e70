"""Attack 8: terminal and log injection. A user puts a newline (a forged log line), ESC (an OSC that retitles the
terminal, a CSI colour), BEL and the C1 controls CSI (U+009B) and NEL (U+0085) into a process's name, arguments,
environment, log path, working directory and an apply file's path: none of it appears raw in pmond's log, in
tables, in errors relayed to the CLI, nor in `export json|toml|yaml`, for the user or for root."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RUN, Pmond
from secutil import ATTACKER, TRANSPORTS, cli_as, log_bytes, needs_root, sec_daemon

pytestmark = needs_root
FORGED = "2099-01-01 00:00:00,000 ERROR pmond: FORGED"
PAYLOAD = f"inj\n{FORGED}\x1b]0;PWNED\x07\x1b[31mRED\x9b31mCSI\x85NEL"
RAW = ("\x1b", "\x07", "\x9b", "\x85")


def clean(text: str, where: object) -> None:
    for ch in RAW:
        assert ch not in text, f"raw {ch!r} in {where}:\n{text!r}"
    for line in text.splitlines():
        assert not line.startswith(FORGED[:10]), f"a forged line in {where}: {line!r}"


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("inject", request.param)


@pytest.fixture(scope="module")
def attacker_dir(daemon: Pmond) -> Path:
    directory = daemon.root / f"inj-{RUN}"
    directory.mkdir(exist_ok=True)
    shutil.chown(directory, ATTACKER, ATTACKER)
    conf = directory / f"{PAYLOAD}.yaml"
    conf.write_text("processes:\n  - file: /bin/sleep\n    name: injapply\n    args: '300'\n")
    shutil.chown(conf, ATTACKER, ATTACKER)
    return directory


def test_controls_never_reach_a_terminal_or_pmonds_log(daemon: Pmond, attacker_dir: Path):
    d = daemon
    log = str(attacker_dir / f"{PAYLOAD}.log")
    cases: list[tuple[int, list[str]]] = [  # (exit status, command)
        (
            0,
            [
                "exec",
                "/bin/sh",
                "--name",
                "injargs",
                "-e",
                f"INJ={shlex.quote(PAYLOAD)}",
                "--",
                "-c",
                "exec sleep 300",
                PAYLOAD,
            ],
        ),
        (0, ["exec", "/bin/sleep", "--name", "injlog", "--log", log, "-a", "300"]),
        (0, ["apply", str(attacker_dir / f"{PAYLOAD}.yaml")]),  # pmond logs the source of an apply
        (1, ["exec", "/bin/sleep", "--name", PAYLOAD, "-a", "300"]),
        (1, ["exec", f"/nonexistent/{PAYLOAD}"]),
        (1, ["exec", "/bin/sleep", "--name", "injcwd", "--cwd", f"/nonexistent/{PAYLOAD}"]),
        (1, ["exec", "/bin/sleep", "--name", "injdir", "--log-dir", f"/nonexistent/{PAYLOAD}"]),
        (1, ["exec", "/bin/sleep", "--name", "injenv", "-e", f"{PAYLOAD}=1"]),
        (0, ["restart", "injargs", "-a", shlex.quote(PAYLOAD)]),  # the payload as its argument
        (1, ["restart", "injargs", "-l", f"/nonexistent/{PAYLOAD}/x.log"]),
        (1, ["desc", PAYLOAD]),
        (1, ["stop", PAYLOAD]),
        (1, ["group", "desc", PAYLOAD]),
        (0, ["ls"]),
        (0, ["desc", "injargs"]),
        (0, ["desc", "injlog"]),
        (0, ["dgraph"]),
        (0, ["export", "json"]),
        (0, ["export", "toml"]),
        (0, ["export", "yaml"]),
        (0, ["ls", "--json"]),
    ]
    try:
        check(d, cases, log)
    finally:
        cli_as(d, ATTACKER, ["drop", "-f"])


def check(d: Pmond, cases: list[tuple[int, list[str]]], log: str) -> None:
    results = cli_as(d, ATTACKER, *(argv for _rc, argv in cases))
    for (rc, _argv), res in zip(cases, results):
        assert res.returncode == rc, res
        clean(res.stdout, res)
        clean(res.stderr, res)
        assert res.stderr.count("\n") <= 1, res  # an error is one line
    procs = {p["name"]: p for p in results[-1].json()}
    assert procs["injargs"]["argv"] == [PAYLOAD] and procs["injlog"]["log"] == log  # stored exactly, shown escaped
    exported = {r.argv[1]: r.stdout for r in results if r.argv[0] == "export"}
    assert all("inj" in text and "injapply" in text for text in exported.values())
    for args in (["ls"], ["desc", f"{ATTACKER}/injargs"], ["desc", f"{ATTACKER}/injlog"], ["export", "yaml"],
                 ["export", "toml"], ["export", "json"]):  # fmt: skip
        out = d.cli(*args)
        clean(out.stdout, ("root", args))
    clean(log_bytes(d).decode(errors="replace"), "pmond's log")
    assert b"apply of" in log_bytes(d)  # the apply's source did reach the log, escaped


def test_export_escapes_c1_controls_in_every_format(daemon: Pmond):
    """The documents themselves, yaml too (where PyYAML quotes a string with NEL in single quotes, raw): a C1
    control is written as an escape that parses back to it."""
    import json

    import yaml
    from pmon3 import procconfig

    d = daemon
    (res,) = cli_as(d, ATTACKER, ["exec", "/bin/sh", "--name", "c1", "--", "-c", "exec sleep 300", "a\x85b"])
    assert res.returncode == 0, res
    docs = cli_as(d, ATTACKER, ["export", "json"], ["export", "yaml"], ["export", "toml"])
    for doc in docs:
        clean(doc.stdout, doc)
    expected = shlex.join(["-c", "exec sleep 300", "a\x85b"])
    assert {e["name"]: e for e in json.loads(docs[0].stdout)["processes"]}["c1"]["args"] == expected
    assert {e["name"]: e for e in procconfig.normalize(yaml.safe_load(docs[1].stdout))}["c1"]["args"] == expected
    assert cli_as(d, ATTACKER, ["del", "c1", "-f"])[0].returncode == 0
