"""Crash->restart latency of several pmond builds or configs, interleaved kill by kill under the same load.

    .venv/bin/python benches/latency_ab.py -n 200 \\
        --arm main=/tmp/main/.venv/bin --arm on=.venv/bin --arm "off=.venv/bin:history: {retain: 0}"

Each arm is a pmond (and its pmon3) from a venv's bin directory, with optional YAML appended to its config.
Every arm supervises one `stamp` (benches/stamp.c: its CLOCK_MONOTONIC at main() into a FIFO); the children
are SIGKILLed in turn (A B C A B C ...), 50 ms apart, so that load drift on a shared machine hits every arm
alike, which whole-run alternation (run.py's latency scenario, a minute per arm) cannot do. Prints per arm
the median, p90 and mean of kill -> the new child's main(), and the median of the paired differences to the
first arm.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200, help="kills per arm")
    ap.add_argument("--arm", action="append", required=True, help="LABEL=BIN_DIR[:YAML]")
    args = ap.parse_args()
    arms = []
    for spec in args.arm:
        label, _, rest = spec.partition("=")
        bin_dir, _, yaml = rest.partition(":")
        arms.append((label, Path(bin_dir).resolve(), yaml))
    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    stamp = R.compile_stamp(tmp)
    pms: dict[str, R.Pmon] = {}
    readers: dict[str, R.LineReader] = {}
    try:
        for label, bin_dir, yaml in arms:
            readers[label] = R.LineReader(tmp / f"{label}.fifo")
            R.PMOND, R.PMON3 = str(bin_dir / "pmond"), str(bin_dir / "pmon3")  # used by start() and cli()
            pm = pms[label] = R.Pmon(label, extra_conf=yaml + "\n" if yaml else "")
            pm.start()
            pm.cli("exec", str(stamp), "--name", "stamp", "-a", str(tmp / f"{label}.fifo"))
        pids = {label: int(rd.readline(30).split()[1]) for label, rd in readers.items()}
        R.log(f"{args.n} SIGKILLs per arm, interleaved: {', '.join(readers)}")
        samples = {k: R.latencies_ms(v) for k, v in R.kill_rounds(args.n, readers, pids).items()}
    finally:
        for pm in pms.values():
            pm.cleanup()
        for rd in readers.values():
            rd.close()
        shutil.rmtree(tmp, ignore_errors=True)
    first = arms[0][0]
    for label, values in samples.items():
        s = sorted(values)
        diffs = [b - a for a, b in zip(samples[first], values)]
        print(
            f"{label:>8}: median {statistics.median(s):.2f} ms, p90 {s[int(len(s) * 0.9)]:.2f}, "
            f"mean {statistics.mean(s):.2f}; paired difference to {first}: median {statistics.median(diffs):+.3f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
