"""Native spawn vs subprocess.Popen: call duration of starting /bin/true (DESIGN §3).

Run by benches/run.py in its own process with the pmon3 venv's interpreter:
    python benches/spawn_micro.py ITERATIONS [--cgroup [--populated]] [--gap-ms MS]
Prints one JSON object {"native_ns": [...], "popen_ns": [...]} on stdout and a table of medians
on stderr. The arms are interleaved (native, Popen, native, Popen, ...) and every child is reaped
before the next call.
With --cgroup (root, a cgroup2 mount) two more arms spawn into a temporary cgroup, interleaved
with the others: "native_cgroup_ns" through `cgroup_procs_fd` (the child migrates itself) and
"native_cgroup_fd_ns" through `cgroup_fd` (clone3 CLONE_INTO_CGROUP: born there).
With --populated a `sleep` is kept in that cgroup meanwhile, so no spawn makes it populated (the
empty -> populated notification wakes a kworker on the parent's CPU, which can cost the new child
its turn on a busy machine).
With --gap-ms every spawn waits that long first, as a crash restart after a quiet spell does
(a cgroup migration then waits for an RCU grace period).
"""

import json
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

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


def cgroup2_mount() -> Path:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        if fs.split()[:1] == ["cgroup2"]:
            return Path(fields.split()[4].encode().decode("unicode_escape"))
    raise SystemExit("--cgroup: no cgroup2 mount in /proc/self/mountinfo")


def make_cgroup() -> Path:
    path = cgroup2_mount() / f"pmon3-bench-{os.getpid()}"
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


def option(name: str) -> Optional[str]:
    if name in sys.argv:
        i = sys.argv.index(name)
        if i + 1 >= len(sys.argv):
            raise SystemExit(f"{name} needs a value")
        return sys.argv[i + 1]
    return None


def main() -> None:
    gap_arg = option("--gap-ms")
    gap_s = float(gap_arg) / 1000 if gap_arg is not None else 0.0
    args = [a for a in sys.argv[1:] if not a.startswith("--") and a != gap_arg]
    iterations = int(args[0]) if args else 500
    cgroup = make_cgroup() if "--cgroup" in sys.argv else None
    sleeper: Optional[tuple[int, int]] = None
    try:
        if cgroup is not None and "--populated" in sys.argv:
            fd = os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                sleeper = _native.spawn("/bin/sleep", ["sleep", "3600"], [], cgroup_fd=fd)
            finally:
                os.close(fd)
        result = measure(iterations, cgroup, gap_s)
    finally:
        if sleeper is not None:
            _native.pidfd_send_signal(sleeper[1], 9)
            reap_native(*sleeper)
        if cgroup is not None:
            remove_cgroup(cgroup)
    populated = ", cgroup kept populated" if sleeper is not None else ""
    print(
        f"{iterations} iterations, {gap_s * 1000:g} ms before each spawn{populated}; median / p90 in us:",
        file=sys.stderr,
    )
    for name, samples in result.items():
        p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
        print(f"  {name:22} {statistics.median(samples) / 1000:9.1f} {p90 / 1000:9.1f}", file=sys.stderr)
    json.dump(result, sys.stdout)


def measure(iterations: int, cgroup: Optional[Path], gap_s: float) -> dict[str, list[int]]:
    def native(**kw: int) -> Callable[[], None]:
        def run() -> None:
            t0 = time.perf_counter_ns()
            pid, pidfd = _native.spawn("/bin/true", ["true"], [], **kw)
            samples.append(time.perf_counter_ns() - t0)
            reap_native(pid, pidfd)

        return run

    def popen() -> None:
        t0 = time.perf_counter_ns()
        p = subprocess.Popen(["/bin/true"], close_fds=True, start_new_session=True, stdin=subprocess.DEVNULL)
        samples.append(time.perf_counter_ns() - t0)
        p.wait(DEADLINE_S)

    arms: dict[str, Callable[[], None]] = {"native_ns": native(), "popen_ns": popen}
    fds: list[int] = []
    if cgroup is not None:
        fds.append(os.open(cgroup / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC))
        fds.append(os.open(cgroup, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        arms["native_cgroup_ns"] = native(cgroup_procs_fd=fds[0])
        arms["native_cgroup_fd_ns"] = native(cgroup_fd=fds[1])
    result: dict[str, list[int]] = {name: [] for name in arms}
    try:
        # Warm up every path (page cache, lazy imports inside subprocess).
        samples: list[int] = []
        for _ in range(20):
            for run in arms.values():
                run()
        for _ in range(iterations):
            for name, run in arms.items():
                if gap_s:
                    time.sleep(gap_s)
                samples = result[name]
                run()
    finally:
        for fd in fds:
            os.close(fd)
    return result


if __name__ == "__main__":
    main()
