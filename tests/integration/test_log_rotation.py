"""Built-in log rotation in a real pmond: logs.max_size / retain / compress, read back with `pmon3 log -a`."""

from __future__ import annotations

import gzip
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
    # Each burst waits until pmond has rotated the previous one (the log shrank), so that every burst
    # lands in its own rotation; no sleeps in the test itself, only deadlines.
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
    assert numbers[0] > 1 and len(numbers) >= 3 * LINES
    assert out[:-1] == [f"line {n} padding-padding" for n in numbers]

    tail = rotd.cli("log", "chatty", "-n", "3").stdout.splitlines()
    assert tail[-1] == "done" and len(tail) == 3
    rotd.cli("del", "chatty", "-f")
    assert not list(log.parent.glob("chatty.log*"))  # del removes the rotations pmond made, too


@pytest.mark.parametrize("fs", ["collapse", "copytruncate"])
def test_logf_keeps_following_across_rotations(tmp_path: Path, fs: str):
    """`pmon3 logf` started before the rotations shows what is written after each of them: the log shrinks
    under it (collapsed on ext4/xfs, truncated to zero on tmpfs) and it starts again from the beginning."""
    logs = tmp_path / "logs"
    if fs == "copytruncate":
        mount_tmpfs(logs)  # a real tmpfs: no COLLAPSE_RANGE there
    try:
        with running_daemon(tmp_path, f"logs:\n  directory: {logs}\n  max_size: 2K\n  retain: 2\n") as d:
            go = tmp_path / "go"
            prog = script(
                tmp_path,
                "rotating.sh",
                f"echo ready\nwhile [ ! -f {go} ]; do sleep 0.05; done\n"
                "for b in 1 2; do\n"
                '  for j in $(seq 1 200); do echo "burst $b line $j padding-padding-padding"; done\n'
                "  s0=$(stat -L -c %s /proc/$$/fd/1)\n"
                '  while [ "$(stat -L -c %s /proc/$$/fd/1)" -ge "$s0" ]; do sleep 0.05; done\n'  # until rotated
                '  echo "after rotation $b"\n'
                "done\nexec sleep 300\n",
            )
            name = unique("rotating")
            d.cli("exec", prog, "--name", name)
            logf = subprocess.Popen([BIN / "pmon3", "logf", name], env=d.env, stdout=subprocess.PIPE, text=True)
            seen: list[str] = []
            reader = threading.Thread(target=lambda: seen.extend(logf.stdout or []), daemon=True)
            reader.start()
            try:
                wait_for(lambda: "ready\n" in seen, timeout=15, what="logf to show the log")
                go.touch()
                wait_for(lambda: "after rotation 2\n" in seen, timeout=30, what="logf to show the second rotation")
                after = [line for line in seen if line.startswith("after rotation")]
                assert after == ["after rotation 1\n", "after rotation 2\n"], "".join(seen)
            finally:
                logf.terminate()  # (not SIGINT: a run started in the background of a shell inherits it ignored)
                logf.wait(10)
            assert d.cli("log", name, "-a").stdout.count("after rotation") == 2  # (the rotation itself happened)
            assert list(logs.glob(f"{name}.log.1*"))
    finally:
        if fs == "copytruncate":
            umount(logs)
