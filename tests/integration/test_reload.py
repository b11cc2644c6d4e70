"""Zero downtime, proven under load: sockets held by pmond, readiness, reload, instances.

A real HTTP server (Python's http.server on the inherited fd 3, saying READY=1 over NOTIFY_SOCKET) behind
pmond, and a load generator on 127.0.0.1 with keep-alive off: through reloads no request fails and no
connection is refused; through SIGKILLs no connection is refused; without --listen the same restarts refuse
connections (what held sockets prevent)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Pmond, make_daemon, pid_alive, temp_dir, wait_for
from load import Load

SERVER = str(Path(__file__).parents[1] / "data" / "http_server.py")
RELOADS = 20
KILLS = 5
MIN_RATE = 300  # requests per second the load must reach for the claim to mean anything


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def daemon() -> Iterator[Pmond]:
    root = temp_dir("reload")
    root.chmod(0o755)
    yield from make_daemon(root, "restart:\n  stop_timeout: 5s\n")


def client(d: Pmond):  # an in-process client: many calls without a CLI start each
    from pmon3.client import Client

    return Client(str(d.conf), timeout=60)


def test_reloads_under_load_fail_no_request_and_refuse_no_connection(daemon: Pmond):
    port = free_port()
    events = daemon.root / "web.events"
    p = daemon.json(
        "exec",
        SERVER,
        "--name",
        "web",
        "--listen",
        f"tcp:127.0.0.1:{port}",
        "--ready",
        "notify",
        "-e",
        f"HTTP_SERVER_EVENTS={events}",
    )
    assert p["options"]["listen"] == [f"tcp:127.0.0.1:{port}"]
    wait_for(lambda: daemon.get("web")["status"] == "running", what="READY=1")
    assert daemon.get("web")["notify_status"] == "serving"
    pids = {p["pid"]}
    with client(daemon) as c, Load(port) as load:
        load.wait_for_requests(200)
        for _ in range(RELOADS):
            (new,) = c.reload("web")
            assert new["pid"] not in pids and new["status"] == "running"
            pids.add(new["pid"])
            load.wait_for_requests(20)  # the new copy serves before the next reload
    result = load.result
    print(f"\n{RELOADS} reloads: {result.summary()}")
    assert result.failed == 0 and result.refused == 0, result.summary()
    assert result.rate >= MIN_RATE, result.summary()
    assert not any(pid_alive(pid) for pid in pids - {new["pid"]})  # every old copy is gone
    # never zero copies serving: each new copy was ready before its predecessor was told to stop
    seen = {(kind, int(pid)): int(t) for kind, pid, t in (line.split() for line in events.read_text().splitlines())}
    order = [pid for (kind, pid) in sorted(seen, key=seen.get) if kind == "ready"]
    for old, successor in zip(order, order[1:]):
        assert seen[("ready", successor)] < seen[("term", old)], (old, successor)


def test_sigkills_refuse_no_connection(daemon: Pmond):
    port = free_port()
    daemon.cli("exec", SERVER, "--name", "killed", "--listen", f"tcp:127.0.0.1:{port}", "--ready", "notify")
    wait_for(lambda: daemon.get("killed")["status"] == "running", what="READY=1")
    with Load(port) as load:
        load.wait_for_requests(200)
        for _ in range(KILLS):
            pid = daemon.get("killed")["pid"]
            os.kill(pid, signal.SIGKILL)
            daemon.wait_restarted("killed", pid)
            load.wait_for_requests(50)
    result = load.result
    print(f"\n{KILLS} SIGKILLs: {result.summary()}")
    assert result.refused == 0, result.summary()
    # only the requests in flight inside a killed process may fail: one per load thread per kill at most
    assert result.failed <= KILLS * load.threads, result.summary()
    assert result.rate >= MIN_RATE, result.summary()


def test_without_held_sockets_restarts_refuse_connections(daemon: Pmond):
    """The same server binding its own port: what --listen prevents."""
    port = free_port()
    daemon.cli("exec", SERVER, "--name", "bare", "-a", str(port), "--ready", f"tcp:{port}")
    wait_for(lambda: daemon.get("bare")["status"] == "running", what="the port to answer")
    with client(daemon) as c, Load(port) as load:
        load.wait_for_requests(200)
        for _ in range(KILLS):
            c.restart("bare")
            wait_for(lambda: c.describe("bare")["status"] == "running", what="the port to answer again")
            load.wait_for_requests(50)
    result = load.result
    print(f"\n{KILLS} restarts without --listen: {result.summary()}")
    assert result.refused > 0, result.summary()


def test_a_reload_whose_new_copy_fails_keeps_the_old_one(daemon: Pmond):
    port = free_port()
    daemon.cli(
        "exec",
        SERVER,
        "--name",
        "keep",
        "--listen",
        f"tcp:127.0.0.1:{port}",
        "--ready",
        "notify",
        "--ready-timeout",
        "2s",
    )
    old = wait_for(lambda: (q := daemon.get("keep"))["status"] == "running" and q, what="READY=1")
    with Load(port) as load:
        load.wait_for_requests(100)
        # the new copy cannot even start (its log cannot be opened)
        res = daemon.cli("reload", "keep", "-l", "/proc/no/such/dir/x.log", check=False)
        assert res.returncode == 1 and "the old copy keeps running" in res.stderr, res.stderr
        # the new copy starts but never says READY=1
        res = daemon.cli("reload", "keep", "-a", "--never-ready", check=False)
        assert res.returncode == 1 and "no READY=1 within 2 s" in res.stderr, res.stderr
        load.wait_for_requests(100)
    after = daemon.get("keep")
    assert after["pid"] == old["pid"] and after["status"] == "running" and after["argv"] == []  # row unchanged
    assert after["log"] == old["log"]
    assert load.result.failed == 0 and load.result.refused == 0, load.result.summary()


def test_instances_share_the_socket_and_reload_one_at_a_time(daemon: Pmond):
    port = free_port()
    procs = daemon.json(
        "exec", SERVER, "--name", "pool", "--listen", f"tcp:127.0.0.1:{port}", "--ready", "notify", "-i", "3"
    )
    assert procs["name"] == "pool"
    names = {p["name"] for p in daemon.json("ls")}
    assert {"pool", "pool@1", "pool@2"} <= names
    for name in ("pool", "pool@1", "pool@2"):
        wait_for(lambda n=name: daemon.get(n)["status"] == "running", what=f"{name} ready")
    env = open(f"/proc/{daemon.get('pool@2')['pid']}/environ", "rb").read().split(b"\0")
    assert b"PMON3_INSTANCE=2" in env and b"LISTEN_FDS=1" in env
    served: set[str] = set()
    with Load(port) as load:
        load.wait_for_requests(300)
        with client(daemon) as c:
            reloaded = c.reload("pool")
            assert [p["name"] for p in reloaded] == ["pool", "pool@1", "pool@2"]
            load.wait_for_requests(100)
            c.scale("pool", 2)
        load.wait_for_requests(100)
    result = load.result
    assert result.failed == 0 and result.refused == 0, result.summary()
    names = {p["name"] for p in daemon.json("ls")}
    assert "pool@2" not in names and {"pool", "pool@1"} <= names
    # the kernel balances accept between the instances: answers come from more than one pid
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        served.add(s.recv(1024).split(b"\r\n\r\n")[-1].decode())
    daemon.cli("del", "pool")
    assert not {"pool", "pool@1"} & {p["name"] for p in daemon.json("ls")}


def test_held_sockets_survive_pmond_restarts_and_crashes(daemon: Pmond):
    """A new pmond takes the sockets back from the running process (pidfd_getfd): the next restarts of the
    process still refuse no connection."""
    port = free_port()
    daemon.cli("exec", SERVER, "--name", "survive", "--listen", f"tcp:127.0.0.1:{port}", "--ready", "notify")
    wait_for(lambda: daemon.get("survive")["status"] == "running", what="READY=1")
    with Load(port) as load:
        load.wait_for_requests(100)
        daemon.cli("daemon", "restart")
        pid = daemon.get("survive")["pid"]
        os.kill(pid, signal.SIGKILL)
        pid = daemon.wait_restarted("survive", pid)["pid"]
        load.wait_for_requests(50)
        assert daemon.proc is not None
        daemon.stop(signal.SIGKILL)  # pmond crashes; the process keeps serving meanwhile
        load.wait_for_requests(50)
        daemon.start()
        os.kill(pid, signal.SIGKILL)
        daemon.wait_restarted("survive", pid)
        load.wait_for_requests(50)
    assert load.result.refused == 0, load.result.summary()
    assert load.result.failed <= 2 * load.threads, load.result.summary()
    daemon.cli("del", "survive")


def test_boot_waits_for_a_dependencys_readiness(tmp_path: Path):
    root = temp_dir("reload-boot")
    root.chmod(0o755)
    gate = root / "gate"
    # the dependency says READY=1 only once the test opens the gate: its dependent must wait for it
    dep = root / "dep.py"
    dep.write_text(
        "#!/usr/bin/python3\nimport os, socket, time\n"
        f"while not os.path.exists({str(gate)!r}): time.sleep(0.01)\n"
        "n = os.environ['NOTIFY_SOCKET']\n"
        "socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b'READY=1', '\\0' + n[1:])\n"
        "time.sleep(100000)\n"
    )
    dep.chmod(0o755)
    conf = root / "procs.json"
    import json

    conf.write_text(
        json.dumps(
            {
                "processes": [
                    {"file": str(dep), "name": "dep", "ready": "notify"},
                    {"file": "/bin/sleep", "name": "user", "args": "300", "dependencies": ["dep"]},
                ]
            }
        )
    )
    # no fixed pause: without the readiness wait the dependent would start right after the dependency
    gen = make_daemon(root, f"process_config_file: {conf}\nwait:\n  dependent_process_enqueued: 0\n")
    d = next(gen)
    try:
        wait_for(lambda: d.get("dep")["status"] == "starting", what="the dependency to start")
        res = d.cli("desc", "user", check=False)
        assert res.returncode == 1  # not started while its dependency is not ready
        gate.write_text("")
        wait_for(lambda: d.get("user")["status"] == "running", what="the dependent after READY=1")
        assert d.get("dep")["status"] == "running"
    finally:
        gen.close()


NOTIFIER = """#!/usr/bin/python3
import os, socket, sys, time
where = os.environ["NOTIFY_SOCKET"]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def say(text):
    s.sendto(text.encode(), "\\0" + where[1:])
say("READY=1\\nSTATUS=up")
pings = int(sys.argv[1])
for _ in range(pings):
    time.sleep(0.1)
    say("WATCHDOG=1")
time.sleep(100000)  # then it hangs: no more pings
"""


def test_a_process_that_stops_pinging_the_watchdog_is_restarted(daemon: Pmond):
    prog = daemon.root / "pinger.py"
    prog.write_text(NOTIFIER)
    prog.chmod(0o755)
    p = daemon.json("exec", str(prog), "--name", "pinger", "-a", "30", "--ready", "notify", "--watchdog", "500ms")
    env = open(f"/proc/{p['pid']}/environ", "rb").read().split(b"\0")  # read first: it is killed in ~3 s
    assert b"WATCHDOG_USEC=500000" in env
    first = wait_for(lambda: (q := daemon.get("pinger"))["status"] == "running" and q, what="READY=1")
    # thirty pings 0.1 s apart keep it alive past several watchdog periods; then it hangs and is restarted
    again = daemon.wait_restarted("pinger", first["pid"], timeout=20)
    assert again["last_exit_signal"] == signal.SIGKILL
    assert not pid_alive(first["pid"])
    daemon.cli("del", "pinger")


def test_mainpid_moves_supervision_to_the_named_process(daemon: Pmond):
    """A program that re-execs into a child (the child says MAINPID=) keeps running when its first process
    exits: supervision follows the named one, no restart."""
    prog = daemon.root / "handover.py"
    prog.write_text(
        "#!/usr/bin/python3\nimport os, socket, time\n"
        "where = os.environ['NOTIFY_SOCKET']\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    s.sendto(f'MAINPID={os.getpid()}\\nREADY=1'.encode(), '\\0' + where[1:])\n"
        "    time.sleep(100000)\n"
        "time.sleep(1)\n"
        "os._exit(0)\n"
    )
    prog.chmod(0o755)
    p = daemon.json("exec", str(prog), "--name", "handover", "--ready", "notify")
    first = p["pid"]
    moved = wait_for(lambda: (q := daemon.get("handover"))["pid"] != first and q, what="the named main pid")
    assert moved["status"] == "running" and moved["restart_count"] == 0 and pid_alive(moved["pid"])
    assert not pid_alive(first)
    daemon.cli("stop", "handover")
    assert not pid_alive(moved["pid"])
    daemon.cli("del", "handover")


def test_a_unix_socket_with_a_mode(daemon: Pmond):
    path = daemon.root / "web.sock"
    daemon.cli("exec", SERVER, "--name", "unixweb", "--listen", f"unix:{path},mode=0660,name=api", "--ready", "notify")
    wait_for(lambda: daemon.get("unixweb")["status"] == "running", what="READY=1")
    assert oct(path.stat().st_mode & 0o777) == "0o660"
    env = open(f"/proc/{daemon.get('unixweb')['pid']}/environ", "rb").read().split(b"\0")
    assert b"LISTEN_FDNAMES=api" in env
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert s.recv(1024).startswith(b"HTTP/1.0 200")
    daemon.cli("del", "unixweb")


def test_a_port_in_use_is_refused_at_exec_and_nothing_is_stored(daemon: Pmond):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = daemon.cli("exec", SERVER, "--name", "clash", "--listen", f"tcp:127.0.0.1:{port}", check=False)
        assert res.returncode == 1 and "address already in use" in res.stderr, res.stderr
    assert "clash" not in {p["name"] for p in daemon.json("ls")}
    for bad in ("tcp:127.0.0.1", "udp:1.2.3.4:5", "tcp:nohost:80", "unix:relative.sock", "tcp6:::1:80"):
        res = daemon.cli("exec", SERVER, "--name", "clash", "--listen", bad, check=False)
        assert res.returncode == 1 and "listen" in res.stderr and len(res.stderr.splitlines()) == 1, bad


def test_apply_reloads_what_holds_its_sockets(daemon: Pmond):
    """A changed entry that holds its sockets and says when it is ready is reloaded by apply: no downtime."""
    import json

    port = free_port()
    events = daemon.root / "applied.events"
    conf = daemon.root / "applied.json"

    def write(extra: str) -> None:
        entry = {
            "file": SERVER,
            "name": "applied",
            "listen": [f"tcp:127.0.0.1:{port}"],
            "ready": "notify",
            "env_vars": f"HTTP_SERVER_EVENTS={events} {extra}",
        }
        conf.write_text(json.dumps({"processes": [entry]}))

    write("")
    daemon.cli("apply", str(conf))
    first = wait_for(lambda: (q := daemon.get("applied"))["status"] == "running" and q, what="READY=1")
    write("VERSION=2")
    with Load(port) as load:
        load.wait_for_requests(100)
        plan = json.loads(daemon.cli("apply", str(conf), "--json").stdout)
        load.wait_for_requests(100)
    (action,) = plan["actions"]
    assert action["result"] == "reloaded", action
    after = daemon.get("applied")
    assert after["pid"] != first["pid"] and not pid_alive(first["pid"])
    seen = {(k, int(p)): int(t) for k, p, t in (line.split() for line in events.read_text().splitlines())}
    assert seen[("ready", after["pid"])] < seen[("term", first["pid"])]
    assert load.result.failed == 0 and load.result.refused == 0, load.result.summary()
    daemon.cli("del", "applied")


def test_sockets_are_found_again_when_the_program_moved_them(daemon: Pmond):
    """A program that dup()s its socket elsewhere and closes fd 3: a new pmond still finds it among its fds."""
    port = free_port()
    prog = daemon.root / "mover.py"
    prog.write_text(
        "#!/usr/bin/python3\nimport os, socket, time\n"
        "moved = os.dup2(3, 17)\nos.close(3)\n"
        "s = socket.socket(fileno=moved)\n"
        "while True:\n    c, _ = s.accept()\n    c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nmoved')\n    c.close()\n"
    )
    prog.chmod(0o755)
    daemon.cli("exec", str(prog), "--name", "mover", "--listen", f"tcp:127.0.0.1:{port}")
    daemon.stop(signal.SIGKILL)
    before = len((daemon.root / "pmond.stderr").read_text())
    daemon.start()
    log = (daemon.root / "pmond.stderr").read_text()[before:]
    assert "adopted mover" in log and "cannot take back" not in log, log
    with Load(port) as load:
        load.wait_for_requests(50)
        pid = daemon.get("mover")["pid"]
        os.kill(pid, signal.SIGKILL)  # its restart needs the socket pmond took back
        daemon.wait_restarted("mover", pid)
        load.wait_for_requests(50)
    assert load.result.refused == 0, load.result.summary()
    daemon.cli("del", "mover")


def test_a_tcp_or_http_check_on_a_held_socket_is_refused(daemon: Pmond):
    for ready in ("tcp", "http:/health"):
        res = daemon.cli(
            "exec", SERVER, "--name", "blind", "--listen", "tcp:127.0.0.1:1", "--ready", ready, check=False
        )
        assert res.returncode == 1 and "cannot tell when a new copy is ready" in res.stderr, res.stderr
