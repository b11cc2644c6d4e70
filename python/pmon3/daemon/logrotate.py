"""Built-in log rotation (`logs.max_size`, `logs.retain`, `logs.compress`) for machines without logrotate.

Processes write with O_APPEND to the log file they opened at spawn and pmond never holds that descriptor,
so a log cannot be renamed away: its content has to move out of the same inode. Every log is watched with
inotify (IN_MODIFY): a wake-up of the loop stats each log written since the previous one, once, and after a
wake-up that found every log far from the limit the watch is not listened to for WAKE_GAP, so that a chatty
process does not wake pmond for every line. Once a second a timer stats every log as well (placing the
watches, and as the safety net). A file over `max_size` is rotated like this:

1. Its bulk is copied to `<log>.rotating`, which gets the owner and mode of the log, old rotations are
   shifted (`.1` -> `.2` ..., those past `retain` deleted) and the copy becomes `<log>.1`. Up to here the
   live file is untouched: a crash leaves duplicates, not gaps.
2. The copied bytes leave the live file:
   - where the filesystem supports `fallocate(FALLOC_FL_COLLAPSE_RANGE)` (ext4, xfs, f2fs), the copied
     range, the whole filesystem blocks before the last one, is collapsed out of the file. The kernel does
     this under the inode lock that every O_APPEND write takes, so a line written at any moment is either
     in the copied range or stays in the live file: no loss and no duplicate, ever. The live file keeps
     the tail (less than one block, usually 4 KiB) and a line may be split between `<log>.1` and the live
     file (`pmon3 log` joins it). A file is rotated once it is over both `max_size` and one block.
   - elsewhere (tmpfs, btrfs, ...) copytruncate: what was appended since the bulk copy is appended to
     `<log>.1` until a read finds no more (after waiting for a write in progress through the inode lock,
     so that no line is torn), and the file is truncated right after that read. A line written in the
     microseconds between that last read and the truncate is lost; nothing closes that window without
     the writer's cooperation.
3. With `compress`, `<log>.1` is then gzipped to `<log>.1.gz` in 10 ms slices between the loop's other
   work (temp file `<log>.1.gz.rotating`, then rename), so for a moment the newest rotation is plain.

On a full filesystem (ENOSPC, EDQUOT) the copy of step 1 cannot be made. The oldest rotations of that log
are then deleted one by one until it fits (the newest lines are worth more than the oldest); when none is
left, the log is emptied in place without a copy (step 2 alone), so that its process can go on writing.
pmond's log says so once, and once more when copies fit again.

Every file operation is relative to a descriptor of the log's directory, the log and the new files are
opened with O_NOFOLLOW, and symlinks, hard-linked and non-regular files are skipped, so that a root pmond
cannot be steered into another file.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import os
import re
import stat
import time
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Callable, Optional, Union

if TYPE_CHECKING:  # imported when a file is compressed: pmond does not keep gzip's modules for nothing
    import gzip

from .. import _native
from ..config import LogSettings

log = logging.getLogger("pmond.logrotate")

CHUNK = 1 << 20
INTERVAL = 1.0  # seconds between checks of every log (the safety net of the inotify watches)
# The safety net's pace with many logs: its full check (list the logs, stat each) runs every INTERVAL, or every
# len(watched) / FULL_CHECK_RATE seconds when that is longer (10,000 logs: every 100 s, not 10,000 stats a
# second of an idle pmond). Logs without a watch are still checked every INTERVAL.
FULL_CHECK_RATE = 100
# After a wake-up that found every log far from max_size, inotify is not listened to for this long: a process
# writing 10000 small lines a second costs pmond 50 wake-ups a second, not 10000 (about 1 % of a CPU instead
# of 15 %). A log that will pass max_size within two gaps at its current rate is looked at without a pause.
WAKE_GAP = 0.02
RESCAN_GAP = 0.02  # rescan_soon lists the logs at most this often (a boot starts many processes at once)
COMPRESS_LEVEL = 6
SLICE_SECONDS = 0.01  # compression runs in loop callbacks of about this length
SLICE_CHUNK = 64 << 10
TEMP_SUFFIX = ".rotating"
# After the bulk copy, copytruncate copies what was appended meanwhile until a read finds nothing; a writer
# faster than the copy is cut off after this long (and then loses what it writes until the truncate).
CATCH_UP_SECONDS = 2.0
SETTLE_SECONDS = 0.005


def _fallocate(fd: int, mode: int, offset: int, length: int) -> int:
    """fallocate(2) without glibc's posix_fallocate emulation: 0, or the errno."""
    try:
        _native.fallocate(fd, mode, offset, length)
    except OSError as e:
        return e.errno or errno.EIO
    return 0


def _collapse(fd: int, length: int) -> int:
    """Remove [0, length) from the file, under the inode lock that O_APPEND writes take: 0, or the errno."""
    return _fallocate(fd, _native.FALLOC_FL_COLLAPSE_RANGE, 0, length)


def _wait_for_writes(fd: int) -> bool:
    """Take and release the inode lock (ext4, xfs, btrfs, tmpfs take it in fallocate; KEEP_SIZE on the
    first byte, which exists, changes nothing), so that a write in progress has completed on return.
    False where fallocate is not supported."""
    return _fallocate(fd, _native.FALLOC_FL_KEEP_SIZE, 0, 1) == 0


def _close_quietly(f: IO[bytes]) -> None:
    try:
        f.close()
    except OSError:
        pass  # what was buffered could not be written (no space): the caller knows already


def _same_owner_and_mode(fd: int, st: os.stat_result) -> None:
    """Give a new file (still mode 0600, ours) the owner and permission bits of the file it comes from."""
    if os.geteuid() == 0 or st.st_uid == os.geteuid():
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except PermissionError:
            pass  # a user pmond keeps its own group when it is not in the log's group
    os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o777)


class _GzipJob:
    """Compresses <log>.1 into <log>.1.gz a slice at a time, so that the loop is never blocked for long
    (zlib level 6 does about 25 MB/s on log text: 10 MB would stall supervision for 0.4 s)."""

    def __init__(self, directory: str, base: str) -> None:
        self.directory, self.base = directory, base
        self.src_name, self.temp = f"{base}.1", f"{base}.1.gz{TEMP_SUFFIX}"
        self.dfd = self.src = -1
        self.out: Optional[IO[bytes]] = None
        self.gz: Optional[gzip.GzipFile] = None
        self.offset = 0

    def _open(self) -> None:
        self.dfd = os.open(self.directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.src = os.open(self.src_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.dfd)
        st = os.fstat(self.src)
        try:
            os.unlink(self.temp, dir_fd=self.dfd)  # left by a crash
        except FileNotFoundError:
            pass
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        tfd = os.open(self.temp, flags, 0o600, dir_fd=self.dfd)
        self.out = open(tfd, "wb")  # noqa: SIM115 - closed in finish/abort
        _same_owner_and_mode(tfd, st)
        import gzip

        self.gz = gzip.GzipFile(fileobj=self.out, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=int(st.st_mtime))

    def step(self, deadline: Optional[float]) -> bool:
        """Compress until done (True) or past `deadline` (False); None: until done."""
        if self.gz is None:
            self._open()
        assert self.gz is not None
        while True:
            chunk = os.pread(self.src, SLICE_CHUNK, self.offset)
            if not chunk:
                self._finish()
                return True
            self.gz.write(chunk)
            self.offset += len(chunk)
            if deadline is not None and time.monotonic() > deadline:
                return False

    def _finish(self) -> None:
        assert self.gz is not None and self.out is not None
        self.gz.close()
        self.out.close()
        self.gz = self.out = None
        os.rename(self.temp, f"{self.base}.1.gz", src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
        src, cur = os.fstat(self.src), os.stat(self.src_name, dir_fd=self.dfd, follow_symlinks=False)
        if (src.st_dev, src.st_ino) == (cur.st_dev, cur.st_ino):
            os.unlink(self.src_name, dir_fd=self.dfd)
        self._close()

    def abort(self) -> None:
        """Leave <log>.1 uncompressed."""
        for f in (self.gz, self.out):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        if self.dfd >= 0 and self.out is not None:
            try:
                os.unlink(self.temp, dir_fd=self.dfd)
            except OSError:
                pass
        self.gz = self.out = None
        self._close()

    def _close(self) -> None:
        for fd in (self.src, self.dfd):
            if fd >= 0:
                os.close(fd)
        self.src = self.dfd = -1


PathsResult = Iterable[Union[str, tuple[str, int]]]
Item = tuple[str, Optional[int]]  # (path, uid that must own it, or None)
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
WATCH_MASK = _native.IN_MODIFY | _native.IN_DONT_FOLLOW


class LogRotator:
    """Rotates the logs of all processes that grow over `settings.max_size`, in the loop (no thread).

    Growth is seen through inotify: each log is watched for IN_MODIFY, and a wake-up of the loop stats each
    file that was written since the last one, once, however many writes that was (the kernel merges them
    while pmond is busy). A timer checks every log once a second as well: it places the watches on new logs
    and catches what a watch cannot see (a log that could not be watched, a lost event queue).

    `paths()` returns the current log files, called once per timer check and not at all while rotation is
    disabled. An item may be `(path, uid)`: the file is then only touched if that uid owns it (the process's
    run user opened it), which stops a user from pointing a root pmond at another file through a symlinked
    directory. `settings` may be replaced at any time (config reload).
    """

    def __init__(
        self,
        settings: LogSettings,
        paths: Callable[[], PathsResult],
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.loop = loop
        self.interval = INTERVAL
        self._handle: Optional[asyncio.Handle] = None
        self._rescan: Optional[asyncio.Handle] = None
        self._last_check = 0.0  # monotonic time of the last full check
        self._collapse_ok: dict[int, bool] = {}  # st_dev -> whether COLLAPSE_RANGE works there
        self._problems: dict[str, str] = {}  # path -> last problem logged (logged once, not every second)
        self._no_space: dict[str, str] = {}  # path -> what a full filesystem made us do (logged once)
        self._jobs: dict[str, _GzipJob] = {}  # log path -> compression of its <log>.1 in progress
        self._slice: Optional[asyncio.Handle] = None
        self._inotify: Optional[_native.Inotify] = None
        self._wd_of: dict[str, tuple[int, int, int]] = {}  # path -> (wd, st_dev, st_ino) it watches
        self._items_of: dict[int, dict[str, Optional[int]]] = {}  # wd -> {path: uid} of that inode
        self._seen: dict[str, tuple[int, float, float]] = {}  # path -> (size, monotonic time, bytes/s) last seen
        self._hurry = False  # a log is about to pass max_size: look again at the next wake-up, no pause
        self._resume: Optional[asyncio.TimerHandle] = None  # listening again after a pause
        self._unwatched: dict[str, Optional[int]] = {}  # logs whose watch failed: checked every tick
        self._new: dict[str, Optional[int]] = {}  # logs of started processes, to look at and watch soon
        self.rotations = 0
        self.dropped = 0  # rotations that kept no copy: no space for one
        self.wakes = 0  # inotify wake-ups handled
        self.pauses = 0  # of them, those followed by a WAKE_GAP pause

    # -- timer and watches --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._handle is None:
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            try:
                self._inotify = _native.Inotify()
                self.loop.add_reader(self._inotify.fileno(), self._on_events)
            except OSError as exc:  # no inotify instance left (fs.inotify.max_user_instances)
                self._inotify = None
                log.warning("log rotation checks sizes once a second only: inotify: %s", exc.strerror or exc)
            self._handle = self.loop.call_soon(self._tick)  # places the watches at once

    def stop(self) -> None:
        """Cancel the timer and the watches; a compression in progress is abandoned (its <log>.1 stays
        uncompressed)."""
        for handle in (self._handle, self._slice, self._rescan, self._resume):
            if handle is not None:
                handle.cancel()
        self._handle = self._slice = self._rescan = self._resume = None
        if self._inotify is not None:
            if self.loop is not None:
                self.loop.remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None
        self._wd_of.clear()
        self._items_of.clear()
        self._unwatched.clear()
        self._new.clear()
        for job in self._jobs.values():
            job.abort()
        self._jobs.clear()

    def _tick(self) -> None:
        assert self.loop is not None
        try:
            full_every = max(self.interval, len(self._wd_of) / FULL_CHECK_RATE)
            if time.monotonic() - self._last_check >= full_every - self.interval / 2 or self._inotify is None:
                self.check()
            elif self._unwatched and self.settings.enabled:
                self._check_items(list(self._unwatched.items()), self.settings, watch=True)
        except Exception:  # never let rotation take the daemon down
            log.exception("log rotation failed")
        if self._handle is not None:
            self._handle = self.loop.call_later(self.interval, self._tick)
            self._compress_soon()

    def rescan_soon(self, path: Optional[str] = None) -> None:
        """A process has started and its log (`path`) may be new: check and watch the logs soon, not only at
        the next tick (a fast writer fills 50 MB in that second). Nothing to do for a log already watched (a
        restart in a crash loop costs nothing here). Rescans are at least RESCAN_GAP apart."""
        if self._rescan is not None or self._handle is None or self.loop is None or not self.settings.enabled:
            return
        if path is not None and path in self._wd_of:
            return
        delay = max(0.0, self._last_check + RESCAN_GAP - time.monotonic())
        self._rescan = self.loop.call_later(delay, self._rescan_now)

    def watch_soon(self, path: str, uid: Optional[int] = None) -> None:
        """A process has started with the log `path` (an item as paths() gives it): look at it and watch it
        soon, alone (a boot of 10,000 processes must not list and stat every log per start). Nothing to do
        for a log already watched."""
        if self._handle is None or self.loop is None or not self.settings.enabled or path in self._wd_of:
            return
        self._new[path] = uid
        if self._rescan is None:
            self._rescan = self.loop.call_later(RESCAN_GAP, self._rescan_now)

    def _rescan_now(self) -> None:
        self._rescan = None
        try:
            if self._new:
                new, self._new = self._new, {}
                self._check_items(list(new.items()), self.settings, watch=True)
            else:
                self.check()
        except Exception:
            log.exception("log rotation failed")
        self._compress_soon()

    def _on_events(self) -> None:
        """The inotify descriptor is readable: check each log written since the last wake-up, once. Then,
        unless a log is about to pass max_size, stop listening for WAKE_GAP: a chatty process writing small
        lines far below the limit would otherwise wake pmond for every line."""
        assert self._inotify is not None and self.loop is not None
        try:
            events = self._inotify.read()
        except OSError:
            return
        self.wakes += 1
        due: dict[str, Optional[int]] = {}
        for wd, mask, _cookie, _name in events:
            if mask & _native.IN_Q_OVERFLOW:  # events were lost: every watched log may have grown
                for items in self._items_of.values():
                    due.update(items)
            elif mask & _native.IN_IGNORED:  # the inode is gone (or we removed the watch)
                for path in self._items_of.pop(wd, {}):
                    self._wd_of.pop(path, None)
                    self._seen.pop(path, None)
                    self.rescan_soon()  # a new file at that path (maybe with the same inode number)
            else:
                due.update(self._items_of.get(wd, {}))
        settings = self.settings
        self._hurry = False
        if due and settings.enabled:
            try:
                self._check_items(list(due.items()), settings)
            except Exception:
                log.exception("log rotation failed")
            self._compress_soon()
        if not self._hurry and self._handle is not None:
            self.pauses += 1
            self.loop.remove_reader(self._inotify.fileno())
            self._resume = self.loop.call_later(WAKE_GAP, self._listen)

    def _listen(self) -> None:
        self._resume = None
        if self._inotify is not None and self.loop is not None:
            self.loop.add_reader(self._inotify.fileno(), self._on_events)

    def _watch(self, path: str, uid: Optional[int], st: os.stat_result) -> None:
        """Make sure the inode now at `path` is watched (a log replaced by a new file gets a new watch)."""
        if self._inotify is None:
            return
        self._unwatched.pop(path, None)
        current = self._wd_of.get(path)
        if current is not None and current[1:] == (st.st_dev, st.st_ino):
            self._items_of[current[0]][path] = uid
            return
        if current is not None:
            self._unwatch(path)
        try:
            wd = self._inotify.add_watch(path, WATCH_MASK)
        except OSError as exc:  # e.g. ENOSPC: fs.inotify.max_user_watches reached; the timer still checks it
            self._problem(path, f"cannot watch {path} ({exc.strerror or exc}): its size is checked once a second")
            self._unwatched[path] = uid
            return
        self._wd_of[path] = (wd, st.st_dev, st.st_ino)
        self._items_of.setdefault(wd, {})[path] = uid

    def _unwatch(self, path: str) -> None:
        self._seen.pop(path, None)
        wd = self._wd_of.pop(path)[0]
        items = self._items_of.get(wd, {})
        items.pop(path, None)
        if not items:
            self._items_of.pop(wd, None)
            if self._inotify is not None:
                try:
                    self._inotify.rm_watch(wd)
                except OSError:
                    pass  # already gone with its inode

    def watched(self) -> list[str]:
        """The paths whose growth is watched (for tests and `pmond` diagnostics)."""
        return sorted(self._wd_of)

    def _compress_soon(self) -> None:
        if self._jobs and self._slice is None and self._handle is not None:
            self._compress_slice()

    def _compress_slice(self) -> None:
        """One slice of compression, then the loop's other work, then the next slice."""
        assert self.loop is not None
        self._slice = None
        if self.compress_pending(SLICE_SECONDS) and self._handle is not None:
            self._slice = self.loop.call_soon(self._compress_slice)

    def compress_pending(self, budget: Optional[float] = None) -> bool:
        """Compress rotated files for about `budget` seconds (None: all of them); True if work is left."""
        deadline = None if budget is None else time.monotonic() + budget
        for path in list(self._jobs):
            job = self._jobs[path]
            try:
                done = job.step(deadline)
            except Exception as exc:  # OSError, or zlib's: never retried every second
                job.abort()
                done = True
                self._problem(path, f"cannot compress {path}.1: {getattr(exc, 'strerror', None) or exc}")
            if done:
                del self._jobs[path]
            if deadline is not None and time.monotonic() > deadline:
                break
        return bool(self._jobs)

    # -- one check ----------------------------------------------------------------------------------------
    def check(self) -> list[str]:
        """Rotate every log over max_size, and watch every log for growth; returns the rotated paths."""
        settings = self.settings
        self._last_check = time.monotonic()
        if not settings.enabled:
            for path in list(self._wd_of):
                self._unwatch(path)
            return []
        items: list[Item] = []
        for item in self.paths():
            path, uid = (item, None) if isinstance(item, str) else (item[0], item[1])
            if path:
                items.append((path, uid))
        listed = {path for path, _ in items}
        for path in [p for p in self._wd_of if p not in listed]:
            self._unwatch(path)
        for path in [p for p in self._unwatched if p not in listed]:
            del self._unwatched[path]
        return self._check_items(items, settings, watch=True)

    def _check_items(self, items: list[Item], settings: LogSettings, watch: bool = False) -> list[str]:
        rotated: list[str] = []
        seen: set[tuple[int, int]] = set()
        for path, uid in items:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue  # not created yet, or gone
            if not stat.S_ISREG(st.st_mode):
                continue
            if watch:
                self._watch(path, uid, st)
            self._note_growth(path, st.st_size, settings.max_size)
            if st.st_size <= settings.max_size:
                continue
            if (st.st_dev, st.st_ino) in seen:  # several processes share one log
                continue
            seen.add((st.st_dev, st.st_ino))
            job = self._jobs.pop(path, None)
            if job is not None:  # its <log>.1 is about to become <log>.2: finish it first
                try:
                    job.step(None)
                except OSError:
                    job.abort()
            try:
                outcome = self._rotate(path, uid, settings)
            except OSError as exc:
                self._problem(path, f"cannot rotate {path}: {exc.strerror or exc}")
                continue
            if outcome is not None:
                self._problems.pop(path, None)
                # It passed max_size between two looks: keep looking without pauses until a look shows it
                # growing slowly. (The rotation's own truncate wakes us too, and shows no growth.)
                rate = self._seen[path][2] if path in self._seen else 0.0
                self._seen[path] = (0, time.monotonic(), rate or math.inf)
                self._hurry = True
                rotated.append(path)
                if settings.compress and settings.retain > 0 and outcome != "dropped":  # a new <log>.1
                    self._jobs[path] = _GzipJob(*os.path.split(path))
        return rotated

    def _note_growth(self, path: str, size: int, max_size: int) -> None:
        """Remember the size of a log and the rate it grew at since the last look; hurry (no pause before the
        next wake-up) when at that rate it passes max_size within two WAKE_GAPs."""
        now = time.monotonic()
        last = self._seen.get(path)
        rate = last[2] if last is not None else 0.0
        if last is not None and size > last[0] and now > last[1]:
            rate = (size - last[0]) / (now - last[1])
        self._seen[path] = (size, now, rate)
        if size <= max_size and rate * WAKE_GAP * 2 > max_size - size:
            self._hurry = True

    def _problem(self, path: str, message: str) -> None:
        if self._problems.get(path) != message:
            self._problems[path] = message
            log.warning("%s", message)

    def _short_of_space(self, path: str, what: str, message: str) -> None:
        """A full filesystem changed what a rotation of `path` did: said once per change, not every time."""
        if self._no_space.get(path) != what:
            self._no_space[path] = what
            log.warning("%s", message)

    def _rotate(self, path: str, uid: Optional[int], settings: LogSettings) -> Optional[str]:
        """Rotate one log if it is (still) over max_size: None, or what _rotate_fd did."""
        directory, base = os.path.split(path)
        dfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            fd = os.open(base, flags, dir_fd=dfd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size <= settings.max_size:
                    return None
                if st.st_nlink != 1:
                    self._problem(path, f"not rotating {path}: it has {st.st_nlink} hard links")
                    return None
                if uid is not None and st.st_uid != uid:
                    self._problem(path, f"not rotating {path}: owned by uid {st.st_uid}, the process runs as {uid}")
                    return None
                outcome = self._rotate_fd(dfd, base, fd, st, settings)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)
        if outcome is None:
            return None
        self.rotations += 1
        if outcome == "copied":
            if self._no_space.pop(path, None) is not None:
                log.info("%s is rotated with a copy again: there is room on its filesystem", path)
        elif outcome == "made room":
            self._short_of_space(
                path, outcome, f"no space left for a copy of {path}: deleted its oldest rotations until one fitted"
            )
        elif outcome == "cut":
            self._short_of_space(
                path, outcome, f"no space left to finish the copy of {path}: what it got meanwhile was dropped"
            )
        else:
            self.dropped += 1
            self._short_of_space(
                path,
                outcome,
                f"no space left for a copy of {path}: emptied it in place without keeping what it held, "
                "so that its process can go on writing (said once; its rotations resume when there is room)",
            )
        return outcome

    def _rotate_fd(self, dfd: int, base: str, fd: int, st: os.stat_result, settings: LogSettings) -> Optional[str]:
        """Rotate one open log: None when it must wait, else "copied", "made room" (older rotations were
        deleted for the copy), "cut" (the copy has the bulk, the filesystem had no room for what was written
        meanwhile) or "dropped" (no room for a copy at all: the content is gone, the writer can go on)."""
        collapse = self._collapse_ok.get(st.st_dev)  # None: not tried yet on this filesystem
        if collapse is False:
            end = st.st_size
        else:
            block = st.st_blksize or 4096
            end = (st.st_size - 1) // block * block  # whole blocks, strictly before EOF
            if end == 0:
                return None  # not over one block yet: wait (at most a block over max_size)

        out: Optional[IO[bytes]] = None
        outcome = "copied"
        try:
            if settings.retain > 0:
                try:
                    out, deleted = self._copy_making_room(dfd, base, fd, st, end, settings)
                except OSError as exc:
                    if exc.errno not in NO_SPACE:
                        raise
                    outcome = "dropped"  # not even without older rotations: free the space in place
                else:
                    if out is None:
                        return None
                    outcome = "made room" if deleted else outcome
            if collapse is not False:
                err = _collapse(fd, end)
                if err == 0:
                    self._collapse_ok[st.st_dev] = True
                    return outcome
                if err in NO_SPACE:  # the extent tree needed a block: truncate this time
                    pass
                elif err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise OSError(err, os.strerror(err))
                else:
                    self._collapse_ok[st.st_dev] = False
                    log.info("filesystem of %s cannot collapse ranges (%s): copytruncate", base, errno.errorcode[err])
            if not self._catch_up_and_truncate(fd, end, out):
                outcome = "cut"  # the copy lacks what was written while it was made: no space for it
            return outcome
        finally:
            if out is not None:
                _close_quietly(out)

    def _copy_making_room(
        self, dfd: int, base: str, fd: int, st: os.stat_result, end: int, settings: LogSettings
    ) -> tuple[Optional[IO[bytes]], int]:
        """_bulk_copy; where the filesystem is full, the oldest rotations are deleted one by one until the copy
        fits (the newest content is worth more than the oldest). Returns the copy and how many were deleted;
        OSError(ENOSPC) when even that was not enough."""
        deleted = 0
        while True:
            try:
                return self._bulk_copy(dfd, base, fd, st, end, settings), deleted
            except OSError as exc:
                if exc.errno not in NO_SPACE:
                    raise
                rotations = self._rotations(dfd, base)
                if not rotations:
                    raise
                os.unlink(rotations[-1][2], dir_fd=dfd)
                deleted += 1

    def _bulk_copy(
        self, dfd: int, base: str, fd: int, st: os.stat_result, end: int, settings: LogSettings
    ) -> Optional[IO[bytes]]:
        """Copy [0, end) to <base>.rotating with the log's owner and mode, shift the old rotations, rename it
        to <base>.1[.gz]; returns the still open (renamed) file for copytruncate's catch-up."""
        temp = base + TEMP_SUFFIX
        try:
            os.unlink(temp, dir_fd=dfd)  # left by a crash in the middle of a rotation
        except FileNotFoundError:
            pass
        tfd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        out = open(tfd, "wb")  # noqa: SIM115 - returned to the caller
        try:
            _same_owner_and_mode(tfd, st)
            offset = 0
            while offset < end:
                chunk = os.pread(fd, min(CHUNK, end - offset), offset)
                if not chunk:  # truncated behind our back (logrotate?): give up this round
                    _close_quietly(out)
                    os.unlink(temp, dir_fd=dfd)
                    return None
                out.write(chunk)
                offset += len(chunk)
            out.flush()
            self._shift(dfd, base, settings.retain)
            os.rename(temp, f"{base}.1", src_dir_fd=dfd, dst_dir_fd=dfd)
            return out
        except BaseException:
            _close_quietly(out)  # closing flushes: on a full filesystem that fails again
            try:
                os.unlink(temp, dir_fd=dfd)
            except OSError:
                pass
            raise

    @staticmethod
    def _rotations(dfd: int, base: str) -> list[tuple[int, str, str]]:
        """The rotated files of <base>: (n, ".gz" or "", name), newest (.1) first."""
        pattern = re.compile(re.escape(base) + r"\.(\d+)((?:\.gz)?)")
        found = []
        for name in os.listdir(dfd):
            m = pattern.fullmatch(name)
            if m and m.group(1) != "0":
                found.append((int(m.group(1)), m.group(2), name))
        return sorted(found)

    @classmethod
    def _shift(cls, dfd: int, base: str, retain: int) -> None:
        """<base>.N[.gz] -> .N+1, newest last; those that would pass `retain` are deleted."""
        for n, suffix, name in reversed(cls._rotations(dfd, base)):
            if n >= retain:
                os.unlink(name, dir_fd=dfd)
            else:
                os.rename(name, f"{base}.{n + 1}{suffix}", src_dir_fd=dfd, dst_dir_fd=dfd)

    @staticmethod
    def _catch_up_and_truncate(fd: int, offset: int, out: Optional[IO[bytes]]) -> bool:
        """copytruncate's tail: append what was written since the bulk copy until a read finds nothing, then
        truncate at once. Only a write between that last read and ftruncate is lost. False when the copy had
        no room for that tail (the log is truncated anyway: its process must be able to go on writing)."""
        if out is None:
            os.ftruncate(fd, 0)  # retain 0 or no room for a copy: nothing is kept
            return True
        out.seek(0, os.SEEK_END)
        deadline = time.monotonic() + CATCH_UP_SECONDS
        last = os.pread(fd, 1, offset - 1) if offset else b"\n"
        settle: Optional[float] = None
        try:
            while True:
                chunk = os.pread(fd, CHUNK, offset)
                if not chunk:
                    # A write crossing a page boundary becomes visible page by page, so this copy may end in
                    # the middle of a write that the truncate would cut. The write holds the inode lock until
                    # it is complete: take that lock once (a no-op fallocate), then look again.
                    if _wait_for_writes(fd):
                        chunk = os.pread(fd, CHUNK, offset)
                    elif last != b"\n":  # no fallocate here: give a line in progress a few milliseconds
                        now = time.monotonic()
                        settle = now + SETTLE_SECONDS if settle is None else settle
                        if now <= settle:
                            continue
                    if not chunk:
                        os.ftruncate(fd, 0)
                        return True
                last = chunk[-1:]
                out.write(chunk)
                out.flush()  # a full filesystem shows here, before the truncate
                offset += len(chunk)
                if time.monotonic() > deadline:  # a writer faster than us: what it writes until ftruncate is lost
                    os.ftruncate(fd, 0)
                    return True
        except OSError as exc:
            if exc.errno not in NO_SPACE:
                raise
            os.ftruncate(fd, 0)
            return False
