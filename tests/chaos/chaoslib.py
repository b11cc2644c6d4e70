"""The chaos machinery: clients that issue random commands at a pmond that is killed with SIGKILL under them,
the history of what each was told, and the invariants checked against pmond, /proc and the database.

What the history can prove. A command that got a success reply was *acknowledged*; one that got an error or
"pmond died" may or may not have taken effect. Each command is known to have taken effect, if at all, between
its start and its end (measured around the call, so a superset of the real interval). So, per (owner, name):

- an acknowledged `exec` C must still exist if no command that may delete the name (`del`, or `group drop` of
  a group it may have been assigned to, whatever their outcome) ended after C started;
- an acknowledged `del` D must still hold (no such row) if no `exec` of the name ended after D started;
- an acknowledged `stop` S must still hold (the row, if any, is stopped) if no command that may start it
  (`exec`, `restart`, `group restart` of a group it may be in) ended after S started.

Everything else the history leaves open. The seed fixes every choice the clients and the killer make
(commands, names, delays, kill points); thread interleavings and pmond's own timing still vary between runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

from helpers import RUN, Pmond

SEED = int(os.environ.get("PMON3_CHAOS_SEED") or random.SystemRandom().randrange(1 << 32))
PREFIX = f"ch{RUN}-"  # every process name of this run's chaos (and so every PMON3_NAME to look for)
# A call that takes this long is a hang: every command here ends within a second or two (all programs stop on
# SIGTERM at once); a pmond that died is reported by the client at once (pidfd), not after a timeout.
HANG = 20.0

Key = tuple[str, str]  # (owner, name)


@dataclasses.dataclass
class Op:
    client: str
    owner: str
    cmd: str  # exec stop restart del group_create group_assign group_stop group_restart group_drop ls
    target: str  # the process or group named
    names: tuple[str, ...] = ()  # group_assign: the processes named
    force: bool = False
    start: float = 0.0
    end: float = 0.0
    outcome: str = ""  # ack | error | down (no pmond, or it died) | hang
    detail: str = ""
    removed: tuple[str, ...] = ()  # an acknowledged group drop: the names it deleted


class History:
    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.lock = threading.Lock()

    def add(self, op: Op) -> None:
        with self.lock:
            self.ops.append(op)

    def _assigned(self, owner: str, group: str, before: float) -> set[str]:
        """Names that may be in `group`: named by an assign to it that started before `before`."""
        return {
            n
            for op in self.ops
            if op.owner == owner and op.cmd == "group_assign" and op.target == group and op.start < before
            for n in op.names
        }

    def _may_delete(self, op: Op, name: str) -> bool:
        if op.cmd == "del":
            return op.target == name
        if op.cmd == "group_drop":
            return name in op.removed or name in self._assigned(op.owner, op.target, op.end)
        return False

    def _may_start(self, op: Op, name: str) -> bool:
        if op.cmd in ("exec", "restart"):
            return op.target == name
        if op.cmd == "group_restart":
            return name in self._assigned(op.owner, op.target, op.end)
        return False

    def expectations(self) -> tuple[set[Key], set[Key], set[Key]]:
        """(must exist, must not exist, must be stopped if it exists), as the module docstring says."""
        with self.lock:
            ops = list(self.ops)
        keys = {(op.owner, op.target) for op in ops if op.cmd in ("exec", "del", "stop")}
        exist, gone, stopped = set(), set(), set()
        for owner, name in keys:
            mine = [op for op in ops if op.owner == owner]
            deletes = [op for op in mine if self._may_delete(op, name)]
            creates = [op for op in mine if op.cmd == "exec" and op.target == name]
            starts = [op for op in mine if self._may_start(op, name)]
            for c in creates:
                if c.outcome == "ack" and all(d.end <= c.start for d in deletes):
                    exist.add((owner, name))
            for d in mine:
                if d.cmd == "del" and d.target == name and d.outcome == "ack":
                    if all(c.end <= d.start for c in creates):
                        gone.add((owner, name))
            for s in mine:
                if s.cmd == "stop" and s.target == name and s.outcome == "ack":
                    if all(c.end <= s.start for c in starts):
                        stopped.add((owner, name))
        return exist, gone, stopped

    def figures(self) -> dict[str, Any]:
        with self.lock:
            ops = list(self.ops)
        per_client: dict[str, Counter[str]] = {}
        for op in ops:
            per_client.setdefault(op.client, Counter())[op.outcome] += 1
        return {
            "commands": len(ops),
            "by_outcome": dict(Counter(op.outcome for op in ops)),
            "by_command": dict(Counter(op.cmd for op in ops)),
            "acked_execs": dict(Counter(op.client for op in ops if op.cmd == "exec" and op.outcome == "ack")),
            "per_client": {c: dict(n) for c, n in per_client.items()},
        }


# -- clients ---------------------------------------------------------------------------------------------------

Issue = Callable[[Op], None]  # carries out op, filling outcome, detail, removed


def api_issue(client: Any, programs: dict[str, list[str]]) -> Issue:
    """Through a long-lived in-process pmon3.Client (one per thread, kept across pmond crashes)."""
    from pmon3.errors import DaemonTimeoutError, DaemonUnavailableError, Pmon3Error

    def issue(op: Op) -> None:
        try:
            removed: tuple[str, ...] = ()
            if op.cmd == "exec":
                file, *args = programs[op.detail]
                client.exec(file, name=op.target, args=args)
            elif op.cmd == "stop":
                client.stop(op.target, force=op.force)
            elif op.cmd == "restart":
                client.restart(op.target)
            elif op.cmd == "del":
                client.delete(op.target, force=op.force)
            elif op.cmd == "group_create":
                client.group_create(op.target)
            elif op.cmd == "group_assign":
                client.group_assign(op.target, list(op.names))
            elif op.cmd == "group_stop":
                client.group_stop(op.target, force=op.force)
            elif op.cmd == "group_restart":
                client.group_restart(op.target)
            elif op.cmd == "group_drop":
                removed = tuple(p["name"] for p in client.group_drop(op.target, force=op.force)["processes"])
            elif op.cmd == "ls":
                client.list()
            op.outcome, op.removed = "ack", removed
        except DaemonTimeoutError as exc:
            op.outcome, op.detail = "hang", str(exc)
        except DaemonUnavailableError as exc:
            op.outcome, op.detail = "down", str(exc)
        except Pmon3Error as exc:
            op.outcome, op.detail = "error", str(exc)

    return issue


DOWN_WORDS = ("pmond must be running", "pmond died", "pmond did not start", "could not start pmond")


def cli_issue(d: Pmond, programs: dict[str, list[str]], user: Optional[str]) -> Issue:
    """Through the real CLI, as root or as `user`."""

    def argv(op: Op) -> list[str]:
        force = ["-f"] if op.force else []
        if op.cmd == "exec":
            file, *args = programs[op.detail]
            return ["exec", file, "--name", op.target, *(["-a", " ".join(args)] if args else [])]
        if op.cmd in ("stop", "del"):
            return [op.cmd, op.target, *force]
        if op.cmd == "restart":
            return ["restart", op.target]
        if op.cmd.startswith("group_"):
            verb = op.cmd.split("_", 1)[1]
            extra = [",".join(op.names)] if verb == "assign" else force if verb in ("stop", "drop") else []
            return ["group", verb, op.target, *extra]
        return ["ls"]

    def issue(op: Op) -> None:
        try:
            res = d.cli(*argv(op), "--json", check=False, user=user, timeout=HANG)
        except subprocess.TimeoutExpired:
            op.outcome, op.detail = "hang", f"the CLI did not return within {HANG} s"
            return
        if res.returncode == 0:
            op.outcome = "ack"
            if op.cmd == "group_drop":
                op.removed = tuple(p["name"] for p in json.loads(res.stdout)["processes"])
            return
        text = res.stderr.strip()
        op.outcome = "down" if any(w in text for w in DOWN_WORDS) else "error"
        op.detail = text

    return issue


class ChaosClient(threading.Thread):
    """Issues random commands on its owner's names and groups until told to stop."""

    WEIGHTS = {
        "exec": 28,
        "stop": 11,
        "restart": 11,
        "del": 13,
        "group_create": 6,
        "group_assign": 11,
        "group_stop": 5,
        "group_restart": 5,
        "group_drop": 4,
        "ls": 6,
    }

    def __init__(
        self,
        label: str,
        owner: str,
        names: list[str],
        groups: list[str],
        programs: list[str],
        issue: Issue,
        history: History,
        seed: int,
        pace: float,
    ) -> None:
        super().__init__(name=f"chaos-{label}", daemon=True)
        self.label, self.owner, self.names, self.groups, self.programs = label, owner, names, groups, programs
        self.issue, self.history, self.pace = issue, history, pace
        self.rng = random.Random(seed)
        self.halt = threading.Event()
        self.busy: Optional[tuple[Op, float]] = None  # the command in flight and when it started
        self.error: Optional[BaseException] = None

    def next_op(self) -> Op:
        cmd = self.rng.choices(list(self.WEIGHTS), list(self.WEIGHTS.values()))[0]
        force = self.rng.random() < 0.25  # SIGKILL through cgroup.kill
        if cmd.startswith("group_") and cmd != "group_assign":
            return Op(self.label, self.owner, cmd, self.rng.choice(self.groups), force=force)
        if cmd == "group_assign":
            names = tuple(self.rng.sample(self.names, self.rng.randint(1, 2)))
            return Op(self.label, self.owner, cmd, self.rng.choice(self.groups), names=names)
        op = Op(self.label, self.owner, cmd, self.rng.choice(self.names), force=force)
        if cmd == "exec":
            op.detail = self.rng.choice(self.programs)  # which program: replaced by the outcome's detail
        return op

    def run(self) -> None:
        try:
            while not self.halt.is_set():
                op = self.next_op()
                program = op.detail
                op.start = time.monotonic()
                self.busy = (op, op.start)
                self.issue(op)
                op.end = time.monotonic()
                self.busy = None
                if op.cmd == "exec" and op.outcome == "ack":
                    op.detail = program
                self.history.add(op)
                # chaos input: when the next command comes (later while nobody answers)
                self.halt.wait(
                    self.rng.uniform(0, self.pace) + (self.rng.uniform(0.1, 0.5) if op.outcome == "down" else 0)
                )
        except BaseException as exc:  # reported by the test, never lost in a thread
            self.error = exc

    def stuck(self, now: float) -> Optional[str]:
        busy = self.busy
        if busy is not None and now - busy[1] > HANG:
            return f"{self.label}: {busy[0].cmd} {busy[0].target} has not returned for {now - busy[1]:.0f} s"
        return None


# -- what is on the machine --------------------------------------------------------------------------------------


def _stat(pid: int) -> Optional[tuple[int, int]]:
    """(ppid, uid) of a live process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        if fields[0] in (b"Z", b"X"):
            return None
        return int(fields[1]), os.stat(f"/proc/{pid}").st_uid
    except (OSError, IndexError, ValueError):
        return None


def chaos_processes() -> dict[int, tuple[str, int, int]]:
    """Every live process of this run's chaos: pid -> (PMON3_NAME, ppid, uid)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            continue
        name = next((e[11:].decode() for e in env if e.startswith(b"PMON3_NAME=" + PREFIX.encode())), None)
        info = _stat(pid) if name else None
        if name and info:
            found[pid] = (name, *info)
    return found


def _descends(pid: int, ancestor: int, procs: dict[int, tuple[str, int, int]]) -> bool:
    seen = 0
    while pid in procs and seen < 64:
        if pid == ancestor:
            return True
        pid, seen = procs[pid][1], seen + 1
    return pid == ancestor


SETTLED = {"running", "stopped"}  # every program here runs until stopped: nothing else is a resting state


def problems(rows: list[dict[str, Any]], procs: dict[int, tuple[str, int, int]], history: History,
             uids: dict[str, int]) -> list[str]:  # fmt: skip
    """What is wrong now; empty when every invariant holds."""
    found: list[str] = []
    mine = [r for r in rows if r["name"].startswith(PREFIX)]
    by_key: dict[Key, list[dict[str, Any]]] = {}
    for r in mine:
        by_key.setdefault((r["owner"], r["name"]), []).append(r)
    exist, gone, stopped = history.expectations()
    for key in sorted(exist):
        if len(by_key.get(key, [])) != 1:
            found.append(f"lost ack: exec of {key} was acknowledged, rows now: {len(by_key.get(key, []))}")
    for key in sorted(gone):
        if by_key.get(key):
            found.append(f"lost ack: del of {key} was acknowledged, yet the row exists")
    for key in sorted(stopped):
        for r in by_key.get(key, []):
            if r["status"] != "stopped":
                found.append(f"lost ack: stop of {key} was acknowledged, yet it is {r['status']}")
    for key, rs in by_key.items():
        if len(rs) > 1:
            found.append(f"duplicate rows for {key}: ids {[r['id'] for r in rs]}")
    row_of = {r["name"]: r for r in mine}  # names are unique across owners here (per-owner pools)
    for r in mine:
        copies = [pid for pid, (name, _ppid, _uid) in procs.items() if name == r["name"]]
        if r["status"] not in SETTLED:
            found.append(f"{r['name']} is {r['status']}, not running or stopped")
        elif r["status"] == "running" and r["pid"] not in copies:
            found.append(f"{r['name']} is running as pid {r['pid']}, which is not its live process ({copies})")
        elif r["status"] == "stopped" and copies:
            found.append(f"{r['name']} is stopped, yet {copies} run")
    for pid, (name, _ppid, uid) in sorted(procs.items()):
        r = row_of.get(name)
        if r is None:
            found.append(f"untracked: pid {pid} runs as {name}, which has no row")
        elif r["status"] != "running" or not _descends(pid, r["pid"], procs):
            found.append(f"untracked: pid {pid} runs as {name} outside its row's tree (row pid {r['pid']})")
        elif uid != uids[r["owner"]]:
            found.append(f"pid {pid} ({name}) runs as uid {uid}, not as its owner {r['owner']}")
    return found


def settle(list_rows: Callable[[], list[dict[str, Any]]], history: History, uids: dict[str, int],
           timeout: float = 20.0) -> int:  # fmt: skip
    """Until every invariant holds (a restart or a stop in progress may take a moment); fails with what is
    still wrong at the deadline. Returns how many invariant checks the passing evaluation made."""
    deadline = time.monotonic() + timeout
    while True:
        rows = list_rows()
        procs = chaos_processes()
        found = problems(rows, procs, history, uids)
        if not found:
            exist, gone, stopped = history.expectations()
            mine = [r for r in rows if r["name"].startswith(PREFIX)]
            return len(exist) + len(gone) + len(stopped) + 2 * len(mine) + len(procs)
        if time.monotonic() > deadline:
            raise AssertionError(f"invariants still broken after {timeout} s (seed {SEED}):\n  " + "\n  ".join(found))
        time.sleep(0.05)


def integrity(db_path: Path) -> str:
    """PRAGMA integrity_check on a read-only connection, while pmond runs."""
    import apsw

    db = apsw.Connection(f"file:{db_path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        return "; ".join(str(r[0]) for r in db.execute("PRAGMA integrity_check").fetchall())
    finally:
        db.close()


def kill_one(rng: random.Random) -> Optional[int]:
    """Chaos input while pmond is down: SIGKILL one of this run's live processes (a leader or a child), as a
    crash nobody watches; reaped if it was re-parented to us."""
    procs = sorted(chaos_processes())
    if not procs:
        return None
    pid = rng.choice(procs)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    return pid
