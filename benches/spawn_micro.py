"""Native spawn vs subprocess.Popen: call duration of starting /bin/true (DESIGN §3).

Run by benches/run.py in its own process with the pmon3 venv's interpreter:
    python benches/spawn_micro.py ITERATIONS [--cgroup]
Prints one JSON object {"native_ns": [...], "popen_ns": [...]} on stdout. The two are interleaved
(native, Popen, native, Popen, ...) and every child is reaped before the next call.
With --cgroup (root, cgroup2 at /sys/fs/cgroup/unified) a third arm, "native_cgroup_ns", spawns into a
temporary cgroup through `cgroup_procs_fd`, interleaved with the other two.
"""

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from pmon3 import _native

DEADLINE_S = 5.0


def reap_native(pid: int, pidfd: int) -> None:
    """Wait for `pid` through its pidfd (deadline), then collect it with _native.reap()."""
    try:
        end = time.monotonic() + DEADLINE_S
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"child {pid} did not exit within {DEADLINE_S} s")
            readable, _, _ = select.select([pidfd], [], [], left)
            if not readable:
                continue
            if any(rec[0] == pid for rec in _native.reap()):
                return
    finally:
        os.close(pidfd)


def make_cgroup() -> Path:
    path = Path("/sys/fs/cgroup/unified") / f"pmon3-bench-{os.getpid()}"
    path.mkdir()
    return path


def remove_cgroup(path: Path) -> None:
    """Every child has been reaped, so the cgroup is empty; the kernel may need a moment to agree."""
    end = time.monotonic() + DEADLINE_S
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.01)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    iterations = int(args[0]) if args else 500
    cgroup = make_cgroup() if "--cgroup" in sys.argv else None
    try:
        result = measure(iterations, cgroup)
    finally:
        if cgroup is not None:
            remove_cgroup(cgroup)
    json.dump(result, sys.stdout)


def measure(iterations: int, cgroup: Optional[Path]) -> dict[str, list[int]]:
    native_ns: list[int] = []
    popen_ns: list[int] = []
    cgroup_ns: list[int] = []
    procs_fd = os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) if cgroup else None
    # Warm up both paths (page cache, lazy imports inside subprocess).
    for _ in range(20):
        reap_native(*_native.spawn("/bin/true", ["true"], []))
        subprocess.Popen(["/bin/true"], close_fds=True, start_new_session=True, stdin=subprocess.DEVNULL).wait(
            DEADLINE_S
        )
    for _ in range(iterations):
        t0 = time.perf_counter_ns()
        pid, pidfd = _native.spawn("/bin/true", ["true"], [])
        native_ns.append(time.perf_counter_ns() - t0)
        reap_native(pid, pidfd)

        t0 = time.perf_counter_ns()
        p = subprocess.Popen(["/bin/true"], close_fds=True, start_new_session=True, stdin=subprocess.DEVNULL)
        popen_ns.append(time.perf_counter_ns() - t0)
        p.wait(DEADLINE_S)

        if procs_fd is not None:
            t0 = time.perf_counter_ns()
            pid, pidfd = _native.spawn("/bin/true", ["true"], [], cgroup_procs_fd=procs_fd)
            cgroup_ns.append(time.perf_counter_ns() - t0)
            reap_native(pid, pidfd)
    if procs_fd is not None:
        os.close(procs_fd)
        return {"native_ns": native_ns, "popen_ns": popen_ns, "native_cgroup_ns": cgroup_ns}
    return {"native_ns": native_ns, "popen_ns": popen_ns}


if __name__ == "__main__":
    main()
