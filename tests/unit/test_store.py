"""The database: migrations of an existing file, refusal of a newer schema, owner-only permissions, a full disk."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import apsw
import pytest
from helpers import RUN, mount_tmpfs, umount
from pmon3 import store
from pmon3.models import Process
from pmon3.states import Status
from pmon3.store import MIGRATIONS, Store, StoreWriteError


def user_version(path: Path) -> int:
    db = apsw.Connection(str(path))
    try:
        return db.execute("PRAGMA user_version").fetchall()[0][0]
    finally:
        db.close()


def test_a_v1_database_is_migrated_and_keeps_its_rows(tmp_path: Path):
    path = tmp_path / "data.db"
    db = apsw.Connection(str(path))
    with db:
        db.execute(MIGRATIONS[0])  # the schema as the first release created it
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO processes (id, name, process_file, argv, username, pid, status, restart_count, "
            "created_at, updated_at) VALUES (7, 'old', '/bin/sleep', '[\"300\"]', 'root', 4242, 2, 3, 'c', 'u')"
        )
        db.execute("INSERT INTO meta (key, value) VALUES ('boot_id', 'b')")
        # v3 split a group per owner of its members: root's `web` must not hold a user's process any more
        db.execute(
            "INSERT INTO processes (id, name, process_file, username, uid, created_at, updated_at) "
            "VALUES (8, 'theirs', '/bin/sleep', 'u', 1000, 'c', 'u')"
        )
        db.execute("INSERT INTO groups (id, name, created_at, updated_at) VALUES (1, 'web', 'c', 'u')")
        db.execute("INSERT INTO process_groups (process_id, group_id) VALUES (7, 1), (8, 1)")
    db.close()
    s = Store(str(path), default_owner=0)
    try:
        p = s.get_by_name(0, "old")
        assert p is not None and (p.id, p.process_file, p.argv, p.pid, p.restart_count) == (
            7,
            "/bin/sleep",
            ["300"],
            4242,
            3,
        )
        assert p.policy == {} and p.flap == {}  # the columns of later migrations, with their defaults
        assert s.get_meta("boot_id") == "b"
        theirs = s.get_by_name(1000, "theirs")
        assert p.owner == 0 and theirs is not None and theirs.owner == 1000
        groups = {(g.owner, g.name): s.group_members(g.id) for g in s.list_groups()}
        assert groups == {(0, "web"): [7], (1000, "web"): [8]}
        assert p.groups == ["web"] and theirs.groups == ["web"]
    finally:
        s.close()
    assert user_version(path) == len(MIGRATIONS)


def test_a_fresh_database_is_at_the_current_version(tmp_path: Path):
    Store(str(tmp_path / "data.db")).close()
    assert user_version(tmp_path / "data.db") == len(MIGRATIONS)


def test_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "data.db"
    db = apsw.Connection(str(path))
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(store.SchemaError, match=f"database schema {len(MIGRATIONS) + 1} is newer than this pmond"):
        Store(str(path))
    assert user_version(path) == len(MIGRATIONS) + 1  # left as it was


def test_pmond_refuses_to_start_on_a_newer_schema_with_one_line(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    db = apsw.Connection(str(data / "data.db"))
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    conf = tmp_path / "config.yml"
    conf.write_text(
        f"data:\n  directory: {data}\nlogs:\n  directory: {tmp_path / 'logs'}\n"
        f"message_queue:\n  name_suffix: t{RUN}schema\ndaemon:\n  autostart: false\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "pmon3.daemon", "--foreground"],
        env={**os.environ, "PMON3_CONF": str(conf)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1
    newer, known = len(MIGRATIONS) + 1, len(MIGRATIONS)
    assert res.stderr.splitlines() == [
        f"pmond: database schema {newer} is newer than this pmond understands ({known}): "
        "upgrade pmon3, or move the data directory away"
    ], res.stderr


def test_the_database_is_owner_only(tmp_path: Path):
    path = tmp_path / "data.db"
    old = os.umask(0o022)  # a permissive umask must not leak into the file's mode
    try:
        s = Store(str(path))
        s.set_meta("k", "v")  # a write: the WAL and shared-memory files exist now too
    finally:
        os.umask(old)
    try:
        for f in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    finally:
        s.close()


def test_the_row_cache_stays_exact_through_every_write(tmp_path: Path):
    """`ls` is served from the cache once it holds every row: every write must keep it equal to the database."""
    from pmon3.models import Process

    s = Store(str(tmp_path / "data.db"), default_owner=0)

    def fresh() -> list[tuple]:
        other = Store(str(tmp_path / "data.db"), default_owner=0)  # what a new reader of the file sees
        try:
            return [(p.id, p.name, p.argv, p.groups, p.status, p.pid) for p in other.list_processes()]
        finally:
            other.close()

    def cached() -> list[tuple]:
        return [(p.id, p.name, p.argv, p.groups, p.status, p.pid) for p in s.list_processes()]

    try:
        a = s.insert(Process(id=0, name="a", process_file="/bin/true", groups=["web", "api"]))
        s.insert(Process(id=0, name="b", process_file="/bin/true"))
        assert cached() == fresh()  # first full listing fills the cache
        a.argv = ["x"]
        s.update(a)
        assert cached() == fresh()
        a.pid = 42
        s.update_runtime(a)
        assert cached() == fresh()
        a.groups = ["zzz"]
        s.set_groups(a)
        assert cached() == fresh()
        a.groups, a.argv = ["yyy", "zzz"], ["y"]
        s.update(a, with_groups=True)
        assert cached() == fresh()
        g = s.get_group_by_name(0, "zzz")
        assert g is not None
        s.change_membership([g.id], [a.id], add=False)
        assert cached() == fresh()
        s.delete_group(g.id)
        assert cached() == fresh()
        s.delete(a.id)
        assert cached() == fresh()
        listed = s.list_processes()
        listed[0].argv.append("mutated")  # callers get copies
        assert cached() == fresh()
    finally:
        s.close()


def test_deferred_runtime_writes_are_read_at_once_and_written_before_sql_and_at_close(tmp_path: Path):
    """update_runtime(deferred=True) (a restart's row, written after the child's exec) is what every read sees
    at once; SQLite gets it in one transaction at the next flush, SQL read or write, and at close."""
    from pmon3.models import Process
    from pmon3.states import Status

    path = str(tmp_path / "data.db")
    s = Store(path, default_owner=0)

    def on_disk() -> list[tuple]:
        other = Store(path, default_owner=0)
        try:
            return [(p.id, p.pid, p.status, p.restart_count) for p in other.list_processes()]
        finally:
            other.close()

    try:
        a = s.insert(Process(id=0, name="a", process_file="/bin/true"))
        b = s.insert(Process(id=0, name="b", process_file="/bin/true"))
        s.list_processes()  # every row cached
        a.pid, a.status, a.restart_count = 11, Status.RUNNING, 3
        s.update_runtime(a, deferred=True)
        b.pid = 12
        s.update_runtime(b, deferred=True)
        assert s.deferred == 2
        got = s.get(a.id)
        assert got is not None and (got.pid, got.status, got.restart_count) == (11, Status.RUNNING, 3)
        assert [p.pid for p in s.list_processes()] == [11, 12]
        assert on_disk() == [(a.id, 0, Status.QUEUED, 0), (b.id, 0, Status.QUEUED, 0)]  # not yet
        assert s.set_start_time(a.id, 11, 777) and not s.set_start_time(a.id, 99, 1)  # another pid: refused
        s.insert(Process(id=0, name="c", process_file="/bin/true"))  # a write writes them first
        assert s.deferred == 0
        assert on_disk()[:2] == [(a.id, 11, Status.RUNNING, 3), (b.id, 12, Status.QUEUED, 0)]
        b.pid = 13
        s.update_runtime(b, deferred=True)
    finally:
        s.close()  # flushes
    assert on_disk()[1][1] == 13
    again = Store(path, default_owner=0)
    try:
        row = again.get(a.id)
        assert row is not None and row.pid_start_time == 777
    finally:
        again.close()


def test_names_come_from_the_cache_and_rows_share_nothing_a_caller_can_change(tmp_path: Path):
    from pmon3.models import Process

    s = Store(str(tmp_path / "data.db"), default_owner=0)
    try:
        a = s.insert(Process(id=0, name="a", process_file="/bin/true", owner=5))
        s.insert(Process(id=0, name="a", process_file="/bin/true", owner=6))
        s.list_processes()
        got = s.get_by_name(5, "a")
        assert got is not None and got.id == a.id
        assert s.get_by_name(5, "nope") is None and s.get_by_name(7, "a") is None
        s.delete(a.id)
        assert s.get_by_name(5, "a") is None
        one, two = s.list_processes()[0], s.get_by_name(6, "a")
        assert two is not None
        one.argv.append("x")  # empty lists and dicts are shared inside the cache, never outside
        one.policy["min_uptime"] = 1
        one.flap["restarts"] = [1.0]
        one.options["ready"] = "notify"
        assert (two.argv, two.policy, two.flap, two.options) == ([], {}, {}, {})
        fresh = s.get_by_name(6, "a")
        assert fresh is not None and (fresh.argv, fresh.policy, fresh.flap, fresh.options) == ([], {}, {}, {})
        assert [r.name for r in s.rows(6)] == ["a"]
        assert s.columns("name", "owner") == [("a", 6)]
    finally:
        s.close()


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to give the space back)."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        while True:  # the last partial blocks
            os.write(fd, b"\0" * 512)
    except OSError:
        pass
    finally:
        os.close(fd)
    return ballast


def _read_only(path: Path) -> apsw.Connection:
    return apsw.Connection(f"file:{path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)


def test_a_full_disk_refuses_changes_keeps_runtime_states_and_writes_them_once_there_is_room(tmp_path: Path):
    where = tmp_path / "full"
    mount_tmpfs(where, "1m")
    try:
        s = Store(str(where / "data.db"))
        a = s.insert(Process(id=0, name="a", process_file="/bin/sleep"))
        s.insert(Process(id=0, name="b", process_file="/bin/sleep"))
        notified: list[int] = []
        s.on_pending = lambda: notified.append(1)
        ballast = _fill(where)

        with pytest.raises(StoreWriteError, match="disk is full"):  # a change asked for: refused, nothing changed
            s.insert(Process(id=0, name="c", process_file="/bin/sleep"))
        with pytest.raises(StoreWriteError):
            s.delete(a.id)
        with pytest.raises(StoreWriteError):
            s.create_group(0, "g")
        assert [p.name for p in s.list_processes()] == ["a", "b"] and s.list_groups() == []

        p = s.get(a.id)
        assert p is not None
        p.pid, p.status, p.restart_count = 4242, Status.RUNNING, 3
        s.update_runtime(p)  # what happened: kept, shown, and not lost
        assert notified and set(s.pending) == {a.id}
        s._forget_all()  # as after a group change: the row is read again
        again = s.get(a.id)
        assert again is not None and (again.pid, again.status, again.restart_count) == (4242, Status.RUNNING, 3)
        assert s.get_by_name(0, "a").pid == 4242 and s.list_processes()[0].status == Status.RUNNING
        assert not s.flush()  # still full
        b = s.get_by_name(0, "b")
        assert b is not None
        b.pid = 77
        s.update_runtime(b, deferred=True)  # a deferred write refused: kept as well
        assert not s.flush() and set(s.pending) == {a.id, b.id} and s.deferred == 0
        assert s.list_processes()[1].pid == 77

        ballast.unlink()
        assert s.flush() and s.pending == {}
        ro = _read_only(where / "data.db")
        try:
            assert ro.execute("SELECT pid, status, restart_count FROM processes WHERE name = 'a'").fetchall() == [
                (4242, int(Status.RUNNING), 3)
            ]
            assert ro.execute("SELECT pid FROM processes WHERE name = 'b'").fetchall() == [(77,)]
            assert ro.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            ro.close()
        s.insert(Process(id=0, name="c", process_file="/bin/sleep"))  # and changes work again
        s.close()
    finally:
        umount(where)
