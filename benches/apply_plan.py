"""How long `pmon3 apply --dry-run` takes for N entries against N stored, running processes.

    .venv/bin/python benches/apply_plan.py [-n 1000] [--repeat 5]

A pmond in a temp dir (own config, data, logs and IPC names); `pmon3 apply` of N `/bin/sleep` entries creates
them; then, median of --repeat runs each:
  - cli:      wall time of `pmon3 apply FILE --dry-run` (Python start, reading the YAML, IPC, plan, the table)
  - client:   Client.apply(FILE, dry_run=True) in this process (reading the file, IPC both ways, pmond's plan)
  - validate: Applier.validate of the N entries (spec.build each), in this process against the same database
  - compute:  apply.compute (the pure planner: N validated specs against N stored rows)
Everything is stopped and removed afterwards. No asserts: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def median_ms(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    opts = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pmon3-bench-apply-"))
    conf = root / "config.yml"
    conf.write_text(
        f"data:\n  directory: {root / 'data'}\nlogs:\n  directory: {root / 'logs'}\n"
        f"message_queue:\n  name_suffix: benchapply{os.getpid()}\ndaemon:\n  autostart: false\n"
        "wait:\n  dependent_process_enqueued: 0\n"
    )
    env = {**os.environ, "PMON3_CONF": str(conf)}
    os.environ["PMON3_CONF"] = str(conf)
    entries = [f"  - file: /bin/sleep\n    name: s{i}\n    args: '1000'\n" for i in range(opts.n)]
    pconf = root / "p.yaml"
    pconf.write_text("processes:\n" + "".join(entries))
    r, w = os.pipe()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pmon3.daemon", "--foreground", "--ready-fd", str(w)],
        env=env,
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=open(root / "pmond.log", "wb"),  # noqa: SIM115
        start_new_session=True,
    )
    os.close(w)
    try:
        select.select([r], [], [], 20)
        assert os.read(r, 16).startswith(b"ready"), (root / "pmond.log").read_text()
        start = time.perf_counter()
        subprocess.run([str(BIN / "pmon3"), "apply", str(pconf)], env=env, check=True, capture_output=True)
        print(f"apply creating {opts.n} processes: {time.perf_counter() - start:.1f} s")

        def cli() -> None:
            subprocess.run(
                [str(BIN / "pmon3"), "apply", str(pconf), "--dry-run"], env=env, check=True, capture_output=True
            )

        from pmon3 import procconfig
        from pmon3.client import Client
        from pmon3.config import load
        from pmon3.daemon import apply
        from pmon3.daemon.authz import Authz, Caller
        from pmon3.store import Store

        with Client() as c:

            def client() -> None:
                plan = c.apply(str(pconf), dry_run=True)
                assert len(plan["actions"]) == opts.n and all(a["action"] == "unchanged" for a in plan["actions"])

            client_ms = median_ms(client, opts.repeat)
        cli_ms = median_ms(cli, opts.repeat)
        cfg = load(str(conf))
        store = Store(cfg.db_path)
        authz = Authz(store, cfg)
        applier = apply.Applier(store, cfg, authz, None)  # type: ignore[arg-type]
        me = Caller(os.geteuid())
        raw = procconfig.load_for_apply(str(pconf))
        desired = applier.validate(me, raw, str(pconf), create_dirs=False)
        stored = store.list_processes(me.uid)
        validate_ms = median_ms(lambda: applier.validate(me, raw, str(pconf), create_dirs=False), opts.repeat)
        compute_ms = median_ms(lambda: apply.compute(desired, stored, {p.id for p in stored}, False), opts.repeat)
        store.close()
        print(f"N={opts.n}, median of {opts.repeat}:")
        print(f"  pmon3 apply --dry-run (CLI wall)   {cli_ms:8.1f} ms")
        print(f"  Client.apply(dry_run=True)         {client_ms:8.1f} ms")
        print(f"  Applier.validate (spec.build x N)  {validate_ms:8.1f} ms")
        print(f"  apply.compute (pure planner)       {compute_ms:8.1f} ms")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(120)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
