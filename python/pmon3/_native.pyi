"""Typed contract of the Rust extension `pmon3._native` (rust/py_api.rs).

Every failure of a system call surfaces as `OSError` carrying the errno.
"""

import os
from collections.abc import Sequence
from typing import Optional, final

__version__: str
# What the module exports (PyO3 sets __all__ to everything registered); keep in step with py_api.rs.
__all__ = [
    "__version__",
    "spawn",
    "pidfd_open",
    "pidfd_send_signal",
    "killpg",
    "reap",
    "reap_pidfd",
    "malloc_trim",
    "json_indent",
    "json_take",
    "proc_usage",
    "set_child_subreaper",
    "proc_start_time",
    "stat_as",
    "access_as",
    "open_as",
    "bind_unix",
    "pidfd_getfd",
    "MessageQueue",
    "Regex",
    "mq_list",
    "fallocate",
    "FALLOC_FL_KEEP_SIZE",
    "FALLOC_FL_PUNCH_HOLE",
    "FALLOC_FL_COLLAPSE_RANGE",
    "Inotify",
    "Launch",
    "Respawner",
    "IN_ACCESS",
    "IN_MODIFY",
    "IN_ATTRIB",
    "IN_CLOSE_WRITE",
    "IN_CLOSE_NOWRITE",
    "IN_OPEN",
    "IN_MOVED_FROM",
    "IN_MOVED_TO",
    "IN_CREATE",
    "IN_DELETE",
    "IN_DELETE_SELF",
    "IN_MOVE_SELF",
    "IN_UNMOUNT",
    "IN_Q_OVERFLOW",
    "IN_IGNORED",
    "IN_ISDIR",
    "IN_ONLYDIR",
    "IN_DONT_FOLLOW",
    "IN_EXCL_UNLINK",
    "IN_MASK_ADD",
    "IN_ONESHOT",
]

# (pid, exit_code or None, signal or None, user_cpu_seconds, system_cpu_seconds, max_rss_kib, core_dumped)
_ExitRecord = tuple[int, Optional[int], Optional[int], float, float, int, bool]

def spawn(
    file: str,
    argv: Sequence[str],
    env: Sequence[str],
    cwd: Optional[str] = None,
    uid: Optional[int] = None,
    gid: Optional[int] = None,
    groups: Optional[Sequence[int]] = None,
    log_path: Optional[str] = None,
    umask: Optional[int] = None,
    log_fd: Optional[int] = None,
    *,
    cgroup_fd: Optional[int] = None,
    cgroup_procs_fd: Optional[int] = None,
    rlimits: Optional[list[tuple[int, int, int]]] = None,
    pass_fds: Optional[list[int]] = None,
    listen_pid: bool = False,
    child_first: bool = False,
    cgroup_dir: Optional[str] = None,
    cgroup_dir_procs: bool = False,
    only_if_empty: bool = False,
) -> tuple[int, int]:
    """Start `file` with `argv` and the explicit `env` ("K=V" strings) and return (pid, pidfd).

    The child runs in a new session with default signal dispositions and an empty signal mask,
    switches to groups/gid/uid when `uid` is given, changes to `cwd`, opens `log_path` as the
    target user (O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW, mode 0640; None means /dev/null) onto
    stdout and stderr (or uses the caller's descriptor `log_fd` >= 3, e.g. a pipe), reads stdin
    from /dev/null and has every other descriptor closed.

    With `cgroup_fd` (the caller's O_RDONLY|O_DIRECTORY descriptor on a cgroup v2 directory) the
    child is born in that cgroup (clone3 with CLONE_INTO_CGROUP), and so is every descendant; no
    task is migrated, so there is no RCU wait: as fast as a plain spawn into a populated cgroup.
    Making an empty cgroup populated wakes a kworker (cgroup.events), which on a busy machine can
    cost the child its turn on the CPU (median +1.3 ms measured on a loaded 2-core machine, against
    +13 ms for `cgroup_procs_fd`). OSError(ENOSYS) when the kernel is older than 5.7, a seccomp
    filter refuses clone3 or the machine is neither x86_64 nor aarch64: then fall back to
    `cgroup_procs_fd`. EBADF when the descriptor is not an open cgroup v2 directory.
    `cgroup_procs_fd` is that slow fallback (it excludes `cgroup_fd`): right after setsid, while
    still privileged, the child writes "0" to it (the caller's O_WRONLY descriptor on a cgroup v2
    `cgroup.procs`). Cost measured: +15-40 us when spawns follow each other, but ~10-15 ms for an
    isolated one on a cgroup2 mount without `favordynmods` (the kernel waits for an RCU grace
    period while the calling thread is suspended).
    Then the child applies `rlimits`: (resource, soft, hard) with resource.RLIMIT_* numbers and -1
    (resource.RLIM_INFINITY) for unlimited; raising a hard limit needs root.
    `pass_fds` are caller descriptors that the child gets as 3, 4, 5, ... in this order (systemd
    socket activation; set LISTEN_FDS and LISTEN_FDNAMES in `env`). With `listen_pid` the child's
    environment gets LISTEN_PID=<its own pid>, replacing any LISTEN_PID in `env`.
    `cgroup_dir` names the cgroup v2 directory instead of `cgroup_fd` (opened for the spawn, closed after it;
    with `cgroup_dir_procs` its `cgroup.procs`, the fallback); with `only_if_empty` a populated cgroup (its
    `cgroup.events`) raises OSError(EBUSY) and starts nothing.
    With `child_first` the calling thread (when it is SCHED_OTHER) is SCHED_BATCH while it waits in the
    clone, so that being woken when the child's execve lets go of our memory does not preempt the child
    mid-exec; the child takes SCHED_OTHER back before anything else, the caller right after the clone.

    A failure before or at exec raises OSError(errno, "<stage> <what>: <strerror>") in the
    caller, e.g. "clone3 into cgroup <path>", "cgroup <path>", "setrlimit RLIMIT_NOFILE",
    "pass_fds 7", "exec /bin/nope"; no child is left behind. The pidfd is close-on-exec and
    owned by the caller.
    """

def pidfd_open(pid: int) -> int:
    """A close-on-exec pidfd for `pid` (also for processes that are not our children)."""

def pidfd_send_signal(pidfd: int, sig: int) -> None:
    """Signal exactly the process behind `pidfd`; ESRCH once it has exited."""

def killpg(pgid: int, sig: int) -> None:
    """Signal a process group."""

def reap() -> list[_ExitRecord]:
    """Collect every exited child without blocking (wait4(-1, WNOHANG) until none is left)."""

def reap_pidfd(pidfd: int, pid: int) -> Optional[_ExitRecord]:
    """Collect the child behind `pidfd` (whose pid is `pid`) if it has exited, without blocking; None while
    it runs. O(1) however many children there are (waitid P_PIDFD), where reap() walks all of them (1 ms
    per call with 8000 children). ECHILD when it is not our child or was collected already."""

def malloc_trim() -> bool:
    """Give the C heap's free memory back to the kernel (glibc malloc_trim(0)); False where the C library has
    no such call or nothing was returned."""

def proc_usage(pids: list[int]) -> list[Optional[tuple[int, int, int]]]:
    """Per pid (start time in clock ticks, user + system CPU in clock ticks, resident pages) from
    /proc/<pid>/stat, None for a process that is gone or a zombie; the GIL is released meanwhile."""

def json_indent(text: str, width: int = 2) -> str:
    """JSON text re-indented exactly as json.dumps(value, indent=width) writes the value: feed it the compact
    text of json.dumps(value, separators=(",", ":")) (C speed; json has no C path for an indent)."""

def json_take(text: str, key: str) -> Optional[tuple[str, str]]:
    """(the JSON object `text` without its member `key`, that member's value as written), or None when `text`
    is not an object or has no such member. Structure only: the value is not validated."""

def set_child_subreaper() -> None:
    """PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to this process."""

def proc_start_time(pid: int) -> int:
    """Start time of `pid` in clock ticks since boot (/proc/<pid>/stat field 22)."""

# Filesystem access with another user's rights, without forking: each call runs on a fresh
# thread that switches only its own credentials (raw setgroups, setfsgid, setfsuid; verified,
# EPERM when the switch does not take, e.g. for a non-root caller acting as someone else) and then
# exits. The GIL is released meanwhile. `groups` is the complete supplementary group list.

def stat_as(path: str, uid: int, gid: int, groups: list[int], follow: bool = True) -> os.stat_result:
    """os.stat(path, follow_symlinks=follow) as that user: EACCES when it cannot search a directory
    on the way; the result has the fields os.stat fills."""

def access_as(path: str, mode: int, uid: int, gid: int, groups: list[int]) -> None:
    """Raise OSError (EACCES, ENOENT, ...) unless that user may access `path` with `mode`
    (os.R_OK | os.W_OK | os.X_OK, or os.F_OK), as faccessat2(AT_EACCESS). ENOSYS on kernels
    before 5.8."""

def open_as(path: str, flags: int, mode: int, uid: int, gid: int, groups: list[int]) -> int:
    """os.open(path, flags, mode) as that user: the descriptor (always close-on-exec) belongs to
    the caller; a file it creates is owned by uid and gid."""

@final
class Regex:
    """A regular expression matched in time linear in the input (Rust's regex crate: no backtracking, so no
    backreferences or lookaround); ValueError for a bad or too large pattern."""

    def __new__(cls, pattern: str) -> Regex: ...
    def search(self, data: bytes) -> bool:
        """Whether the pattern matches anywhere in `data` (the GIL is released)."""

@final
class MessageQueue:
    """A POSIX message queue descriptor, always non-blocking and close-on-exec."""

    def __new__(
        cls,
        name: str,
        create: bool = False,
        exclusive: bool = False,
        mode: int = 0o600,
        maxmsg: int = 0,
        msgsize: int = 0,
        read: bool = True,
        write: bool = True,
    ) -> MessageQueue:
        """Open (or create, with `mode` applied exactly, umask ignored) the queue `name`.

        maxmsg/msgsize of 0 take the system defaults.
        """

    @property
    def name(self) -> str: ...
    @property
    def maxmsg(self) -> int: ...
    @property
    def msgsize(self) -> int: ...
    def fileno(self) -> int: ...
    def owner(self) -> tuple[int, int, int]:
        """(uid, gid, mode) of the queue, from fstat."""

    def fchown(self, uid: int, gid: int) -> None: ...
    def fchmod(self, mode: int) -> None: ...
    def send(self, data: bytes, priority: int = 0) -> bool:
        """Queue one message; False when the queue is full (EAGAIN)."""

    def send_timeout(self, data: bytes, timeout: float) -> bool:
        """Wait up to `timeout` seconds (GIL released) for room; False on timeout."""

    def receive(self) -> Optional[bytes]:
        """One message, or None when the queue is empty."""

    def receive_timeout(self, timeout: float) -> Optional[bytes]:
        """Wait up to `timeout` seconds (GIL released) for a message; None on timeout."""

    def close(self) -> None: ...
    @staticmethod
    def unlink(name: str) -> None: ...

def mq_list() -> list[str]:
    """Names (without the leading '/') of every POSIX message queue of this IPC namespace.

    /dev/mqueue need not be mounted: a forked helper mounts mqueue in a private mount namespace
    of its own and reads the directory, so nothing changes where the caller lives. Needs
    CAP_SYS_ADMIN (PermissionError otherwise). The GIL is released; the helper is collected with
    wait4(pid, __WCLONE) and never shows up in reap().
    """

def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2) itself (no posix_fallocate emulation): OSError(EOPNOTSUPP) where the filesystem
    cannot do `mode`. The GIL is released (collapsing a range can take a while)."""

FALLOC_FL_KEEP_SIZE: int
FALLOC_FL_PUNCH_HOLE: int
FALLOC_FL_COLLAPSE_RANGE: int

# Inotify event bits (linux/inotify.h), for Inotify.add_watch masks and Inotify.read events.
IN_ACCESS: int
IN_MODIFY: int
IN_ATTRIB: int
IN_CLOSE_WRITE: int
IN_CLOSE_NOWRITE: int
IN_OPEN: int
IN_MOVED_FROM: int
IN_MOVED_TO: int
IN_CREATE: int
IN_DELETE: int
IN_DELETE_SELF: int
IN_MOVE_SELF: int
IN_UNMOUNT: int
IN_Q_OVERFLOW: int
IN_IGNORED: int
IN_ISDIR: int
IN_ONLYDIR: int
IN_DONT_FOLLOW: int
IN_EXCL_UNLINK: int
IN_MASK_ADD: int
IN_ONESHOT: int

@final
class Launch:
    """A process's launch (spawn's arguments without the spawn's own), packed natively: spawned from
    Python, or by a Respawner without Python once armed. Immutable."""

    def __new__(
        cls,
        file: str,
        argv: Sequence[str],
        env: Sequence[str],
        cwd: Optional[str] = None,
        uid: Optional[int] = None,
        gid: Optional[int] = None,
        groups: Optional[Sequence[int]] = None,
        log_path: Optional[str] = None,
        *,
        rlimits: Optional[list[tuple[int, int, int]]] = None,
        pass_fds: Optional[list[int]] = None,
        listen_pid: bool = False,
    ) -> Launch: ...
    def spawn(
        self,
        *,
        child_first: bool = False,
        cgroup_fd: Optional[int] = None,
        cgroup_procs_fd: Optional[int] = None,
        cgroup_dir: Optional[str] = None,
        cgroup_dir_procs: bool = False,
        only_if_empty: bool = False,
    ) -> tuple[int, int]:
        """spawn() of this launch: (pid, pidfd)."""

# (token, old pid, old pidfd (the caller's, to close), exit or None when it was collected elsewhere,
# CLOCK_MONOTONIC end, new pid or 0, new pidfd or -1 (now the caller's), new copy's start, whether the
# new copy is still armed)
_RespawnEvent = tuple[int, int, int, Optional[_ExitRecord], float, int, int, float, bool]

@final
class Respawner:
    """A thread that restarts armed copies without the caller: it waits on their pidfds, collects an
    exit, and when the copy ran `min_uptime` (and, with `on_failure`, did not exit with a success code)
    spawns the launch again into the copy's cgroup (only if that is empty) and keeps watching the new
    copy. Every outcome becomes an event; fileno() is readable while events wait. Descriptors stay the
    caller's: the thread never closes one. `trace_fd`: PMON3_TRACE lines (-1: none) ("seen", "spawn", "spawned")."""

    def __new__(cls, burst_gap: float, trace_fd: int) -> Respawner: ...
    def fileno(self) -> int: ...
    def running(self) -> bool:
        """False once the thread has ended (close(), or an error): fileno() turns readable then, and armed
        copies are nobody's until disarmed; arm() refuses (ESRCH)."""

    def arm(
        self,
        pid: int,
        pidfd: int,
        started: float,
        launch: Launch,
        cgroup_dir: str,
        cgroup_procs: bool,
        on_failure: bool,
        min_uptime: float,
        success_codes: list[int],
    ) -> int:
        """Watch the copy `pid` (`started`: its time.monotonic() start); its token."""

    def disarm(self, token: int) -> bool:
        """Stop watching the token's copy (whichever it is by now); False when it was not armed."""

    def disarm_all(self) -> None: ...
    def take(self) -> list[_RespawnEvent]:
        """The events so far, oldest first."""

    def close(self) -> None:
        """Disarm everything and end the thread; idempotent."""

# (wd, mask, cookie, name): name is the entry inside a watched directory, None for the watched
# path itself; cookie pairs IN_MOVED_FROM with IN_MOVED_TO.
_InotifyEvent = tuple[int, int, int, Optional[str]]

@final
class Inotify:
    """An inotify descriptor, always non-blocking and close-on-exec (for loop.add_reader)."""

    def __new__(cls) -> Inotify: ...
    def add_watch(self, path: str, mask: int) -> int:
        """Watch `path` for the IN_* bits in `mask`; returns the watch descriptor (the same one
        again for the same path: the mask is replaced, or extended with IN_MASK_ADD)."""

    def rm_watch(self, wd: int) -> None:
        """Stop watching; an IN_IGNORED event follows."""

    def fileno(self) -> int:
        """The descriptor; OSError(EBADF) once closed."""

    def read(self) -> list[_InotifyEvent]:
        """Every pending event, [] when none; never blocks."""

    def close(self) -> None:
        """Close the descriptor and its watches; later calls do nothing."""

def bind_unix(
    fd: int,
    path: str,
    mode: Optional[int] = None,
    uid: Optional[int] = None,
    gid: Optional[int] = None,
    groups: Optional[list[int]] = None,
) -> None:
    """bind(2) the AF_UNIX socket `fd` to `path` and chmod the new file to `mode`; with `uid` given, both
    happen with that user's rights (on a short-lived thread of ours), so the file is theirs and the
    directory must be writable by them."""

def pidfd_getfd(pidfd: int, target: int) -> int:
    """A close-on-exec copy of descriptor `target` of the process behind `pidfd` (pidfd_getfd(2))."""
