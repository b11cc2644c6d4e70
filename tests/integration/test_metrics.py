"""Prometheus metrics on a real daemon: the endpoint (TCP and unix socket), `pmon3 metrics`, who is shown."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RUN, Pmond, make_daemon, running_daemon, script, unique, wait_for, wait_uptime

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

USER = "pmon3test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(address: tuple[str, int] | str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP/1.1 exchange (the endpoint closes the connection after its answer)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=30)
    with sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def scrape(address: tuple[str, int] | str) -> str:
    code, headers, body = http(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert int(headers["Content-Length"]) == len(body)
    return body.decode()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample, keyed by (name, labels), parsed by prometheus_client's own parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def of(values: dict, metric: str, **labels: str) -> float | None:
    for (n, ls), v in values.items():
        if n == metric and set(labels.items()) <= set(ls):
            return v
    return None


PORT = free_port()


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(
        tmp_root,
        f'metrics:\n  listen: "127.0.0.1:{PORT}"\nrestart:\n  min_uptime: 200ms\n  stop_timeout: 2s\n',
    )


def test_scrape_parses_and_tells_the_state_of_each_process(daemon: Pmond, tmp_root: Path):
    p = daemon.json("exec", "/bin/sleep", "--name", "web", "-a", "300", "--max-memory", "256M")
    wait_uptime(p["pid"], 0.3)
    os.kill(p["pid"], signal.SIGKILL)
    q = daemon.wait_restarted("web", p["pid"])
    daemon.cli("exec", script(tmp_root, "bye.sh", "exit 3\n"), "--name", "gone", "-n")
    daemon.wait_status("gone", "failed")
    wait_for(lambda: of(samples(scrape(("127.0.0.1", PORT))), "pmon3_process_exits_total", name="gone"), what="exit")
    values = samples(scrape(("127.0.0.1", PORT)))
    web = {"name": "web", "id": str(q["id"]), "owner": "root"}
    assert of(values, "pmon3_process_up", **web) == 1
    assert of(values, "pmon3_process_up", name="gone") == 0
    assert of(values, "pmon3_process_status", status="running", **web) == 1
    assert of(values, "pmon3_process_status", status="stopped", **web) == 0
    assert of(values, "pmon3_process_status", status="failed", name="gone") == 1
    assert of(values, "pmon3_process_restarts_total", **web) == 1
    assert of(values, "pmon3_process_exits_total", reason="signal", **web) == 1
    assert of(values, "pmon3_process_exits_total", reason="exit", name="gone") == 1
    assert of(values, "pmon3_process_last_exit_code", name="gone") == 3
    assert of(values, "pmon3_process_last_exit_signal", **web) == 9
    assert of(values, "pmon3_process_max_memory_bytes", **web) == 256 << 20
    rss = of(values, "pmon3_process_resident_memory_bytes", **web)
    assert rss is not None and 100_000 < rss < 100 << 20  # a sleep: its own RSS, not pmond's
    assert of(values, "pmon3_process_resident_memory_bytes", name="gone") == 0
    assert (of(values, "pmon3_process_cpu_seconds_total", **web) or 0) >= 0
    start = of(values, "pmon3_process_start_time_seconds", **web)
    assert start is not None and abs(start - q_start(q["pid"])) < 2
    assert (of(values, "process_resident_memory_bytes") or 0) > 10 << 20  # pmond's own
    assert (of(values, "process_open_fds") or 0) > 3
    assert of(values, "pmon3_daemon_info") == 1
    daemon.cli("stop", "web")


def q_start(pid: int) -> float:
    """A process's start, Unix time, from /proc (ticks since boot)."""
    import time

    with open(f"/proc/{pid}/stat") as fh:
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as fh:
        up = float(fh.read().split()[0])
    return time.time() - up + ticks / os.sysconf("SC_CLK_TCK")


def test_ipc_requests_are_counted_per_command_and_result(daemon: Pmond):
    before = samples(scrape(("127.0.0.1", PORT)))
    daemon.cli("desc", "no-such-process", check=False)
    daemon.cli("ls")
    after = samples(scrape(("127.0.0.1", PORT)))
    bad = of(after, "pmon3_ipc_requests_total", command="desc", result="not_found") or 0
    assert bad - (of(before, "pmon3_ipc_requests_total", command="desc", result="not_found") or 0) == 1
    ok = of(after, "pmon3_ipc_requests_total", command="list", result="ok") or 0
    assert ok - (of(before, "pmon3_ipc_requests_total", command="list", result="ok") or 0) == 1


def test_other_paths_and_methods(daemon: Pmond):
    assert http(("127.0.0.1", PORT), b"GET /nope HTTP/1.1\r\n\r\n")[0] == 404
    code, headers, _ = http(("127.0.0.1", PORT), b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert code == 405 and headers["Allow"] == "GET, HEAD"
    code, headers, body = http(("127.0.0.1", PORT), b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert http(("127.0.0.1", PORT), b"garbage\r\n\r\n")[0] == 400
    # a client that sends nothing complete does not hold the endpoint up for the others
    with socket.create_connection(("127.0.0.1", PORT)) as idle:
        idle.sendall(b"GET /metr")
        assert "pmon3_daemon_info" in scrape(("127.0.0.1", PORT))


def test_promtool_accepts_the_exposition(daemon: Pmond):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: the prometheus package)")
    daemon.json("exec", "/bin/sleep", "--name", "linted", "-a", "300")
    res = subprocess.run(
        [promtool, "check", "metrics"], input=scrape(("127.0.0.1", PORT)), capture_output=True, text=True
    )
    assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr
    daemon.cli("stop", "linted")


def test_pmon3_metrics_prints_the_endpoints_text(daemon: Pmond):
    cli = samples(daemon.cli("metrics").stdout)
    web = samples(scrape(("127.0.0.1", PORT)))
    per_process = {k for k in web if k[0].startswith("pmon3_process_")}
    assert per_process and per_process == {k for k in cli if k[0].startswith("pmon3_process_")}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for another user")
def test_other_users_processes_are_shown_only_with_users_all(daemon: Pmond, tmp_root: Path):
    name = unique("theirs")
    daemon.cli("exec", "/bin/sleep", "--name", name, "-a", "300", user=USER)
    try:
        assert of(samples(scrape(("127.0.0.1", PORT))), "pmon3_process_up", name=name) is None
        assert of(samples(daemon.cli("metrics").stdout), "pmon3_process_up", name=name) is None  # root: the same
        mine = samples(daemon.cli("metrics", user=USER).stdout)
        assert of(mine, "pmon3_process_up", name=name, owner=USER) == 1
        assert {dict(ls).get("owner") for (n, ls) in mine if n == "pmon3_process_up"} == {USER}
    finally:
        daemon.cli("del", f"{USER}/{name}")
    root = tmp_root / "users-all"  # where the test user can read the config
    root.mkdir(mode=0o755)
    port = free_port()
    with running_daemon(root, f'metrics:\n  listen: "127.0.0.1:{port}"\n  users: all\n') as d:
        d.cli("exec", "/bin/sleep", "--name", name, "-a", "300", user=USER)
        assert of(samples(scrape(("127.0.0.1", port))), "pmon3_process_up", name=name, owner=USER) == 1


def test_unix_socket_endpoint(tmp_path: Path):
    tmp_path.chmod(0o755)
    path = f"/tmp/pmon3-metrics-{RUN}-{os.getpid()}.sock"
    with running_daemon(tmp_path, f"metrics:\n  listen: {path}\n") as d:
        d.cli("exec", "/bin/sleep", "--name", "sock", "-a", "300")
        assert os.stat(path).st_mode & 0o777 == 0o600  # unauthenticated: only pmond's user may connect
        assert of(samples(scrape(path)), "pmon3_process_up", name="sock") == 1
    assert not os.path.exists(path)  # removed when pmond stops


def test_no_endpoint_by_default(tmp_path: Path):
    tmp_path.chmod(0o755)
    with running_daemon(tmp_path) as d:
        assert d.proc is not None
        inodes = {os.readlink(f"/proc/{d.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{d.proc.pid}/fd")}
        sockets = {i for i in inodes if i.startswith("socket:")}
        listening = Path("/proc/net/tcp").read_text() + Path("/proc/net/tcp6").read_text()
        ours = [
            line
            for line in listening.splitlines()[1:]
            if line.split()[3] == "0A" and f"socket:[{line.split()[9]}]" in sockets
        ]
        assert ours == []
