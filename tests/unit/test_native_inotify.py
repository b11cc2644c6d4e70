"""_native.Inotify: events of a watched file and directory, read without blocking."""

from __future__ import annotations

import errno
import os
import select
from pathlib import Path
from typing import Optional

import pytest
from pmon3 import _native

# linux/inotify.h
EXPECTED = {
    "IN_MODIFY": 0x2,
    "IN_ATTRIB": 0x4,
    "IN_CLOSE_WRITE": 0x8,
    "IN_MOVED_TO": 0x80,
    "IN_CREATE": 0x100,
    "IN_DELETE": 0x200,
    "IN_DELETE_SELF": 0x400,
    "IN_MOVE_SELF": 0x800,
    "IN_Q_OVERFLOW": 0x4000,
    "IN_IGNORED": 0x8000,
}


def test_constants_have_the_kernels_values():
    assert {name: getattr(_native, name) for name in EXPECTED} == EXPECTED


def read_events(ino: _native.Inotify, count: int) -> list[tuple[int, int, int, Optional[str]]]:
    """At least `count` events, waiting on the descriptor (10 s deadline) as an event loop would."""
    events: list[tuple[int, int, int, Optional[str]]] = []
    while len(events) < count:
        assert select.select([ino.fileno()], [], [], 10)[0], f"no event after 10 s; so far {events}"
        events += ino.read()
    return events


def test_writes_renames_and_deletes_are_reported(tmp_path: Path):
    log = tmp_path / "app.log"
    log.write_text("")
    ino = _native.Inotify()
    try:
        assert ino.read() == []
        wf = ino.add_watch(str(log), _native.IN_MODIFY | _native.IN_CLOSE_WRITE | _native.IN_ATTRIB)
        wd = ino.add_watch(str(tmp_path), _native.IN_CREATE | _native.IN_MOVED_TO | _native.IN_DELETE)
        assert wf != wd
        with open(log, "a") as fh:
            fh.write("line\n")
        os.chmod(log, 0o600)
        (tmp_path / "new").write_text("")
        os.rename(tmp_path / "new", tmp_path / "moved")
        os.unlink(tmp_path / "moved")
        events = read_events(ino, 6)
        assert [(w, m, n) for w, m, _, n in events] == [
            (wf, _native.IN_MODIFY, None),
            (wf, _native.IN_CLOSE_WRITE, None),
            (wf, _native.IN_ATTRIB, None),
            (wd, _native.IN_CREATE, "new"),
            (wd, _native.IN_MOVED_TO, "moved"),
            (wd, _native.IN_DELETE, "moved"),
        ]
        assert ino.read() == []  # nothing more pending, and no blocking

        ino.rm_watch(wf)
        assert [(w, m) for w, m, _, _ in read_events(ino, 1)] == [(wf, _native.IN_IGNORED)]
        with pytest.raises(OSError) as exc:
            ino.rm_watch(wf)
        assert exc.value.errno == errno.EINVAL
    finally:
        ino.close()


def test_watched_file_replaced_by_rename(tmp_path: Path):
    """What a log watcher sees when the file is moved away and deleted: MOVE_SELF, DELETE_SELF, IGNORED."""
    log = tmp_path / "app.log"
    log.write_text("")
    ino = _native.Inotify()
    try:
        wf = ino.add_watch(str(log), _native.IN_MOVE_SELF | _native.IN_DELETE_SELF)
        os.rename(log, tmp_path / "app.log.1")
        os.unlink(tmp_path / "app.log.1")
        masks = [m for w, m, _, _ in read_events(ino, 3) if w == wf]
        assert masks == [_native.IN_MOVE_SELF, _native.IN_DELETE_SELF, _native.IN_IGNORED]
    finally:
        ino.close()


def test_descriptor_flags_and_close(tmp_path: Path):
    ino = _native.Inotify()
    fd = ino.fileno()
    assert os.get_blocking(fd) is False
    assert os.get_inheritable(fd) is False
    with pytest.raises(FileNotFoundError):
        ino.add_watch(str(tmp_path / "missing"), _native.IN_MODIFY)
    ino.close()
    ino.close()  # idempotent
    with pytest.raises(OSError) as exc:
        ino.fileno()
    assert exc.value.errno == errno.EBADF
    with pytest.raises(OSError):
        ino.read()
