"""Built-in log rotation in a real pmond: logs.max_size / retain / compress, read back with `pmon3 log -a`."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BIN, Pmond, make_daemon, mount_tmpfs, running_daemon, script, umount, unique, wait_for

BURSTS, LINES = 5, 400  # 5 x ~10 KB, each burst well over max_size


@pytest.fixture(scope="module")
def rotd(tmp_root: Path) -> Iterator[Pmond]:
    # A second `logs:` mapping replaces conftest's, so it repeats the directory.
    yield from make_daemon(
        tmp_root,
        f"logs:\n  directory: {tmp_root / 'logs'}\n  max_size: 2K\n  retain: 3\n  compress: true\n",
    )


def test_a_chatty_process_is_rotated_and_log_a_reads_it_in_order(rotd: Pmond, tmp_root: Path):
    # Each burst waits until pmond has rotated the log (it shrank); no sleeps in the test itself, only
    # deadlines.
    prog = script(
        tmp_root,
        "chatty.sh",
        f"i=0\nfor b in $(seq 1 {BURSTS}); do\n"
        f'  for j in $(seq 1 {LINES}); do i=$((i+1)); echo "line $i padding-padding"; done\n'
        '  while [ "$(stat -L -c %s /proc/$$/fd/1)" -gt 8000 ]; do sleep 0.05; done\n'
        "done\necho done\nexec sleep 300\n",
    )
    p = rotd.json("exec", prog, "--name", "chatty")
    log = Path(p["log"])
    wait_for(lambda: b"done" in log.read_bytes(), timeout=60, what="all bursts rotated")
    names = sorted(x.name for x in log.parent.glob("chatty.log*"))
    assert names == ["chatty.log", "chatty.log.1.gz", "chatty.log.2.gz", "chatty.log.3.gz"], names
    for n in (1, 2, 3):
        with gzip.open(log.parent / f"chatty.log.{n}.gz") as fh:
            assert len(fh.read()) >= 2048

    out = rotd.cli("log", "chatty", "-a").stdout.splitlines()
    assert out[-1] == "done"
    if not out[0].startswith("line "):
        # Collapsing whole blocks may split a line between two files; the oldest kept file can then begin
        # with the end of a line whose start went with a rotation beyond `retain`.
        assert f"line {int(out[1].split()[1]) - 1} padding-padding".endswith(out[0]), out[:2]
        out = out[1:]
    numbers = [int(line.split()[1]) for line in out[:-1]]
    # The oldest rotations were dropped (retain 3); what is left is contiguous and ends with the last line.
    assert numbers == list(range(numbers[0], BURSTS * LINES + 1)), numbers[:5]
    # Rotations follow growth (inotify), so a burst spreads over several of them; each is over max_size.
    assert numbers[0] > 1 and sum(len(line) + 1 for line in out) >= 3 * 2048
    assert out[:-1] == [f"line {n} padding-padding" for n in numbers]

    tail = rotd.cli("log", "chatty", "-n", "3").stdout.splitlines()
    assert tail[-1] == "done" and len(tail) == 3
    rotd.cli("del", "chatty", "-f")
    assert not list(log.parent.glob("chatty.log*"))  # del removes the rotations pmond made, too


@pytest.mark.parametrize("fs", ["collapse", "copytruncate"])
def test_logf_keeps_following_across_rotations(tmp_path: Path, fs: str):
    """`pmon3 logf` shows what is written after a rotation: the log shrinks under it (collapsed on ext4/xfs,
    truncated to zero on tmpfs) and it starts again from the beginning, even when the log has grown past
    its position again before it looked (logf paused here while that happens, as a slow terminal would)."""
    logs = tmp_path / "logs"
    if fs == "copytruncate":
        mount_tmpfs(logs)  # a real tmpfs: no COLLAPSE_RANGE there
    try:
        with running_daemon(tmp_path, f"logs:\n  directory: {logs}\n  max_size: 32K\n  retain: 2\n") as d:
            name = unique("rotating")
            log = Path(d.json("exec", "/bin/sleep", "--name", name, "-a", "300")["log"])

            def append(text: str) -> None:  # the test writes the log itself, like the process would (O_APPEND)
                with open(log, "a") as fh:
                    fh.write(text)

            def burst(n: int, lines: int) -> str:
                return "".join(f"burst {n} line {j} padding-padding-padding\n" for j in range(lines))

            logf = subprocess.Popen([BIN / "pmon3", "logf", name], env=d.env, stdout=subprocess.PIPE, text=True)
            seen: list[str] = []
            reader = threading.Thread(target=lambda: seen.extend(logf.stdout or []), daemon=True)
            reader.start()
            try:
                append("ready\n")
                wait_for(lambda: "ready\n" in seen, timeout=15, what="logf to follow the log")
                for n in (1, 2):
                    append(burst(n, 20))  # under max_size: logf shows it
                    last = f"burst {n} line 19 padding-padding-padding\n"
                    wait_for(lambda last=last: last in seen, timeout=15, what=f"logf to show burst {n}")
                    position = log.stat().st_size  # where logf is
                    logf.send_signal(signal.SIGSTOP)
                    try:
                        # Over max_size: pmond rotates it as soon as it is written (it watches the log).
                        append(burst(n + 20, 800))
                        wait_for(lambda: log.stat().st_size < 32 << 10, timeout=15, what="pmond to rotate the log")
                        # Past logf's position again, still under max_size: logf must notice the rotation from
                        # the bytes before its position, not from the size.
                        append(f"after rotation {n}\n" + burst(n + 10, position // 40 + 50))
                        assert position < log.stat().st_size < 32 << 10
                    finally:
                        logf.send_signal(signal.SIGCONT)
                    wait_for(lambda n=n: f"after rotation {n}\n" in seen, timeout=15, what=f"logf to show rotation {n}")
            finally:
                logf.terminate()  # (not SIGINT: a run started in the background of a shell inherits it ignored)
                logf.wait(10)
            assert list(logs.glob(f"{name}.log.1*"))  # rotated by pmond indeed
    finally:
        if fs == "copytruncate":
            umount(logs)


# -- a fast writer, and a full log filesystem, in a real pmond ---------------------------------------------

FAST_WRITER = r"""
import json, os, sys, time
rate, seconds, out = float(sys.argv[1]) * 1e6, float(sys.argv[2]), sys.argv[3]
chunk = b"".join(b"%08d fast writer padding padding padding padding padding padding\n" % i for i in range(1100))
chunk = chunk[: 64 << 10]
start = time.monotonic()
written = peak = 0
while (now := time.monotonic() - start) < seconds:
    if written < rate * now:
        written += os.write(1, chunk)
        peak = max(peak, os.fstat(1).st_size)  # the log only shrinks by rotation: this is its largest size
    else:
        time.sleep(0.0002)
with open(out + ".tmp", "w") as fh:
    json.dump({"written": written, "peak": peak, "seconds": time.monotonic() - start}, fh)
os.rename(out + ".tmp", out)
time.sleep(3600)
"""


def test_a_fast_writer_passes_max_size_by_little(tmp_path: Path):
    """Issue 10.6: a 50 MB/s writer with max_size 20000 made 121 MB of logs in 4 s when sizes were checked once
    a second. Now growth wakes pmond (inotify): measured 0.6-2.7 MB past max_size on a loaded 2-vCPU VM
    (docs/logs.md); the bound here is generous for slow CI machines, and still 3-7x below the old behaviour."""
    logs = tmp_path / "logs"
    with running_daemon(tmp_path, f"logs:\n  directory: {logs}\n  max_size: 20000\n  retain: 2\n") as d:
        writer, result, name = tmp_path / "fast.py", tmp_path / "fast.json", unique("fast")
        writer.write_text(FAST_WRITER)
        d.cli("exec", sys.executable, "--name", name, "--", str(writer), "50", "3", str(result))
        wait_for(result.exists, timeout=60, what="the writer's three seconds")
        got = json.loads(result.read_text())
        assert got["written"] > 100e6  # it did write at about 50 MB/s
        assert got["peak"] - 20000 < 16 << 20, got
        rotated = [p.stat().st_size for p in logs.glob(f"{name}.log.*")]
        assert rotated and max(rotated) < 16 << 20


FILLER = r"""
import json, os, sys, time
status = sys.argv[1]
n = enospc = shrinks = last = 0
reported = 0.0
while True:
    try:
        os.write(1, b"%08d filling the log filesystem, padding padding padding\n" % n)
        n += 1
    except OSError as exc:
        if exc.errno != 28:
            raise
        enospc += 1
        time.sleep(0.001)
    size = os.fstat(1).st_size
    shrinks += size < last
    last = size
    if n % 32 == 0:
        time.sleep(0.001)  # about 2 MB/s
    if time.monotonic() - reported > 0.05:
        with open(status + ".tmp", "w") as fh:
            json.dump({"lines": n, "enospc": enospc, "shrinks": shrinks}, fh)
        os.rename(status + ".tmp", status)
        reported = time.monotonic()
"""


def test_a_full_log_filesystem_recovers_and_its_process_keeps_writing(tmp_path: Path):
    """Issue 10.5: with retain >= 1, rotation copies first; on a full filesystem the copy failed and the log
    stayed full for good. Now the log is emptied in place when no copy fits, and pmond says so once."""
    logs = tmp_path / "logs"
    mount_tmpfs(logs, "4m")
    try:
        (logs / "ballast").write_bytes(b"b" * ((4 << 20) - (320 << 10)))  # leaves about 320 KB
        with running_daemon(tmp_path, f"logs:\n  directory: {logs}\n  max_size: 256K\n  retain: 3\n") as d:
            filler, status, name = tmp_path / "filler.py", tmp_path / "filler.json", unique("filler")
            filler.write_text(FILLER)
            d.cli("exec", sys.executable, "--name", name, "--", str(filler), str(status))
            p = d.get(name)
            log = Path(p["log"])
            assert log.parent == logs

            def state() -> dict[str, int]:
                return json.loads(status.read_text()) if status.exists() else {"lines": 0, "shrinks": 0}

            wait_for(lambda: state()["shrinks"] >= 3, timeout=60, what="three rotations on the full filesystem")
            lines = state()["lines"]

            def last_line() -> int:
                tail = log.read_bytes()[-200:].split(b"\n")
                numbers = [int(t.split()[0]) for t in tail[:-1] if t[:8].isdigit() and len(t) > 8]
                return numbers[-1] if numbers else -1

            wait_for(lambda: last_line() > lines, timeout=30, what="writes after the rotations landing in the log")
            text = d.stderr_path.read_text()
            assert text.count(f"no space left for a copy of {log}: emptied it in place") == 1, text[-2000:]
            q = d.get(name)
            assert q["status"] == "running" and q["pid"] == p["pid"] and q["restart_count"] == 0
            assert not list(logs.glob(f"{name}.log.*"))  # no copy ever fitted; no temp file left behind
    finally:
        umount(logs)
