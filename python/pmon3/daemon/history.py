"""The history of exits: every end of a supervised process, what it cost and what pmond did next.

The supervisor hands over a record the moment it has decided (and, on the hot path, after the new process has
been spawned): `record()` only appends to a list. The rest happens FLUSH_DELAY later in one callback for
everything that ended meanwhile (`flush`): the cgroup's CPU counter and OOM evidence are read, the record
becomes the process's last exit (desc, metrics), the hooks waiting for it fire, and the batch is written in one
transaction, trimmed to `history.retain` rows per process.

CPU seconds: in cgroup mode the tree's, from the copy cgroup's `cpu.stat` usage_usec (there without any
controller) minus its value at the previous look; else wait4's user + system time (the leader and the children
it waited for). Peak RSS: wait4's ru_maxrss (same scope), but only when it is above pmond's own peak: the child
is spawned vfork-style and the kernel keeps the high-water mark of pmond's memory it shared until exec, so a
smaller peak is not known (null). The cgroup's memory.peak is not used, a copy cgroup serves many runs.

Whether the kernel's OOM killer did it (OomWatch): the cgroup's memory.events `oom_kill` where the memory
controller is on; else the kernel log (/dev/kmsg, readable by root outside ProtectKernelLogs), which names the
pid it killed; else only that the machine's OOM kill count (/proc/vmstat oom_kill) rose while the process
ran: `oom_kill` null, source `vmstat`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
import resource
import signal
import time
from typing import Callable, Optional

from ..models import ExitInfo, ExitRecord
from ..store import Store, StoreWriteError
from .trees import Copy, Trees, read_small

log = logging.getLogger("pmond.history")

_KILLED = re.compile(rb"Killed process (\d+) ")
KMSG_MEMORY = 4096  # OOM kills remembered (pid -> when seen)
# Records are completed and written this long after the first exit of a batch. A restarted program often shares
# pmond's CPU until its main(): work pmond does right after the spawn delays it. Done in a callback at once, the
# history cost +0.2-0.5 ms on the median kill -> main() against main (benches/latency_ab.py, paired kills);
# 5 or 50 ms later, nothing measurable. Hooks that carry the record wait as long; a query completes it at once.
FLUSH_DELAY = 0.05


def _own_pid_namespace_is_init() -> bool:
    """Pids in the kernel log are the initial namespace's: only comparable with ours when we live there."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return len(line.split()) == 2
    except OSError:
        pass
    return False


def _own_peak() -> int:
    """pmond's own peak resident memory (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def vmstat_oom_kills() -> Optional[int]:
    """The machine's OOM kills since boot (/proc/vmstat oom_kill; one read and a search, ~10 us)."""
    try:
        data = read_small("/proc/vmstat")
        at = data.index(b"\noom_kill ") + 10
        return int(data[at : data.index(b"\n", at)])
    except (OSError, ValueError):
        return None


class OomWatch:
    """Who the kernel's OOM killer killed, from /dev/kmsg (read as the kernel logs, never polled)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fd = -1
        self.killed: dict[int, float] = {}  # pid -> monotonic time we read the kernel's line
        if os.geteuid() != 0 or not _own_pid_namespace_is_init():
            return
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            os.lseek(self.fd, 0, os.SEEK_END)  # only what is logged from now on
            loop.add_reader(self.fd, self.drain)
        except OSError as exc:  # e.g. ProtectKernelLogs=yes, a container without it
            log.debug("no kernel log for OOM kills: %s", exc)
            if self.fd >= 0:
                os.close(self.fd)
            self.fd = -1

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def drain(self) -> None:
        while self.fd >= 0:
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:  # records were overwritten before we read them: go on with the next
                continue
            except OSError:
                return
            if not record:
                return
            if b"Killed process" in record:
                m = _KILLED.search(record)
                if m:
                    self.killed[int(m.group(1))] = time.monotonic()
                    if len(self.killed) > KMSG_MEMORY:
                        del self.killed[next(iter(self.killed))]

    def killed_since(self, pid: int, since: float) -> bool:
        self.drain()
        seen = self.killed.get(pid)
        return seen is not None and seen >= since

    def close(self) -> None:
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1


@dataclasses.dataclass
class _Pending:
    record: ExitRecord
    copy: Copy
    started: float  # monotonic start of the run


class History:
    def __init__(self, store: Store, trees: Trees, loop: asyncio.AbstractEventLoop, retain: Callable[[], int]) -> None:
        self.store = store
        self.trees = trees
        self.loop = loop
        self.retain = retain
        self.oom = OomWatch(loop)
        self.pending: list[_Pending] = []
        self.waiting: list[Callable[[], None]] = []  # run once the pending records are final (hooks)
        self.scheduled = False
        self.last: dict[int, ExitRecord] = {}  # each process's newest exit
        self.reasons: dict[int, dict[str, int]] = {}  # exits per reason since pmond started (metrics)
        self.ended_cpu: dict[int, float] = {}  # CPU seconds of ended runs since pmond started (metrics)
        self.counts: dict[int, int] = store.exit_counts()  # rows stored per process
        self.cpu_base: dict[Copy, int] = {}  # cgroup usage_usec at the last look
        self.oom_base: dict[Copy, int] = {}  # cgroup memory.events oom_kill at the last look
        self.vmstat_base: dict[int, int] = {}  # the machine's OOM kill count when the process last started
        self.write_failed = False  # the last write failed (disk full): said once until one works

    # -- the supervisor's side ------------------------------------------------------------------------------
    def started(self, copy: Copy) -> None:
        """A copy is about to start or was adopted (not the hot path: a respawn keeps what the exit read)."""
        usage = self.trees.cpu_usec(copy)
        # a counter lower than the last look: the copy cgroup was renewed (trees: after cgroup.kill)
        if usage is not None and (copy not in self.cpu_base or usage < self.cpu_base[copy]):
            self.cpu_base[copy] = usage
        kills = self.trees.oom_kills(copy)
        if kills is not None and (copy not in self.oom_base or kills < self.oom_base[copy]):
            self.oom_base[copy] = kills
        if not self.oom.available and copy not in self.oom_base:
            count = vmstat_oom_kills()
            if count is not None:
                self.vmstat_base[copy[0]] = count

    def record(
        self,
        *,
        process_id: int,
        owner: int,
        name: str,
        copy: Copy,
        started: float,
        ended: float,
        info: ExitInfo,
        detected: str,
        reason: str,
        action: str,
        delay_ms: Optional[float] = None,
        note: str = "",
    ) -> ExitRecord:
        """Queue one exit; it is completed and written in a loop callback, after whatever is being done now.
        The record returned may still be amended until then."""
        child = detected != "adopted"
        rec = ExitRecord(
            process_id=process_id,
            owner=owner,
            name=name,
            time=time.time() - (time.monotonic() - ended),
            pid=info.pid,
            code=info.code,
            signal=info.signal,
            core_dumped=info.core_dumped,
            detected=detected,
            uptime=max(0.0, ended - started),
            reason=reason,
            action=action,
            delay_ms=delay_ms,
            peak_rss=info.max_rss_kib * 1024 if child and info.max_rss_kib else None,
            cpu_seconds=info.user_cpu + info.system_cpu if child and (info.code is not None or info.signal) else None,
            note=note,
        )
        self.pending.append(_Pending(rec, copy, started))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_later(FLUSH_DELAY, self.flush)
        return rec

    def when_final(self, fn: Callable[[], None]) -> None:
        """Run `fn` once the queued records are complete (at once when none is queued)."""
        if self.pending:
            self.waiting.append(fn)
        else:
            fn()

    def forget(self, process_id: int) -> None:
        """The process is deleted (the store deletes its rows with it)."""
        self.pending = [p for p in self.pending if p.record.process_id != process_id]
        self.last.pop(process_id, None)
        self.reasons.pop(process_id, None)
        self.ended_cpu.pop(process_id, None)
        self.counts.pop(process_id, None)
        self.vmstat_base.pop(process_id, None)
        for copy in [c for c in self.cpu_base if c[0] == process_id]:
            del self.cpu_base[copy]
        for copy in [c for c in self.oom_base if c[0] == process_id]:
            del self.oom_base[copy]

    # -- completing and writing -----------------------------------------------------------------------------
    def _complete(self, item: _Pending, vmstat: Optional[int]) -> ExitRecord:
        """`vmstat`: the machine's OOM kill count now, read once per batch when the kernel log is not ours."""
        rec, copy = item.record, item.copy
        if rec.peak_rss is not None and rec.peak_rss <= _own_peak():
            # A child spawned vfork-style shares pmond's memory until exec, and wait4's ru_maxrss keeps that
            # memory's high-water mark: a value not above pmond's own peak may be pmond's, not the child's.
            rec.peak_rss = None
        usage = self.trees.cpu_usec(copy)
        if usage is not None:
            base = self.cpu_base.get(copy)
            if base is not None and usage >= base:
                rec.cpu_seconds = (usage - base) / 1e6  # the whole tree's (plus the new copy's first moments)
            self.cpu_base[copy] = usage
        kills = self.trees.oom_kills(copy)
        if rec.signal == signal.SIGKILL and rec.reason == "signal":
            rec.oom_kill, rec.oom_source = self._oom_verdict(rec, copy, item.started, kills, vmstat)
            if rec.oom_kill:
                rec.reason = "oom"
        if kills is not None:
            self.oom_base[copy] = kills
        elif vmstat is not None:
            self.vmstat_base[copy[0]] = vmstat  # the baseline of the run that follows
        return rec

    def _oom_verdict(
        self, rec: ExitRecord, copy: Copy, started: float, kills: Optional[int], vmstat: Optional[int]
    ) -> tuple[Optional[bool], str]:
        if kills is not None:
            base = self.oom_base.get(copy)
            if base is not None:
                return kills > base, "cgroup"
        if self.oom.available:
            return self.oom.killed_since(rec.pid, started), "kmsg"
        base = self.vmstat_base.get(copy[0])
        if vmstat is not None and base is not None and vmstat > base:
            return None, "vmstat"
        return None, ""

    def flush(self) -> None:
        self.scheduled = False
        if not self.pending:
            return
        items, self.pending = self.pending, []
        records = []
        vmstat = None if self.oom.available else vmstat_oom_kills()  # /proc/vmstat is slow to read: once
        for item in items:
            try:
                rec = self._complete(item, vmstat)
            except Exception:  # a record must never take supervision down
                log.exception("completing an exit record failed")
                rec = item.record
            records.append(rec)
            self.last[rec.process_id] = rec
            counts = self.reasons.setdefault(rec.process_id, {})
            counts[rec.reason] = counts.get(rec.reason, 0) + 1
            if rec.cpu_seconds:
                self.ended_cpu[rec.process_id] = self.ended_cpu.get(rec.process_id, 0.0) + rec.cpu_seconds
        waiting, self.waiting = self.waiting, []
        for fn in waiting:
            try:
                fn()
            except Exception:
                log.exception("a callback after an exit record failed")
        keep = self.retain()
        if keep <= 0:
            return
        try:
            self.store.add_exits(records)
            over = set()
            for rec in records:
                n = self.counts[rec.process_id] = self.counts.get(rec.process_id, 0) + 1
                if n > keep:
                    over.add(rec.process_id)
            for process_id in over:  # one indexed DELETE per process and batch
                self.store.trim_exits(process_id, keep)
                self.counts[process_id] = keep
            self.write_failed = False
        except StoreWriteError as exc:  # disk full: the records are lost, supervision goes on; said once
            if not self.write_failed:
                log.error("exits not recorded in the history: %s", exc.message)
            self.write_failed = True
        except Exception:
            log.exception("writing %d exit records failed", len(records))

    # -- reading --------------------------------------------------------------------------------------------
    def last_exit(self, process_id: int) -> Optional[ExitRecord]:
        """The newest exit: since pmond started, else the newest stored one."""
        if self.pending:
            self.flush()
        rec = self.last.get(process_id)
        if rec is None and self.retain() > 0:
            stored = self.store.exits([process_id], 1)
            if stored:
                rec = self.last[process_id] = stored[0]
        return rec

    def query(self, process_ids: Optional[list[int]], limit: int) -> list[ExitRecord]:
        self.flush()
        if process_ids is not None and not process_ids:
            return []
        return self.store.exits(process_ids, max(1, min(limit, max(self.retain(), 1) * 100)))

    def close(self) -> None:
        self.flush()
        self.oom.close()
