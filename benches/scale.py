#!/usr/bin/env python3
"""Cost that stays flat: pmond at N = 1 ... 10,000 processes, storms and crash loops (benches/README.md).

    python benches/scale.py                       # make bench-scale: every N, storms, crash loop
    python benches/scale.py --sizes 1,100 --storm 0 --crash-loop 0
    python benches/scale.py --bin /other/venv/bin  # another build's pmon3/pmond (A/B against main)

Per N (a fresh pmond each): cold start from a process config of N `stamp` children (until the last one
reached main()), and the same cold start by the C reference (benches/cref) just before, pmond's descriptors
once they all run, `pmon3 ls --json` and `pmon3 ls` (piped: the whole table) wall time, restart latency
(SIGKILL of a random child -> the new child's main()), idle CPU, pmond's RSS at rest after that, and how long
a SIGTERM of pmond takes to stop all N. Then the storm (every pid of 1000 processes SIGKILLed at once: until
all 1000 are running again) with and without a restart hook, and a crash loop of 100
processes that die at once (pmond's CPU over a window). Writes benches/results/scale-<timestamp>.json, and
with --save the committed table benches/results/scale.md and the plot benches/results/scale.png (matplotlib,
installed into benches/.venv-peer, never into pmon3's own environment).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the helpers of benches/run.py: Pmon, LineReader, stamps, summaries)

SIZES = (1, 100, 1000, 5000, 10000)
STORM_ENV: dict = {k: v for k, v in os.environ.items() if k.startswith("PMON3_X_")}
PLOTTER = HERE / "plot_scale.py"


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1])
    return vals["VmRSS"], vals["VmHWM"]


def rss_anon_kib(pid: int) -> int:
    """RssAnon: the memory the process allocated itself (VmRSS adds RssFile, ~11.5 MiB of shared library pages
    for pmond: libpython, apsw, the native module)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_log(pm: run.Pmon, text: str, timeout: float) -> None:
    """Until pmond's stderr log has `text` (it logs `boot start done` after its boot task)."""
    end = time.monotonic() + timeout
    while text not in (pm.dir / "pmond.err").read_text(errors="replace"):
        if time.monotonic() > end:
            raise TimeoutError(f"pmond did not log {text!r} in {timeout:.0f} s: {pm.stderr_tail()}")
        time.sleep(0.05)  # polling a log file: nothing to wake us


def entries(n: int, stamp: Path, fifo: Path, prefix: str = "s", file: Optional[str] = None) -> list[dict]:
    args = str(fifo) if file is None else ""
    return [{"file": file or str(stamp), "name": f"{prefix}{i}", "args": args} for i in range(1, n + 1)]


def start_from_config(tag: str, procs: list[dict], tmp: Path, extra: str = "", env: Optional[dict] = None) -> run.Pmon:
    conf = tmp / f"{tag}.json"
    conf.write_text(json.dumps({"processes": procs}))
    pm = run.Pmon(tag, extra_conf=f"process_config_file: {conf}\n{extra}", env=env)
    pm.spawn(ready=False)
    return pm


def kill_one_by_one(rd: run.LineReader, live: set[int], kills: int) -> list[dict]:
    """SIGKILL a random child, wait for the next stamp (a new pid), `kills` times; per kill the victim, the
    new pid, the kill time and the new child's main() time (CLOCK_MONOTONIC ns), as run.kill_rounds."""
    out = []
    for _ in range(kills):
        time.sleep(0.05)  # the child has been up past min_uptime
        victim = random.choice(sorted(live))
        t_kill = time.monotonic_ns()
        os.kill(victim, 9)
        ts, pid = rd.readline(30).split()
        live.discard(victim)
        live.add(int(pid))
        out.append({"victim": victim, "new": int(pid), "t_kill": t_kill, "t_main": int(ts)})
    return out


def own_stamps(trace: Path, kills: list[dict]) -> dict[str, float]:
    """Medians (ms) of pmond's own restart steps (PMON3_TRACE): kill -> pidfd handled -> spawn call -> spawn
    returned, and spawn call -> the child's main()."""
    records = run.user_trace_records(trace)
    if not records:
        return {}
    tl = run.Timeline(records)
    phases = run.phase_samples([run.user_stamps(k, tl) for k in kills], run.USER_PHASES)
    return {label.strip(): statistics.median(v) for label, v in phases.items() if v}


def cpu_percent(pid: int, window: float) -> float:
    t0, w0 = run.cpu_ticks(pid), time.monotonic()
    time.sleep(window)  # the measurement window itself
    return (run.cpu_ticks(pid) - t0) / run.CLK_TCK / (time.monotonic() - w0) * 100


def cref_cold_start(n: int, stamp: Path, cref_bin: Path) -> float:
    """The same cold start by the C reference (benches/cref: pidfd + epoll + posix_spawn, a log file per child):
    seconds until the last of N stamp children reached main(). What this machine allows a supervisor."""
    rd = run.LineReader(stamp.parent / f"cref{n}.fifo")
    cref = run.CRef(f"scale{n}", cref_bin, [(f"s{i}", str(stamp), [str(rd.path)]) for i in range(1, n + 1)])
    try:
        return run.timed_boot(cref, rd, n, f"C reference start of {n}")[1]
    finally:
        cref.cleanup()
        rd.close()


def scale_point(n: int, stamp: Path, tmp: Path, kills: int, ls_runs: int, idle_s: float, cref_bin: Path) -> dict:
    fifo = tmp / f"scale{n}.fifo"
    rd = run.LineReader(fifo)
    pm: Optional[run.Pmon] = None
    res: dict = {"n": n, "cref_cold_start_s": cref_cold_start(n, stamp, cref_bin)}
    try:
        t0 = time.monotonic_ns()
        trace = tmp / f"scale{n}.trace"
        pm = start_from_config(f"scale{n}", entries(n, stamp, fifo), tmp, env={"PMON3_TRACE": str(trace)})
        times = run.await_stamps(rd, n, 120 + n * 0.05, f"pmon3 boot of {n}")
        res["cold_start_s"] = (times[-1] - t0) / 1e9
        res["first_child_s"] = (times[0] - t0) / 1e9
        res["boot_cpu_s"] = run.cpu_ticks(pm.pid) / run.CLK_TCK  # pmond's own CPU until the last child ran
        wait_log(pm, "boot start done", 120)
        procs = pm.processes()
        assert procs is not None and sum(p["status"] == "running" for p in procs) == n, "not all running"
        live = {p["pid"] for p in procs}
        time.sleep(1.5)  # past the malloc_trim that follows the boot and a big reply (on a quiet machine)
        res["rss_after_boot_kib"] = rss_kib(pm.pid)[0]
        res["fds"] = fd_count(pm.pid)
        for cmd, key in ((("ls", "--json"), "ls_json_ms"), (("ls",), "ls_table_ms")):
            samples = []
            for _ in range(ls_runs):
                took, cp = pm.cli(*cmd)
                samples.append(took * 1000)
            res[key] = samples
        res["ls_json_bytes"] = len(pm.cli("ls", "--json")[1].stdout)
        kills_done = kill_one_by_one(rd, live, kills)
        res["restart_ms"] = run.latencies_ms(kills_done)
        res["restart_steps_ms"] = own_stamps(trace, kills_done)
        res["rss_after_kills_kib"] = rss_kib(pm.pid)[0]
        time.sleep(2)  # past the malloc_trim that follows a big reply
        res["idle_cpu_percent"] = cpu_percent(pm.pid, idle_s)
        # at rest: after the idle window. Right after the boot the trim may not have run yet on a busy machine
        # (71 MiB there against 57-60 MiB at rest, 10,000 processes, both builds of 2026-12-02)
        res["rss_kib"], res["hwm_kib"] = rss_kib(pm.pid)
        res["rss_anon_kib"] = rss_anon_kib(pm.pid)
        t_stop = time.monotonic()
        pm.stop()
        res["stop_all_s"] = time.monotonic() - t_stop
    finally:
        if pm is not None:
            pm.cleanup()
        rd.close()
    run.log(
        f"N={n}: cold {res['cold_start_s']:.2f} s (C {res['cref_cold_start_s']:.2f} s), "
        f"RSS {res['rss_kib'] / 1024:.1f} MiB (anon {res['rss_anon_kib'] / 1024:.1f}), fds {res['fds']}, "
        f"ls --json {statistics.median(res['ls_json_ms']):.0f} ms, ls {statistics.median(res['ls_table_ms']):.0f} ms, "
        f"restart {statistics.median(res['restart_ms']):.2f} ms {res['restart_steps_ms']}, "
        f"idle {res['idle_cpu_percent']:.2f} %, boot CPU {res['boot_cpu_s']:.1f} s, "
        f"stop {res['stop_all_s']:.1f} s"
    )
    return res


def storm(n: int, stamp: Path, tmp: Path, hook: bool, rounds: int) -> dict:
    """n running stamp children; every pid SIGKILLed at once; until all n have reached main() again."""
    fifo = tmp / f"storm{n}{'h' if hook else ''}.fifo"
    rd = run.LineReader(fifo)
    extra = ""
    if hook:
        script = tmp / "hook.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o755)
        # restart hooks fire once pmond is past its initialization_period (5 s at least)
        extra = f"event_handling: {{process_restart: {script}}}\ninitialization_period: 5\n"
    pm: Optional[run.Pmon] = None
    res: dict = {"n": n, "hook": hook, "all_running_s": [], "per_process_ms": [], "all_spawned_s": [], "cpu_s": []}
    try:
        t_boot = time.monotonic_ns()
        trace = tmp / f"storm{n}{'h' if hook else ''}.trace"
        env = {**STORM_ENV, "PMON3_TRACE": str(trace)}
        pm = start_from_config(f"storm{n}", entries(n, stamp, fifo), tmp, extra, env=env)
        run.await_stamps(rd, n, 120 + n * 0.05, "storm boot")
        wait_log(pm, "boot start done", 120)
        procs = pm.processes()
        assert procs is not None
        live = {p["pid"] for p in procs}
        if hook:
            time.sleep(max(0.0, 5.5 - (time.monotonic_ns() - t_boot) / 1e9))  # past the initialization period
        for _ in range(rounds):
            time.sleep(0.1)
            c0 = run.cpu_ticks(pm.pid)
            t_kill = time.monotonic_ns()
            for pid in live:
                os.kill(pid, 9)
            back = run.await_stamps(rd, n, 60, "storm restarts")
            res["all_running_s"].append((back[-1] - t_kill) / 1e9)
            res["cpu_s"].append((run.cpu_ticks(pm.pid) - c0) / run.CLK_TCK)  # pmond's, until all ran again
            spawned = [ns for ns, ev, _pid in run.user_trace_records(trace) if ev == "spawned" and ns > t_kill]
            if len(spawned) >= n:
                res["all_spawned_s"].append((sorted(spawned)[n - 1] - t_kill) / 1e9)
            res["per_process_ms"] += [(t - t_kill) / 1e6 for t in back]
            wait_quiet(pm)
            procs = pm.processes()
            assert procs is not None
            live = {p["pid"] for p in procs}
            assert len(live) == n and all(p["status"] == "running" for p in procs)
    finally:
        if pm is not None:
            pm.cleanup()
        rd.close()
    run.log(
        f"storm of {n}{' with a restart hook' if hook else ''}: all running again after "
        + ", ".join(f"{x:.2f}" for x in res["all_running_s"])
        + " s; pmond had respawned all after "
        + ", ".join(f"{x:.2f}" for x in res["all_spawned_s"])
        + " s, its CPU "
        + ", ".join(f"{x:.2f}" for x in res["cpu_s"])
        + " s"
    )
    return res


def wait_quiet(pm: run.Pmon) -> None:
    """pmond has caught up with its bookkeeping (its CPU time stops moving for 0.2 s)."""
    last = -1
    while True:
        now = run.cpu_ticks(pm.pid)
        if now == last:
            return
        last = now
        time.sleep(0.2)


def crash_loop(n: int, window: float, tmp: Path) -> dict:
    """n processes of /bin/false (each dies at once, restarted with the quick-death delay, doubling):
    pmond's CPU over `window` seconds from its start, and the restarts it made. pmond's default restart
    settings (min_uptime 1 s, restart_delay 100 ms doubling up to 30 s), not the bench's 20 ms min_uptime."""
    directory = tmp / f"crash{n}"
    directory.mkdir()
    conf = tmp / f"crash{n}.json"
    conf.write_text(json.dumps({"processes": entries(n, Path("/bin/false"), tmp, "f", file="/bin/false")}))
    (directory / "config.yml").write_text(
        f"data: {{directory: {directory / 'data'}}}\n"
        f"logs: {{directory: {directory / 'logs'}}}\n"
        f"message_queue: {{name_suffix: crash{os.getpid()}}}\n"
        f"daemon: {{autostart: false}}\nprocess_config_file: {conf}\n"
    )
    pm = run.Pmon(f"crash{n}", directory=directory)
    pm.spawn(ready=False)
    try:
        wait_log(pm, "boot start done", 60)
        t0 = time.monotonic()
        c0 = run.cpu_ticks(pm.pid)  # from the end of its boot: the first, densest restarts
        time.sleep(window)  # the measurement window
        c1 = run.cpu_ticks(pm.pid)
        elapsed = time.monotonic() - t0
        procs = pm.processes() or []
        restarts = sum(p["restart_count"] for p in procs)
        c2 = run.cpu_ticks(pm.pid)
        t1 = time.monotonic()
        time.sleep(window)  # the steady state after the first window
        c3 = run.cpu_ticks(pm.pid)
        steady = (c3 - c2) / run.CLK_TCK / (time.monotonic() - t1) * 100
        procs = pm.processes() or []
        restarts2 = sum(p["restart_count"] for p in procs)
    finally:
        pm.cleanup()
    res = {
        "n": n,
        "window_s": elapsed,
        "cpu_percent_first_window": (c1 - c0) / run.CLK_TCK / elapsed * 100,
        "restarts_first_window": restarts,
        "cpu_percent_second_window": steady,
        "restarts_second_window": restarts2 - restarts,
    }
    run.log(f"crash loop of {n}: {res}")
    return res


def med(v: list[float]) -> float:
    return statistics.median(v) if v else float("nan")


def markdown(results: dict) -> str:
    pts = results["points"]
    lines = [
        "| N | cold start (s) | C ref cold start (s) | RSS (MiB) | of it anon (MiB) | fds | `ls --json` (ms) "
        "| `ls` piped (ms) | restart median (ms) | restart p90 (ms) | idle CPU | stop all (s) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in pts:
        r = run.summary(p["restart_ms"])
        lines.append(
            f"| {p['n']} | {p['cold_start_s']:.2f} | {p.get('cref_cold_start_s', float('nan')):.2f} "
            f"| {p['rss_kib'] / 1024:.1f} | {p.get('rss_anon_kib', 0) / 1024:.1f} | {p['fds']} "
            f"| {med(p['ls_json_ms']):.0f} | {med(p['ls_table_ms']):.0f} | {r['median']:.2f} | {r['p90']:.2f} "
            f"| {p['idle_cpu_percent']:.2f} % | {p['stop_all_s']:.1f} |"
        )
    if pts:
        base = med(pts[0]["restart_ms"])
        lines.append("")
        lines.append(
            "Restart median relative to N="
            + str(pts[0]["n"])
            + ": "
            + ", ".join(f"N={p['n']} {med(p['restart_ms']) / base:.2f}" for p in pts)
        )
        if all("cref_cold_start_s" in p for p in pts):
            lines.append("")
            lines.append(
                "Cold start, pmon3 / C reference: "
                + ", ".join(f"N={p['n']} {p['cold_start_s'] / p['cref_cold_start_s']:.2f}" for p in pts)
            )
    for s in results.get("storms", []):
        per = run.summary(s["per_process_ms"])
        lines.append("")
        lines.append(
            f"Storm, {s['n']} processes SIGKILLed at once{' (restart hook on)' if s['hook'] else ''}: all running "
            f"again after {', '.join(f'{x:.2f}' for x in s['all_running_s'])} s; per process median "
            f"{per['median']:.0f} ms, p90 {per['p90']:.0f} ms."
        )
    c = results.get("crash_loop")
    if c:
        lines.append("")
        lines.append(
            f"Crash loop, {c['n']} processes of /bin/false: pmond CPU {c['cpu_percent_first_window']:.1f} % over the "
            f"first {c['window_s']:.0f} s after its boot ({c['restarts_first_window']} restarts), "
            f"{c['cpu_percent_second_window']:.1f} % over the next ({c['restarts_second_window']} restarts)."
        )
    return "\n".join(lines) + "\n"


def ensure_plotter() -> Optional[str]:
    """matplotlib in benches/.venv-peer (the bench's own venv), installed once."""
    py = run.PEER_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(run.PEER_VENV)], check=True)
    if subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True).returncode != 0:
        run.log("installing matplotlib into benches/.venv-peer")
        if subprocess.run([str(py), "-m", "pip", "install", "-q", "matplotlib"]).returncode != 0:
            return None
    return str(py)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--kills", type=int, default=30, help="restarts timed per N")
    ap.add_argument("--ls-runs", type=int, default=5)
    ap.add_argument("--idle", type=float, default=5.0, help="idle window per N, seconds")
    ap.add_argument("--storm", type=int, default=1000, help="processes in the storm (0: none)")
    ap.add_argument("--storm-rounds", type=int, default=3)
    ap.add_argument("--crash-loop", type=int, default=100, help="processes in the crash loop (0: none)")
    ap.add_argument("--crash-window", type=float, default=15.0)
    ap.add_argument("--bin", help="directory with the pmon3 and pmond to measure (default: this venv's)")
    ap.add_argument("--save", action="store_true", help="write benches/results/scale.md and scale.png")
    args = ap.parse_args()
    if args.bin:
        run.PMON3, run.PMOND = str(Path(args.bin) / "pmon3"), str(Path(args.bin) / "pmond")
    sizes = [int(x) for x in args.sizes.split(",") if x]
    started = dt.datetime.now().astimezone()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    out: dict = {"date": started.isoformat(timespec="seconds"), "host": run.host_info(), "points": []}
    try:
        stamp = run.compile_stamp(tmp)
        cref_bin = run.compile_cref(tmp)
        for n in sizes:
            out["points"].append(scale_point(n, stamp, tmp, args.kills, args.ls_runs, args.idle, cref_bin))
        if args.storm:
            out["storms"] = [storm(args.storm, stamp, tmp, hook, args.storm_rounds) for hook in (False, True)]
        if args.crash_loop:
            out["crash_loop"] = crash_loop(args.crash_loop, args.crash_window, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out["host"]["loadavg_end"] = os.getloadavg()
    run.RESULTS.mkdir(exist_ok=True)
    raw = run.RESULTS / f"scale-{started.strftime('%Y%m%dT%H%M%S')}.json"
    raw.write_text(json.dumps(out, indent=1) + "\n")
    table = markdown(out)
    print(table)
    print(f"(raw samples in {raw.relative_to(run.ROOT)})")
    if args.save:
        header = (
            f"`make bench-scale`, {started:%Y-%m-%d %H:%M %Z}, {out['host']['cpus']} CPUs ({out['host']['cpu']}), "
            f"load average {out['host']['loadavg_start'][0]:.1f} at the start, "
            f"{out['host']['loadavg_end'][0]:.1f} at the end; {out['host']['pmon3']}.\n\n"
        )
        (run.RESULTS / "scale.md").write_text(header + table)
        py = ensure_plotter()
        if py is None:
            run.log("no matplotlib: benches/results/scale.png not written")
        else:
            subprocess.run([py, str(PLOTTER), str(raw), str(run.RESULTS / "scale.png")], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
