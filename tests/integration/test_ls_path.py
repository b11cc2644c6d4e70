"""The path of `pmon3 ls`. Its request goes early (`Client.prefetch`, sent before click loads): the reply
answers that request only, a dropped one leaves nothing behind, and pmond dying in between costs nothing.
`--json` prints pmond's text (`Client.list_json`) exactly as json.dumps(records, indent=2) would."""

from __future__ import annotations

import errno
import json
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, cli_command_for_others, make_daemon, run_user, running_daemon
from pmon3 import _native
from pmon3.client import Client
from pmon3.ipc import messages as m


@pytest.fixture(scope="module", params=["mq", "unix"])
def daemon(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pmond]:
    root = tmp_path_factory.mktemp(f"prefetch-{request.param}")
    for d in make_daemon(root, transport=request.param):
        d.cli("exec", "/bin/sleep", "--name", "early", "-a", "300")
        yield d


def test_a_prefetched_reply_answers_only_its_own_request(daemon: Pmond) -> None:
    with Client(str(daemon.conf)) as c:
        assert c.prefetch(m.ListRequest())
        assert c.version()["version"]  # another request: its own answer, not the list waiting for `list`
        assert [p["name"] for p in c.list()] == ["early"]
        assert c.prefetch(m.ListRequest())
        assert [p["name"] for p in c.list()] == ["early"]  # the early one
        assert c.prefetch(m.DescRequest("early"))
        assert c.prefetch(m.ListRequest())  # replaces the first, unread
        assert [p["name"] for p in c.list()] == ["early"]


def test_a_dropped_prefetch_leaves_nothing_and_pmond_serves_on(daemon: Pmond) -> None:
    assert daemon.proc is not None
    with Client(str(daemon.conf)) as c:
        c.version()  # connected: the request queue or socket exists, nothing more needs pmond to send
        os.kill(daemon.proc.pid, signal.SIGSTOP)  # the request waits unread
        try:
            assert c.prefetch(m.ListRequest())
            exchange = c._early[1] if c._early else None
            assert exchange is not None
            reply_queue = getattr(exchange, "name", None)
            if reply_queue is not None:
                _native.MessageQueue(reply_queue, read=False).close()  # there while the reply is awaited
            c.close()
            if reply_queue is not None:
                with pytest.raises(FileNotFoundError):
                    _native.MessageQueue(reply_queue, read=False)
            else:  # the unix transport: the socket whose reply nobody will read is closed
                assert exchange.client.sock is None
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        assert [p["name"] for p in c.list()] == ["early"]
    assert [p["name"] for p in daemon.json("ls")] == ["early"]


def test_pmond_replaced_between_prefetch_and_call(tmp_path: Path) -> None:
    with running_daemon(tmp_path) as d, Client(str(d.conf)) as c:
        d.cli("exec", "/bin/sleep", "--name", "survivor", "-a", "300")
        c.version()
        assert d.proc is not None
        os.kill(d.proc.pid, signal.SIGSTOP)
        assert c.prefetch(m.ListRequest())
        d.stop(signal.SIGKILL)  # dies with the request unanswered
        d.start()
        d.wait_booted()
        # The list comes from the pmond serving now (a read changes nothing, so it is asked again).
        assert [p["name"] for p in c.list()] == ["survivor"]
        d.kill_all_children()


# Run as a script in a fresh interpreter: what `main` does for `pmon3 ls --json`, one step at a time.
CLI_EARLY = """
import select, sys
import pmon3.cli as cli
from pmon3.cli import ls

cli.start_early()
client = cli._early
assert client is not None and client._early is not None, "ls sent no early request"
exchange = client._early[1]
fd = exchange.reply_q.fileno() if hasattr(exchange, "reply_q") else exchange.client.sock.fileno()
poller = select.poll()
poller.register(fd, select.POLLIN)
assert poller.poll(10000), "pmond did not answer"
assert "pmon3.cli.output" not in sys.modules  # pmond answered before the printing code was even loaded
taken = []
result = exchange.result
exchange.result = lambda *args: taken.append(args) or result(*args)
try:
    ls.run({"as_json": True, "show_all": False})
finally:
    cli.end()
assert len(taken) == 1, "the command asked again instead of taking the early reply"
assert "click" not in sys.modules, "ls loaded click"
"""


def test_cli_ls_asks_first_and_takes_the_early_reply(daemon: Pmond) -> None:
    res = subprocess.run(
        [sys.executable, "-c", CLI_EARLY], env=daemon.env, capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert [p["name"] for p in json.loads(res.stdout)] == ["early"]


# The same argv through `main` (the way around click for ls) and through click itself.
BOTH_WAYS = """
import sys
which, argv = sys.argv[1], sys.argv[2:]
if which == "main":
    from pmon3.cli import main
    main(argv)
    if argv and argv[0] in ("ls", "list"):
        assert "click" not in sys.modules, "ls loaded click"
else:
    from pmon3.cli.app import run
    run(argv)
"""


def both_ways(env: dict[str, str], *argv: str) -> list[tuple[int, str, str]]:
    out = []
    for which in ("main", "click"):
        res = subprocess.run(
            [sys.executable, "-c", BOTH_WAYS, which, *argv], env=env, capture_output=True, text=True, timeout=60
        )
        # Live CPU and memory may differ between the two runs; nothing else may.
        text = re.sub(r'"(cpu_usage|memory_usage)": "[^"]*"', r'"\1": ""', res.stdout)
        text = re.sub(r"│ [0-9.]+% +│ [0-9.]+ [KMG]?B +│", "│ cpu │ mem │", text)
        out.append((res.returncode, text, res.stderr))
    return out


@pytest.mark.parametrize(
    "argv", [["ls"], ["list"], ["ls", "--json"], ["ls", "-A"], ["list", "--all", "--json"], ["ls", "-A", "--all"]]
)
def test_ls_without_click_is_ls_through_click(daemon: Pmond, argv: list[str]) -> None:
    (code, out, err), through_click = both_ways(daemon.env, *argv)
    assert (code, out, err) == through_click
    assert code == 0 and "early" in out and not err


@pytest.mark.parametrize("argv", [["ls", "--help"], ["ls", "-x"], ["ls", "--json", "extra"], ["ls", "-Aj"]])
def test_anything_else_goes_through_click(daemon: Pmond, argv: list[str]) -> None:
    (code, out, err), through_click = both_ways(daemon.env, *argv)
    assert (code, out, err) == through_click
    if "--help" in argv:
        assert code == 0 and "Usage: pmon3 ls" in out
    else:
        assert code == 2 and "Usage: pmon3 ls" in err


def test_ls_errors_and_a_closed_pipe_end_as_through_click(tmp_path: Path) -> None:
    for sub in ("gone", "piped"):
        (tmp_path / sub).mkdir()
    with running_daemon(tmp_path / "gone") as d:
        pass  # a config whose pmond is gone (autostart off)
    (code, out, err), through_click = both_ways(d.env, "ls", "--json")
    assert (code, out, err) == through_click
    assert code == 1 and "pmond must be running" in err and not out
    with running_daemon(tmp_path / "piped") as d:
        d.cli("exec", "/bin/sleep", "--name", "piped", "-a", "300")
        for way in ("main", "click"):
            r, w = os.pipe()
            os.close(r)  # the reader is gone before anything is written
            proc = subprocess.run(
                [sys.executable, "-c", BOTH_WAYS, way, "ls", "--json"],
                env=d.env,
                stdout=w,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
            os.close(w)
            assert (proc.returncode, proc.stderr) == (1, ""), way
        d.kill_all_children()


def test_ls_flags_are_the_click_commands_options() -> None:
    from pmon3.cli import ls
    from pmon3.cli.app import COMMANDS
    from pmon3.cli.commands.listing import ls_cmd

    options = {opt: p.name for p in ls_cmd.params for opt in (*p.opts, *p.secondary_opts) if p.name != "help"}
    assert options == ls.FLAGS
    assert set(ls.NAMES) == {name for name, target in COMMANDS.items() if target == ("listing", "ls_cmd")}


def test_ls_json_is_json_dumps_indent_2_of_the_records(daemon: Pmond) -> None:
    odd = 'q"u\\o\u00e9\u2028\U0001f600\x7f'  # quote, backslash, non-ASCII, a line separator, an emoji, DEL
    daemon.cli("exec", "/bin/sh", "--name", "odd", "--", "-c", "exec sleep 300", odd)  # odd is $0, unused
    try:
        out = daemon.cli("ls", "--json").stdout
        records = json.loads(out)
        assert out == json.dumps(records, indent=2) + "\n"
        assert [p["argv"] for p in records if p["name"] == "odd"] == [["-c", "exec sleep 300", odd]]
        with Client(str(daemon.conf)) as c:
            text = c.list_json()
            listed = c.list()
        assert text == json.dumps(json.loads(text), separators=(",", ":"))  # compact, as pmond wrote it
        fields = [{k: v for k, v in p.items() if k not in ("cpu_usage", "memory_usage")} for p in json.loads(text)]
        assert fields == [{k: v for k, v in p.items() if k not in ("cpu_usage", "memory_usage")} for p in listed]
    finally:
        daemon.cli("del", "-f", "odd")


# As an unprivileged user: makes a queue of the size given, prints the errno it fails with (0: it did not).
MAKE_QUEUE = """
import os, sys
from pmon3 import _native
try:
    name = f"/pmon3-sizecheck-{os.getpid()}"
    size = {"maxmsg": int(sys.argv[1]), "msgsize": int(sys.argv[2])}
    _native.MessageQueue(name, create=True, exclusive=True, mode=0o600, **size)
    _native.MessageQueue.unlink(name)
    print(0)
except OSError as exc:
    print(exc.errno)
"""


def test_a_user_short_of_queue_memory_still_gets_answers(tmp_root: Path) -> None:
    """A command's reply queue is 80 KiB when the user's RLIMIT_MSGQUEUE has room, else the 16 KiB one."""
    from pmon3.ipc import transport

    user = run_user("q")
    root = tmp_root / "short-of-mq"
    root.mkdir(mode=0o755)
    prefix, extra = cli_command_for_others()
    with running_daemon(root) as d:
        env = {**d.env, **extra, "HOME": "/"}

        def as_user(limit: int, *argv: str) -> subprocess.CompletedProcess[str]:
            def lower() -> None:
                resource.setrlimit(resource.RLIMIT_MSGQUEUE, (limit, limit))

            cmd = [*prefix, *argv] if argv[0] != "-c" else [prefix[0], *argv]
            return subprocess.run(
                cmd, env=env, user=user.pw_uid, preexec_fn=lower, capture_output=True, text=True, timeout=60
            )

        def errno_of(limit: int, maxmsg: int, msgsize: int) -> int:
            return int(as_user(limit, "-c", MAKE_QUEUE, str(maxmsg), str(msgsize)).stdout)

        big, small = (transport.REPLY_MAXMSG, transport.REPLY_MSGSIZE), (4, 4096)
        assert errno_of(819200, *big) == 0  # the default limit: the big one
        assert errno_of(40000, *big) == errno.EMFILE and errno_of(40000, *small) == 0
        assert errno_of(4000, *small) == errno.EMFILE
        for limit in (819200, 40000):
            res = as_user(limit, "ls", "--json")
            assert res.returncode == 0 and json.loads(res.stdout) == [], res.stderr
        res = as_user(4000, "ls", "--json")  # not even the small one: one clear line
        assert res.returncode == 1 and "message queue" in res.stderr and not res.stdout, res.stderr
