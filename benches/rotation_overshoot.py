"""How far past `logs.max_size` a log gets under a fast writer, in a real pmond (docs/logs.md quotes it).

    .venv/bin/python benches/rotation_overshoot.py [--rate 50] [--seconds 5] [--max-size 20000] [--dir DIR]

Starts a pmond in a temp dir (its `logs.directory` under DIR, default a temp dir on /tmp; pass /dev/shm for
tmpfs, where rotation is copytruncate) with `logs.max_size`, `retain: 2`, and runs one process that writes
64 KiB chunks of text to its stdout at RATE MB/s (paced, 1 MB = 10^6 bytes) for SECONDS. After every write the
writer fstat()s its own stdout and keeps the largest size it saw: that is the largest the log got, to within
one write. Prints that peak, the peak minus max_size (the overshoot), the sizes of the rotated files and
pmond's CPU time over the run. Needs the dev venv; nothing is left running.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent

WRITER = r"""
import json, os, sys, time
rate, seconds, out, size = float(sys.argv[1]) * 1e6, float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
line = b"%08d overshoot measurement padding padding padding padding padding\n"
chunk = b"".join(line % i for i in range(1000))[:size]
start = time.monotonic()
written = peak = writes = 0
late = 0  # the peak after the first second: once the log is watched
sizes = []
while True:
    now = time.monotonic() - start
    if now >= seconds:
        break
    if written < rate * now:
        written += os.write(1, chunk)
        writes += 1
        size = os.fstat(1).st_size
        peak = max(peak, size)
        if now >= 1.0:
            late = max(late, size)
            sizes.append(size)
    else:
        time.sleep(0.0002)
with open(out + ".tmp", "w") as fh:
    sizes.sort()
    p99 = sizes[int(len(sizes) * 0.99)] if sizes else 0
    p50 = sizes[len(sizes) // 2] if sizes else 0
    json.dump({"written": written, "peak": peak, "late": late, "p99": p99, "p50": p50, "writes": writes,
               "elapsed": time.monotonic() - start}, fh)
os.rename(out + ".tmp", out)
"""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(rate: float, seconds: float, max_size: int, base: str, chunk: int = 64 << 10) -> dict[str, object]:
    root = Path(tempfile.mkdtemp(prefix="pmon3-overshoot-", dir=base))
    logs = root / "logs"
    conf = root / "config.yml"
    conf.write_text(
        f"data:\n  directory: {root / 'data'}\n"
        f"logs:\n  directory: {logs}\n  max_size: {max_size}\n  retain: 2\n"
        f"message_queue:\n  name_suffix: overshoot{os.getpid()}\n"
        f"daemon:\n  autostart: false\n"
    )
    (root / "writer.py").write_text(WRITER)
    result = root / "result.json"
    env = {**os.environ, "PMON3_CONF": str(conf)}
    r, w = os.pipe()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pmon3.daemon", "--foreground", "--ready-fd", str(w)],
        env=env,
        pass_fds=(w,),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(root / "pmond.stderr", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], 30)
        if not (ready and os.read(r, 16).startswith(b"ready")):
            raise RuntimeError((root / "pmond.stderr").read_text())
        cpu0 = cpu_seconds(daemon.pid)
        subprocess.run(
            [str(BIN / "pmon3"), "exec", sys.executable, "--name", "fast", "-n", "--",
             str(root / "writer.py"), str(rate), str(seconds), str(result), str(chunk)],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + seconds + 60
        while not result.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the writer did not finish")
            time.sleep(0.05)
        cpu = cpu_seconds(daemon.pid) - cpu0
        out = json.loads(result.read_text())
        rotated = sorted((p.name, p.stat().st_size) for p in logs.glob("fast.log.*"))
        return {
            "filesystem": base,
            "rate_MBps": round(out["written"] / out["elapsed"] / 1e6, 1),
            "write_size": chunk,
            "max_size": max_size,
            "peak": out["peak"],
            "overshoot": out["peak"] - max_size,
            "overshoot_after_1s": out["late"] - max_size,
            "p50_size_after_1s": out["p50"],
            "p99_size_after_1s": out["p99"],
            "rotated_files": rotated,
            "pmond_cpu_s": round(cpu, 2),
            "seconds": round(out["elapsed"], 2),
        }
    finally:
        os.close(r)
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=50.0, help="MB/s (10^6 bytes)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--max-size", type=int, default=20000)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the temp dir goes (its filesystem)")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=64 << 10, help="bytes per write")
    args = ap.parse_args()
    for _ in range(args.runs):
        print(json.dumps(measure(args.rate, args.seconds, args.max_size, args.dir, args.chunk)), flush=True)


if __name__ == "__main__":
    main()
