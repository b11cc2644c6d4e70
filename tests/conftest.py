"""Shared test machinery: a real pmond in a temp directory, driven through the real `pmon3` CLI."""

from __future__ import annotations

import atexit
import hashlib
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

BIN = Path(sys.executable).parent
_counter = itertools.count()
_CHECKOUT = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:6]


def wait_for(cond: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `cond` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def uptime(pid: int) -> float:
    """Seconds since `pid` started (from /proc, in clock ticks)."""
    with open(f"/proc/{pid}/stat") as fh:
        start = int(fh.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0]) - start / os.sysconf("SC_CLK_TCK")


def world_accessible(path: str) -> bool:
    """Whether another user can reach `path` (every directory on the way searchable by others)."""
    p = Path(path).resolve()
    for parent in [*reversed(p.parents), p]:
        mode = parent.stat().st_mode
        if parent.is_dir() and not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o004) or p.is_dir()


_OTHERS: dict[str, Any] = {}
PACKAGES = ("pmon3", "click", "rich", "yaml", "psutil", "apsw", "markdown_it", "mdurl", "pygments")


def cli_command_for_others() -> tuple[list[str], dict[str, str]]:
    """How an unprivileged user runs this checkout's pmon3. Our interpreter and checkout may sit under
    /root (mode 0700), so the packages are copied to a world-readable directory and run with our
    interpreter if others can reach it, else with the system python of the same version."""
    if "cmd" in _OTHERS:
        return _OTHERS["cmd"], _OTHERS["env"]
    import importlib

    exe = os.path.realpath(sys.executable)
    interp = exe if world_accessible(exe) else "/usr/bin/python3"
    if interp != exe:
        if not os.path.exists(interp):
            pytest.skip("no interpreter that an unprivileged user can run")
        out = subprocess.run([interp, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        if out.stdout.strip() != str(tuple(sys.version_info[:2])):
            pytest.skip(f"{interp} is not Python {sys.version_info[0]}.{sys.version_info[1]}")
    site = Path(tempfile.mkdtemp(prefix="pmon3-site-"))
    site.chmod(0o755)
    atexit.register(shutil.rmtree, site, True)
    for name in PACKAGES:
        src = Path(importlib.import_module(name).__file__ or "").parent
        shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    _OTHERS["cmd"] = [interp, "-c", "from pmon3.cli import main; main()"]
    _OTHERS["env"] = {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    return _OTHERS["cmd"], _OTHERS["env"]


class Pmond:
    """One isolated daemon: its own config, data dir, log dir and IPC names."""

    def __init__(self, root: Path, extra_config: str = "", transport: str = "mq") -> None:
        self.root = root
        self.transport = transport
        # Deterministic names: a daemon killed by an aborted run leaves queues that the next run's
        # daemon of the same name replaces, instead of piling up against RLIMIT_MSGQUEUE. Per checkout, so
        # that test runs of two checkouts on one machine never take over each other's queues.
        self.suffix = f"test{_CHECKOUT}{next(_counter)}"
        self.data = root / "data"
        self.logs = root / "logs"
        self.conf = root / "config.yml"
        self.conf.write_text(
            f"data:\n  directory: {self.data}\n"
            f"logs:\n  directory: {self.logs}\n"
            f"message_queue:\n  name_suffix: {self.suffix}\n"
            f"ipc:\n  transport: {transport}\n"
            f"daemon:\n  autostart: false\n  log: {root / 'pmond.log'}\n"
            f"{extra_config}"
        )
        self.env = {**os.environ, "PMON3_CONF": str(self.conf)}
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.stderr_path = root / "pmond.stderr"

    def start(self) -> None:
        r, w = os.pipe()
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pmon3.daemon", "--foreground", "--ready-fd", str(w)],
                env=self.env,
                pass_fds=(w,),
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,
            )
        os.close(w)
        ready, _, _ = select.select([r], [], [], 20)
        answer = os.read(r, 16) if ready else b""
        os.close(r)
        if not answer.startswith(b"ready"):
            raise RuntimeError(f"pmond did not start:\n{self.stderr_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def cli(
        self, *args: str, check: bool = True, user: Optional[str] = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd, env = [str(BIN / "pmon3")], self.env
        if user is not None:
            prefix, extra = cli_command_for_others()
            cmd, env = prefix, {**self.env, **extra, "HOME": "/"}
        res = subprocess.run(
            [*cmd, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            user=user,
            cwd=str(self.root),
        )
        if check and res.returncode != 0:
            raise AssertionError(f"pmon3 {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
        return res

    def json(self, *args: str, user: Optional[str] = None) -> Any:
        return json.loads(self.cli(*args, "--json", user=user).stdout)

    def get(self, key: str | int) -> dict[str, Any]:
        return self.json("desc", str(key))

    def wait_status(self, key: str | int, status: str, timeout: float = 10) -> dict[str, Any]:
        def check() -> Optional[dict[str, Any]]:
            res = self.cli("desc", str(key), "--json", check=False)
            if res.returncode != 0:
                return None  # e.g. not created yet by a background boot
            p = json.loads(res.stdout)
            return p if p["status"] == status else None

        return wait_for(check, timeout, f"process {key} to be {status}")

    def wait_restarted(self, key: str | int, old_pid: int, timeout: float = 5) -> dict[str, Any]:
        """The process running again under a new pid."""

        def check() -> Optional[dict[str, Any]]:
            p = self.get(key)
            return p if p["pid"] != old_pid and p["status"] == "running" else None

        return wait_for(check, timeout, f"process {key} to run again under a new pid")

    def kill_all_children(self) -> None:
        try:
            for p in json.loads(self.cli("ls", "--json", check=False).stdout or "[]"):
                if p["pid"] and pid_alive(p["pid"]):
                    os.killpg(p["pid"], signal.SIGKILL)
        except (json.JSONDecodeError, ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="module")
def tmp_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pmon3-test-"))
    path.chmod(0o755)  # unprivileged test users must reach the config
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Own data and log dirs, own IPC names, no autostart: nothing answers and nothing gets started."""
    root = tmp_path_factory.mktemp("offline")
    conf = root / "config.yml"
    conf.write_text(
        f"data:\n  directory: {root / 'data'}\nlogs:\n  directory: {root / 'logs'}\n"
        f"message_queue:\n  name_suffix: offline{os.getpid()}\ndaemon:\n  autostart: false\n"
    )
    yield {**os.environ, "PMON3_CONF": str(conf)}


def make_daemon(root: Path, extra_config: str = "", transport: str = "mq") -> Iterator[Pmond]:
    d = Pmond(root, extra_config, transport)
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None:  # graceful, so that its queues are removed too
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(30)
            except subprocess.TimeoutExpired:
                d.kill_all_children()
                d.proc.kill()
                d.proc.wait()


@pytest.fixture(scope="module")
def pmond(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(tmp_root, "restart:\n  stop_timeout: 1500ms\n")


def script(root: Path, name: str, body: str) -> str:
    path = root / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)
