"""Built-in log rotation (`logs.max_size`, `logs.retain`, `logs.compress`) for machines without logrotate.

Processes write with O_APPEND to the log file they opened at spawn and pmond never holds that descriptor,
so a log cannot be renamed away: its content has to move out of the same inode. Once a second the rotator
stats every process log; a file over `max_size` is rotated like this:

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

Every file operation is relative to a descriptor of the log's directory, the log and the new files are
opened with O_NOFOLLOW, and symlinks, hard-linked and non-regular files are skipped, so that a root pmond
cannot be steered into another file.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
import os
import re
import stat
import time
from collections.abc import Iterable
from typing import IO, Callable, Optional, Union

from .. import _native
from ..config import LogSettings

log = logging.getLogger("pmond.logrotate")

CHUNK = 1 << 20
INTERVAL = 1.0  # seconds between checks
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


class LogRotator:
    """Checks the logs of all processes at least once a second (a loop timer, no thread) and rotates those
    over `settings.max_size`.

    `paths()` returns the current log files, called at most once per check and not at all while rotation
    is disabled. An item may be `(path, uid)`: the file is then only touched if that uid owns it (the
    process's run user opened it), which stops a user from pointing a root pmond at another file through
    a symlinked directory. `settings` may be replaced at any time (config reload).
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
        self._handle: Optional[asyncio.TimerHandle] = None
        self._collapse_ok: dict[int, bool] = {}  # st_dev -> whether COLLAPSE_RANGE works there
        self._problems: dict[str, str] = {}  # path -> last problem logged (logged once, not every second)
        self._jobs: dict[str, _GzipJob] = {}  # log path -> compression of its <log>.1 in progress
        self._slice: Optional[asyncio.Handle] = None
        self.rotations = 0

    # -- timer --------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._handle is None:
            if self.loop is None:
                self.loop = asyncio.get_running_loop()
            self._handle = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        """Cancel the timer; a compression in progress is abandoned (its <log>.1 stays uncompressed)."""
        for handle in (self._handle, self._slice):
            if handle is not None:
                handle.cancel()
        self._handle = self._slice = None
        for job in self._jobs.values():
            job.abort()
        self._jobs.clear()

    def _tick(self) -> None:
        assert self.loop is not None
        try:
            self.check()
        except Exception:  # never let rotation take the daemon down
            log.exception("log rotation failed")
        if self._handle is not None:
            self._handle = self.loop.call_later(self.interval, self._tick)
            if self._jobs and self._slice is None:
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
        """Rotate every log over max_size; returns the rotated paths."""
        settings = self.settings
        if not settings.enabled:
            return []
        rotated: list[str] = []
        seen: set[tuple[int, int]] = set()
        for item in self.paths():
            path, uid = (item, None) if isinstance(item, str) else (item[0], item[1])
            if not path:
                continue
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue  # not created yet, or gone
            if not stat.S_ISREG(st.st_mode) or st.st_size <= settings.max_size:
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
                done = self._rotate(path, uid, settings)
            except OSError as exc:
                self._problem(path, f"cannot rotate {path}: {exc.strerror or exc}")
                continue
            if done:
                self._problems.pop(path, None)
                rotated.append(path)
                if settings.compress and settings.retain > 0:
                    self._jobs[path] = _GzipJob(*os.path.split(path))
        return rotated

    def _problem(self, path: str, message: str) -> None:
        if self._problems.get(path) != message:
            self._problems[path] = message
            log.warning("%s", message)

    def _rotate(self, path: str, uid: Optional[int], settings: LogSettings) -> bool:
        directory, base = os.path.split(path)
        dfd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            fd = os.open(base, flags, dir_fd=dfd)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_size <= settings.max_size:
                    return False
                if st.st_nlink != 1:
                    self._problem(path, f"not rotating {path}: it has {st.st_nlink} hard links")
                    return False
                if uid is not None and st.st_uid != uid:
                    self._problem(path, f"not rotating {path}: owned by uid {st.st_uid}, the process runs as {uid}")
                    return False
                return self._rotate_fd(dfd, base, fd, st, settings)
            finally:
                os.close(fd)
        finally:
            os.close(dfd)

    def _rotate_fd(self, dfd: int, base: str, fd: int, st: os.stat_result, settings: LogSettings) -> bool:
        collapse = self._collapse_ok.get(st.st_dev)  # None: not tried yet on this filesystem
        if collapse is False:
            end = st.st_size
        else:
            block = st.st_blksize or 4096
            end = (st.st_size - 1) // block * block  # whole blocks, strictly before EOF
            if end == 0:
                return False  # not over one block yet: wait (at most a block over max_size)

        out: Optional[IO[bytes]] = None
        try:
            if settings.retain > 0:
                out = self._bulk_copy(dfd, base, fd, st, end, settings)
                if out is None:
                    return False
            if collapse is not False:
                err = _collapse(fd, end)
                if err == 0:
                    self._collapse_ok[st.st_dev] = True
                    self.rotations += 1
                    return True
                if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise OSError(err, os.strerror(err))
                self._collapse_ok[st.st_dev] = False
                log.info("filesystem of %s cannot collapse ranges (%s): copytruncate", base, errno.errorcode[err])
            self._catch_up_and_truncate(fd, end, out)
            self.rotations += 1
            return True
        finally:
            if out is not None:
                out.close()

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
                    os.unlink(temp, dir_fd=dfd)
                    out.close()
                    return None
                out.write(chunk)
                offset += len(chunk)
            out.flush()
            self._shift(dfd, base, settings.retain)
            os.rename(temp, f"{base}.1", src_dir_fd=dfd, dst_dir_fd=dfd)
            return out
        except BaseException:
            out.close()
            try:
                os.unlink(temp, dir_fd=dfd)
            except OSError:
                pass
            raise

    @staticmethod
    def _shift(dfd: int, base: str, retain: int) -> None:
        """<base>.N[.gz] -> .N+1, newest last; those that would pass `retain` are deleted."""
        pattern = re.compile(re.escape(base) + r"\.(\d+)((?:\.gz)?)")
        found = []
        for name in os.listdir(dfd):
            m = pattern.fullmatch(name)
            if m and m.group(1) != "0":
                found.append((int(m.group(1)), m.group(2), name))
        for n, suffix, name in sorted(found, reverse=True):
            if n >= retain:
                os.unlink(name, dir_fd=dfd)
            else:
                os.rename(name, f"{base}.{n + 1}{suffix}", src_dir_fd=dfd, dst_dir_fd=dfd)

    @staticmethod
    def _catch_up_and_truncate(fd: int, offset: int, out: Optional[IO[bytes]]) -> None:
        """copytruncate's tail: append what was written since the bulk copy until a read finds nothing, then
        truncate at once. Only a write between that last read and ftruncate is lost."""
        if out is None:
            os.ftruncate(fd, 0)  # retain 0: nothing is kept anyway
            return
        out.seek(0, os.SEEK_END)
        deadline = time.monotonic() + CATCH_UP_SECONDS
        last = os.pread(fd, 1, offset - 1) if offset else b"\n"
        settle: Optional[float] = None
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
                    break
            last = chunk[-1:]
            out.write(chunk)
            offset += len(chunk)
            if time.monotonic() > deadline:  # a writer faster than us: what it writes until ftruncate is lost
                os.ftruncate(fd, 0)
                break
        out.flush()
