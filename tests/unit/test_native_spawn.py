"""_native.spawn's cgroup_fd, cgroup_procs_fd, rlimits, pass_fds and listen_pid, with real processes."""

from __future__ import annotations

import errno
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional, TypeVar

import pytest
from pmon3 import _native

T = TypeVar("T")


def cgroup2_mount() -> Optional[Path]:
    """The first cgroup2 mount (/sys/fs/cgroup/unified here, /sys/fs/cgroup on unified hosts)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        if fs.split()[:1] == ["cgroup2"]:
            # Octal escapes (\040 for a space) in the mount point.
            return Path(fields.split()[4].encode().decode("unicode_escape"))
    return None


CGROUP2 = cgroup2_mount()


def wait_for(cond: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def wait_exit(pid: int, pidfd: int, timeout: float = 10.0) -> int:
    """Wait (with a deadline) for our child `pid` and return its wait status."""
    try:
        assert select.select([pidfd], [], [], timeout)[0], f"child {pid} still running after {timeout} s"
        return os.waitpid(pid, 0)[1]
    finally:
        os.close(pidfd)


def kill(pid: int, pidfd: int) -> None:
    try:
        _native.pidfd_send_signal(pidfd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_exit(pid, pidfd)


def environ(pid: int) -> list[str]:
    # The vfork parent resumes in exec a moment before the child drops our memory (so
    # /proc/<pid>/environ may still show ours) and before the new image has its environment in
    # place: wait for it.
    ours = Path("/proc/self/environ").read_bytes()

    def read() -> list[str]:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        return [e for e in raw.decode().split("\0") if e] if raw != ours else []

    return wait_for(read, f"the environment of {pid}")


# ---------------------------------------------------------------------------------------------- cgroup


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A fresh cgroup v2 directory, emptied (cgroup.kill) and removed afterwards."""
    if os.geteuid() != 0 or CGROUP2 is None or not (CGROUP2 / "cgroup.procs").exists():
        pytest.skip(f"needs root and a cgroup2 mount (found: {CGROUP2})")
    path = CGROUP2 / f"pmon3-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a cgroup under {CGROUP2}: {e}")
    try:
        yield path
    finally:
        try:
            (path / "cgroup.kill").write_text("1")
        except OSError:  # before Linux 5.14
            for pid in cgroup_members(path):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not (path / "cgroup.procs").read_text().split(), "an empty cgroup")
        path.rmdir()


def cgroup_members(path: Path) -> list[int]:
    return [int(p) for p in (path / "cgroup.procs").read_text().split()]


def test_cgroup_procs_fd_holds_the_child_and_what_it_forks(cgroup: Path):
    procs = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    try:
        # Runs as nobody: the move happens before the identity switch.
        pid, pidfd = _native.spawn(
            "/bin/sh", ["sh", "-c", "sleep 30 & exec sleep 31"], [], uid=65534, gid=65534, cgroup_procs_fd=procs
        )
    finally:
        os.close(procs)
    try:
        wait_for(lambda: len(cgroup_members(cgroup)) == 2, "child and grandchild in the cgroup")
        members = cgroup_members(cgroup)
        assert pid in members
        (grandchild,) = [p for p in members if p != pid]
        ppid = int(Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert ppid == pid
    finally:
        kill(pid, pidfd)


def test_cgroup_write_failure_names_the_stage():
    ro = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as exc:
            _native.spawn("/bin/true", ["true"], [], cgroup_procs_fd=ro)
    finally:
        os.close(ro)
    assert exc.value.errno == errno.EBADF
    assert exc.value.strerror.startswith("cgroup /dev/null: ")


def open_dir(path: Path) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def test_cgroup_fd_child_and_grandchild_are_born_in_the_cgroup(cgroup: Path):
    fd = open_dir(cgroup)
    try:
        pid, pidfd = _native.spawn(
            "/bin/sh", ["sh", "-c", "sleep 30 & exec sleep 31"], [], uid=65534, gid=65534, cgroup_fd=fd
        )
    finally:
        os.close(fd)
    try:
        assert pid in cgroup_members(cgroup)  # at once: no migration to wait for
        wait_for(lambda: len(cgroup_members(cgroup)) == 2, "child and grandchild in the cgroup")
        (grandchild,) = [p for p in cgroup_members(cgroup) if p != pid]
        ppid = int(Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert ppid == pid
        # The pidfd is the child's: not readable while it runs, readable once killed through it.
        assert not select.select([pidfd], [], [], 0)[0]
        _native.pidfd_send_signal(pidfd, signal.SIGKILL)
        assert select.select([pidfd], [], [], 10)[0]
        assert os.waitpid(pid, 0) == (pid, signal.SIGKILL)
    finally:
        try:
            os.close(pidfd)
        except OSError:
            pass


def own_children() -> set[int]:
    """Our children, zombies included (read from /proc: a wait would reap them)."""
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            pass  # gone meanwhile
    return found


def test_cgroup_fd_exec_failure_names_the_stage(cgroup: Path):
    fd = open_dir(cgroup)
    before = own_children()
    try:
        with pytest.raises(OSError) as exc:
            _native.spawn("/nonexistent/pmon3-nope", ["nope"], [], cgroup_fd=fd)
        with pytest.raises(OSError) as chdir_exc:
            _native.spawn("/bin/true", ["true"], [], cwd="/nonexistent-pmon3", cgroup_fd=fd)
    finally:
        os.close(fd)
    assert exc.value.errno == errno.ENOENT
    assert exc.value.strerror == "exec /nonexistent/pmon3-nope: No such file or directory"
    assert chdir_exc.value.errno == errno.ENOENT
    assert chdir_exc.value.strerror.startswith("chdir /nonexistent-pmon3: ")
    assert cgroup_members(cgroup) == []
    assert own_children() == before  # the failed children were reaped


def test_bad_cgroup_fd_is_a_clear_error(tmp_path: Path):
    fd = open_dir(tmp_path)  # a directory, not a cgroup
    try:
        with pytest.raises(OSError) as exc:
            _native.spawn("/bin/true", ["true"], [], cgroup_fd=fd)
        with pytest.raises(OSError) as both:
            _native.spawn("/bin/true", ["true"], [], cgroup_fd=fd, cgroup_procs_fd=fd)
    finally:
        os.close(fd)
    assert exc.value.errno == errno.EBADF
    assert exc.value.strerror == f"clone3 into cgroup {tmp_path} (not an open cgroup v2 directory): Bad file descriptor"
    assert both.value.errno == errno.EINVAL
    assert both.value.strerror == "cgroup_fd excludes cgroup_procs_fd: Invalid argument"
    with pytest.raises(OSError) as closed:
        _native.spawn("/bin/true", ["true"], [], cgroup_fd=987654)
    assert closed.value.errno == errno.EBADF
    assert closed.value.strerror.startswith("clone3 into cgroup fd 987654 ")
    with pytest.raises(OSError) as negative:
        _native.spawn("/bin/true", ["true"], [], cgroup_fd=-1)
    assert negative.value.errno == errno.EINVAL


def test_cgroup_fd_rejects_the_cgroup_procs_file(cgroup: Path):
    procs = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
    try:
        with pytest.raises(OSError) as exc:
            _native.spawn("/bin/true", ["true"], [], cgroup_fd=procs)
    finally:
        os.close(procs)
    assert exc.value.errno == errno.EBADF
    assert exc.value.strerror.startswith(f"clone3 into cgroup {cgroup}/cgroup.procs (not an open cgroup v2 directory)")


# ---------------------------------------------------------------------------------------------- rlimits


def proc_limits(pid: int, row: str) -> tuple[str, str]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith(row):
            soft, hard = line[len(row) :].split()[:2]
            return soft, hard
    raise AssertionError(f"no {row!r} in /proc/{pid}/limits")


def test_rlimits_are_visible_in_proc_limits():
    # -1 (RLIM_INFINITY) keeps an unlimited hard limit unlimited without needing privileges.
    core_hard_unlimited = resource.getrlimit(resource.RLIMIT_CORE)[1] == resource.RLIM_INFINITY
    limits = [(resource.RLIMIT_NOFILE, 64, 128), (resource.RLIMIT_CORE, 0, -1 if core_hard_unlimited else 0)]
    pid, pidfd = _native.spawn("/bin/sleep", ["sleep", "10"], [], rlimits=limits)
    try:
        assert proc_limits(pid, "Max open files") == ("64", "128")
        assert proc_limits(pid, "Max core file size") == ("0", "unlimited" if core_hard_unlimited else "0")
    finally:
        kill(pid, pidfd)


def test_rlimit_errors():
    with pytest.raises(OSError) as exc:
        _native.spawn("/bin/true", ["true"], [], rlimits=[(resource.RLIMIT_NOFILE, 10, 5)])
    assert exc.value.errno == errno.EINVAL
    assert exc.value.strerror.startswith("setrlimit RLIMIT_NOFILE: ")
    with pytest.raises(OSError) as exc:
        _native.spawn("/bin/true", ["true"], [], rlimits=[(resource.RLIMIT_NOFILE, -2, 5)])
    assert exc.value.errno == errno.EINVAL


# ---------------------------------------------------------------------------------------------- pass_fds

CHILD_ACCEPT = """
import os, socket
s = socket.socket(fileno=3)
c, _ = s.accept()
c.sendall(f"{s.getsockname()[1]} {os.environ['LISTEN_FDS']} {os.environ['LISTEN_PID'] == str(os.getpid())}".encode())
c.close()
"""


def test_pass_fds_hands_a_listening_socket_over_as_fd_3(tmp_path: Path):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    log = tmp_path / "child.log"
    try:
        pid, pidfd = _native.spawn(
            sys.executable,
            [sys.executable, "-c", CHILD_ACCEPT],
            ["LISTEN_FDS=1"],
            log_path=str(log),
            pass_fds=[srv.fileno()],
            listen_pid=True,
        )
    finally:
        srv.close()  # the child has its copy
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.settimeout(10)
            reply = c.recv(100).decode()
    finally:
        status = wait_exit(pid, pidfd)
    assert reply == f"{port} 1 True", log.read_text()
    assert os.waitstatus_to_exitcode(status) == 0


SWAP = """
import json, os
from pmon3 import _native
# Two pipes whose write ends sit exactly on 4 and 3 (a fresh interpreter has them free).
(r1, w1), (r2, w2) = os.pipe(), os.pipe()
r1, w1, r2, w2 = (os.dup2(fd, 20 + i) for i, fd in enumerate((r1, w1, r2, w2)))
for fd in range(3, 7):
    os.close(fd)
os.dup2(w1, 4)
os.dup2(w2, 3)
os.close(w1)
os.close(w2)
pid, pidfd = _native.spawn("/bin/sh", ["sh", "-c", "echo three >&3; echo four >&4; ls /proc/self/fd"], [],
                           log_fd=3, pass_fds=[4, 3])
os.close(3)
os.close(4)
os.waitpid(pid, 0)
def read_all(fd):
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data.decode()
print(json.dumps([read_all(r1), read_all(r2)]))
"""


def test_pass_fds_sources_inside_the_target_range_are_not_clobbered():
    """Sources on 3 and 4 passed as [4, 3]: a dup2 straight into place would lose one of them."""
    out = subprocess.run([sys.executable, "-c", SWAP], capture_output=True, text=True, timeout=30, check=True)
    first, second = json.loads(out.stdout)
    # The child's 3 is the pipe that was on 4 (first), its 4 the one that was on 3 (second), and
    # log_fd=3 (second, as the caller numbers it) is its stdout: ls shows 0-4 and its own 5.
    assert first == "three\n"
    assert second == "four\n0\n1\n2\n3\n4\n5\n"


def test_pass_fds_bad_descriptor():
    with pytest.raises(OSError) as exc:
        _native.spawn("/bin/true", ["true"], [], pass_fds=[987654])
    assert exc.value.errno == errno.EBADF
    assert exc.value.strerror.startswith("pass_fds 987654: ")


# ---------------------------------------------------------------------------------------------- LISTEN_PID


def test_listen_pid_is_the_childs_own_pid():
    env = ["LISTEN_FDS=2", "LISTEN_FDNAMES=a:b", "LISTEN_PID=1"]
    started = [_native.spawn("/bin/sleep", ["sleep", "10"], env, listen_pid=True) for _ in range(2)]
    try:
        for pid, _ in started:
            assert environ(pid) == ["LISTEN_FDS=2", "LISTEN_FDNAMES=a:b", f"LISTEN_PID={pid}"]
    finally:
        for pid, pidfd in started:
            kill(pid, pidfd)
    pid, pidfd = _native.spawn("/bin/sleep", ["sleep", "10"], env)
    try:
        assert environ(pid) == env  # without the flag: as given
    finally:
        kill(pid, pidfd)
