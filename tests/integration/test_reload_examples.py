"""The example programs of docs/reload.md (docs/examples/reload/) do what the doc says: under a real pmond, with
the socket held (--listen) and their readiness check, reloads under load fail no request and refuse no
connection, and the instances of a process are all replaced."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, pid_alive, temp_dir, wait_for
from load import Load

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples" / "reload"
RELOADS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def daemon() -> Iterator[Pmond]:
    root = temp_dir("reload-examples")
    root.chmod(0o755)
    yield from make_daemon(root, "restart:\n  stop_timeout: 5s\n")


@pytest.mark.parametrize(
    ("program", "ready", "instances"),
    [
        ("server.py", "notify", 2),  # READY=1 from Python; a non-blocking accept with instances
        ("server.js", "notify", 1),  # READY=1 through systemd-notify, a child of node
        ("server.js", "log:^listening", 2),  # no helper: the line node prints once it listens
    ],
)
def test_an_example_reloads_under_load_without_a_failure(daemon: Pmond, program: str, ready: str, instances: int):
    if program.endswith(".js") and shutil.which("node") is None:
        pytest.skip("no node on this machine")
    if ready == "notify" and program.endswith(".js") and shutil.which("systemd-notify") is None:
        pytest.skip("no systemd-notify on this machine")
    name = f"ex{program.split('.')[1]}{instances}{ready[:3]}"
    names = [name] + [f"{name}@{k}" for k in range(1, instances)]
    port = free_port()
    listen = f"tcp:127.0.0.1:{port}"
    daemon.cli(
        "exec", str(EXAMPLES / program), "--name", name, "--listen", listen, "--ready", ready, "-i", str(instances)
    )
    for n in names:
        wait_for(lambda n=n: daemon.get(n)["status"] == "running", what=f"{n} ready")
    pids = {daemon.get(n)["pid"] for n in names}
    with Load(port) as load:
        load.wait_for_requests(100)
        for _ in range(RELOADS):
            daemon.cli("reload", name)
            new = {daemon.get(n)["pid"] for n in names}
            assert len(new) == instances and not new & pids, (pids, new)  # every instance replaced
            pids |= new
            load.wait_for_requests(50)
    result = load.result
    print(f"\n{program} --ready {ready} -i {instances}, {RELOADS} reloads: {result.summary()}")
    assert result.failed == 0 and result.refused == 0, result.summary()
    assert not any(pid_alive(pid) for pid in pids - new)  # the old copies are gone
    daemon.cli("del", name)
