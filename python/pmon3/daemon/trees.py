"""A process is its whole tree: everything it started, including orphans of a dead leader and children that
called setsid. Stop, restart and delete end all of it, and a restart starts the new copy only after the old
tree is gone.

Two ways to know the tree (`desc` says which one a process uses):
- cgroup: each process gets its own cgroup v2 (`<pmond's cgroup>/pmon3[_suffix]/p<id>/<copy>`), entered before
  exec, so nothing it starts can leave it. A process has two copy cgroups, `a` and `b`: a reload starts the new
  copy in the other one while the old copy still runs, so that ending the old tree never touches the new.
  Emptiness comes from the kernel (`cgroup.events`, watched with inotify) and `cgroup.kill` ends everything at
  once. Used wherever pmond can create cgroups (root on a cgroup2 system,
  or a delegated subtree under systemd). Survives a pmond restart: the cgroup is found again by id, and what a
  crashed pmond left in a copy tree that no adopted process leads is ended before anything starts again.
- session: elsewhere. The leader starts its own session; the tree is every process of that session plus
  their descendants (pmond is a subreaper, so orphans are re-parented to it rather than to init); a leader
  adopted after a pmond crash is held by pidfd, so its descendants are found through it. A child that calls
  setsid after its parent died (a double-forked daemon) is not found this way; the cgroup mode has no such gap.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import signal
import time
from typing import Any, Optional

from .. import _native
from ..config import Config

log = logging.getLogger("pmond.trees")
# A copy of a process: its row id and which of its two copy cgroups (a reload starts the new one in the other).
Copy = tuple[int, str]
LEAVES = ("a", "b")
# Where pmond moves itself when it must pass controllers down (cgroup v2's no-internal-processes rule): a leaf
# beside the per-process cgroups, <base>/daemon.
DAEMON_LEAF = "daemon"
# Process options that are cgroup limits: the controller each needs and the file it is written to.
CGROUP_LIMITS = {
    "memory_max": ("memory", "memory.max"),
    "cpu_max": ("cpu", "cpu.max"),
    "pids_max": ("pids", "pids.max"),
}


class CgroupError(Exception):
    """A cgroup limit cannot be applied here; the message says why in one line."""


def _words(path: str) -> set[str]:
    try:
        with open(path) as fh:
            return set(fh.read().split())
    except OSError:
        return set()


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def delegate(mount: str, base: str, wanted: set[str], me: int) -> None:
    """Make the `wanted` controllers (memory, cpu, pids) available to the per-process cgroups under `base`
    (pmond's `<own cgroup>/pmon3[_suffix]`). What `base` may enable is what its parent enables for it; when the
    parent (pmond's own cgroup, e.g. pmond.service with Delegate=yes) has them only in `cgroup.controllers`,
    pmond enables them in the parent's `cgroup.subtree_control`. cgroup v2 allows that only while no process
    lives in the parent itself (the root cgroup excepted), so pmond first moves itself into `<base>/daemon`; if
    other processes live there too, nothing is enabled and CgroupError names them. Raises CgroupError when the
    controllers are not delegated to pmond at all."""
    parent = os.path.dirname(base)
    if not wanted <= _words(os.path.join(base, "cgroup.controllers")):
        offered = _words(os.path.join(parent, "cgroup.controllers"))
        missing = sorted(wanted - offered)
        if missing:
            have = " ".join(sorted(offered)) or "none"
            raise CgroupError(
                f"the {', '.join(missing)} cgroup controller{'s are' if len(missing) > 1 else ' is'} not delegated "
                f"to pmond (its cgroup {parent} offers: {have}; under systemd: Delegate=yes)"
            )
        try:
            if os.path.normpath(parent) != os.path.normpath(mount):  # the root cgroup may have processes
                leaf = os.path.join(base, DAEMON_LEAF)
                os.makedirs(leaf, mode=0o755, exist_ok=True)
                _write(os.path.join(leaf, "cgroup.procs"), str(me))
                with open(os.path.join(parent, "cgroup.procs")) as fh:
                    others = [int(x) for x in fh.read().split()]
                if others:
                    shown = ", ".join(map(str, others[:5])) + (" ..." if len(others) > 5 else "")
                    raise CgroupError(
                        f"cannot enable the {', '.join(sorted(wanted))} controller in {parent}: processes other "
                        f"than pmond live there ({shown}); run pmond in a cgroup of its own"
                    )
            _write(os.path.join(parent, "cgroup.subtree_control"), " ".join(f"+{c}" for c in sorted(wanted)))
        except OSError as exc:
            raise CgroupError(
                f"cannot enable the {', '.join(sorted(wanted))} controller in {parent}: {exc.strerror}"
            ) from None
    enable_in(base, wanted)


def enable_in(directory: str, wanted: set[str]) -> None:
    """The `wanted` controllers enabled for the children of the cgroup `directory`, or CgroupError."""
    if wanted <= _words(os.path.join(directory, "cgroup.subtree_control")):
        return
    try:
        _write(os.path.join(directory, "cgroup.subtree_control"), " ".join(f"+{c}" for c in sorted(wanted)))
    except OSError as exc:
        raise CgroupError(
            f"cannot enable the {', '.join(sorted(wanted))} controller in {directory}: {exc.strerror}"
        ) from None


def read_small(path: str) -> bytes:
    """A whole small kernel file (os.open/os.read: a third cheaper than open() when done for every process)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        while len(data) % 65536 == 0 and data:
            more = os.read(fd, 65536)
            if not more:
                break
            data += more
        return data
    finally:
        os.close(fd)


def read_stat(path: str, key: bytes) -> Optional[int]:
    """The value of `key` in a flat-keyed cgroup file (cpu.stat, memory.events); None without it."""
    try:
        for line in read_small(path).split(b"\n"):
            name, _, value = line.partition(b" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return None


def cgroup2_mount() -> Optional[str]:
    try:
        with open("/proc/self/mountinfo") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split()[4]
    except OSError:
        pass
    return None


def own_cgroup() -> Optional[str]:
    try:
        with open("/proc/self/cgroup") as fh:
            for line in fh:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


def _proc_ids(pid: int) -> Optional[tuple[int, int]]:
    """(ppid, session) of a live process, from /proc/<pid>/stat (the comm field may hold spaces and ')')."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[1]), int(fields[3])


def session_tree(leader: int, also: frozenset[int] = frozenset()) -> set[int]:
    """Every live process of `leader`'s session, the live ones of `also` (members seen before, held by pidfd,
    among them an adopted leader), and all their descendants."""
    table: dict[int, tuple[int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            ids = _proc_ids(int(name))
            if ids is not None:
                table[int(name)] = ids
    me = os.getpid()

    def ours(pid: int) -> bool:
        # Only pmond's descendants: a stranger whose new session happens to reuse the dead leader's pid as
        # its id is not ours to signal (orphans of the tree are re-parented to pmond, the subreaper).
        seen = 0
        while pid in table and seen < 4096:
            pid, seen = table[pid][0], seen + 1
            if pid == me:
                return True
        return False

    # Members seen before are known by pidfd: they count even when no longer pmond's descendants (re-parented
    # to init by a pmond crash; an adopted leader is not the new pmond's child).
    members = {pid for pid, (_ppid, sid) in table.items() if (sid == leader and ours(pid)) or pid in also}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _sid) in table.items():
            if ppid in members and pid not in members and pid != me:
                members.add(pid)
                grew = True
    members.discard(me)
    return members


class Trees:
    def __init__(self, cfg: Config, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.base: Optional[str] = None
        self.inotify: Optional[_native.Inotify] = None
        self.watchers: dict[int, asyncio.Future[None]] = {}  # inotify wd -> wake-up
        # session mode: members seen when signalling, held by pidfd (no pid reuse) so that one whose parent
        # died meanwhile is still found
        self.seen: dict[Copy, dict[int, int]] = {}
        # Copy cgroups ended with cgroup.kill. The kernel (seen on 6.18) then kills every child later born into
        # that cgroup with clone3(CLONE_INTO_CGROUP): such a cgroup is replaced by a fresh one before reuse. So is
        # one this pmond starts a process in for the first time (a previous pmond may have killed it).
        self.killed: set[Copy] = set()
        self.used: set[Copy] = set()  # copy cgroups this pmond has started a process in (the others: see killed)
        if cfg.trees in ("auto", "cgroup"):
            self.base = self._cgroup_base(cfg)
            if self.base is None and cfg.trees == "cgroup":
                log.error("trees: cgroup requested but pmond cannot create cgroups here; using sessions")
        self.mode = "cgroup" if self.base is not None else "session"
        # clone3(CLONE_INTO_CGROUP): the child is born in its cgroup. Where the kernel or a seccomp filter
        # refuses clone3, the child moves itself in before exec instead, which can cost the kernel an RCU grace
        # period (~10 ms) per start on an idle machine.
        self.born_in_cgroup = True
        log.info("process trees: %s%s", self.mode, f" under {self.base}" if self.base else "")

    @staticmethod
    def _cgroup_base(cfg: Config) -> Optional[str]:
        mount, own = cgroup2_mount(), own_cgroup()
        if mount is None or own is None:
            return None
        name = "pmon3" + (f"_{cfg.name_suffix}" if cfg.name_suffix else "")
        parts = own.strip("/").split("/")
        if parts[-2:] == [name, DAEMON_LEAF]:  # pmond moved itself there to pass controllers down (delegate)
            own = "/" + "/".join(parts[:-2])
        base = os.path.join(mount, own.lstrip("/"), name)
        try:
            os.makedirs(base, mode=0o755, exist_ok=True)
            probe = os.path.join(base, f"probe-{os.getpid()}")
            os.mkdir(probe)
            os.rmdir(probe)
            if not os.path.exists(os.path.join(base, "cgroup.kill")):
                return None  # kernel < 5.14: no way to end a tree at once
        except OSError as exc:
            log.debug("no cgroups for process trees: %s", exc)
            return None
        return base

    def copies(self) -> list[Copy]:
        """Every copy tree our cgroup holds, a previous pmond's included (cgroup mode; none in session mode)."""
        if self.base is None:
            return []
        found: list[Copy] = []
        try:
            entries = os.listdir(self.base)
        except OSError:
            return []
        for entry in sorted(entries):
            if entry[:1] == "p" and entry[1:].isdigit():
                found += [
                    (int(entry[1:]), leaf) for leaf in LEAVES if os.path.isdir(os.path.join(self.base, entry, leaf))
                ]
        return found

    def path(self, copy: Copy) -> Optional[str]:
        return os.path.join(self.base, f"p{copy[0]}", copy[1]) if self.base else None

    # -- accounting and limits (cgroup mode) -------------------------------------------------------------
    def cpu_usec(self, copy: Copy) -> Optional[int]:
        """CPU time of everything that ever ran in the copy's cgroup (cpu.stat usage_usec: there without any
        controller); None in session mode."""
        path = self.path(copy)
        return read_stat(os.path.join(path, "cpu.stat"), b"usage_usec") if path else None

    def oom_kills(self, copy: Copy) -> Optional[int]:
        """memory.events oom_kill of the copy's cgroup; None without the memory controller there."""
        path = self.path(copy)
        return read_stat(os.path.join(path, "memory.events"), b"oom_kill") if path else None

    def memory_current(self, copy: Copy) -> Optional[int]:
        """memory.current of the copy's cgroup (the memory controller's own count for the whole tree)."""
        path = self.path(copy)
        if path is None:
            return None
        try:
            with open(os.path.join(path, "memory.current")) as fh:
                return int(fh.read())
        except (OSError, ValueError):
            return None

    def require(self, controllers: set[str]) -> None:
        """Make sure `controllers` can be used for per-process limits, or raise CgroupError saying why not."""
        if not controllers:
            return
        if self.base is None:
            raise CgroupError(
                "pmond tracks process trees by session here (it cannot create cgroups), so it has no cgroup to "
                "put the limit on"
            )
        mount = cgroup2_mount() or "/"
        delegate(mount, self.base, controllers, os.getpid())

    def apply_limits(self, copy: Copy, limits: dict[str, str]) -> None:
        """Write the process's cgroup limits (CGROUP_LIMITS keys -> file values) into its copy cgroup before a
        spawn; a limit no longer asked for goes back to `max`. Raises CgroupError."""
        path = self.path(copy)
        if path is None:
            if limits:
                self.require({CGROUP_LIMITS[k][0] for k in limits})
            return
        wanted = {CGROUP_LIMITS[k][0] for k in limits}
        if wanted:
            self.require(wanted)
            parent = os.path.dirname(path)
            os.makedirs(path, mode=0o755, exist_ok=True)
            enable_in(parent, wanted)
        for key, (_controller, name) in CGROUP_LIMITS.items():
            file = os.path.join(path, name)
            if key not in limits and not os.path.exists(file):
                continue
            try:
                _write(file, limits.get(key, "max"))
            except OSError as exc:
                raise CgroupError(f"cannot set {name} of {path}: {exc.strerror}") from None

    def leaf_of(self, process_id: int, pid: int) -> str:
        """Which copy cgroup a live process is in (adoption): from /proc/<pid>/cgroup."""
        if self.base is not None:
            try:
                with open(f"/proc/{pid}/cgroup") as fh:
                    for line in fh:
                        if line.startswith("0::"):
                            leaf = line.strip().rsplit("/", 1)[-1]
                            if f"/p{process_id}/" in line and leaf in LEAVES:
                                return leaf
            except OSError:
                pass
        return LEAVES[0]

    # -- spawning ----------------------------------------------------------------------------------------
    def spawn_fds(self, copy: Copy) -> dict[str, Any]:
        """What spawn needs so that the child is born in its tree: a descriptor the caller closes right after
        the spawn. pmond keeps none per process (at 10,000 processes the descriptors left are one pidfd
        each): opening the cgroup directory costs ~12 us per start (docs/scale.md)."""
        if self.base is None:
            return {}
        path = self.path(copy)
        assert path is not None
        procs = not self.born_in_cgroup
        if self.born_in_cgroup and copy not in self.used and os.path.isdir(path):
            self.killed.add(copy)  # a previous pmond's cgroup: it may have ended it with cgroup.kill, so renew it
        if copy in self.killed:
            self._renew(copy)
            procs = procs or copy in self.killed  # not renewed: enter it before exec (cgroup.kill spares that)
        for attempt in (1, 2):
            try:
                if procs:
                    fds = {"cgroup_procs_fd": os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)}
                else:
                    fds = {"cgroup_fd": os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)}
                self.used.add(copy)
                return fds
            except FileNotFoundError:
                if attempt == 2:
                    raise
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                try:
                    os.mkdir(path, 0o755)
                except FileExistsError:
                    pass
        raise AssertionError("unreachable")

    def _renew(self, copy: Copy) -> None:
        """A fresh cgroup in place of one that cgroup.kill ended (empty by now: a restart waits for that)."""
        path = self.path(copy)
        assert path is not None
        try:
            os.rmdir(path)
            self.killed.discard(copy)
        except FileNotFoundError:
            self.killed.discard(copy)
        except OSError as exc:  # still populated: this start enters it the slow way, which is not affected
            log.warning("cannot renew %s (%s): the child enters it before exec", path, exc)

    def no_clone3(self) -> None:
        """clone3 is refused here (ENOSYS): from now on children move themselves into their cgroup."""
        log.warning("clone3 into a cgroup is not available: children enter their cgroup before exec instead")
        self.born_in_cgroup = False

    # -- state -------------------------------------------------------------------------------------------
    def populated(self, copy: Copy, leader: int) -> bool:
        """Whether anything of the tree is alive (a zombie leader does not count)."""
        if self.base is None:
            return bool(self.members(copy, leader))
        path = self.path(copy)
        assert path is not None
        try:
            fd = os.open(os.path.join(path, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            return b"populated 1" in os.read(fd, 256)
        finally:
            os.close(fd)

    def members(self, copy: Copy, leader: int) -> set[int]:
        if self.base is None:
            return self._session_members(copy, leader)
        path = self.path(copy)
        assert path is not None
        try:
            return {int(pid) for pid in read_small(os.path.join(path, "cgroup.procs")).split()}
        except FileNotFoundError:
            return set()

    def _session_members(self, copy: Copy, leader: int) -> set[int]:
        seen = self.seen.setdefault(copy, {})
        for pid, fd in list(seen.items()):
            if _exited(fd):
                os.close(fd)
                del seen[pid]
        members = session_tree(leader, frozenset(seen)) if leader or seen else set()
        for pid in members - set(seen):
            try:
                seen[pid] = _native.pidfd_open(pid)
            except OSError:
                continue
        return members

    def adopted(self, copy: Copy, leader: int, pidfd: int) -> None:
        """Session mode: an adopted leader is no longer pmond's descendant; held by pidfd as a member seen, it
        and so its descendants (a child that called setsid included) stay part of its tree."""
        if self.base is None:
            self.seen.setdefault(copy, {})[leader] = os.dup(pidfd)

    def describe(self, copy: Copy) -> str:
        return f"cgroup {self.path(copy)}" if self.base else "session (+ subreaper)"

    # -- ending ------------------------------------------------------------------------------------------
    def signal(self, copy: Copy, leader: int, sig: int) -> set[int]:
        """`sig` to every process of the tree (SIGKILL through cgroup.kill, which races no fork); the pids
        signalled one by one (none for cgroup.kill)."""
        if self.base is not None and sig == signal.SIGKILL:
            path = self.path(copy)
            assert path is not None
            try:
                with open(os.path.join(path, "cgroup.kill"), "w") as fh:
                    fh.write("1")
                self.killed.add(copy)
            except FileNotFoundError:
                pass
            return set()
        sent = set()
        for pid in self.members(copy, leader):
            try:
                os.kill(pid, sig)
                sent.add(pid)
            except ProcessLookupError:
                pass
        return sent

    async def wait_gone(self, copy: Copy, leader: int, timeout: float) -> bool:
        """Until nothing of the tree is alive (True) or `timeout` passes (False)."""
        deadline = time.monotonic() + timeout
        if self.base is None:
            return await self._wait_session_gone(copy, leader, deadline)
        wd = self._watch(copy)
        try:
            while self.populated(copy, leader):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                fut = self.loop.create_future()
                if wd is not None:
                    self.watchers[wd] = fut
                try:
                    # inotify wakes us when cgroup.events changes; the bound covers a missed event
                    await asyncio.wait_for(fut, min(left, 1.0 if wd is not None else 0.05))
                except asyncio.TimeoutError:
                    pass
            return True
        finally:
            if wd is not None:
                self.watchers.pop(wd, None)
                self._unwatch(wd)

    async def _wait_session_gone(self, copy: Copy, leader: int, deadline: float) -> bool:
        """Each member's pidfd says when it is gone; members started meanwhile are found by the next scan."""
        while True:
            members = self._session_members(copy, leader)
            if not members:
                return True
            pidfds = []
            for pid in members:
                try:
                    pidfds.append(_native.pidfd_open(pid))
                except OSError:
                    continue
            try:
                for fd in pidfds:
                    left = deadline - time.monotonic()
                    if left <= 0 or not await _readable(self.loop, fd, left):
                        return False
            finally:
                for fd in pidfds:
                    os.close(fd)

    def _watch(self, copy: Copy) -> Optional[int]:
        path = self.path(copy)
        assert path is not None
        try:
            if self.inotify is None:
                self.inotify = _native.Inotify()
                self.loop.add_reader(self.inotify.fileno(), self._events)
            return self.inotify.add_watch(os.path.join(path, "cgroup.events"), _native.IN_MODIFY)
        except OSError as exc:
            log.debug("cannot watch %s: %s", path, exc)
            return None

    def _unwatch(self, wd: int) -> None:
        if self.inotify is not None:
            try:
                self.inotify.rm_watch(wd)
            except OSError:
                pass

    def _events(self) -> None:
        assert self.inotify is not None
        try:
            events = self.inotify.read()
        except OSError:
            return
        for wd, _mask, _cookie, _name in events:
            fut = self.watchers.get(wd)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def release(self, process_id: int) -> None:
        """The row is gone: its cgroups go too (once empty)."""
        for leaf in LEAVES:
            self.used.discard((process_id, leaf))
            for fd in self.seen.pop((process_id, leaf), {}).values():
                os.close(fd)
        if self.base is None:
            return
        parent = os.path.join(self.base, f"p{process_id}")
        for path in [os.path.join(parent, leaf) for leaf in LEAVES] + [parent]:
            try:
                os.rmdir(path)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.warning("could not remove %s: %s", path, exc)

    def close(self) -> None:
        if self.inotify is not None:
            self.loop.remove_reader(self.inotify.fileno())
            self.inotify.close()
            self.inotify = None


def _exited(pidfd: int) -> bool:
    """A pidfd is readable once its process has exited (poll: any descriptor number, unlike select)."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(0))


async def _readable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float) -> bool:
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await asyncio.wait_for(fut, timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
