"""Resident memory and CPU of whole process trees, for many processes at once (metrics, max_memory).

cgroup mode: a tree's members are its cgroup's `cgroup.procs` (one read per process), its CPU the cgroup's
`cpu.stat` usage_usec (every run in either copy cgroup: a true counter). Session mode: one pass over /proc
reads every process's stat once, and the trees of all leaders are found in that one table; CPU is then what
the live members used (user + system, with the children they waited for), so it only covers the current run.
RSS is the sum of the members' resident set (shared pages count once per member, as `ps` shows them).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Optional

from .trees import LEAVES, Copy, Trees, read_small

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class TreeUsage:
    rss: int = 0  # bytes
    cpu: Optional[float] = None  # seconds: every run (cgroup mode) or the live members' (session mode)
    members: int = 0


def _stat(pid: int) -> Optional[tuple[int, int, int, int]]:
    """(ppid, session, rss pages, cpu ticks with waited-for children) of a live process."""
    try:
        fields = read_small(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] in (b"Z", b"X"):
        return None
    try:
        cpu = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        return int(fields[1]), int(fields[3]), int(fields[21]), cpu
    except (IndexError, ValueError):
        return None


def sample(
    trees: Trees, leaders: dict[int, tuple[int, Copy]], absent: Optional[set[Copy]] = None
) -> dict[int, TreeUsage]:
    """{process id: (leader pid, copy)} of live processes -> their trees' usage (`absent`: see cgroup_cpu)."""
    if not leaders:
        return {}
    if trees.base is not None:
        out: dict[int, TreeUsage] = {}
        for process_id, (leader, copy) in leaders.items():
            u = TreeUsage()
            for pid in trees.members(copy, leader) or {leader}:
                st = _stat(pid)
                if st is not None:
                    u.rss += st[2] * PAGE
                    u.members += 1
            u.cpu = cgroup_cpu(trees, process_id, absent)
            out[process_id] = u
        return out
    return _session_sample(leaders)


def cgroup_cpu(trees: Trees, process_id: int, absent: Optional[set[Copy]] = None) -> Optional[float]:
    """CPU seconds of everything that ran in the process's copy cgroups (cgroup mode), else None. `absent`
    remembers copy cgroups that do not exist (most processes never had a second copy): not looked for again
    until pmond creates them."""
    total, seen = 0, False
    for leaf in LEAVES:
        copy = (process_id, leaf)
        if absent is not None and copy in absent:
            if copy not in trees.used:
                continue
            absent.discard(copy)
        usec = trees.cpu_usec(copy)
        if usec is None and absent is not None:
            absent.add(copy)
        if usec is not None:
            total, seen = total + usec, True
    return total / 1e6 if seen else None


def _session_sample(leaders: dict[int, tuple[int, Copy]]) -> dict[int, TreeUsage]:
    table: dict[int, tuple[int, int, int, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                table[int(name)] = st
    children: dict[int, list[int]] = {}
    by_session: dict[int, list[int]] = {}
    for pid, (ppid, sid, _rss, _cpu) in table.items():
        children.setdefault(ppid, []).append(pid)
        by_session.setdefault(sid, []).append(pid)
    out: dict[int, TreeUsage] = {}
    for process_id, (leader, _copy) in leaders.items():
        members = _tree(leader, by_session.get(leader, []), children)
        u = TreeUsage(cpu=0.0)
        for pid in members:
            st = table.get(pid)
            if st is not None:
                u.rss += st[2] * PAGE
                u.cpu = (u.cpu or 0.0) + st[3] / TICK
                u.members += 1
        out[process_id] = u
    return out


def _tree(leader: int, session: Iterable[int], children: dict[int, list[int]]) -> set[int]:
    members = {leader, *session}
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members
