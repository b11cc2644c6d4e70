#!/usr/bin/env python3
"""pmon3 benchmarks, side by side with supervisord, a C reference supervisor and PM2 (see benches/README.md).

    python benches/run.py            # full run (make bench)
    python benches/run.py --quick    # the short profile (make bench-quick)
    python benches/run.py --only latency,cold,cli
    python benches/run.py --only reload --quick

Every scenario drives whole daemons through their real CLIs (`pmon3`, `supervisorctl`, `pm2`), alternating
pmon3 and its peers (A B A B ...). supervisord is installed from PyPI into benches/.venv-peer. The C
reference (benches/cref/cref.c, built with cc -O2 into a temp dir) joins the restart-latency rounds and
the cold-start scenario; with root and tracefs, a traced pass breaks pmon3's and C's restarts down. The
reload scenario compares zero-downtime reloads under HTTP load with PM2 7 in cluster mode, the same Node
server on both (benches/reload/server.js); PM2 comes from the vendored node_modules tarball ($PM2_TARBALL,
else shared/vendor/ beside the checkout), unpacked into a temp dir with its own PM2_HOME.
Each daemon runs isolated in its own temp directory and is stopped (SIGTERM, with a deadline; `pm2 kill`)
at the end. Results: a table on stdout and the raw samples in benches/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PEER_VENV = HERE / ".venv-peer"
PEER_REQUIREMENT = "supervisor==4.3.0"

# pmon3's tools: the venv this script runs in (make bench uses .venv/bin/python), else ROOT/.venv.
_BIN = Path(sys.prefix) / "bin"
if not (_BIN / "pmon3").exists():
    _BIN = ROOT / ".venv" / "bin"
PMON3 = str(_BIN / "pmon3")
PMOND = str(_BIN / "pmond")
PMON3_PY = str(_BIN / "python")
SUPERVISORD = str(PEER_VENV / "bin" / "supervisord")
SUPERVISORCTL = str(PEER_VENV / "bin" / "supervisorctl")

CLK_TCK = os.sysconf("SC_CLK_TCK")
_counter = itertools.count(1)
# --pmond-conf: YAML lines appended to every pmond's config.yml (e.g. "history: {retain: 0}" to compare)
EXTRA_PMOND_CONF = ""

PROFILES = {
    # kills per daemon (and in the traced breakdown pass); spawn sizes with (reps of b: sequential CLI,
    # reps of a: daemon boot); cold start sizes with reps (pmon3 vs C); CLI runs; idle window seconds;
    # native spawn iterations; reloads per set-up and the set-ups (pmon3 vs PM2, RELOAD_SETUPS).
    "full": {
        "kills": 60,
        "trace_kills": 60,
        "spawn": [(100, 3, 5), (1000, 1, 3)],
        "cold": [(100, 5), (1000, 3)],
        "cli_runs": 30,
        "idle_s": 10.0,
        "spawn_iters": 2000,
        "reloads": 10,
        "reload_setups": ["web1", "web2", "web1l"],
    },
    "quick": {
        "kills": 30,
        "trace_kills": 30,
        "spawn": [(100, 1, 1)],
        "cold": [(100, 3)],
        "cli_runs": 5,
        "idle_s": 5.0,
        "spawn_iters": 500,
        "reloads": 4,
        "reload_setups": ["web1", "web2"],
    },
}


# ----------------------------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def summary(samples: list[float]) -> dict:
    s = sorted(samples)
    if not s:
        return {"n": 0}
    p90 = s[min(len(s) - 1, max(0, -(-len(s) * 9 // 10) - 1))]  # nearest rank
    return {"n": len(s), "median": statistics.median(s), "p90": p90, "min": s[0], "max": s[-1]}


def timed(
    cmd: list[str], env: Optional[dict] = None, timeout: float = 120
) -> tuple[float, subprocess.CompletedProcess]:
    """Run one CLI call; (wall seconds, CompletedProcess)."""
    t0 = time.perf_counter()
    cp = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return time.perf_counter() - t0, cp


def poll_until(check: Callable[[], bool], timeout: float, what: str) -> float:
    """Call `check` (itself a CLI call: no sleeping between attempts) until true; seconds taken."""
    t0 = time.perf_counter()
    end = t0 + timeout
    while True:
        if check():
            return time.perf_counter() - t0
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def children_of(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
    return kids


def stop_daemon(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM (the daemon stops its children gracefully) and wait; SIGKILL everything past the deadline."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"daemon {proc.pid} ignored SIGTERM for {timeout} s: killing it and its children")
        for kid in children_of(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(kid, signal.SIGKILL)
        proc.kill()
        proc.wait(10)


def remove_cgroups(conf: Path) -> None:
    """The cgroup tree a stopped pmond keeps for its next start (empty by now), of a bench pmond."""
    from pmon3.daemon import trees

    suffix = re.search(r"name_suffix: (\w+)", conf.read_text()) if conf.exists() else None
    mount, own = trees.cgroup2_mount(), trees.own_cgroup()
    if suffix and mount and own:
        for path, _dirs, _files in os.walk(os.path.join(mount, own.lstrip("/"), f"pmon3_{suffix[1]}"), topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(path)


class LineReader:
    """Reads newline-terminated records from a FIFO opened O_RDWR (never sees EOF), with deadlines."""

    def __init__(self, path: Path):
        self.path = path
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self.buf = b""

    def readline(self, timeout: float) -> bytes:
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the stamp child")
            if select.select([self.fd], [], [], left)[0]:
                self.buf += os.read(self.fd, 4096)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def close(self) -> None:
        os.close(self.fd)


# ----------------------------------------------------------------------------------------------
# restart stamps: what the kernel saw (ftrace) and what the supervisors say (PMON3_TRACE, cref -t)

TRACEFS = Path("/sys/kernel/tracing")
_FTRACE_LINE = re.compile(
    r"^\s*.*-(?P<tid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S+\s+(?P<s>\d+)\.(?P<us>\d{6}):\s+(?P<ev>\w+)(?P<rest>.*)$"
)


class KernelTrace:
    """Tracepoints of a restart, recorded in a private tracefs instance (root only).

    The instance's clock is `mono`, i.e. CLOCK_MONOTONIC like the bench's kill stamps and stamp.c
    (printed with µs resolution). In-kernel filters keep only the supervisors' own syscalls (epoll
    returns and entries, wait4/waitid and clone/clone3), their forks and where the kernel first puts the
    new child (sched_wakeup_new), SIGCHLD sent to them, and the exit and exec of stamp children.
    Enabling syscall tracepoints makes every syscall on the machine take the slow path while the pass
    runs, which is why the headline latencies come from an untraced pass.
    """

    SUPERVISOR_SYSCALLS = (
        "sys_exit_epoll_wait",
        "sys_exit_epoll_pwait",
        "sys_exit_epoll_pwait2",
        "sys_enter_wait4",
        "sys_enter_waitid",
        "sys_enter_clone",
        "sys_enter_clone3",
        "sys_exit_clone",
        "sys_exit_clone3",
        "sys_enter_epoll_wait",
        "sys_enter_epoll_pwait",
        "sys_enter_epoll_pwait2",
    )
    OTHER_EVENTS = (
        "sched/sched_process_fork",
        "sched/sched_wakeup_new",
        "sched/sched_process_exec",
        "sched/sched_process_exit",
    )

    def __init__(self, pids: list[int], stamp: Path):
        self.dir = TRACEFS / "instances" / f"pmon3-bench-{os.getpid()}"
        # every thread of the supervisors: pmond restarts from its respawn thread (rust/respawn.rs)
        self.pids = [int(t) for p in pids for t in sorted(os.listdir(f"/proc/{p}/task"))]
        self.stamp = stamp
        # new child pid -> (CPU its supervisor forked it on, CPU it was first queued on)
        self.placement: dict[int, tuple[int, int]] = {}
        self.forker: dict[int, int] = {}  # new child pid -> the supervisor thread that forked it

    @classmethod
    def unavailable(cls) -> Optional[str]:
        """Why this machine cannot trace (None: it can)."""
        if not (TRACEFS / "instances").is_dir():
            return f"no tracefs instances under {TRACEFS}"
        if not os.access(TRACEFS / "instances", os.W_OK):
            return f"{TRACEFS} is not writable (run as root for the breakdown)"
        events = [f"syscalls/{e}" for e in cls.SUPERVISOR_SYSCALLS] + [*cls.OTHER_EVENTS, "signal/signal_generate"]
        missing = [e for e in events if not (TRACEFS / "events" / e).is_dir()]
        return f"tracepoints missing: {', '.join(missing)}" if missing else None

    def _set(self, rel: str, value: str) -> None:
        (self.dir / rel).write_text(value + "\n")

    def start(self) -> None:
        self.dir.mkdir()
        self._set("trace_clock", "mono")
        self._set("buffer_size_kb", "4096")
        mine = " || ".join(f"common_pid == {p}" for p in self.pids)
        filters = {f"syscalls/{e}": mine for e in self.SUPERVISOR_SYSCALLS}
        filters["sched/sched_process_fork"] = " || ".join(f"parent_pid == {p}" for p in self.pids)
        comms = {Path(f"/proc/{p}/comm").read_text().strip() for p in self.pids}  # a new child has its parent's
        filters["sched/sched_wakeup_new"] = " || ".join(f'comm == "{c}"' for c in sorted(comms))
        filters["sched/sched_process_exec"] = f'filename == "{self.stamp}"'
        filters["sched/sched_process_exit"] = 'comm == "stamp"'
        filters["signal/signal_generate"] = f"sig == 17 && ({' || '.join(f'pid == {p}' for p in self.pids)})"
        for event, flt in filters.items():
            self._set(f"events/{event}/filter", flt)
            self._set(f"events/{event}/enable", "1")

    def records(self) -> list[tuple[int, str, int]]:
        """Stop recording; (ns, kind, pid) of every event, kind one of exit (pid: the dying child), notify
        (SIGCHLD sent by the dying child), wake (a supervisor's epoll_wait returns), sleep (it enters
        epoll_wait), reap (wait4/waitid entry), clone (clone/clone3 entry), cloned (clone returns in the
        supervisor: with CLONE_VFORK once the child has let go of its memory in execve), fork (pid: the new
        child), exec (pid: the new child)."""
        self._set("tracing_on", "0")
        out = []
        forked_on: dict[int, int] = {}
        queued_on: dict[int, int] = {}
        for line in (self.dir / "trace").read_text().splitlines():
            m = _FTRACE_LINE.match(line)
            if not m:
                continue
            ns = int(m["s"]) * 1_000_000_000 + int(m["us"]) * 1000
            ev, rest, tid = m["ev"], m["rest"], int(m["tid"])
            if ev == "sched_process_exit":
                out.append((ns, "exit", tid))
            elif ev == "signal_generate":
                out.append((ns, "notify", tid))
            elif ev == "sched_process_fork":
                child = re.search(r"child_pid=(\d+)", rest)
                if child:
                    out.append((ns, "fork", int(child[1])))
                    forked_on[int(child[1])] = int(m["cpu"])
                    self.forker[int(child[1])] = tid
            elif ev == "sched_wakeup_new":
                new = re.search(r"\bpid=(\d+).*target_cpu=(\d+)", rest)
                if new:
                    queued_on[int(new[1])] = int(new[2])
            elif ev == "sched_process_exec":
                out.append((ns, "exec", tid))
            elif ev.startswith("sys_epoll"):
                out.append((ns, "wake" if rest.lstrip().startswith("->") else "sleep", tid))
            elif ev in ("sys_wait4", "sys_waitid") and rest.startswith("("):
                out.append((ns, "reap", tid))
            elif ev in ("sys_clone", "sys_clone3"):
                out.append((ns, "cloned" if rest.lstrip().startswith("->") else "clone", tid))
        self.placement = {pid: (cpu, queued_on[pid]) for pid, cpu in forked_on.items() if pid in queued_on}
        return out

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._set("events/enable", "0")
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def user_trace_records(path: Path) -> list[tuple[int, str, int]]:
    """(ns, event, pid) from a PMON3_TRACE / `cref -t` file: "<CLOCK_MONOTONIC ns> <event> <pid>" lines."""
    out = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0].isdigit():
                out.append((int(parts[0]), parts[1], int(parts[2])))
    return out


class Timeline:
    """Index of (ns, kind, pid) records: the first of a kind for a pid, at or after a time."""

    def __init__(self, records: list[tuple[int, str, int]]):
        self.by: dict[tuple[str, int], list[int]] = {}
        self.any: dict[str, list[int]] = {}
        for ns, kind, pid in sorted(records):
            self.by.setdefault((kind, pid), []).append(ns)
            self.any.setdefault(kind, []).append(ns)

    def first(self, kind: str, pid: Optional[int], after: Optional[int] = None) -> Optional[int]:
        if after is None:
            return None
        times = self.any.get(kind, []) if pid is None else self.by.get((kind, pid), [])
        return next((t for t in times if t >= after), None)


# Kernel-traced phases: (from, to, label). The first three rows answer "where does a restart go".
KERNEL_PHASES = (
    ("kill", "wake", "kill -> exit seen (epoll_wait returns)"),
    ("wake", "clone", "exit seen -> spawn call (clone)"),
    ("clone", "exec", "spawn call -> child exec'd"),
    ("kill", "exit", "  kill -> victim starts exiting"),
    ("exit", "notify", "  exit -> SIGCHLD sent (pidfd readable)"),
    ("exit", "wake", "  exit -> supervisor back from epoll_wait"),
    ("wake", "reap", "  epoll return -> wait4/waitid call"),
    ("reap", "clone", "  wait4/waitid call -> clone call"),
    ("clone", "fork", "  clone call -> child created"),
    ("fork", "exec", "  child created -> exec done"),
    ("cloned", "sleep", "  clone returned -> supervisor back in epoll_wait"),
    ("exec", "main", "  exec done -> stamp main()"),
    ("kill", "main", "total, traced pass"),
)
USER_PHASES = (
    ("kill", "seen", "kill -> supervisor handles the pidfd"),
    ("seen", "spawn", "pidfd handled -> spawn call"),
    ("spawn", "main", "spawn call -> child main()"),
    ("spawn", "spawned", "  spawn call -> spawn returns"),
)


def kernel_stamps(kill: dict, tl: Timeline, sup_pid: int) -> dict[str, Optional[int]]:
    """The tracepoint times of one kill (None where an event is missing)."""
    t: dict[str, Optional[int]] = {"kill": kill["t_kill"], "main": kill["t_main"]}
    t["exit"] = tl.first("exit", kill["victim"], kill["t_kill"] - 1000)  # µs-truncated vs ns
    t["notify"] = tl.first("notify", kill["victim"], t["exit"])
    t["wake"] = tl.first("wake", sup_pid, t["exit"])  # the pidfd may wake it before the SIGCHLD trace
    t["reap"] = tl.first("reap", sup_pid, t["wake"])
    t["clone"] = tl.first("clone", sup_pid, t["wake"])
    t["fork"] = tl.first("fork", kill["new"], t["clone"])
    t["exec"] = tl.first("exec", kill["new"], t["fork"])
    t["cloned"] = tl.first("cloned", sup_pid, t["clone"])
    t["sleep"] = tl.first("sleep", sup_pid, t["cloned"])
    return t


def user_stamps(kill: dict, tl: Timeline) -> dict[str, Optional[int]]:
    t: dict[str, Optional[int]] = {"kill": kill["t_kill"], "main": kill["t_main"]}
    t["seen"] = tl.first("seen", kill["victim"], kill["t_kill"])
    t["spawn"] = tl.first("spawn", None, t["seen"])
    t["spawned"] = tl.first("spawned", kill["new"], t["spawn"])
    return t


def phase_samples(stamps: list[dict[str, Optional[int]]], phases: tuple) -> dict[str, list[float]]:
    """Per phase label, the durations in ms of the kills where both ends were seen."""
    out: dict[str, list[float]] = {}
    for a, b, label in phases:
        out[label] = [(t[b] - t[a]) / 1e6 for t in stamps if t.get(a) is not None and t.get(b) is not None]
    return out


# ----------------------------------------------------------------------------------------------
# the daemons


class Pmon:
    """An isolated pmond (own config, data, logs and IPC names) driven through the pmon3 CLI."""

    label = "pmon3"

    def __init__(self, tag: str, directory: Optional[Path] = None, extra_conf: str = "", env: Optional[dict] = None):
        self.dir = directory or Path(tempfile.mkdtemp(prefix=f"pmon3-bench-{tag}-"))
        self.conf = self.dir / "config.yml"
        if not self.conf.exists():
            self.conf.write_text(
                f"data: {{directory: {self.dir / 'data'}}}\n"
                f"logs: {{directory: {self.dir / 'logs'}}}\n"
                f"message_queue: {{name_suffix: bench{os.getpid()}x{next(_counter)}}}\n"
                "daemon: {autostart: false}\n"
                "restart: {min_uptime: 20ms}\n" + extra_conf + EXTRA_PMOND_CONF
            )
        self.env = dict(os.environ, PMON3_CONF=str(self.conf), **(env or {}))
        self.env.pop("PMON3_DEBUG", None)
        self.proc: Optional[subprocess.Popen] = None

    def spawn(self, ready: bool = True) -> int:
        """Start pmond (no waiting); returns the read end of its ready pipe (-1 without one)."""
        r, w = os.pipe() if ready else (-1, -1)
        with open(self.dir / "pmond.err", "ab") as err:
            self.proc = subprocess.Popen(
                [PMOND, "--foreground", *(["--ready-fd", str(w)] if ready else [])],
                env=self.env,
                pass_fds=(w,) if ready else (),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        if ready:
            os.close(w)
        return r

    def start(self, timeout: float = 30) -> float:
        """Start pmond and wait for `ready` on --ready-fd; seconds taken."""
        t0 = time.perf_counter()
        r = self.spawn()
        try:
            end = t0 + timeout
            data = b""
            while b"\n" not in data:
                left = end - time.perf_counter()
                if left <= 0:
                    raise TimeoutError(f"pmond did not become ready: {self.stderr_tail()}")
                if not select.select([r], [], [], left)[0]:
                    continue
                chunk = os.read(r, 64)
                if not chunk:
                    raise RuntimeError(f"pmond exited before ready: {self.stderr_tail()}")
                data += chunk
        finally:
            os.close(r)
        return time.perf_counter() - t0

    def stderr_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "pmond.err").read_text()[-2000:]
        return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cmd(self, *args: str) -> list[str]:
        return [PMON3, *args]

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> tuple[float, subprocess.CompletedProcess]:
        took, cp = timed(self.cmd(*args), self.env, timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"pmon3 {' '.join(args)} failed ({cp.returncode}): {cp.stderr.strip()}")
        return took, cp

    def processes(self) -> Optional[list[dict]]:
        _, cp = self.cli("ls", "--json", check=False)
        if cp.returncode != 0:
            return None
        return json.loads(cp.stdout)

    def count_running(self) -> int:
        procs = self.processes()
        return -1 if procs is None else sum(p["status"] == "running" for p in procs)

    def add_sleeper(self, name: str) -> None:
        self.cli("exec", "/bin/sleep", "--name", name, "-a", "1000")

    def stop(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc)

    def cleanup(self) -> None:
        self.stop()
        remove_cgroups(self.conf)
        shutil.rmtree(self.dir, ignore_errors=True)


class Sup:
    """An isolated supervisord (own socket, logs, pid file) driven through supervisorctl."""

    label = "supervisord"

    def __init__(self, tag: str, programs: list[tuple[str, str, dict]]):
        self.dir = Path(tempfile.mkdtemp(prefix=f"sup-bench-{tag}-"))
        self.conf = self.dir / "supervisord.conf"
        self.sock = self.dir / "s.sock"
        self.logfile = self.dir / "supervisord.log"
        (self.dir / "logs").mkdir()
        lines = [
            "[unix_http_server]",
            f"file={self.sock}",
            "[supervisord]",
            f"logfile={self.logfile}",
            f"pidfile={self.dir / 'supervisord.pid'}",
            f"childlogdir={self.dir / 'logs'}",
            "nodaemon=true",
            "loglevel=info",
            f"minfds={max(1024, 4 * len(programs) + 256)}",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{self.sock}",
        ]
        for name, command, opts in programs:
            lines += [f"[program:{name}]", f"command={command}"]
            lines += [f"{k}={v}" for k, v in opts.items()]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: Optional[subprocess.Popen] = None

    def spawn(self) -> None:
        with open(self.dir / "supervisord.err", "ab") as err:
            self.proc = subprocess.Popen(
                [SUPERVISORD, "-n", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )

    def start(self, timeout: float = 30) -> float:
        """Start supervisord and wait until `supervisorctl pid` answers; seconds taken."""
        t0 = time.perf_counter()
        self.spawn()

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"supervisord exited: {(self.dir / 'supervisord.err').read_text()[-2000:]}")
            _, cp = self.ctl("pid", check=False)
            return cp.returncode == 0 and cp.stdout.strip().isdigit()

        poll_until(answers, timeout, "supervisord to answer")
        return time.perf_counter() - t0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cmd(self, *args: str) -> list[str]:
        return [SUPERVISORCTL, "-c", str(self.conf), *args]

    def ctl(self, *args: str, check: bool = True, timeout: float = 120) -> tuple[float, subprocess.CompletedProcess]:
        took, cp = timed(self.cmd(*args), None, timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"supervisorctl {' '.join(args)} failed ({cp.returncode}): {cp.stdout}{cp.stderr}")
        return took, cp

    def count_running(self) -> int:
        _, cp = self.ctl("status", check=False)
        # exit status 3 means "not all running", which still lists the programs
        if cp.returncode not in (0, 3):
            return -1
        return sum(1 for line in cp.stdout.splitlines() if re.search(r"\sRUNNING\s", line))

    def spawned_count(self, name: str) -> int:
        with contextlib.suppress(OSError):
            return self.logfile.read_text().count(f"spawned: '{name}'")
        return 0

    def stop(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class CRef:
    """The C reference supervisor (benches/cref/cref.c): N children from a config file, no CLI."""

    label = "C ref"

    def __init__(self, tag: str, binary: Path, programs: list[tuple[str, str, list[str]]], trace: bool = False):
        self.dir = Path(tempfile.mkdtemp(prefix=f"cref-bench-{tag}-"))
        self.binary = binary
        self.conf = self.dir / "cref.conf"
        (self.dir / "logs").mkdir()
        self.conf.write_text("".join(f"{name} {' '.join([file, *args])}\n" for name, file, args in programs))
        self.trace = self.dir / "trace" if trace else None
        self.proc: Optional[subprocess.Popen] = None

    def spawn(self) -> None:
        """Start it; each child is running once its posix_spawn returned (there is no readiness to wait for)."""
        cmd = [str(self.binary), "-d", str(self.dir / "logs"), "-f", str(self.conf)]
        if self.trace:
            cmd[1:1] = ["-t", str(self.trace)]
        with open(self.dir / "cref.err", "ab") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc)
            if self.proc.returncode != 0:
                log(f"cref exited {self.proc.returncode}: {(self.dir / 'cref.err').read_text()[-2000:]}")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def sleepers(n: int, autostart: bool) -> list[tuple[str, str, dict]]:
    opts = {"autostart": str(autostart).lower(), "autorestart": "true", "startsecs": "0"}
    return [(f"s{i}", "/bin/sleep 1000", opts) for i in range(1, n + 1)]


# ----------------------------------------------------------------------------------------------
# setup


def ensure_peer() -> str:
    """supervisord from PyPI in benches/.venv-peer (created once, reused); returns its version."""
    if not Path(SUPERVISORD).exists():
        log(f"installing {PEER_REQUIREMENT} into {PEER_VENV}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "-q", PEER_REQUIREMENT], check=True)
    return subprocess.run([SUPERVISORD, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def compile_stamp(tmp: Path) -> Path:
    out = tmp / "stamp"
    cmd = ["gcc", "-O2", "-static", "-o", str(out), str(HERE / "stamp.c")]
    if subprocess.run(cmd, capture_output=True).returncode != 0:  # no static libc: dynamic is fine too
        subprocess.run(cmd[:2] + cmd[3:], check=True)
    return out


def compile_cref(tmp: Path) -> Path:
    """benches/cref/cref.c -> tmp/cref (cc -O2, warnings shown: the file is meant to have none)."""
    out = tmp / "cref"
    cp = subprocess.run(
        ["cc", "-O2", "-Wall", "-Wextra", "-o", str(out), str(HERE / "cref" / "cref.c")],
        capture_output=True,
        text=True,
    )
    if cp.returncode != 0:
        raise RuntimeError(f"cannot build the C reference: {cp.stderr}")
    if cp.stderr.strip():
        log(f"cref.c compiler warnings:\n{cp.stderr}")
    return out


def host_info() -> dict:
    cpu = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pmon3_version = subprocess.run([PMON3, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "kernel": platform.release(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pmon3": pmon3_version,
        "loadavg_start": os.getloadavg(),
    }


# ----------------------------------------------------------------------------------------------
# scenarios; each returns {"rows": [...table rows...], "raw": {...}}


def row(
    name: str,
    unit: str,
    pm: float,
    sup: Optional[float],
    lower_is_better: bool = True,
    cref: Optional[float] = None,
    pm2: Optional[float] = None,
    **extra,
) -> dict:
    """One table row; supervisord, the C reference or PM2 is None where it is not part of the scenario."""
    return {
        "metric": name,
        "unit": unit,
        "pmon3": pm,
        "supervisord": sup,
        "cref": cref,
        "pm2": pm2,
        "lower_is_better": lower_is_better,
        **extra,
    }


def kill_rounds(rounds: int, readers: dict[str, LineReader], pids: dict[str, int]) -> dict[str, list[dict]]:
    """SIGKILL each supervisor's stamp child in turn (A B C A B C ...), `rounds` times. Per kill: the victim,
    the kill time, the new child's pid and its main() time (CLOCK_MONOTONIC ns). `pids` follows the children."""
    out: dict[str, list[dict]] = {k: [] for k in readers}
    for _ in range(rounds):
        for key, rd in readers.items():
            time.sleep(0.05)  # part of the workload: the child has been up >= min_uptime
            t_kill = time.monotonic_ns()
            os.kill(pids[key], signal.SIGKILL)
            ts, pid = rd.readline(30).split()
            if int(pid) == pids[key]:
                raise RuntimeError(f"{key}: same pid reported twice")
            out[key].append({"victim": pids[key], "new": int(pid), "t_kill": t_kill, "t_main": int(ts)})
            pids[key] = int(pid)
    return out


def latencies_ms(kills: list[dict]) -> list[float]:
    return [(k["t_main"] - k["t_kill"]) / 1e6 for k in kills]


def scenario_latency(p: dict) -> dict:
    """Crash-to-restart: SIGKILL the child, time until the new child's main() (CLOCK_MONOTONIC); pmon3,
    supervisord and the C reference in the same rounds. Then the traced breakdown pass (pmon3 vs C)."""
    kills = p["kills"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    stamp = compile_stamp(tmp)
    cref_bin = compile_cref(tmp)
    pm = Pmon("latency")
    sup: Optional[Sup] = None
    cref: Optional[CRef] = None
    readers: dict[str, LineReader] = {}
    try:
        for key in ("pmon3", "supervisord", "cref"):
            readers[key] = LineReader(tmp / f"{key}.fifo")
        pm.start()
        pm.cli("exec", str(stamp), "--name", "stamp", "-a", str(tmp / "pmon3.fifo"))
        sup = Sup(
            "latency",
            [
                (
                    "stamp",
                    f"{stamp} {tmp / 'supervisord.fifo'}",
                    {"autostart": "true", "autorestart": "true", "startsecs": "0", "startretries": "1000000"},
                )
            ],
        )
        sup.start()
        cref = CRef("latency", cref_bin, [("stamp", str(stamp), [str(tmp / "cref.fifo")])])
        cref.spawn()
        pids = {key: int(rd.readline(30).split()[1]) for key, rd in readers.items()}
        log(f"latency: {kills} SIGKILLs each, alternating pmon3, supervisord, C")
        samples = {k: latencies_ms(v) for k, v in kill_rounds(kills, readers, pids).items()}
        s = {k: summary(v) for k, v in samples.items()}
        log(
            "latency medians: "
            + ", ".join(f"{k} {v['median']:.2f} ms" for k, v in s.items())
            + f" (pmon3/C {s['pmon3']['median'] / s['cref']['median']:.2f})"
        )
        rows = [
            row(
                f"crash->restart median ({kills} kills)",
                "ms",
                s["pmon3"]["median"],
                s["supervisord"]["median"],
                cref=s["cref"]["median"],
            ),
            row("crash->restart p90", "ms", s["pmon3"]["p90"], s["supervisord"]["p90"], cref=s["cref"]["p90"]),
            row("crash->restart max", "ms", s["pmon3"]["max"], s["supervisord"]["max"], cref=s["cref"]["max"]),
            row("crash->restart min", "ms", s["pmon3"]["min"], s["supervisord"]["min"], cref=s["cref"]["min"]),
        ]
        raw: dict = {"unit": "ms", **samples}
    finally:
        pm.cleanup()
        if sup:
            sup.cleanup()
        if cref:
            cref.cleanup()
        for rd in readers.values():
            rd.close()
    try:
        b_rows, raw["breakdown"] = restart_breakdown(p["trace_kills"], tmp, stamp, cref_bin)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows + b_rows, "raw": raw}


def restart_breakdown(kills: int, tmp: Path, stamp: Path, cref_bin: Path) -> tuple[list[dict], dict]:
    """A second pass, pmon3 and C only, on fresh supervisors with tracing: tracepoints in a tracefs instance
    (when root) and the supervisors' own stamps (`cref -t`; pmond's PMON3_TRACE, if it has the hook)."""
    why_not = KernelTrace.unavailable()
    pm_trace, c_fifo, pm_fifo = tmp / "pmond.trace", tmp / "cref-t.fifo", tmp / "pmon3-t.fifo"
    pm = Pmon("trace", env={"PMON3_TRACE": str(pm_trace)})
    cref: Optional[CRef] = None
    ktrace: Optional[KernelTrace] = None
    readers: dict[str, LineReader] = {}
    try:
        readers = {"pmon3": LineReader(pm_fifo), "cref": LineReader(c_fifo)}
        pm.start()
        pm.cli("exec", str(stamp), "--name", "stamp", "-a", str(pm_fifo))
        cref = CRef("trace", cref_bin, [("stamp", str(stamp), [str(c_fifo)])], trace=True)
        cref.spawn()
        pids = {key: int(rd.readline(30).split()[1]) for key, rd in readers.items()}
        sup_pid = {"pmon3": pm.pid, "cref": cref.pid}
        if why_not is None:
            ktrace = KernelTrace(list(sup_pid.values()), stamp)
            ktrace.start()
        log(f"breakdown: {kills} SIGKILLs each, pmon3 and C, {'with' if ktrace else 'without'} tracepoints")
        done = kill_rounds(kills, readers, pids)
        k_records = ktrace.records() if ktrace else []
        assert cref.trace is not None
        u_records = {"pmon3": user_trace_records(pm_trace), "cref": user_trace_records(cref.trace)}
    finally:
        if ktrace:
            ktrace.close()
        pm.cleanup()
        if cref:
            cref.cleanup()
        for rd in readers.values():
            rd.close()

    raw: dict = {"kills": kills, "tracepoints": why_not or "yes", "kernel_ms": {}, "user_ms": {}}
    rows: list[dict] = []
    if ktrace:
        tl = Timeline(k_records)
        # each kill's stamps on the thread that forked its new child (the supervisor's, or pmond's respawn thread)
        stamps = {
            k: [kernel_stamps(x, tl, ktrace.forker.get(x["new"], sup_pid[k])) for x in v] for k, v in done.items()
        }
        phases = {k: phase_samples(v, KERNEL_PHASES) for k, v in stamps.items()}
        raw["kernel_ms"] = phases
        # every kill: µs from the kill to each stamp, and the CPUs the new child was forked and first queued on
        raw["kernel_kills"] = {
            k: [
                {e: None if t is None else (t - x["t_kill"]) / 1000 for e, t in st.items()}
                | {"placement": ktrace.placement.get(x["new"])}
                for x, st in zip(done[k], stamps[k])
            ]
            for k in done
        }
        for _, _, label in KERNEL_PHASES:
            pm_s, c_s = summary(phases["pmon3"][label]), summary(phases["cref"][label])
            if pm_s["n"] and c_s["n"]:
                rows.append(row(f"breakdown: {label}", "ms", pm_s["median"], None, cref=c_s["median"], n=pm_s["n"]))
        same = {}
        for k in done:
            placed = [ktrace.placement[x["new"]] for x in done[k] if x["new"] in ktrace.placement]
            same[k] = 100 * sum(a == b for a, b in placed) / len(placed) if placed else None
        # The kills split by where the new child was first queued: on its supervisor's CPU, the supervisor's
        # work after clone returns competes with the child's exec; on the other CPU, whatever runs there does.
        for on_own_cpu, tag in ((True, "child on the supervisor's CPU"), (False, "child on the other CPU")):
            split = {
                k: [
                    st
                    for x, st in zip(done[k], stamps[k])
                    if x["new"] in ktrace.placement
                    and (ktrace.placement[x["new"]][0] == ktrace.placement[x["new"]][1]) == on_own_cpu
                ]
                for k in done
            }
            for a, b, label in (("cloned", "exec", "clone returned -> exec done"), ("kill", "main", "total")):
                sm = {k: summary(phase_samples(v, ((a, b, label),))[label]) for k, v in split.items()}
                if sm["pmon3"]["n"] and sm["cref"]["n"]:
                    rows.append(
                        row(
                            f"breakdown, {tag}: {label}",
                            "ms",
                            sm["pmon3"]["median"],
                            None,
                            cref=sm["cref"]["median"],
                            n={k: v["n"] for k, v in sm.items()},
                        )
                    )
        if same["pmon3"] is not None and same["cref"] is not None:
            rows.append(
                row("breakdown: new child queued on its supervisor's CPU", "%", same["pmon3"], None, cref=same["cref"])
            )
        seen = {k: len(phases[k][KERNEL_PHASES[-1][2]]) for k in phases}
        log(f"breakdown: tracepoints complete for {seen} of {kills} kills each; same-CPU placement % {same}")
    else:
        log(f"breakdown: no tracepoints ({why_not})")
    user = {}
    for key, records in u_records.items():
        if records:
            tl = Timeline(records)
            user[key] = phase_samples([user_stamps(x, tl) for x in done[key]], USER_PHASES)
    raw["user_ms"] = user
    if "cref" in user:
        for _, _, label in USER_PHASES:
            c_s = summary(user["cref"][label])
            pm_s = summary(user["pmon3"][label]) if "pmon3" in user else {"n": 0}
            if c_s["n"]:
                rows.append(
                    row(
                        f"own stamps: {label}",
                        "ms",
                        pm_s["median"] if pm_s["n"] else None,
                        None,
                        cref=c_s["median"],
                    )
                )
    if "pmon3" not in user:
        log("breakdown: pmond wrote no PMON3_TRACE stamps (the hook proposed in benches/README.md is not in)")
    raw["total_ms"] = {k: latencies_ms(v) for k, v in done.items()}
    return rows, raw


def await_stamps(rd: LineReader, n: int, timeout: float, what: str) -> list[int]:
    """The main() times (CLOCK_MONOTONIC ns, sorted) of n distinct stamp children, within a deadline."""
    end = time.monotonic() + timeout
    seen: dict[int, int] = {}
    while len(seen) < n:
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: only {len(seen)} of {n} children started in {timeout:.0f} s")
        ts, pid = rd.readline(left).split()
        seen.setdefault(int(pid), int(ts))
    return sorted(seen.values())


def timed_boot(sup: Pmon | CRef, rd: LineReader, n: int, what: str) -> tuple[float, float]:
    """Start `sup` (no waiting for readiness: the boot is what is measured) and read n stamps; seconds
    from the start until the first and until the last child reached main()."""
    t0 = time.monotonic_ns()
    if isinstance(sup, Pmon):
        sup.spawn(ready=False)
    else:
        sup.spawn()
    times = await_stamps(rd, n, 60 + n * 0.1, what)
    return (times[0] - t0) / 1e9, (times[-1] - t0) / 1e9


COLD_KINDS = {
    "pmon3": "pmon3, fresh data dir, N process config entries",
    "pmon3_rows": "pmon3 reboot, N closed rows in its database",
    "cref": "C reference, N config lines",
}


def scenario_cold(p: dict) -> dict:
    """Cold start, pmon3 vs C: time from starting the supervisor until all N stamp children have reached
    main(). Per repetition, alternating: pmond on a fresh data directory with N entries in its process
    config file; cref with N config lines; the same pmond directory booted again without the process config,
    so its N rows (closed by the SIGTERM that stopped it) are what comes back."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-cold-"))
    rows, raw = [], {}
    try:
        stamp = compile_stamp(tmp)
        cref_bin = compile_cref(tmp)
        for n, reps in p["cold"]:
            boots: dict[str, list[tuple[float, float]]] = {k: [] for k in COLD_KINDS}
            for rep in range(reps):
                rd_pm = LineReader(tmp / f"pmon3-{n}-{rep}.fifo")
                rd_c = LineReader(tmp / f"cref-{n}-{rep}.fifo")
                pm: Optional[Pmon] = None
                try:
                    conf = tmp / f"processes-{n}-{rep}.json"
                    entries = [{"file": str(stamp), "name": f"s{i}", "args": str(rd_pm.path)} for i in range(1, n + 1)]
                    conf.write_text(json.dumps({"processes": entries}))
                    pm = Pmon(f"cold{n}", extra_conf=f"process_config_file: {conf}\n")
                    boots["pmon3"].append(timed_boot(pm, rd_pm, n, "pmon3 boot from its process config"))
                    pm.stop()  # the rows become `closed`
                    programs = [(f"s{i}", str(stamp), [str(rd_c.path)]) for i in range(1, n + 1)]
                    cref = CRef(f"cold{n}", cref_bin, programs)
                    try:
                        boots["cref"].append(timed_boot(cref, rd_c, n, "C reference start"))
                    finally:
                        cref.cleanup()
                    pm.conf.write_text(pm.conf.read_text().replace(f"process_config_file: {conf}\n", ""))
                    pm = Pmon(f"cold{n}", directory=pm.dir)
                    boots["pmon3_rows"].append(timed_boot(pm, rd_pm, n, "pmon3 boot from its stored rows"))
                finally:
                    if pm:
                        pm.cleanup()
                    rd_pm.close()
                    rd_c.close()
                log(f"cold start n={n} rep {rep + 1}: " + ", ".join(f"{k} {v[-1][1]:.3f} s" for k, v in boots.items()))
            res = {k: [b[1] for b in v] for k, v in boots.items()}
            first = {k: [b[0] for b in v] for k, v in boots.items()}
            m = {k: statistics.median(v) for k, v in res.items()}
            rows += [
                row(f"cold start, {n} children at main(): pmon3 config vs C", "s", m["pmon3"], None, cref=m["cref"]),
                row(
                    f"cold start, {n}: pmon3 reboot with {n} stored rows vs C",
                    "s",
                    m["pmon3_rows"],
                    None,
                    cref=m["cref"],
                ),
            ]
            raw[f"n{n}"] = {"unit": "s", "kinds": COLD_KINDS, "all_running": res, "first_running": first, "reps": reps}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"rows": rows, "raw": raw}


def spawn_sequential(n: int, rep: int) -> tuple[float, float, Path]:
    """(b) n sequential CLI calls, fresh daemons: pmon3 exec vs supervisorctl start (autostart=false).

    Returns both durations and the pmon3 directory, whose database now holds n `closed` rows.
    """
    pm = Pmon(f"seq{n}")
    try:
        pm.start()
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            pm.add_sleeper(f"s{i}")
        t_pm = time.perf_counter() - t0
        if pm.count_running() != n:
            raise RuntimeError(f"pmon3: not all {n} running after exec")
        pm.stop()  # SIGTERM: rows become `closed`, which the next boot brings back
    except BaseException:
        pm.cleanup()
        raise
    sup = Sup(f"seq{n}", sleepers(n, autostart=False))
    try:
        sup.start()
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            sup.ctl("start", f"s{i}")
        t_sup = time.perf_counter() - t0
        if sup.count_running() != n:
            raise RuntimeError(f"supervisord: not all {n} running after start")
    finally:
        sup.cleanup()
    log(f"spawn (b) n={n} rep {rep + 1}: pmon3 {t_pm:.2f} s, supervisord {t_sup:.2f} s")
    return t_pm, t_sup, pm.dir


def boot_pmon3(directory: Path, n: int) -> tuple[float, Pmon]:
    """(a) pmond start (n closed rows in its database) until `pmon3 ls --json` shows n running."""
    pm = Pmon("boot", directory)
    t0 = time.perf_counter()
    pm.spawn(ready=False)  # readiness is part of what is measured: poll the CLI like a user
    try:
        poll_until(lambda: pm.count_running() == n, 120 + n * 0.2, f"pmon3: {n} running after boot")
    except BaseException:
        pm.stop()
        raise
    return time.perf_counter() - t0, pm


def boot_sup(n: int) -> tuple[float, Sup]:
    """(a) supervisord start with n autostart programs until `supervisorctl status` shows n RUNNING."""
    sup = Sup(f"boot{n}", sleepers(n, autostart=True))
    t0 = time.perf_counter()
    sup.spawn()
    try:
        poll_until(lambda: sup.count_running() == n, 120 + n * 0.2, f"supervisord: {n} RUNNING after start")
    except BaseException:
        sup.cleanup()
        raise
    return time.perf_counter() - t0, sup


def scenario_spawn(p: dict, keep: dict) -> dict:
    rows, raw = [], {}
    for n, reps_b, reps_a in p["spawn"]:
        seq = {"pmon3": [], "supervisord": []}
        pm_dir: Optional[Path] = None
        for rep in range(reps_b):
            t_pm, t_sup, d = spawn_sequential(n, rep)
            seq["pmon3"].append(t_pm)
            seq["supervisord"].append(t_sup)
            if pm_dir is None:
                pm_dir = d
            else:
                shutil.rmtree(d, ignore_errors=True)
        assert pm_dir is not None
        boot = {"pmon3": [], "supervisord": []}
        for rep in range(reps_a):
            t_pm, pm = boot_pmon3(pm_dir, n)
            pm.stop()
            t_sup, sup = boot_sup(n)
            sup.cleanup()
            boot["pmon3"].append(t_pm)
            boot["supervisord"].append(t_sup)
            log(f"spawn (a) n={n} rep {rep + 1}: pmon3 {t_pm:.2f} s, supervisord {t_sup:.2f} s")
        if n == 100:
            keep["pm_dir_100"] = pm_dir
        else:
            shutil.rmtree(pm_dir, ignore_errors=True)
        m = {k: {"a": statistics.median(boot[k]), "b": statistics.median(seq[k])} for k in boot}
        rows += [
            row(f"{n} sleeps running from daemon start (a)", "s", m["pmon3"]["a"], m["supervisord"]["a"], reps=reps_a),
            row(
                f"{n} sleeps by {n} sequential CLI calls (b)", "s", m["pmon3"]["b"], m["supervisord"]["b"], reps=reps_b
            ),
        ]
        raw[f"n{n}"] = {"unit": "s", "boot_a": boot, "sequential_b": seq}
    return {"rows": rows, "raw": raw}


def scenario_cli_idle(p: dict, keep: dict) -> dict:
    """CLI latency and idle CPU with 100 sleeping children, then a crash-looping child."""
    n = 100
    pm_dir = keep.get("pm_dir_100")
    own_dir = pm_dir is None
    if own_dir:  # the spawn scenario was skipped: make the 100 rows here
        pm = Pmon("cli")
        pm.start()
        for i in range(1, n + 1):
            pm.add_sleeper(f"s{i}")
        pm.stop()
        pm_dir = pm.dir
    rows, raw = [], {}
    _, pm = boot_pmon3(pm_dir, n)
    sup: Optional[Sup] = None
    try:
        _, sup = boot_sup(n)
        runs = p["cli_runs"]
        log(f"cli: {runs} runs of each command, alternating")
        keys = ("ls", "ls --json", "--version", "status", "version", "python -c pass", "import click", "exec")
        cli: dict[str, list[float]] = {k: [] for k in keys}
        counter = itertools.count(1)

        def exec_one() -> tuple[float, subprocess.CompletedProcess]:
            name = f"e{next(counter)}"
            took = pm.cli("exec", "/bin/sleep", "--name", name, "-a", "1000")
            pm.cli("del", "-f", name)  # not timed: the daemon keeps its 100 processes
            return took

        for _ in range(runs):
            for key, fn in (
                ("python -c pass", lambda: timed([PMON3_PY, "-c", "pass"])),
                ("ls", lambda: pm.cli("ls")),
                ("status", lambda: sup.ctl("status")),
                ("import click", lambda: timed([PMON3_PY, "-c", "import click"])),
                ("ls --json", lambda: pm.cli("ls", "--json")),
                ("--version", lambda: pm.cli("--version")),
                ("version", lambda: sup.ctl("version")),
                ("exec", exec_one),
            ):
                took, cp = fn()
                cli[key].append(took * 1000)
        med = {k: statistics.median(v) for k, v in cli.items()}

        def paired(a: str, b: str) -> float:
            """The median of the per-round ratios: a and b ran back to back in each round, so load drift
            between rounds (on this VM one build's --version runs spread over 50-90 ms) mostly cancels; the
            ratio of the two medians moved 1.11-1.31 between runs of one build."""
            return statistics.median(x / y for x, y in zip(cli[a], cli[b]))

        def startup_row(name: str, a: str, b: str) -> dict:
            return row(name, "ms", med[a], None, cref=med[b], paired_ratio=paired(a, b))

        rows += [
            row(f"`pmon3 ls` vs `supervisorctl status` ({n} procs)", "ms", med["ls"], med["status"]),
            row(f"`pmon3 ls --json` vs `supervisorctl status` ({n})", "ms", med["ls --json"], med["status"]),
            row("`pmon3 --version` vs `supervisorctl version`", "ms", med["--version"], med["version"]),
            # Start-up as a feature (issue 12): ratios to floors taken in the same rounds, in the C column.
            row("CLI floor: `python -c pass` (C column: none)", "ms", med["python -c pass"], None),
            startup_row("CLI: `pmon3 --version` / floor `python -c 'import click'`", "--version", "import click"),
            startup_row(f"CLI: `pmon3 ls --json` ({n}) / `pmon3 --version`", "ls --json", "--version"),
            startup_row("CLI: `pmon3 exec /bin/sleep` / `pmon3 --version`", "exec", "--version"),
        ]
        raw["cli_ms"] = cli

        window = p["idle_s"]
        log(f"idle: {window:.0f} s window, both daemons with {n} sleeping children")
        t0 = {"pmon3": cpu_ticks(pm.pid), "supervisord": cpu_ticks(sup.pid)}
        w0 = time.monotonic()
        time.sleep(window)  # the measurement window itself
        t1 = {"pmon3": cpu_ticks(pm.pid), "supervisord": cpu_ticks(sup.pid)}
        elapsed = time.monotonic() - w0
        idle = {k: (t1[k] - t0[k]) / CLK_TCK / elapsed * 100 for k in t0}
        rows.append(
            row(f"idle daemon CPU over {window:.0f} s, {n} sleeping children", "%", idle["pmon3"], idle["supervisord"])
        )
        cpu_ms = {k: (t1[k] - t0[k]) * 1000 / CLK_TCK for k in t0}
        raw["idle_100"] = {"window_s": elapsed, "cpu_percent": idle, "cpu_ms": cpu_ms}
    finally:
        pm.stop()
        if sup:
            sup.cleanup()
        if own_dir:
            shutil.rmtree(pm_dir, ignore_errors=True)

    rows_crash, raw["crash_loop"] = crash_loop(p["idle_s"])
    return {"rows": rows + rows_crash, "raw": raw}


def crash_loop(window: float) -> tuple[list[dict], dict]:
    """One child that exits at once (/bin/false): daemon CPU% and restarts in the window.

    pmond and two supervisords (startsecs=0 and the default startsecs=1, both with autorestart and a
    huge startretries) crash-loop side by side in the same window; each daemon's own CPU time is read.
    """
    res: dict = {}
    pm = Pmon("crash")
    sups: dict[str, Sup] = {}
    try:
        pm.start()
        for startsecs in (0, 1):
            opts = {"autostart": "true", "autorestart": "true", "startsecs": str(startsecs), "startretries": "1000000"}
            sup = Sup("crash", [("crash", "/bin/false", opts)])
            sups[f"supervisord_startsecs{startsecs}"] = sup
            sup.start()
        pm.cli("exec", "/bin/false", "--name", "crash")
        rc0 = pm.processes()[0]["restart_count"]
        n0 = {k: s.spawned_count("crash") for k, s in sups.items()}
        c0 = {"pmon3": cpu_ticks(pm.pid)} | {k: cpu_ticks(s.pid) for k, s in sups.items()}
        w0 = time.monotonic()
        time.sleep(window)  # the measurement window
        c1 = {"pmon3": cpu_ticks(pm.pid)} | {k: cpu_ticks(s.pid) for k, s in sups.items()}
        elapsed = time.monotonic() - w0
        n1 = {k: s.spawned_count("crash") for k, s in sups.items()}
        rc1 = pm.processes()[0]["restart_count"]
        restarts = {"pmon3": rc1 - rc0} | {k: n1[k] - n0[k] for k in sups}
        for k in c0:
            res[k] = {
                "cpu_percent": (c1[k] - c0[k]) / CLK_TCK / elapsed * 100,
                "cpu_ms": (c1[k] - c0[k]) * 1000 / CLK_TCK,
                "restarts": restarts[k],
                "window_s": elapsed,
            }
    finally:
        pm.cleanup()
        for sup in sups.values():
            sup.cleanup()
    log(f"crash loop: {res}")
    rows = []
    for startsecs in (0, 1):
        s = res[f"supervisord_startsecs{startsecs}"]
        rows.append(
            row(
                f"crash loop: daemon CPU over {window:.0f} s (sup startsecs={startsecs})",
                "%",
                res["pmon3"]["cpu_percent"],
                s["cpu_percent"],
            )
        )
        rows.append(
            row(
                f"crash loop: restarts in {window:.0f} s (sup startsecs={startsecs})",
                "n",
                res["pmon3"]["restarts"],
                s["restarts"],
            )
        )
    return rows, res


def scenario_native_spawn(p: dict) -> dict:
    """pmon3._native.spawn vs subprocess.Popen call duration (in a separate process)."""
    iters = p["spawn_iters"]
    log(f"native spawn vs Popen: {iters} iterations each, alternating")
    cp = subprocess.run(
        [PMON3_PY, str(HERE / "spawn_micro.py"), str(iters)], capture_output=True, text=True, check=True, timeout=300
    )
    data = json.loads(cp.stdout)
    nat = [x / 1000 for x in data["native_ns"]]
    pop = [x / 1000 for x in data["popen_ns"]]
    s_nat, s_pop = summary(nat), summary(pop)
    rows = [
        row(
            "spawn /bin/true: `_native.spawn` vs `subprocess.Popen` (median)",
            "µs",
            s_nat["median"],
            s_pop["median"],
            peer="subprocess.Popen",
        ),
        row("spawn /bin/true: p90", "µs", s_nat["p90"], s_pop["p90"], peer="subprocess.Popen"),
    ]
    return {"rows": rows, "raw": {"unit": "us", "native": s_nat, "popen": s_pop, "native_us": nat, "popen_us": pop}}


# ----------------------------------------------------------------------------------------------
# reload under load: pmon3 vs PM2 (cluster mode)

PM2_VERSION = "7.0.4"
PM2_TARBALL_NAME = f"pm2-{PM2_VERSION}-node_modules.tgz"
NODE_SERVER = HERE / "reload" / "server.js"
LOAD_RATE = 400  # requests per second offered during every reload (keep-alive off)
LOAD_THREADS = 16
WARM_OK = 100  # answered requests before each reload, and after it (the new copies serve)
REQUEST_TIMEOUT = 5.0  # s: a request not answered by then counts as failed


@dataclasses.dataclass(frozen=True)
class ReloadSetup:
    name: str  # the process name on both sides (pmon3: NAME, NAME@1, ...; PM2: the app)
    instances: int
    linger_ms: int  # LINGER_MS of benches/reload/server.js: how long a stopped copy stays at least
    label: str


RELOAD_SETUPS = (
    ReloadSetup("web1", 1, 0, "1 inst. vs PM2 cluster 1"),
    ReloadSetup("web2", 2, 0, "2 inst. vs PM2 cluster 2"),
    ReloadSetup("web1l", 1, 1000, "1 inst., app lingers 1 s"),
)


def find_pm2_tarball() -> Optional[Path]:
    """The vendored PM2 node_modules: $PM2_TARBALL, else shared/vendor/ beside the checkout (or its worktree
    parent). Never committed: it is unpacked into a temp dir per run."""
    env = os.environ.get("PM2_TARBALL")
    candidates = [Path(env)] if env else []
    candidates += [up / "shared" / "vendor" / PM2_TARBALL_NAME for up in (ROOT.parent, ROOT.parent.parent)]
    return next((c for c in candidates if c.is_file()), None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, timeout: float = REQUEST_TIMEOUT) -> str:
    """One GET on a fresh connection (HTTP/1.0, Connection: close), read to EOF; "ok", "refused", or what
    else went wrong: "connect: <exception>", "reply: <exception>" (after the connection was made: sending
    or reading), an empty reply or a status line other than 200."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return f"connect: {type(exc).__name__}"
    data = b""
    try:
        with s:
            s.sendall(b"GET / HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n")
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return f"reply: {type(exc).__name__}"
    if not data.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
        return f"status {data[:12]!r}" if data else "empty reply"
    return "ok"


class PacedLoad:
    """GETs to 127.0.0.1:port at a fixed rate (open loop), each on a fresh connection, the same request as
    tests/load.py.

    Request i is due at t0 + i / rate; `threads` threads take the next due request from a shared schedule, so
    one request that hangs does not hold back the ones after it (16 threads: up to 15 may hang before the
    offered rate drops). Latency counts from when a request was due, so a server that stalls shows as latency
    rather than as fewer requests. Every request is recorded as (due, done, outcome) on CLOCK_MONOTONIC."""

    def __init__(self, port: int, rate: float = LOAD_RATE, threads: int = LOAD_THREADS) -> None:
        self.port = port
        self.rate = rate
        self.threads = threads
        self.records: list[tuple[float, float, str]] = []
        self.cond = threading.Condition()
        self.ok = 0
        self.next_slot = 0
        self.running = threading.Event()
        self.workers: list[threading.Thread] = []
        self.t0 = self.t_stop = 0.0

    def __enter__(self) -> PacedLoad:
        self.running.set()
        self.t0 = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._work, daemon=True)
            t.start()
            self.workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self.t_stop = time.monotonic()
        self.running.clear()
        for t in self.workers:
            t.join(20)  # the requests in flight end (answered, or their 10 s timeout)

    @property
    def offered_rate(self) -> float:
        """Requests sent per second from the start until the load was stopped."""
        sent = sum(1 for due, _, _ in self.records if due <= self.t_stop)
        return sent / (self.t_stop - self.t0) if self.t_stop > self.t0 else 0.0

    def _work(self) -> None:
        while self.running.is_set():
            with self.cond:
                due = self.t0 + self.next_slot / self.rate
                self.next_slot += 1
            ahead = due - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # the offered load's own schedule (not a wait for a condition)
            if not self.running.is_set():
                return
            outcome = http_get(self.port)
            done = time.monotonic()
            with self.cond:
                self.records.append((due, done, outcome))
                if outcome == "ok":
                    self.ok += 1
                self.cond.notify_all()

    def wait_ok(self, n: int, timeout: float = 30.0) -> None:
        """Until `n` more requests have been answered 200, within a deadline."""
        with self.cond:
            target = self.ok + n
            if not self.cond.wait_for(lambda: self.ok >= target, timeout):
                raise TimeoutError(f"port {self.port}: fewer than {n} answers in {timeout:.0f} s")


class Pm2:
    """PM2 from the vendored node_modules, unpacked into a temp dir, with its own PM2_HOME there (its daemon,
    sockets, logs); its apps in cluster mode. `pm2 kill` at the end, then anything left is SIGKILLed."""

    label = "PM2"

    def __init__(self, tarball: Path, apps: list[dict]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pm2-bench-"))
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(self.dir)], check=True)
        self.bin = self.dir / "node_modules" / "pm2" / "bin" / "pm2"
        if not self.bin.exists():
            raise RuntimeError(f"{tarball} has no node_modules/pm2/bin/pm2")
        self.home = self.dir / "home"
        self.home.mkdir()
        # No first-run banner and no version check: both would send a request to version.pm2.io.
        (self.home / "touch").write_text("bench\n")
        self.env = dict(os.environ, PM2_HOME=str(self.home), PM2_DISABLE_VERSION_CHECK="1", NO_COLOR="1")
        self.ecosystem = self.dir / "ecosystem.config.js"
        self.ecosystem.write_text("module.exports = " + json.dumps({"apps": apps}, indent=1) + ";\n")
        self.seen: dict[int, int] = {}  # pid -> its start time: every PM2 process seen, for the clean-up

    def cmd(self, *args: str) -> list[str]:
        return [shutil.which("node") or "node", str(self.bin), *args]

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> tuple[float, subprocess.CompletedProcess]:
        took, cp = timed(self.cmd(*args), self.env, timeout)
        if check and cp.returncode != 0:
            raise RuntimeError(f"pm2 {' '.join(args)} failed ({cp.returncode}): {cp.stdout[-2000:]}{cp.stderr[-2000:]}")
        return took, cp

    def version(self) -> str:
        return self.cli("--version")[1].stdout.strip().splitlines()[-1]

    def daemon_pid(self) -> int:
        with contextlib.suppress(OSError, ValueError):
            return int((self.home / "pm2.pid").read_text())
        return 0

    def start(self) -> None:
        self.cli("start", str(self.ecosystem))
        self.remember(self.daemon_pid())

    def jlist(self) -> tuple[float, dict[str, list[tuple[int, str]]]]:
        """(seconds the call took, name -> [(pid, status)] by pm_id)."""
        took, cp = self.cli("jlist")
        procs: dict[str, list[tuple[int, str]]] = {}
        for p in sorted(json.loads(cp.stdout[cp.stdout.index("[") :]), key=lambda p: p["pm_id"]):
            procs.setdefault(p["name"], []).append((int(p["pid"]), p["pm2_env"]["status"]))
            self.remember(int(p["pid"]))
        return took, procs

    def remember(self, pid: int) -> None:
        start = start_time(pid)
        if start is not None:
            self.seen.setdefault(pid, start)

    def cleanup(self) -> None:
        """`pm2 kill` (stops the apps, then the daemon), then wait for every PM2 process seen to be gone; one
        still there after 15 s (the same pid and start time: never a reused pid) is SIGKILLed."""
        if self.daemon_pid():
            _, cp = self.cli("kill", check=False, timeout=60)
            if cp.returncode != 0:
                log(f"pm2 kill failed ({cp.returncode}): {cp.stderr[-500:]}")
        left = {pid: t for pid, t in self.seen.items() if start_time(pid) == t}
        end = time.monotonic() + 15
        while left and time.monotonic() < end:
            left = {pid: t for pid, t in left.items() if start_time(pid) == t}
            time.sleep(0.02)  # polling the processes' exit, with the deadline above
        for pid in left:
            log(f"PM2 process {pid} still running 15 s after pm2 kill: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_time(pid: int) -> Optional[int]:
    """When a live (not zombie) process started, in clock ticks since boot; None when there is none."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def pmon3_pids(pm: Pmon) -> tuple[float, dict[str, list[tuple[int, str]]]]:
    """(seconds `pmon3 ls --json` took, family -> [(pid, status)] by instance)."""
    took, cp = pm.cli("ls", "--json")
    procs: dict[str, list[tuple[int, str]]] = {}
    for p in sorted(json.loads(cp.stdout), key=lambda p: p["name"]):
        procs.setdefault(p["name"].split("@")[0], []).append((int(p["pid"]), p["status"]))
    return took, procs


def wait_serving(port: int, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while http_get(port, timeout=2.0) != "ok":
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: port {port} does not answer after {timeout:.0f} s")


def all_up(procs: dict[str, list[tuple[int, str]]], setups: list[ReloadSetup]) -> bool:
    """Every set-up runs all its instances (pmon3 `running`: ready; PM2 `online`)."""
    return all(
        len(procs.get(s.name, [])) == s.instances
        and all(status in ("running", "online") for _, status in procs[s.name])
        for s in setups
    )


def reload_session(port: int, reload_cmd: Callable[[], tuple[float, subprocess.CompletedProcess]]) -> dict:
    """Offered load on `port`; once WARM_OK answers came, one reload (timed: command start -> it returns); then
    WARM_OK more answers (the new copies serve) and the load stops. Everything the load saw is counted."""
    with PacedLoad(port) as load:
        load.wait_ok(WARM_OK)
        t0 = time.monotonic()
        took, cp = reload_cmd()
        t1 = time.monotonic()
        if cp.returncode != 0:
            raise RuntimeError(f"reload failed ({cp.returncode}): {cp.stdout[-1000:]}{cp.stderr[-1000:]}")
        load.wait_ok(WARM_OK)
    recs = load.records
    outcomes = collections.Counter(o for _, _, o in recs)
    during = [(done - due) * 1000 for due, done, o in recs if o == "ok" and t0 <= due <= t1]
    outside = [(done - due) * 1000 for due, done, o in recs if o == "ok" and not t0 <= due <= t1]
    return {
        "duration_s": took,
        "requests": len(recs),
        "rate": load.offered_rate,
        "ok": outcomes.pop("ok", 0),
        "refused": outcomes.pop("refused", 0),
        "failed": sum(outcomes.values()),
        "errors": dict(outcomes),
        "latency_during_ms": [round(x, 3) for x in during],
        "latency_outside_p99_ms": percentile(outside, 0.99),
        # every request that was not answered 200: when it was due and when it ended, in s from the reload's start
        "not_ok": [(round(due - t0, 3), round(done - t0, 3), o) for due, done, o in recs if o != "ok"],
        "reload_s": round(t1 - t0, 3),
    }


def percentile(samples: list[float], q: float) -> Optional[float]:
    """Nearest rank; None without samples."""
    if not samples:
        return None
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def scenario_reload(p: dict) -> dict:
    """Zero-downtime reload under HTTP load, pmon3 vs PM2 7 in cluster mode, the same Node server
    (benches/reload/server.js) on both: pmon3 holds the socket (--listen, fd 3) and waits for READY=1
    (--ready notify); PM2's cluster master holds it and `pm2 reload` waits for the new worker's 'listening'.
    Set-ups (RELOAD_SETUPS): 1 vs 1 and 2 vs 2 instances, and in the full profile 1 vs 1 with a server that
    lingers 1 s after its stop signal. Per round one reload of each set-up and side in turn; which side goes
    first alternates by round."""
    node = shutil.which("node")
    tarball = find_pm2_tarball()
    if node is None or tarball is None:
        why = "no node on PATH" if node is None else f"no {PM2_TARBALL_NAME} (set PM2_TARBALL)"
        log(f"reload: skipped ({why})")
        return {"rows": [], "raw": {"skipped": why}}
    reloads = p["reloads"]
    setups = [s for s in RELOAD_SETUPS if s.name in p["reload_setups"]]
    ports = {side: {s.name: free_port() for s in setups} for side in ("pmon3", "pm2")}
    apps = [
        {
            "name": s.name,
            "script": str(NODE_SERVER),
            "exec_mode": "cluster",
            "instances": s.instances,
            "env": {"PORT": str(ports["pm2"][s.name]), "LINGER_MS": str(s.linger_ms)},
        }
        for s in setups
    ]
    pm = Pmon("reload")
    pm2: Optional[Pm2] = None
    raw: dict = {
        "load": {"rate": LOAD_RATE, "threads": LOAD_THREADS, "warm_ok": WARM_OK, "timeout_s": REQUEST_TIMEOUT},
        "setups": [dataclasses.asdict(s) for s in setups],
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip(),
    }
    sessions: dict[str, list[dict]] = {}
    cli_s: dict[str, list[float]] = {"pmon3": [], "pm2": []}
    try:
        pm.start()
        for s in setups:
            listen = f"tcp:127.0.0.1:{ports['pmon3'][s.name]}"
            pm.cli(
                *("exec", node, "--name", s.name, "--listen", listen, "--ready", "notify", "-a", str(NODE_SERVER)),
                *("-e", f"LINGER_MS={s.linger_ms}"),
                *(["-i", str(s.instances)] if s.instances > 1 else []),
            )
        pm2 = Pm2(tarball, apps)
        raw["pm2"] = pm2.version()
        pm2.start()
        listers = {"pmon3": lambda: pmon3_pids(pm), "pm2": pm2.jlist}
        for side, lister in listers.items():
            poll_until(lambda lister=lister: all_up(lister()[1], setups), 60, f"{side}: all instances up")
            for s in setups:
                wait_serving(ports[side][s.name], 30, f"{side} {s.name}")
        log(
            f"reload: {reloads} reloads per set-up ({', '.join(s.name for s in setups)}) under {LOAD_RATE} req/s, "
            f"pmon3 vs PM2 {raw['pm2']} (node {raw['node']}), interleaved"
        )
        clis = {"pmon3": pm.cli, "pm2": pm2.cli}
        for rnd in range(reloads):
            for s in setups:
                for side in ("pmon3", "pm2") if rnd % 2 == 0 else ("pm2", "pmon3"):
                    took_ls, before = listers[side]()
                    cli_s[side].append(took_ls)
                    res = reload_session(
                        ports[side][s.name], lambda c=clis[side], name=s.name: c("reload", name, check=False)
                    )
                    _, after = listers[side]()
                    old = {pid for pid, _ in before[s.name]}
                    new = [pid for pid, _ in after[s.name]]
                    if len(new) != s.instances or old & set(new):
                        raise RuntimeError(
                            f"{side} {s.name}: the reload did not replace every instance: {old} -> {new}"
                        )
                    res |= {"round": rnd, "pids_before": sorted(old), "pids_after": new}
                    sessions.setdefault(f"{side}/{s.name}", []).append(res)
                    log(
                        f"reload round {rnd + 1} {side} {s.name}: {res['duration_s']:.3f} s, {res['failed']} failed, "
                        f"{res['refused']} refused, {res['rate']:.0f} req/s"
                    )
    finally:
        if pm2 is not None:
            pm2.cleanup()
        pm.cleanup()

    rows = []
    raw["sessions"] = sessions
    raw["cli_round_trip_s"] = cli_s
    raw["summary"] = {}
    for s in setups:
        m = {side: reload_summary(sessions[f"{side}/{s.name}"]) for side in ("pmon3", "pm2")}
        raw["summary"][s.name] = m
        for label, unit, key in (
            ("duration median", "s", "duration_median_s"),
            ("duration max", "s", "duration_max_s"),
            (f"failed requests in {reloads}", "n", "failed"),
            (f"refused connections in {reloads}", "n", "refused"),
            ("p99 latency during reloads", "ms", "p99_during_ms"),
            ("p99 latency between reloads", "ms", "p99_outside_ms"),
            ("offered load (median)", "req/s", "rate"),
        ):
            rows.append(row(f"reload, {s.label}: {label}", unit, m["pmon3"][key], None, pm2=m["pm2"][key]))
    rows.append(
        row(
            f"`pmon3 ls --json` vs `pm2 jlist` ({sum(s.instances for s in setups)} node processes each)",
            "s",
            statistics.median(cli_s["pmon3"]),
            None,
            pm2=statistics.median(cli_s["pm2"]),
        )
    )
    return {"rows": rows, "raw": raw}


def reload_summary(ss: list[dict]) -> dict:
    """One side of one set-up over its reloads: durations, what failed, latencies, the load offered."""
    during = [x for s in ss for x in s["latency_during_ms"]]
    outside = [s["latency_outside_p99_ms"] for s in ss if s["latency_outside_p99_ms"] is not None]
    durations = [s["duration_s"] for s in ss]
    return {
        "duration_median_s": statistics.median(durations),
        "duration_max_s": max(durations),
        "durations_s": durations,
        "failed": sum(s["failed"] for s in ss),
        "refused": sum(s["refused"] for s in ss),
        "failed_per_reload": [s["failed"] for s in ss],
        "refused_per_reload": [s["refused"] for s in ss],
        "errors": dict(sum((collections.Counter(s["errors"]) for s in ss), collections.Counter())),
        "p99_during_ms": percentile(during, 0.99),
        "p50_during_ms": percentile(during, 0.5),
        "p99_outside_ms": statistics.median(outside) if outside else None,
        "rate": statistics.median(s["rate"] for s in ss),
    }


# ----------------------------------------------------------------------------------------------
# output


def fmt(v: float, unit: str) -> str:
    if unit == "n":
        return f"{v:.0f}"
    if unit == "%":
        return f"{v:.2f} %"
    if abs(v) >= 100:
        return f"{v:.0f} {unit}"
    if abs(v) >= 10:
        return f"{v:.1f} {unit}"
    return f"{v:.3g} {unit}" if v else f"0 {unit}"


def table(rows: list[dict]) -> str:
    """Markdown table; the supervisord, C reference and PM2 columns only when some row has them."""
    with_sup = any(r.get("supervisord") is not None for r in rows)
    with_c = any(r.get("cref") is not None for r in rows)
    with_pm2 = any(r.get("pm2") is not None for r in rows)
    head = ["scenario", "pmon3"]
    head += ["supervisord", "pmon3/sup"] if with_sup else []
    head += ["C ref", "pmon3/C"] if with_c else []
    head += ["PM2", "pmon3/PM2"] if with_pm2 else []

    def cell(v: Optional[float], unit: str) -> str:
        return "-" if v is None else fmt(v, unit)

    def ratio(a: Optional[float], b: Optional[float]) -> str:
        if a is None or not b:
            return "-"
        q = a / b
        return f"{q:.2f}" if q >= 0.1 else f"{q:.2g}"

    body = []
    for r in rows:
        cells = [r["metric"], cell(r["pmon3"], r["unit"])]
        if with_sup:
            sup_label = cell(r.get("supervisord"), r["unit"])
            if "peer" in r:
                sup_label += " (Popen)"
            cells += [sup_label, ratio(r["pmon3"], r.get("supervisord"))]
        if with_c:
            paired = r.get("paired_ratio")  # the median of per-round ratios where a row has one
            q = ratio(r["pmon3"], r.get("cref")) if paired is None else f"{paired:.2f}"
            cells += [cell(r.get("cref"), r["unit"]), q]
        if with_pm2:
            cells += [cell(r.get("pm2"), r["unit"]), ratio(r["pmon3"], r.get("pm2"))]
        body.append(tuple(cells))
    widths = [max(len(x[i]) for x in (tuple(head), *body)) for i in range(len(head))]

    def line(cells: tuple[str, ...]) -> str:
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "| " + " | ".join(padded) + " |"

    sep = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    return "\n".join([line(tuple(head)), sep, *map(line, body)])


SCENARIOS = ("native", "latency", "cold", "spawn", "cli", "reload")


def byte_compile_pmon3() -> None:
    """pmon3's modules as an installed wheel has them: byte-compiled (pip compiles at install). The dev venv
    imports pmon3 from the source tree, and where PYTHONDONTWRITEBYTECODE is set (this machine) every CLI call
    compiled pmon3's modules again: ~40 ms that no installed pmon3 pays, in every CLI row."""
    import compileall

    compileall.compile_dir(str(ROOT / "python" / "pmon3"), quiet=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the < 3 minute profile")
    ap.add_argument(
        "--only", help=f"comma-separated subset of {','.join(SCENARIOS)} (cli includes idle; reload: vs PM2)"
    )
    ap.add_argument("--pmond-conf", default="", help='YAML appended to every pmond config, e.g. "history: {retain: 0}"')
    args = ap.parse_args()
    global EXTRA_PMOND_CONF
    EXTRA_PMOND_CONF = args.pmond_conf + "\n" if args.pmond_conf else ""
    profile = PROFILES["quick" if args.quick else "full"]
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    unknown = only - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")

    started = dt.datetime.now().astimezone()
    t_start = time.monotonic()
    # supervisord takes part in these; the others run without it (and without installing it)
    peer_version = ensure_peer() if only & {"latency", "spawn", "cli"} else "(not used)"
    info = host_info() | {"supervisord": peer_version}
    profile_name = "quick" if args.quick else "full"
    log(f"pmon3: {info['pmon3']}; supervisord {peer_version}; {info['cpus']} cpus; profile {profile_name}")

    byte_compile_pmon3()
    results: dict = {}
    keep: dict = {}
    try:
        for key, name, fn in (
            ("native", "native_spawn", lambda: scenario_native_spawn(profile)),
            ("latency", "crash_restart_latency", lambda: scenario_latency(profile)),
            ("cold", "cold_start", lambda: scenario_cold(profile)),
            ("spawn", "spawn_throughput", lambda: scenario_spawn(profile, keep)),
            ("cli", "cli_and_idle", lambda: scenario_cli_idle(profile, keep)),
            ("reload", "reload_vs_pm2", lambda: scenario_reload(profile)),
        ):
            if key in only:
                t0 = time.monotonic()
                results[name] = fn()
                results[name]["duration_s"] = time.monotonic() - t0
                log(f"{name} took {results[name]['duration_s']:.1f} s")
    finally:
        if keep.get("pm_dir_100"):
            shutil.rmtree(keep["pm_dir_100"], ignore_errors=True)

    rows = [r for res in results.values() for r in res["rows"]]
    out = {
        "date": started.isoformat(timespec="seconds"),
        "profile": "quick" if args.quick else "full",
        "profile_settings": profile,
        "host": info | {"loadavg_end": os.getloadavg()},
        "duration_s": time.monotonic() - t_start,
        "rows": rows,
        "scenarios": results,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    peers = []
    if only & {"latency", "spawn", "cli"}:
        peers.append(f"supervisord {peer_version}")
    if only & {"latency", "cold"}:
        peers.append("the C reference")
    pm2_version = results.get("reload_vs_pm2", {}).get("raw", {}).get("pm2")
    if pm2_version:
        peers.append(f"PM2 {pm2_version}")
    print(f"\npmon3 vs {', '.join(peers) or 'nothing'} — {started:%Y-%m-%d %H:%M} — {info['cpus']} CPUs, {info['cpu']}")
    print(table(rows))
    print(f"\n({out['duration_s']:.0f} s; raw samples in {path.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
