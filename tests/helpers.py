"""Shared test machinery: a real pmond in a temp directory, driven through the real `pmon3` CLI.

Every name a run creates on the machine (IPC suffixes and so queue and socket names, temp directories,
per-run users) carries the run's random token `RUN`, so that two runs of the suite on one machine never
touch each other's endpoints. What a run leaves behind when it is killed is recorded in a registry file
held locked while the run lives; the next run cleans up after runs whose lock is free (see `Registry`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import itertools
import json
import os
import pwd
import secrets
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
RUN = secrets.token_hex(4)  # this run's token: in every IPC name, temp dir and per-run user name
_counter = itertools.count()


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


def _stat_field(pid: int, index: int) -> int:
    """Field `index` (0-based, counting from the state after the command name) of /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[index])


def start_ticks(pid: int) -> int:
    """When `pid` started, in clock ticks since boot (the kernel's own record, as pmond stores it)."""
    return _stat_field(pid, 19)


def boot_seconds() -> float:
    """Now, on the clock of start_ticks (seconds since boot)."""
    with open("/proc/uptime") as fh:
        return float(fh.read().split()[0])


def started_at(pid: int) -> float:
    """When `pid` started, in seconds since boot: kernel time, no CLI start-up in it."""
    return start_ticks(pid) / os.sysconf("SC_CLK_TCK")


def uptime(pid: int) -> float:
    """Seconds since `pid` started (from /proc, in clock ticks)."""
    return boot_seconds() - started_at(pid)


def wait_uptime(pid: int, seconds: float) -> None:
    """Until `pid` has been up `seconds` (e.g. past min_uptime): one sleep for exactly the time left, a
    property of time that no event announces."""
    while (left := seconds - uptime(pid)) > 0:
        time.sleep(left + 0.01)  # both clocks tick in 10 ms
    assert pid_alive(pid), f"pid {pid} died"


def death_time(pid: int, timeout: float = 30) -> float:
    """Block until `pid` (any process, not only our child) has exited; when that was seen, in seconds since
    boot (the clock of /proc/uptime, which a test script reads with `read up _ < /proc/uptime`)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return boot_seconds()
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, f"pid {pid} still alive after {timeout} s"
        return boot_seconds()
    finally:
        os.close(fd)


def uptime_stamp(path: Path) -> str:
    """Shell for a test script: append now (seconds since boot) to `path`, without forking."""
    return f"read up _ < /proc/uptime; echo $up >> {path}"


def stamps(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0")[:-1]]
    except OSError:
        return []


def environ(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0")[:-1]]
    except OSError:
        return []


def live_copies(arg: str) -> list[int]:
    """Every live process on the machine started by pmond as the process named `arg` (pmond puts
    PMON3_NAME in its environment; `unique` makes the name unique to the run), or with `arg` in its argv (a
    script's path)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if (arg in cmdline(pid) or f"PMON3_NAME={arg}" in environ(pid)) and pid_alive(pid):
            found.append(pid)
    return found


def unique(name: str) -> str:
    """A process name no other run of the suite uses at the same time (for counting copies in /proc)."""
    return f"{name}-{RUN}"


def world_accessible(path: str) -> bool:
    """Whether another user can reach `path` (every directory on the way searchable by others)."""
    p = Path(path).resolve()
    for parent in [*reversed(p.parents), p]:
        mode = parent.stat().st_mode
        if parent.is_dir() and not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o004) or p.is_dir()


def temp_dir(kind: str) -> Path:
    """A temp directory named after this run (an aborted run's are removed by the next one)."""
    return Path(tempfile.mkdtemp(prefix=f"pmon3-{kind}-{RUN}-"))


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
    site = temp_dir("site")
    site.chmod(0o755)
    atexit.register(shutil.rmtree, site, True)
    for name in PACKAGES:
        src = Path(importlib.import_module(name).__file__ or "").parent
        shutil.copytree(src, site / name, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    _OTHERS["cmd"] = [interp, "-c", "from pmon3.cli import main; main()"]
    _OTHERS["env"] = {"PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    return _OTHERS["cmd"], _OTHERS["env"]


# -- what a run leaves on the machine ------------------------------------------------------------------


class Registry:
    """One JSON line per thing this run puts on the machine outside pytest's own temp dirs: pmond pids
    (with their start time), IPC suffixes, temp roots, users. The file is flock-ed for the run's life;
    a file whose lock is free belongs to a dead run, and `reap_dead_runs` undoes what it lists."""

    DIR = Path(tempfile.gettempdir()) / f"pmon3-test-runs-{os.geteuid()}"

    def __init__(self) -> None:
        self.path: Optional[Path] = None
        self.fd = -1

    def _open(self) -> None:
        if self.fd >= 0:
            return
        self.DIR.mkdir(mode=0o700, exist_ok=True)
        self.path = self.DIR / f"{RUN}.jsonl"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def add(self, **entry: Any) -> None:
        self._open()
        os.write(self.fd, (json.dumps(entry) + "\n").encode())

    def close(self) -> None:
        """At the end of a run that cleaned up after itself."""
        if self.fd >= 0 and self.path is not None:
            cleanup(RUN, _read(self.path))
            self.path.unlink()
            os.close(self.fd)
            self.fd = -1


REGISTRY = Registry()


def _read(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    return entries


def reap_dead_runs() -> list[str]:
    """Undo what killed runs left behind (their registry lock is free); returns their tokens."""
    reaped = []
    if not Registry.DIR.is_dir():
        return reaped
    for path in Registry.DIR.glob("*.jsonl"):
        token = path.name.split(".")[0]
        if token == RUN:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live run
            if path.exists():
                cleanup(token, _read(path))
                path.unlink()
                reaped.append(token)
        finally:
            os.close(fd)
    return reaped


def _stop_pid(pid: int, start: int) -> None:
    """SIGTERM a leftover pmond (it stops its children and removes its queues), SIGKILL if it hangs."""
    try:
        if start_ticks(pid) != start or not pid_alive(pid):
            return  # gone, or the pid was reused
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        return
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(OSError):
        if pid_alive(pid) and start_ticks(pid) == start:
            os.kill(pid, signal.SIGKILL)


def _uids_processes(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(f"/proc/{entry}").st_uid == uid and pid_alive(int(entry)):
                    pids.append(int(entry))
    return pids


def _mq_names(token: str) -> list[str]:
    """The queues of a run, read from an mqueue filesystem mounted for the purpose (root only): reply
    queues of a killed CLI have random names that no registry knows."""
    if os.geteuid() != 0:
        return []
    mnt = tempfile.mkdtemp(prefix=f"pmon3-mq-{RUN}-")
    try:
        if subprocess.run(["mount", "-t", "mqueue", "none", mnt], capture_output=True).returncode != 0:
            return []
        try:
            return ["/" + n for n in os.listdir(mnt) if n.startswith(f"pmon3_t{token}")]
        finally:
            subprocess.run(["umount", mnt], capture_output=True)
    finally:
        os.rmdir(mnt)


def remove_cgroups(suffix: str) -> None:
    """A stopped pmond keeps its cgroup tree for its next start; a test's pmond has none (a run of the suite
    left ~5,000 empty cgroups behind)."""
    from pmon3.daemon.trees import cgroup2_mount, own_cgroup

    mount, own = cgroup2_mount(), own_cgroup()
    if mount is None or own is None:
        return
    for path, _dirs, _files in os.walk(os.path.join(mount, own.lstrip("/"), f"pmon3_{suffix}"), topdown=False):
        with contextlib.suppress(OSError):  # still populated: left to the kernel's and the user's judgement
            os.rmdir(path)


def cleanup(token: str, entries: list[dict[str, Any]]) -> None:
    """Stop the pmonds, remove queues, sockets, temp roots and users that a run recorded."""
    from pmon3 import _native

    for e in entries:
        if "pmond" in e:
            _stop_pid(*e["pmond"])
    names = set(_mq_names(token))
    uids = {0, os.geteuid()} | {e["uid"] for e in entries if "uid" in e}
    for e in entries:
        if "suffix" in e:
            names.add(f"/pmon3_{e['suffix']}")
            names.update(f"/pmon3_{e['suffix']}.{uid}" for uid in uids)
    for name in names:
        with contextlib.suppress(OSError):
            _native.MessageQueue.unlink(name)
    for e in entries:
        if "suffix" in e:
            remove_cgroups(e["suffix"])
        if "socket" in e:
            with contextlib.suppress(OSError):
                os.unlink(e["socket"])
        if "root" in e:
            shutil.rmtree(e["root"], ignore_errors=True)
        if "user" in e:
            delete_user(e["user"])


# -- users ---------------------------------------------------------------------------------------------

_USERS_LOCK = Path(tempfile.gettempdir()) / "pmon3-test-users.lock"


@contextlib.contextmanager
def _users_lock() -> Iterator[None]:
    """useradd/userdel of concurrent runs, one at a time (they fail rather than wait on /etc/passwd)."""
    fd = os.open(_USERS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _retry(cmd: list[str], ok: tuple[int, ...]) -> None:
    """useradd/userdel exit 10 while another tool (not ours) holds /etc/passwd: retry for a while."""
    deadline = time.monotonic() + 30
    while True:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode in ok:
            return
        if res.returncode != 10 or time.monotonic() > deadline:
            raise RuntimeError(f"{' '.join(cmd)} exited {res.returncode}: {res.stderr.strip()}")
        time.sleep(0.1)


SHARED_USERS = ("pmon3test", "pmon3other")  # fixed names of test_privileges.py, shared by concurrent runs


def ensure_shared_users() -> None:
    """Create the fixed test users once, under a lock, and never delete them: concurrent runs share them
    (each run's daemons and files are its own, so sharing a uid is harmless); creating them before any
    test means no run ever races another's useradd."""
    with _users_lock():
        for name in SHARED_USERS:
            try:
                pwd.getpwnam(name)
            except KeyError:
                # 9: created meanwhile by a run that does not take our lock (an older checkout)
                _retry(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], (0, 9))


def run_user(kind: str) -> pwd.struct_passwd:
    """A user of this run only (`pmon3<kind>` + the token), deleted at the end of the run, or by the next
    run if this one is killed. For tests where the user's uid names things, e.g. a user daemon's queues."""
    name = f"pmon3{kind}{RUN}"
    with _users_lock():
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        REGISTRY.add(user=name)  # before useradd: a kill in between still gets it deleted
        _retry(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], (0,))
        pw = pwd.getpwnam(name)
    REGISTRY.add(uid=pw.pw_uid)
    return pw


def delete_user(name: str) -> None:
    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    for pid in _uids_processes(uid):  # its user pmond and processes, if a run died with them
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _uids_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    from pmon3 import _native

    for queue in (f"/pmon3_u{uid}", f"/pmon3_u{uid}.{uid}"):  # a user daemon's default names (user mode)
        with contextlib.suppress(OSError):
            _native.MessageQueue.unlink(queue)
    with _users_lock():
        _retry(["userdel", name], (0, 6))  # 6: no such user (deleted meanwhile)


# -- pmond ---------------------------------------------------------------------------------------------


class Pmond:
    """One isolated daemon: its own config, data dir, log dir and IPC names."""

    def __init__(self, root: Path, extra_config: str = "", transport: str = "mq") -> None:
        self.root = root
        self.transport = transport
        self.suffix = f"t{RUN}{next(_counter)}"  # unique on the machine: concurrent runs never meet
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
        self.starts = 0
        REGISTRY.add(suffix=self.suffix, socket=f"/run/pmon3_{self.suffix}.sock")

    @property
    def db_path(self) -> Path:
        return self.data / "data.db"

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
        with contextlib.suppress(OSError):
            REGISTRY.add(pmond=[self.proc.pid, start_ticks(self.proc.pid)])
        ready, _, _ = select.select([r], [], [], 30)
        answer = os.read(r, 16) if ready else b""
        os.close(r)
        if not answer.startswith(b"ready"):
            raise RuntimeError(f"pmond did not start:\n{self.stderr_path.read_text()}")
        self.starts += 1

    def wait_booted(self, timeout: float = 20) -> None:
        """Until the background boot start of the latest start() is over: pmond logs `boot start done`
        once it has brought back (or adopted) everything it will."""
        wait_for(
            lambda: self.stderr_path.read_text().count("boot start done") >= self.starts,
            timeout,
            "pmond's boot start to finish",
        )

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

    def wait_status(self, key: str | int, status: str, timeout: float = 15) -> dict[str, Any]:
        def check() -> Optional[dict[str, Any]]:
            res = self.cli("desc", str(key), "--json", check=False)
            if res.returncode != 0:
                return None  # e.g. not created yet by a background boot
            p = json.loads(res.stdout)
            return p if p["status"] == status else None

        return wait_for(check, timeout, f"process {key} to be {status}")

    def wait_restarted(self, key: str | int, old_pid: int, timeout: float = 15) -> dict[str, Any]:
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
        remove_cgroups(d.suffix)


@contextlib.contextmanager
def running_daemon(root: Path, extra_config: str = "", transport: str = "mq") -> Iterator[Pmond]:
    """make_daemon as a `with` block, for a daemon of one test."""
    gen = make_daemon(root, extra_config, transport)
    try:
        yield next(gen)
    finally:
        gen.close()


def script(root: Path, name: str, body: str) -> str:
    path = root / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


# -- processes that outlive their pmond ----------------------------------------------------------------

_PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on: bool) -> None:
    """Make this test process the reaper of orphans (a pmond killed with SIGKILL leaves its children to
    the nearest subreaper), as systemd is for a real pmond; this machine's init may not reap at all."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def kill_and_reap(pid: int) -> None:
    """SIGKILL `pid` and reap it if it is our child (an orphan we adopted as subreaper)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        death_time(pid, 10)


def reap_orphans() -> None:
    """Reap the exited processes that were re-parented to us while we were a subreaper."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if _stat_field(int(entry), 1) == me and not pid_alive(int(entry)):
                    os.waitpid(int(entry), os.WNOHANG)


def edit_db(d: Pmond, sql: str, *params: Any) -> None:
    """Change pmond's database while pmond is down (set-up of tests that fake what a previous pmond left)."""
    import apsw

    assert d.proc is None, "pmond must be down"
    db = apsw.Connection(str(d.db_path))
    try:
        with db:
            db.execute(sql, params)
    finally:
        db.close()


def group_script(root: Path, name: str, marker: Path) -> str:
    """A process that forks a child into its own process group; both write their role to `marker` when
    they get SIGTERM, and the child its pid to `<marker>.child`."""
    child = script(
        root,
        f"{name}-child.sh",
        f"trap 'echo child >> {marker}; exit 0' TERM\necho $$ > {marker}.child\nwhile :; do sleep 0.05; done\n",
    )
    return script(
        root, f"{name}.sh", f"trap 'echo parent >> {marker}; exit 0' TERM\n{child} &\nwhile :; do sleep 0.05; done\n"
    )


def leave_pmonds_cgroup(pid: int) -> None:
    """Move `pid` to the cgroup2 root (as root), out of the cgroup pmond made for its process tree."""
    from pmon3.daemon.trees import cgroup2_mount

    mount = cgroup2_mount()
    with open(f"/proc/{pid}/cgroup") as fh:
        inside = any(line.startswith("0::") and "/pmon3" in line for line in fh)
    if mount and inside:
        with open(os.path.join(mount, "cgroup.procs"), "w") as fh:
            fh.write(str(pid))


def mount_tmpfs(where: Path, size: str = "64m") -> None:
    """A real tmpfs (no FALLOC_FL_COLLAPSE_RANGE there); root only, the caller unmounts."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                         capture_output=True, text=True)  # fmt: skip
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")


def umount(where: Path) -> None:
    subprocess.run(["umount", "--lazy", str(where)], check=True)
