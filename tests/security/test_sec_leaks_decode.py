"""Attacks 10 and 11: what errors tell a user about paths it cannot see, and requests that would crash a
decoder or a handler (deep JSON, integers past 4300 digits, ids that str.isdigit() takes and int() or SQLite do
not, a NUL in a user name, an apply entry whose name is not a string). On both transports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RUN, Pmond, script
from secutil import (
    ATTACKER,
    TRANSPORTS,
    attack,
    cli_as,
    endpoints,
    log_size,
    needs_root,
    no_traceback,
    sec_daemon,
    wait_log,
)

pytestmark = needs_root


@pytest.fixture(scope="module", params=TRANSPORTS)
def daemon(request: pytest.FixtureRequest) -> Iterator[Pmond]:
    yield from sec_daemon("leaks", request.param)


@pytest.fixture(scope="module")
def hidden(daemon: Pmond) -> Path:
    """root's 0700 directory with an executable and a directory in it."""
    directory = daemon.root / f"hidden-{RUN}"
    directory.mkdir(mode=0o700)
    script(directory, "prog", "exec sleep 300\n")
    (directory / "dir").mkdir()
    return directory


def test_errors_about_paths_behind_a_0700_directory_reveal_nothing(daemon: Pmond, hidden: Path):
    """Whether a path behind a directory the user cannot search exists: the same error either way (the user's
    own `stat` says EACCES for both), for exec's file, --log-dir, --cwd and --log."""
    d = daemon
    there, missing = hidden / "prog", hidden / "nothere"
    dir_there, dir_missing = hidden / "dir", hidden / "nodir"
    own, *pairs = cli_as(
        d,
        ATTACKER,
        ["exec", "/bin/sleep", "--name", "ownok", "--cwd", "/tmp", "-a", "300"],
        *(
            cmd
            for a, b, make in (
                (there, missing, lambda p: ["exec", str(p), "--name", "probe"]),
                (dir_there, dir_missing, lambda p: ["exec", "/bin/sleep", "--name", "probe", "--log-dir", str(p)]),
                (dir_there, dir_missing, lambda p: ["exec", "/bin/sleep", "--name", "probe", "--cwd", str(p)]),
                (dir_there, dir_missing, lambda p: ["exec", "/bin/sleep", "--name", "probe", "-l", f"{p}/x.log"]),
            )
            for cmd in (make(a), make(b))
        ),
    )
    assert own.returncode == 0, own
    for a, b in zip(pairs[::2], pairs[1::2]):
        assert a.returncode == b.returncode == 1, (a, b)
        assert a.stderr.replace(str(hidden / "prog"), "P").replace(str(hidden / "dir"), "P") == b.stderr.replace(
            str(hidden / "nothere"), "P"
        ).replace(str(hidden / "nodir"), "P"), (a, b)
    assert "does not exist" in pairs[0].stderr and "does not exist" in pairs[2].stderr
    cli_as(d, ATTACKER, ["del", "ownok", "-f"])


# Bodies that must never crash a decoder: an error reply (unix) or a dropped message (mq).
UNDECODABLE = {
    "deep nesting": '{"v":1,"id":"deep","cmd":"list","reply_to":"{reply}","args":'
    + "[" * 100_000
    + "]" * 100_000
    + "}",
    "deep object": '{"v":1,"id":"obj","cmd":"list","reply_to":"{reply}","args":'
    + '{"a":' * 50_000
    + "1"
    + "}" * 50_001,
    "4301-digit version": '{"v":' + "1" * 4301 + ',"id":"num","cmd":"list","reply_to":"{reply}"}',
    "5000-digit argument": '{"v":1,"id":"arg","cmd":"desc","reply_to":"{reply}","args":{"id":' + "7" * 5000 + "}}",
}
# Well-formed requests whose fields crashed a handler: an error reply on both transports, never "internal".
BAD_FIELDS = {
    "superscript id": ("desc", {"id": "²"}),
    "20-digit id": ("desc", {"id": "9" * 20}),
    "20-digit owner": ("desc", {"id": "9" * 20 + "/x"}),
    "superscript group": ("group_desc", {"id": "²"}),
    "20-digit group": ("group_drop", {"id": "9" * 20}),
    "NUL in a user name": ("desc", {"id": "a\x00b/x"}),
    "apply name not a string": ("apply", {"entries": [{"name": {"a": 1}, "file": "/bin/sleep"}]}),
    "apply name a list": ("apply", {"entries": [{"name": ["a"], "file": "/bin/sleep"}]}),
}


def bad_field_body(cmd: str, args: dict[str, object]) -> str:
    return json.dumps({"v": 1, "id": f"bad-{cmd}", "cmd": cmd, "args": args, "reply_to": "{reply}"})


def test_undecodable_messages_get_an_error_or_are_dropped_without_a_traceback(daemon: Pmond):
    d = daemon
    ep = endpoints(d)
    offset = log_size(d)
    bodies = list(UNDECODABLE.values())
    if d.transport == "unix":
        replies = attack(d, ATTACKER, "sock_send", bodies=[b.replace("{reply}", "") for b in bodies], **ep)["replies"]
        for what, reply in zip(UNDECODABLE, replies):
            assert reply is not None and reply["ok"] is False and reply["error"]["code"] == "protocol", (what, reply)
    else:
        for lobby in (False, True):
            report = attack(d, ATTACKER, "mq_raw", bodies=bodies, lobby=lobby, **ep)
            assert report["barrier"] and report["replies"] == [[]] * len(bodies), report
        wait_log(d, "dropped a message", offset)
    assert d.json("ls") is not None
    no_traceback(d, offset)


def test_bad_fields_get_an_error_reply_without_a_traceback(daemon: Pmond):
    d = daemon
    ep = endpoints(d)
    offset = log_size(d)
    bodies = [bad_field_body(cmd, args) for cmd, args in BAD_FIELDS.values()]
    if d.transport == "unix":
        replies = attack(d, ATTACKER, "sock_send", bodies=[b.replace('"{reply}"', '""') for b in bodies], **ep)
        got = [r for r in replies["replies"]]
    else:
        report = attack(d, ATTACKER, "mq_raw", bodies=bodies, expect=[True] * len(bodies), **ep)
        assert report["barrier"], report
        got = [r[0] if r else None for r in report["replies"]]
    for what, reply in zip(BAD_FIELDS, got):
        assert reply is not None and reply["ok"] is False, (what, reply)
        assert reply["error"]["code"] != "internal", (what, reply)
    no_traceback(d, offset)


def test_odd_ids_through_the_cli_are_just_missing(daemon: Pmond):
    d = daemon
    offset = log_size(d)
    keys = ["²", "١٢", "9" * 20, "9" * 20 + "/x", "²/x", "root/²"]
    results = cli_as(d, ATTACKER, *(cmd for k in keys for cmd in (["desc", k], ["group", "desc", k], ["stop", k])))
    for res in results:
        assert res.returncode == 1 and "does not exist" in res.stderr and "internal" not in res.stderr, res
    for res in (d.cli("desc", k, check=False) for k in keys):
        assert res.returncode == 1 and "does not exist" in res.stderr, res.stderr
    no_traceback(d, offset)
