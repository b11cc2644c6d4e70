"""log and logf: read a process's log (and its rotated files) directly, with the caller's own rights."""

from __future__ import annotations

import gzip
import os
import sys
import time
from collections import deque
from typing import IO, Optional

import click

from ...logfiles import rotated_files
from ..output import CliError
from . import Command, handle_errors, id_argument, session


def _open(path: str) -> IO[bytes]:
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]  # a GzipFile is a binary IO
        return open(path, "rb")  # noqa: SIM115
    except PermissionError:
        raise CliError(f"permission denied reading {path}") from None
    except FileNotFoundError:
        raise CliError(f"log file {path} does not exist") from None


def tail_lines(paths: list[str], n: Optional[int]) -> list[bytes]:
    """The last `n` lines (all with None) of the files read in order as one stream: a line that a rotation
    split between a rotated file and the next one counts once."""
    lines: deque[bytes] = deque(maxlen=n)
    partial = b""
    for path in paths:
        with _open(path) as fh:
            for line in fh:
                if partial:
                    line, partial = partial + line, b""
                if line.endswith(b"\n"):
                    lines.append(line)
                else:
                    partial = line
    if partial:
        lines.append(partial)
    return list(lines)


def newest_with_lines(paths: list[str], n: int) -> list[str]:
    """The shortest suffix of `paths` (oldest first) holding more than `n` newlines, so that its last `n`
    lines are complete even if a rotation split a line; a freshly rotated live file is nearly empty."""
    if len(paths) <= 1:
        return paths
    chosen: list[str] = []
    newlines = 0
    for path in reversed(paths):
        chosen.insert(0, path)
        with _open(path) as fh:
            while chunk := fh.read(1 << 20):
                newlines += chunk.count(b"\n")
        if newlines > n:
            break
    return chosen


def _log_path(id: str) -> str:
    with session() as c:
        return str(c.describe(id)["log"])


@click.command("log", cls=Command)
@id_argument()
@click.option("-n", "--lines", type=click.IntRange(min=0), help="last N lines (default 10; all with -a)")
@click.option("-a", "--all", "all_", is_flag=True, help="also output rotated/compressed log files")
@handle_errors
def log_cmd(id: str, lines: Optional[int], all_: bool) -> None:
    """Display process logs by id or name."""
    path = _log_path(id)
    paths = [*rotated_files(path), path]
    if len(paths) > 1 and not os.path.exists(path):
        paths = paths[:-1]
    n = lines if lines is not None else (None if all_ else 10)
    if not all_:
        paths = newest_with_lines(paths, n or 0)
    out = sys.stdout.buffer
    for line in tail_lines(paths, n):
        out.write(line)
    out.flush()


@click.command("logf", cls=Command)
@id_argument()
@click.option("-n", "--lines", type=click.IntRange(min=0), default=10, show_default=True, help="initial lines")
@handle_errors
def logf_cmd(id: str, lines: int) -> None:
    """Tail process logs by id or name (follows truncation and rotation)."""
    path = _log_path(id)
    out = sys.stdout.buffer
    for line in tail_lines([path], lines):
        out.write(line)
    out.flush()
    fh = _open(path)
    end = fh.seek(0, os.SEEK_END)
    ino = os.fstat(fh.fileno()).st_ino
    # The last bytes read: still just before our position unless the file was truncated (copytruncate) or
    # collapsed (pmond's rotation) meanwhile, even if it has grown past our position again since.
    seen = os.pread(fh.fileno(), 64, max(0, end - 64))
    try:
        while True:
            pos = fh.tell()
            if os.fstat(fh.fileno()).st_size < pos or os.pread(fh.fileno(), len(seen), pos - len(seen)) != seen:
                fh.seek(0)  # emptied under us: what is there now came after
                seen = b""
            chunk = fh.read(65536)
            if chunk:
                out.write(chunk)
                out.flush()
                seen = (seen + chunk)[-64:]
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and st.st_ino != ino:  # rotated away: continue with the new file
                fh.close()
                fh = _open(path)
                ino = os.fstat(fh.fileno()).st_ino
                seen = b""
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        fh.close()
