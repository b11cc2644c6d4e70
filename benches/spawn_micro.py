"""Native spawn vs subprocess.Popen: call duration of starting /bin/true (DESIGN §3).

Run by benches/run.py in its own process with the pmon3 venv's interpreter:
    python benches/spawn_micro.py ITERATIONS
Prints one JSON object {"native_ns": [...], "popen_ns": [...]} on stdout. The two are interleaved
(native, Popen, native, Popen, ...) and every child is reaped before the next call.
"""

import json
import os
import select
import subprocess
import sys
import time

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


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    native_ns: list[int] = []
    popen_ns: list[int] = []
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
    json.dump({"native_ns": native_ns, "popen_ns": popen_ns}, sys.stdout)


if __name__ == "__main__":
    main()
