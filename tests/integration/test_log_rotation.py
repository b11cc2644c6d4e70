"""Built-in log rotation in a real pmond: logs.max_size / retain / compress, read back with `pmon3 log -a`."""

from __future__ import annotations

import gzip
import signal
import subprocess
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
