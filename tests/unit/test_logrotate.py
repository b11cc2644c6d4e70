"""Built-in log rotation: settings, numbering, retention, gzip, ownership, and no lost lines under a writer."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gzip
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import mount_tmpfs, umount
from pmon3.cli.commands.log import newest_with_lines, tail_lines
from pmon3.config import LogSettings
from pmon3.daemon import logrotate
from pmon3.daemon.logrotate import LogRotator
from pmon3.logfiles import rotated_files


def settings(**kw) -> LogSettings:
    return LogSettings(**{"max_size": 100, "retain": 5, "compress": False, **kw})


def content(path: str) -> bytes:
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as fh:
        return fh.read()


def everything(log: Path) -> bytes:
    """What `pmon3 log -a` prints: rotated files oldest first, then the live file."""
    return b"".join(content(p) for p in [*rotated_files(str(log)), str(log)])


def collapse_works(path: Path) -> bool:
    probe = path / "probe"
    probe.write_bytes(b"x" * 8192)
    fd = os.open(probe, os.O_RDWR)
    try:
        return logrotate._collapse(fd, 4096) == 0
    finally:
        os.close(fd)
        probe.unlink()


def needs_collapse(path: Path) -> None:
    if not collapse_works(path):
        pytest.skip(f"{path} has no FALLOC_FL_COLLAPSE_RANGE")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs mounted for this test: no FALLOC_FL_COLLAPSE_RANGE there, so the rotator has to find
    that out and use copytruncate, unpatched. Needs root (skipped otherwise)."""
    where = tmp_path / "tmpfs"
    mount_tmpfs(where)
    try:
        if collapse_works(where):
            pytest.skip("this kernel's tmpfs supports COLLAPSE_RANGE")
        yield where
    finally:
        umount(where)


@dataclasses.dataclass
class Fs:
    method: str  # how the live file is emptied there: "collapse" or "copytruncate"
    dir: Path


@pytest.fixture(params=["collapse", "copytruncate"])
def fs(request, tmp_path: Path) -> Fs:
    """Both ways of emptying the live file, each on a real filesystem that makes the rotator choose it:
    tmp_path must have COLLAPSE_RANGE (ext4, xfs) for the first, a mounted tmpfs for the second."""
    if request.param == "collapse":
        needs_collapse(tmp_path)
        return Fs("collapse", tmp_path)
    return Fs("copytruncate", request.getfixturevalue("tmpfs"))


# -- rotation of real files -------------------------------------------------------------------------------


def test_small_file_is_left_alone(tmp_path):
    log = tmp_path / "a.log"
    log.write_bytes(b"x" * 100)
    assert LogRotator(settings(max_size=100), lambda: [str(log)]).check() == []
    assert log.read_bytes() == b"x" * 100 and rotated_files(str(log)) == []


def test_disabled_does_not_even_list(tmp_path):
    calls = []
    rot = LogRotator(settings(max_size=0), lambda: calls.append(1) or [])
    assert rot.check() == [] and calls == []


def test_numbering_and_retain(fs: Fs):
    log = fs.dir / "app.log"
    rot = LogRotator(settings(max_size=5000, retain=3), lambda: [str(log)])
    written = b""
    for i in range(6):
        chunk = f"round {i}\n".encode() * 1500
        with open(log, "ab") as fh:
            fh.write(chunk)
        written += chunk
        assert rot.check() == [str(log)]
    assert rot._collapse_ok == {log.stat().st_dev: fs.method == "collapse"}  # the filesystem chose the method
    files = rotated_files(str(log))
    assert [os.path.basename(p) for p in files] == ["app.log.3", "app.log.2", "app.log.1"]
    assert not (fs.dir / "app.log.4").exists() and not (fs.dir / "app.log.rotating").exists()
    # Nothing lost or duplicated in what is kept: the kept files and the live one end the history.
    kept = everything(log)
    assert written.endswith(kept)
    assert b"round 5" in content(files[-1]) or b"round 5" in log.read_bytes()
    if fs.method == "collapse":
        assert len(log.read_bytes()) < 4096  # the tail of the last block stays live
    else:
        assert log.read_bytes() == b""


def test_collapse_waits_for_a_full_block(tmp_path):
    needs_collapse(tmp_path)
    log = tmp_path / "b.log"
    log.write_bytes(b"y" * 3000)
    rot = LogRotator(settings(max_size=1000), lambda: [str(log)])
    assert rot.check() == []  # over max_size but not over one block: rotation would have to truncate
    log.write_bytes(b"y" * 5000)
    assert rot.check() == [str(log)]
    assert content(str(tmp_path / "b.log.1")) == b"y" * 4096 and log.read_bytes() == b"y" * 904


def test_gzip_content(fs: Fs):
    tmp_path = fs.dir
    log = tmp_path / "z.log"
    data = b"".join(b"compressed line %d\n" % i for i in range(2000))
    log.write_bytes(data)
    rot = LogRotator(settings(max_size=1000, compress=True), lambda: [str(log)])
    assert rot.check() == [str(log)]
    assert (tmp_path / "z.log.1").exists()  # compressed afterwards, in slices
    assert everything(log) == data
    assert rot.compress_pending() is False
    gz = tmp_path / "z.log.1.gz"
    assert gz.exists() and not (tmp_path / "z.log.1").exists()
    assert not list(tmp_path.glob("*.rotating"))
    assert gz.stat().st_size < len(data) / 4
    assert content(str(gz)) + log.read_bytes() == data
    with open(log, "ab") as fh:
        fh.write(data)
    assert rot.check() == [str(log)]
    rot.compress_pending()
    assert content(str(tmp_path / "z.log.2.gz")) + content(str(gz)) + log.read_bytes() == data + data


def test_compression_runs_in_slices_and_is_finished_before_the_next_rotation(tmp_path):
    log = tmp_path / "big.log"
    data = b"".join(b"%d %x\n" % (i, i * 7919) for i in range(400000))  # ~5 MB
    log.write_bytes(data)
    rot = LogRotator(settings(max_size=1000, compress=True), lambda: [str(log)])
    assert rot.check() == [str(log)]
    assert rot.compress_pending(0.005) is True  # one slice, work left
    done = rot._jobs[str(log)].offset  # the slice stopped once past its budget: a few 64 KiB reads at most
    assert 0 < done < len(data) // 4, done
    assert (tmp_path / "big.log.1").exists() and not (tmp_path / "big.log.1.gz").exists()
    with open(log, "ab") as fh:
        fh.write(data)
    assert rot.check() == [str(log)]  # finishes the pending .1.gz first, then shifts it to .2.gz
    assert (tmp_path / "big.log.2.gz").exists() and not (tmp_path / "big.log.2").exists()
    rot.compress_pending()
    assert everything(log) == data + data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.log", "big.log.1.gz", "big.log.2.gz"]


def test_stop_abandons_compression_and_keeps_the_plain_file(tmp_path):
    log = tmp_path / "s.log"
    data = b"".join(b"%d %x\n" % (i, i * 7919) for i in range(200000))
    log.write_bytes(data)
    rot = LogRotator(settings(max_size=1000, compress=True), lambda: [str(log)])
    rot.check()
    assert rot.compress_pending(0.001) is True
    rot.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.log", "s.log.1"]
    assert everything(log) == data


def test_retain_zero_drops_the_content(fs: Fs):
    log = fs.dir / "d.log"
    log.write_bytes(b"d" * 10000)
    assert LogRotator(settings(max_size=100, retain=0), lambda: [str(log)]).check() == [str(log)]
    assert rotated_files(str(log)) == [] and len(log.read_bytes()) < 4096


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_rotated_files_keep_owner_and_mode(fs: Fs):
    log = fs.dir / "owned.log"
    log.write_bytes(b"o" * 10000)
    os.chown(log, 65534, 65534)
    log.chmod(0o640)
    for compress in (False, True):
        with open(log, "ab") as fh:
            fh.write(b"o" * 10000)
        rot = LogRotator(settings(compress=compress), lambda: [str(log)])
        assert rot.check() == [str(log)]
        rot.compress_pending()
    for path in rotated_files(str(log)):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (65534, 65534, 0o640), path
    st = log.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (65534, 0o640)  # the live file is the same inode, untouched


def test_symlinks_hardlinks_and_foreign_owners_are_skipped(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"t" * 10000)
    link = tmp_path / "link.log"
    link.symlink_to(target)
    hard = tmp_path / "hard.log"
    os.link(target, hard)
    own = tmp_path / "own.log"
    own.write_bytes(b"u" * 10000)
    other_uid = os.stat(own).st_uid + 1
    rot = LogRotator(settings(), lambda: [str(link), str(hard), (str(own), other_uid)])
    assert rot.check() == []
    assert target.read_bytes() == b"t" * 10000 and own.read_bytes() == b"u" * 10000
    assert list(tmp_path.glob("*.1*")) == []
    rot.paths = lambda: [(str(own), os.stat(own).st_uid)]
    assert rot.check() == [str(own)]


def test_shared_log_is_rotated_once_and_missing_files_are_ignored(tmp_path):
    log = tmp_path / "shared.log"
    log.write_bytes(b"s" * 10000)
    rot = LogRotator(settings(), lambda: [str(log), str(log), str(tmp_path / "none.log"), ""])
    assert rot.check() == [str(log)]
    assert [os.path.basename(p) for p in rotated_files(str(log))] == ["shared.log.1"]


WRITER = r"""
import os, signal, sys
stop = []
signal.signal(signal.SIGUSR1, lambda *_: stop.append(1))
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
least, i = int(sys.argv[2]), 0
while not stop or i < least:  # as fast as it can, until told to stop (and at least `least` lines)
    os.write(fd, b"line %d\n" % i)
    i += 1
print(i)
"""
ROTATIONS = 3  # observed while the writer writes, whatever the machine's speed


@pytest.mark.parametrize("lines", [20000, 200000])
def test_no_line_is_lost_under_a_continuous_writer(fs: Fs, lines: int):
    """A process appends numbered lines as fast as it can while check() runs in a loop, until ROTATIONS
    rotations have happened and it wrote at least `lines`: what `log -a` shows afterwards is every line
    exactly once, in order. With COLLAPSE_RANGE that is guaranteed; copytruncate can lose a line written
    between its last read and the truncate (docs/logs.md)."""
    log = fs.dir / "w.log"
    log.touch()
    rot = LogRotator(settings(max_size=8192, retain=100000), lambda: [str(log)])
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(log), str(lines)], stdout=subprocess.PIPE)
    try:
        checks, deadline = 0, time.monotonic() + 60
        while rot.rotations < ROTATIONS:
            assert writer.poll() is None, "the writer stopped before it was told to"
            assert time.monotonic() < deadline, f"{rot.rotations} rotations in 60 s"
            rot.check()
            checks += 1
        # it has written, so its SIGUSR1 handler is in place
        writer.send_signal(signal.SIGUSR1)
        while writer.poll() is None:
            rot.check()
            checks += 1
        rot.check()
    finally:
        if writer.poll() is None:
            writer.kill()
        out = writer.communicate()[0]
    assert writer.returncode == 0
    written = int(out)
    assert written >= lines
    got = everything(log).split(b"\n")
    assert got[-1] == b""
    numbers = [int(x.split()[1]) for x in got[:-1]]
    assert numbers == sorted(set(numbers)), "duplicated or reordered lines"  # strictly increasing
    lost = written - len(numbers)
    print(f"{fs.method}: {rot.rotations} rotations in {checks} checks, {lost} of {written} lines lost")
    assert rot.rotations >= ROTATIONS
    if fs.method == "collapse":
        assert numbers == list(range(written))
    else:
        # copytruncate's residual window (docs/logs.md): a line written between the last read and the truncate
        # is lost; a writer this fast loses about two per rotation, never a torn or duplicated line.
        assert numbers[-1] == written - 1 and lost < written // 50


def test_copytruncate_is_chosen_where_collapse_is_unsupported(tmpfs: Path):
    log = tmpfs / "m.log"
    data = b"".join(b"m %d\n" % i for i in range(3000))
    log.write_bytes(data)
    rot = LogRotator(settings(max_size=1000), lambda: [str(log)])
    assert rot.check() == [str(log)]
    assert rot._collapse_ok == {log.stat().st_dev: False}
    assert content(str(log) + ".1") == data and log.read_bytes() == b""
    log.write_bytes(b"small\n" * 300)  # under one block: copytruncate needs no full block
    assert rot.check() == [str(log)] and content(str(log) + ".1") == b"small\n" * 300


def test_log_tail_joins_a_line_split_between_files(tmp_path):
    a, b = tmp_path / "x.log.1", tmp_path / "x.log"
    a.write_bytes(b"one\ntwo\nthr")
    b.write_bytes(b"ee\nfour\n")
    assert tail_lines([str(a), str(b)], 2) == [b"three\n", b"four\n"]
    assert tail_lines([str(a), str(b)], None) == [b"one\n", b"two\n", b"three\n", b"four\n"]


def test_log_n_reads_only_the_newest_files_it_needs(tmp_path):
    live, r1, r2 = tmp_path / "n.log", tmp_path / "n.log.1.gz", tmp_path / "n.log.2"
    r2.write_bytes(b"a\nb\n")
    with gzip.open(r1, "wb") as fh:
        fh.write(b"c\nd\ne")
    live.write_bytes(b"f\n")
    paths = [*rotated_files(str(live)), str(live)]
    assert paths == [str(r2), str(r1), str(live)]
    assert newest_with_lines(paths, 0) == [str(live)]
    assert newest_with_lines(paths, 2) == [str(r1), str(live)]
    assert tail_lines(newest_with_lines(paths, 2), 2) == [b"d\n", b"ef\n"]
    assert tail_lines(newest_with_lines(paths, 4), 4) == [b"b\n", b"c\n", b"d\n", b"ef\n"]
    assert newest_with_lines(paths, 99) == paths


# -- the timer --------------------------------------------------------------------------------------------


@pytest.fixture
def no_inotify(monkeypatch):
    """A pmond that cannot get an inotify instance: the timer alone must do."""

    def refuse() -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(logrotate._native, "Inotify", refuse)


def test_timer_checks_repeatedly_and_lists_once_per_check(tmp_path, no_inotify):
    log = tmp_path / "t.log"
    calls: list[float] = []

    def paths() -> list[str]:
        calls.append(time.monotonic())
        return [str(log)]

    async def main() -> None:
        rot = LogRotator(settings(max_size=100), paths, asyncio.get_running_loop())
        rot.interval = 0.02
        rot.start()
        rot.start()  # idempotent
        deadline = time.monotonic() + 10
        while rot.rotations < 2:
            assert time.monotonic() < deadline, "timer did not rotate"
            if log.stat().st_size < 10000:
                with open(log, "ab") as fh:
                    fh.write(b"q" * 10000)
            await asyncio.sleep(0.01)
        rot.stop()
        n = len(calls)
        await asyncio.sleep(0.1)
        assert len(calls) == n  # stopped
        assert rot.rotations == 2 and n >= 2

    log.write_bytes(b"")
    asyncio.run(main())


def test_default_interval_is_at_most_a_second():
    assert LogRotator(settings(), list).interval <= 1.0


def test_a_failing_check_does_not_stop_the_timer():
    calls = []

    def paths() -> list[str]:
        calls.append(1)
        raise RuntimeError("db gone")

    async def main() -> None:
        rot = LogRotator(settings(), paths, asyncio.get_running_loop())
        rot.interval = 0.01
        rot.start()
        deadline = time.monotonic() + 10
        while len(calls) < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        rot.stop()

    asyncio.run(main())


def test_timer_compresses_in_the_background(tmp_path):
    log = tmp_path / "c.log"
    data = b"".join(b"%d %x\n" % (i, i * 7919) for i in range(100000))
    log.write_bytes(data)

    async def main() -> None:
        rot = LogRotator(settings(max_size=1000, compress=True), lambda: [str(log)], asyncio.get_running_loop())
        rot.interval = 0.01
        rot.start()
        deadline = time.monotonic() + 10
        while not (tmp_path / "c.log.1.gz").exists():
            assert time.monotonic() < deadline, "not compressed"
            await asyncio.sleep(0.01)
        rot.stop()

    asyncio.run(main())
    assert not (tmp_path / "c.log.1").exists() and everything(log) == data


# -- reacting to growth: inotify --------------------------------------------------------------------------


async def until(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


class Listing:
    """paths() for a LogRotator that counts its calls."""

    def __init__(self, *paths: Path) -> None:
        self.paths = [str(p) for p in paths]
        self.calls = 0

    def __call__(self) -> list[str]:
        self.calls += 1
        return list(self.paths)


def looks(rot: LogRotator) -> list[list[str]]:
    """Record the logs each check stats (one list per call of _check_items)."""
    seen: list[list[str]] = []
    inner = rot._check_items

    def spy(items, settings, watch=False):
        seen.append(sorted(p for p, _ in items))
        return inner(items, settings, watch)

    rot._check_items = spy  # type: ignore[method-assign]
    return seen


def test_growth_is_seen_at_once_not_at_the_next_tick(fs: Fs):
    log = fs.dir / "g.log"
    log.write_bytes(b"")
    listing = Listing(log)

    async def main() -> None:
        rot = LogRotator(settings(max_size=1000, retain=2), listing, asyncio.get_running_loop())
        rot.interval = 3600  # the timer's first check places the watch, the next one never comes
        rot.start()
        await until(lambda: rot.watched() == [str(log)], "the watch")
        with open(log, "ab") as fh:
            fh.write(b"g" * 5000)
        await until(lambda: rot.rotations == 1, "a rotation")
        rot.stop()
        assert listing.calls == 1 and rot.wakes >= 1

    asyncio.run(main())
    assert content(str(fs.dir / "g.log.1")) + log.read_bytes() == b"g" * 5000


def test_many_writes_cost_one_look_per_log_and_wake(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    for p in (a, b):
        p.write_bytes(b"")

    async def main() -> None:
        rot = LogRotator(settings(max_size=1 << 30), Listing(a, b), asyncio.get_running_loop())
        rot.interval = 3600
        rot.start()
        await until(lambda: rot.watched() == [str(a), str(b)], "the watches")
        seen = looks(rot)
        fa, fb = os.open(a, os.O_WRONLY | os.O_APPEND), os.open(b, os.O_WRONLY | os.O_APPEND)
        try:
            for _ in range(2000):  # interleaved, so the kernel cannot merge them: 4000 events queued
                os.write(fa, b"line\n")
                os.write(fb, b"line\n")
            await until(lambda: len(seen) == 1, "the wake-up")
            os.write(fa, b"one more\n")  # a later write is seen by a later wake-up
            await until(lambda: len(seen) == 2, "the second wake-up")
        finally:
            os.close(fa)
            os.close(fb)
        rot.stop()
        assert seen == [[str(a), str(b)], [str(a)]]

    asyncio.run(main())


def test_a_log_that_passed_the_limit_is_looked_at_again_without_a_pause(fs: Fs):
    fast, slow = fs.dir / "fast.log", fs.dir / "slow.log"
    for p in (fast, slow):
        p.write_bytes(b"")

    async def main() -> None:
        rot = LogRotator(settings(max_size=1000, retain=2), Listing(fast, slow), asyncio.get_running_loop())
        rot.interval = 3600
        rot.start()
        await until(lambda: len(rot.watched()) == 2, "the watches")
        with open(slow, "ab") as fh:
            fh.write(b"s\n")
        await until(lambda: rot.wakes == 1, "the wake-up of a slow log")
        assert rot.pauses == 1  # far from the limit: a pause
        with open(fast, "ab") as fh:
            fh.write(b"f" * 5000)
        await until(lambda: rot.rotations == 1, "the rotation")
        # The rotation's own truncate (or collapse) wakes us and shows no growth: still no pause, the
        # writer is one that passes max_size between two looks.
        await until(lambda: rot.wakes >= 3, "the wake-up of the rotation itself")
        assert rot.pauses == 1
        rot.stop()

    asyncio.run(main())


WRITER_SMALL_LINES = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    os.write(fd, b"%09d a small line\n" % n)
    n += 1
print(n)
"""


def test_a_chatty_process_far_below_max_size_does_not_wake_pmond_per_line(tmp_path):
    log = tmp_path / "chatty.log"
    log.write_bytes(b"")

    async def main() -> tuple[int, int, float]:
        rot = LogRotator(settings(max_size=1 << 30), Listing(log), asyncio.get_running_loop())
        rot.interval = 3600
        rot.start()
        await until(lambda: rot.watched() == [str(log)], "the watch")
        t0 = time.monotonic()
        writer = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER_SMALL_LINES, str(log), "0.5", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await writer.communicate()
        elapsed = time.monotonic() - t0
        rot.stop()
        return int(out), rot.wakes, elapsed

    lines, wakes, elapsed = asyncio.run(main())
    # Each wake-up far from the limit pauses the watch for WAKE_GAP: wake-ups are bounded by time, not lines.
    assert lines > 5000 and 1 <= wakes <= elapsed / logrotate.WAKE_GAP + 5, (lines, wakes, elapsed)


def test_a_lost_event_queue_checks_every_watched_log(tmp_path):
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200000:
        pytest.skip(f"max_queued_events is {limit}")
    a, b, c = tmp_path / "a.log", tmp_path / "b.log", tmp_path / "c.log"
    for p in (a, b, c):
        p.write_bytes(b"")

    async def main() -> LogRotator:
        rot = LogRotator(settings(max_size=1000), Listing(a, b, c), asyncio.get_running_loop())
        rot.interval = 3600
        rot.start()
        await until(lambda: len(rot.watched()) == 3, "the watches")
        fa, fb = os.open(a, os.O_WRONLY | os.O_APPEND), os.open(b, os.O_WRONLY | os.O_APPEND)
        try:
            for _ in range(limit // 2 + 100):  # interleaved events overflow the queue
                os.write(fa, b"x")
                os.write(fb, b"y")
        finally:
            os.close(fa)
            os.close(fb)
        with open(c, "ab") as fh:  # this event is lost: only IN_Q_OVERFLOW says that something happened
            fh.write(b"c" * 10000)
        await until(lambda: rot.rotations >= 1, "the rotation of c.log")
        rot.stop()
        return rot

    asyncio.run(main())
    assert (tmp_path / "c.log.1").exists()


def test_a_replaced_log_is_watched_again_and_the_watches_follow_the_list(tmp_path):
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    for p in (a, b):
        p.write_bytes(b"")
    listing = Listing(a, b)

    async def main() -> None:
        rot = LogRotator(settings(max_size=1000, retain=1), listing, asyncio.get_running_loop())
        rot.interval = 3600
        rot.start()
        await until(lambda: rot.watched() == [str(a), str(b)], "the watches")
        a.unlink()
        a.write_bytes(b"")  # a new inode at the same path: the old watch sees nothing of it
        rot.check()
        with open(a, "ab") as fh:
            fh.write(b"a" * 10000)
        await until(lambda: rot.rotations == 1, "a rotation of the new a.log")
        listing.paths = [str(a)]
        rot.check()
        assert rot.watched() == [str(a)]
        rot.settings = settings(max_size=0)  # rotation switched off by a reload: no watches
        rot.check()
        assert rot.watched() == []
        rot.stop()

    asyncio.run(main())


def test_a_started_process_gets_its_watch_soon(tmp_path):
    log = tmp_path / "new.log"
    listing = Listing()

    async def main() -> None:
        rot = LogRotator(settings(max_size=1000), listing, asyncio.get_running_loop())
        rot.interval = 3600
        rot.start()
        await until(lambda: listing.calls == 1, "the first check")
        log.write_bytes(b"")  # the supervisor started a process with a new log
        listing.paths = [str(log)]
        rot.rescan_soon(str(log))
        rot.rescan_soon(str(log))  # coalesced
        await until(lambda: rot.watched() == [str(log)], "the watch of the new log")
        assert listing.calls == 2
        rot.rescan_soon(str(log))  # restarted (a crash loop): its log is watched already, nothing to list
        assert rot._rescan is None
        rot.rescan_soon()  # a start whose log is not known: list them
        assert rot._rescan is not None
        rot.stop()

    asyncio.run(main())


# -- a full filesystem ------------------------------------------------------------------------------------


@pytest.fixture(params=["tmpfs", "ext4"])
def small_fs(request, tmp_path: Path) -> Iterator[Path]:
    """A 4 MB filesystem mounted for the test: tmpfs (copytruncate) or ext4 on a loop device (collapse)."""
    mnt = tmp_path / "mnt"
    if request.param == "tmpfs":
        mount_tmpfs(mnt, "4m")
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to mount a filesystem")
        image = tmp_path / "fs.img"
        made = subprocess.run(
            ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image), "4M"], capture_output=True, text=True
        )
        if made.returncode != 0:
            pytest.skip(f"mkfs.ext4: {made.stderr.strip()}")
        mnt.mkdir()
        mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], capture_output=True, text=True)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount an ext4 image: {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        umount(mnt)


def fill(path: Path, first: int = 0) -> int:
    """Append numbered lines to `path` until the filesystem is full; returns the next line number."""
    n = first
    with open(path, "ab", buffering=0) as fh:
        for size in (256, 16, 1):
            while True:
                chunk = b"".join(b"%07d filling the disk\n" % i for i in range(n, n + size))
                try:
                    fh.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
                n += size
    return n


def said(caplog, text: str) -> int:
    return sum(text in r.getMessage() for r in caplog.records)


def test_a_full_filesystem_is_freed_in_place_when_no_copy_fits(small_fs, caplog):
    caplog.set_level("INFO", logger="pmond.logrotate")
    log, ballast = small_fs / "full.log", small_fs / "ballast"
    ballast.write_bytes(b"b" * (3 << 20))
    fill(log)
    assert log.stat().st_size > 256 << 10
    rot = LogRotator(settings(max_size=64 << 10, retain=3), lambda: [str(log)])
    for _ in range(3):
        assert rot.check() == [str(log)]
        assert log.stat().st_size < 4096  # emptied (copytruncate) or down to its last block (collapse)
        assert sorted(p.name for p in small_fs.glob("[!l]*")) == ["ballast", "full.log"]  # no copy, no temp
        with open(log, "ab") as fh:
            fh.write(b"written after the rotation\n")  # the writer can go on
        assert log.read_bytes().endswith(b"written after the rotation\n")
        fill(log)
    assert rot.dropped == 3
    assert said(caplog, f"no space left for a copy of {log}: emptied it in place") == 1  # once, not per rotation
    ballast.unlink()  # room again: rotations keep their copy, and that is said too
    assert rot.check() == [str(log)] and (small_fs / "full.log.1").exists() and rot.dropped == 3
    assert said(caplog, f"{log} is rotated with a copy again") == 1


def test_the_oldest_rotations_make_room_for_the_newest(small_fs, caplog):
    caplog.set_level("INFO", logger="pmond.logrotate")
    log = small_fs / "app.log"
    rot = LogRotator(settings(max_size=400 << 10, retain=20), lambda: [str(log)])
    written = b""
    for i in range(15):  # 15 x 500 KB through a 4 MB filesystem that holds at most 7 of them
        chunk = b"".join(b"%02d %06d rotation under pressure\n" % (i, j) for j in range(16000))
        with open(log, "ab") as fh:
            fh.write(chunk)  # never ENOSPC: each rotation made room first
        written += chunk
        assert rot.check() == [str(log)]
    kept = everything(log)
    assert written.endswith(kept) and len(kept) > 1 << 20  # the newest content, without a gap
    assert 2 <= len(rotated_files(str(log))) < 15 and rot.dropped == 0
    assert said(caplog, f"no space left for a copy of {log}: deleted its oldest rotations") == 1


class FullFile:
    """A copy that the filesystem has no more room for."""

    def seek(self, *args) -> int:
        return 0

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self) -> None:
        pass


def test_copytruncate_truncates_even_when_the_catch_up_has_no_room(tmp_path):
    log = tmp_path / "c.log"
    log.write_bytes(b"copied\n" + b"written during the copy\n")
    fd = os.open(log, os.O_RDWR)
    try:
        assert LogRotator._catch_up_and_truncate(fd, 7, FullFile()) is False  # type: ignore[arg-type]
    finally:
        os.close(fd)
    assert log.read_bytes() == b""  # the writer must be able to go on
