"""Machinery of tests/security: a root pmond per module on either transport, the attacker's side run as a real
unprivileged user (tests/security/attacker.py, with the same world-readable packages as the user's CLI), and
what the tests measure about pmond (its RSS, its log) and about a victim's files and rows.

The users are the shared `pmon3test` (the attacker) and `pmon3other` (another user, a victim); root is the other
victim. Every test asserts the attack failed and that nothing of the victim changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from helpers import REGISTRY, SHARED_USERS, Pmond, cli_command_for_others, make_daemon, temp_dir, wait_for

ATTACKER, OTHER = SHARED_USERS
TRANSPORTS = ("mq", "unix")
ATTACKER_SCRIPT = Path(__file__).with_name("attacker.py")

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the attacks run as real unprivileged users")


def uid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_uid


def gid_of(name: str) -> int:
    return pwd.getpwnam(name).pw_gid


def sec_root(kind: str) -> Path:
    """A world-searchable temp root for one daemon (the users' CLIs read its config and pid file)."""
    root = temp_dir(f"sec-{kind}")
    REGISTRY.add(root=str(root))
    root.chmod(0o755)
    return root


def sec_daemon(kind: str, transport: str, extra: str = "", socket: str = "") -> Iterator[Pmond]:
    """A root pmond in its own temp root (a generator for module fixtures); `{root}` in `extra` is that root;
    `socket` sets ipc.socket."""
    root = sec_root(f"{kind}-{transport}")
    extra = extra.replace("{root}", str(root))
    try:
        if socket:
            yield from _with_socket(root, extra, transport, socket)
        else:
            yield from make_daemon(root, "restart:\n  stop_timeout: 1500ms\n" + extra, transport=transport)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _with_socket(root: Path, extra: str, transport: str, socket: str) -> Iterator[Pmond]:
    d = Pmond(root, "restart:\n  stop_timeout: 1500ms\n" + extra, transport)
    d.conf.write_text(d.conf.read_text().replace("ipc:\n", f"ipc:\n  socket: {socket}\n"))
    d.start()
    try:
        yield d
    finally:
        if d.proc is not None:
            d.stop()


def client(d: Pmond) -> Any:
    """root's pmon3.Client of `d`: root's side of a check without a CLI start-up in it."""
    from pmon3 import Client

    return Client(str(d.conf), timeout=10)


# -- the attacker ----------------------------------------------------------------------------------------------


def _attacker_cmd(op: str, params: Optional[dict[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """The command that runs attacker.py as another user; its parameters in argv, or on stdin (None)."""
    prefix, extra = cli_command_for_others()
    return [prefix[0], "-c", ATTACKER_SCRIPT.read_text(), op, "-" if params is None else json.dumps(params)], extra


def attack(d: Pmond, user: str, op: str, timeout: float = 120, **params: Any) -> Any:
    """Run one operation of attacker.py as `user` to its end (its parameters on stdin: they may be large); its
    JSON report."""
    cmd, extra = _attacker_cmd(op, None)
    res = subprocess.run(
        cmd, env={**d.env, **extra, "HOME": "/"}, user=user, capture_output=True, text=True, timeout=timeout,
        cwd="/", input=json.dumps(params),
    )  # fmt: skip
    if res.returncode != 0:
        raise AssertionError(f"attacker {op} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


class Result:
    """One command of cli_as: what `pmon3 ARGV` printed and its exit status."""

    def __init__(self, argv: list[str], raw: dict[str, Any]) -> None:
        self.argv = argv
        self.returncode: int = raw["rc"]
        self.stdout: str = raw["out"]
        self.stderr: str = raw["err"]

    def json(self) -> Any:
        assert self.returncode == 0, self
        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"pmon3 {' '.join(self.argv)} -> {self.returncode}\n{self.stdout}{self.stderr}"


def cli_as(d: Pmond, user: str, *argvs: list[str], timeout: float = 120) -> list[Result]:
    """Commands of the real CLI (pmon3.cli.main) run as `user`, in order, in one process of that user: the same
    code path as `pmon3 ARGV` from the world-readable copy of the package, without ~0.3 s of interpreter start
    per command (Pmond.cli(user=...) starts one per command)."""
    raws = attack(d, user, "cli", timeout=timeout, argvs=[list(a) for a in argvs])
    return [Result(list(a), r) for a, r in zip(argvs, raws)]


def ok_as(d: Pmond, user: str, *argv: str) -> Any:
    """One command as `user` that must succeed; its --json output."""
    (res,) = cli_as(d, user, [*argv, "--json"])
    return res.json()


class Held:
    """An attacker operation that holds something (a squatted queue, open connections) until told to report:
    `start()` returns its first report (`ready`), `finish()` its last."""

    def __init__(self, d: Pmond, user: str, op: str, **params: Any) -> None:
        cmd, extra = _attacker_cmd(op, params)
        self.proc = subprocess.Popen(
            cmd, env={**d.env, **extra, "HOME": "/"}, user=user, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd="/",
        )  # fmt: skip
        self.op = op

    def start(self, timeout: float = 60) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the attacker says when it holds what it holds
        if not line:
            self.proc.wait(timeout)
            raise AssertionError(f"attacker {self.op} ended before it was ready: {self.proc.stderr.read()}")  # type: ignore[union-attr]
        return json.loads(line)

    def finish(self, timeout: float = 60, **params: Any) -> Any:
        out, err = self.proc.communicate(json.dumps(params) + "\n", timeout=timeout)
        if self.proc.returncode != 0:
            raise AssertionError(f"attacker {self.op} exited {self.proc.returncode}:\n{out}\n{err}")
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- what the tests look at -----------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def pmond_pid(d: Pmond) -> int:
    assert d.proc is not None
    return d.proc.pid


def log_text(d: Pmond) -> str:
    return d.stderr_path.read_text(errors="replace")


def log_bytes(d: Pmond) -> bytes:
    return d.stderr_path.read_bytes()


def log_size(d: Pmond) -> int:
    return d.stderr_path.stat().st_size


def log_since(d: Pmond, offset: int) -> str:
    with open(d.stderr_path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace")


def wait_log(d: Pmond, text: str, offset: int = 0, timeout: float = 15) -> str:
    """Until pmond's log (from `offset`) holds `text`."""
    return wait_for(lambda: text in log_since(d, offset) and log_since(d, offset), timeout, f"pmond to log {text!r}")


def no_traceback(d: Pmond, offset: int = 0) -> None:
    text = log_since(d, offset)
    assert "Traceback" not in text, text[-3000:]


class FileState:
    """Everything of a file an attack could change: owner, mode, inode, links and content."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.exists = path.exists() or path.is_symlink()
        self.stat: Optional[tuple[int, ...]] = None
        self.digest = ""
        if self.exists:
            st = os.lstat(path)
            self.stat = (st.st_uid, st.st_gid, st.st_mode, st.st_ino, st.st_nlink, st.st_size)
            self.digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FileState) and (self.exists, self.stat, self.digest) == (
            other.exists,
            other.stat,
            other.digest,
        )

    def __repr__(self) -> str:
        return f"FileState({self.path}, exists={self.exists}, stat={self.stat}, sha256={self.digest[:12]})"


def states(paths: list[Path]) -> dict[Path, FileState]:
    return {p: FileState(p) for p in paths}


def row_state(p: dict[str, Any]) -> tuple[Any, ...]:
    """What an attack on a process could change (root's view of it)."""
    return (
        p["id"], p["name"], p["owner"], p["pid"], p["status"], p["restart_count"], p["username"], p["log"],
        p["argv"], p.get("groups"),
    )  # fmt: skip


def wait_gone(pid: int, timeout: float = 15) -> None:
    from helpers import pid_alive

    wait_for(lambda: not pid_alive(pid), timeout, f"pid {pid} to end")


def monotonic_ms() -> float:
    return time.monotonic() * 1000


class Latency:
    """root's `list` through pmon3.Client, every `every` seconds on a thread while a `with` block runs: how long
    each answer took (a Client call, not a CLI start, so that only pmond's own delay is in it)."""

    def __init__(self, d: Pmond, every: float = 0.02) -> None:
        self.d = d
        self.every = every
        self.samples: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with client(self.d) as c:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    c.list()
                except Exception as exc:  # noqa: BLE001 - recorded: a test asserts there is none
                    self.errors.append(repr(exc))
                self.samples.append(time.monotonic() - t0)
                self._stop.wait(self.every)

    def __enter__(self) -> Latency:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    @property
    def worst(self) -> float:
        return max(self.samples)

    @property
    def median(self) -> float:
        return sorted(self.samples)[len(self.samples) // 2]

    def __repr__(self) -> str:
        n, median, worst = len(self.samples), self.median * 1000, self.worst * 1000
        return f"root list: {n} calls, median {median:.1f} ms, worst {worst:.1f} ms"


def endpoints(d: Pmond) -> dict[str, str]:
    """What the attacker needs to reach `d` on either transport."""
    with client(d) as c:
        return {"data": str(d.data), "base": c.cfg.mq_base, "path": c.cfg.socket_path}
