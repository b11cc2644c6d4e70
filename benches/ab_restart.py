#!/usr/bin/env python3
"""Restart latency of two (or more) pmon3 builds and the C reference, interleaved in the same rounds.

    python benches/ab_restart.py --arm main=/path/to/main/venv/bin --arm perf=.venv/bin [--kills 60]
    python benches/ab_restart.py --arm a=.venv/bin --arm b=.venv/bin:PMON3_X=1   # same build, an env switch
    python benches/ab_restart.py --arm cg=.venv/bin --arm ses=.venv/bin --conf "ses=process_trees: session"

Each arm is a pmond of its own (temp dir, `restart.min_uptime: 20ms`) supervising one `stamp` child; the C
reference (benches/cref/cref.c) supervises another. Every round SIGKILLs each arm's child in turn (A B C A B C
...): latency = the new child's CLOCK_MONOTONIC at main() - the kill's. Prints medians, p90 and each arm's
ratio to C and to the first arm; --extra N adds N idle `sleep` processes to every pmond (restart at scale).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", action="append", required=True, help="LABEL=BINDIR[:VAR=VALUE,...]")
    ap.add_argument("--kills", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of --kills, fresh daemons each")
    ap.add_argument("--extra", type=int, default=0, help="idle sleeps per pmond besides the stamp child")
    ap.add_argument("--conf", action="append", default=[], help="LABEL=LINE: a config.yml line for that arm")
    ap.add_argument("--no-cref", action="store_true")
    ap.add_argument("--json", help="write the samples here")
    args = ap.parse_args()
    arms: list[tuple[str, str, dict[str, str]]] = []
    confs: dict[str, str] = {}
    for spec in args.conf:
        label, _, line = spec.partition("=")
        confs[label] = confs.get(label, "") + line + "\n"
    args.confs = confs
    for spec in args.arm:
        label, _, rest = spec.partition("=")
        bindir, _, envs = rest.partition(":")
        env = dict(kv.split("=", 1) for kv in envs.split(",") if kv)
        arms.append((label, bindir, env))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in arms}
    if not args.no_cref:
        samples["C"] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    try:
        stamp = run.compile_stamp(tmp)
        cref_bin = run.compile_cref(tmp)
        for rep in range(args.repeat):
            one_round(args, arms, tmp / f"r{rep}", stamp, cref_bin, samples)
            report(samples, arms)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(samples))
    return 0


def one_round(
    args: argparse.Namespace,
    arms: list[tuple[str, str, dict[str, str]]],
    tmp: Path,
    stamp: Path,
    cref_bin: Path,
    samples: dict[str, list[float]],
) -> None:
    tmp.mkdir()
    pms: list[run.Pmon] = []
    cref: Optional[run.CRef] = None
    readers: dict[str, run.LineReader] = {}
    try:
        for label, bindir, env in arms:
            readers[label] = run.LineReader(tmp / f"{label}.fifo")
            run.PMON3, run.PMOND = str(Path(bindir) / "pmon3"), str(Path(bindir) / "pmond")
            pm = run.Pmon(f"ab-{label}", env=env, extra_conf=args.confs.get(label, ""))
            pms.append(pm)
            pm.start()
            pm.cli("exec", str(stamp), "--name", "stamp", "-a", str(readers[label].path))
            for i in range(args.extra):
                pm.cli("exec", "/bin/sleep", "--name", f"x{i}", "-a", "1000")
        if "C" in samples:
            readers["C"] = run.LineReader(tmp / "C.fifo")
            cref = run.CRef("ab", cref_bin, [("stamp", str(stamp), [str(readers["C"].path)])])
            cref.spawn()
        pids = {key: int(rd.readline(30).split()[1]) for key, rd in readers.items()}
        time.sleep(0.5)
        for key, kills in run.kill_rounds(args.kills, readers, pids).items():
            samples[key] += run.latencies_ms(kills)
    finally:
        for pm in pms:
            pm.cleanup()
        if cref is not None:
            cref.cleanup()
        for rd in readers.values():
            rd.close()


def report(samples: dict[str, list[float]], arms: list[tuple[str, str, dict[str, str]]]) -> None:
    first = statistics.median(samples[arms[0][0]])
    c = statistics.median(samples["C"]) if samples.get("C") else None
    print(f"load {os.getloadavg()[0]:.1f}; {len(samples[arms[0][0]])} kills per arm")
    for key, v in samples.items():
        s = run.summary(v)
        ratio_c = f"  /C {s['median'] / c:.2f}" if c else ""
        print(
            f"  {key:10} median {s['median']:6.2f} ms  p90 {s['p90']:6.2f}  min {s['min']:5.2f}"
            f"  /{arms[0][0]} {s['median'] / first:.2f}{ratio_c}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
