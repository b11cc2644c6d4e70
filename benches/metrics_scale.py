"""pmond with N running processes: its resident memory, and how long a /metrics scrape takes.

    .venv/bin/python benches/metrics_scale.py -n 1000 [--pmond PATH] [--no-metrics] [--scrapes 20]

Starts a pmond in a temp dir with N `/bin/sleep` entries in its process config file, waits until its boot has
started all of them (`boot start done` in its log), lets it settle, reads its VmRSS and VmHWM, then (unless
--no-metrics, e.g. for a pmond without the endpoint) scrapes /metrics --scrapes times, back to back, and
reports the wall time of each (median, min, max) and the size of the text. `--pmond` runs another checkout's
pmond (its own venv's), for a before/after comparison in the same session. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)


def scrape(port: int) -> tuple[float, int, float]:
    """(wall seconds, bytes, pmond's own render time of the previous scrape)."""
    t0 = time.perf_counter()
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        while chunk := s.recv(1 << 20):
            data += chunk
    took = time.perf_counter() - t0
    render = 0.0
    for line in data.split(b"\n"):
        if line.startswith(b"pmon3_metrics_render_seconds "):
            render = float(line.split()[1])
    return took, len(data), render


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--pmond", default=str(Path(sys.prefix) / "bin" / "pmond"))
    ap.add_argument("--no-metrics", action="store_true")
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--conf", default="", help="YAML appended to pmond's config")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pmon3-bench-metrics-"))
    port = free_port()
    entries = "".join(f"  - file: /bin/sleep\n    name: s{i}\n    args: '100000'\n" for i in range(args.n))
    (root / "procs.yaml").write_text("processes:\n" + entries)
    (root / "config.yml").write_text(
        f"data: {{directory: {root / 'data'}}}\nlogs: {{directory: {root / 'logs'}}}\n"
        f"message_queue: {{name_suffix: benchm{os.getpid()}}}\ndaemon: {{autostart: false}}\n"
        f"process_config_file: {root / 'procs.yaml'}\n"
        + ("" if args.no_metrics else f'metrics: {{listen: "127.0.0.1:{port}"}}\n')
        + (args.conf + "\n" if args.conf else "")
    )
    env = dict(os.environ, PMON3_CONF=str(root / "config.yml"))
    err = open(root / "pmond.err", "wb")  # noqa: SIM115
    proc = subprocess.Popen([args.pmond, "--foreground"], env=env, stdout=err, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while b"boot start done" not in (root / "pmond.err").read_bytes():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"pmond did not boot: {(root / 'pmond.err').read_text()[-2000:]}")
            time.sleep(0.2)
        booted = time.monotonic()
        time.sleep(3)  # settle: the boot's garbage collected, pending writes done
        st = status(proc.pid)
        print(f"pmond {args.pmond}: {args.n} processes running (booted in {booted - (deadline - 600):.1f} s)")
        print(f"pmond VmRSS {st['VmRSS'].strip()}, VmHWM {st['VmHWM'].strip()}")
        if not args.no_metrics:
            times, renders, size = [], [], 0
            for _ in range(args.scrapes):
                t, size, render = scrape(port)
                times.append(t * 1000)
                renders.append(render * 1000)
            print(
                f"/metrics: median {statistics.median(times):.1f} ms, min {min(times):.1f}, max {max(times):.1f} "
                f"({args.scrapes} scrapes, {size / 1024:.0f} KiB each); pmond's render (of the previous scrape): "
                f"median {statistics.median(renders[1:] or [0]):.1f} ms"
            )
            st = status(proc.pid)
            print(f"pmond after the scrapes: VmRSS {st['VmRSS'].strip()}, VmHWM {st['VmHWM'].strip()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(300)
        except subprocess.TimeoutExpired:
            proc.kill()
        err.close()
        subprocess.run(["rm", "-rf", str(root)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
