"""The daemon's SQLite database (APSW): schema, migrations and typed queries. Nothing else opens it."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Optional

import apsw

from .models import Process
from .states import Status

# Each entry migrates from user_version == index to index + 1; never edit a released step.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE processes (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        process_file TEXT NOT NULL,
        argv TEXT NOT NULL DEFAULT '[]',
        env_vars TEXT NOT NULL DEFAULT '[]',
        username TEXT NOT NULL DEFAULT '',
        uid INTEGER NOT NULL DEFAULT 0,
        gid INTEGER NOT NULL DEFAULT 0,
        log TEXT NOT NULL DEFAULT '',
        cwd TEXT NOT NULL DEFAULT '',
        pid INTEGER NOT NULL DEFAULT 0,
        pid_start_time INTEGER NOT NULL DEFAULT 0,
        status INTEGER NOT NULL DEFAULT 0,
        auto_restart INTEGER NOT NULL DEFAULT 1,
        dependencies TEXT NOT NULL DEFAULT '[]',
        restart_count INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL DEFAULT 0,
        last_exit_code INTEGER,
        last_exit_signal INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE groups (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE process_groups (
        process_id INTEGER NOT NULL REFERENCES processes(id) ON DELETE CASCADE,
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        PRIMARY KEY (process_id, group_id)
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    ALTER TABLE processes ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE processes ADD COLUMN flap TEXT NOT NULL DEFAULT '{}';
    """,
]

_COLUMNS = (
    "id, name, process_file, argv, env_vars, username, uid, gid, log, cwd, pid, pid_start_time, status, "
    "auto_restart, dependencies, restart_count, started_at, last_exit_code, last_exit_signal, "
    "created_at, updated_at, policy, flap"
)


_RUNTIME_FIELDS = (
    "pid",
    "pid_start_time",
    "status",
    "restart_count",
    "started_at",
    "last_exit_code",
    "last_exit_signal",
    "updated_at",
    "flap",
)


def _copy(p: Process) -> Process:
    return dataclasses.replace(
        p,
        argv=list(p.argv),
        env_vars=list(p.env_vars),
        dependencies=list(p.dependencies),
        groups=list(p.groups),
        policy=dict(p.policy),
        flap=json.loads(json.dumps(p.flap)),
    )


class SchemaError(RuntimeError):
    """The database was written by a newer pmond: refused, never downgraded."""


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


class Store:
    def __init__(self, path: str) -> None:
        fresh = not os.path.exists(path)
        old_umask = os.umask(0o077)  # the database holds env vars: owner-only
        try:
            self.db = apsw.Connection(path)
        finally:
            os.umask(old_umask)
        self.db.setbusytimeout(5000)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # Rows by id. This connection is the database's only writer (pmond holds the instance lock), so a
        # write-through cache is exact; it keeps SQLite reads off the restart path.
        self._cache: dict[int, Process] = {}
        self._migrate()
        if fresh:
            os.chmod(path, 0o600)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchall()[0][0]
        if version > len(MIGRATIONS):
            raise SchemaError(f"database schema {version} is newer than this pmond understands")
        for step in range(version, len(MIGRATIONS)):
            with self.db:
                self.db.execute(MIGRATIONS[step])
                self.db.execute(f"PRAGMA user_version = {step + 1}")

    def close(self) -> None:
        self.db.close()

    # -- meta -----------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Optional[str]:
        rows = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- processes ------------------------------------------------------------------------------------
    def _row(self, row: tuple[Any, ...], groups: Optional[list[str]] = None) -> Process:
        p = Process(
            id=row[0],
            name=row[1],
            process_file=row[2],
            argv=json.loads(row[3]),
            env_vars=json.loads(row[4]),
            username=row[5],
            uid=row[6],
            gid=row[7],
            log=row[8],
            cwd=row[9],
            pid=row[10],
            pid_start_time=row[11],
            status=Status(row[12]),
            auto_restart=bool(row[13]),
            dependencies=json.loads(row[14]),
            restart_count=row[15],
            started_at=row[16],
            last_exit_code=row[17],
            last_exit_signal=row[18],
            created_at=row[19],
            updated_at=row[20],
            policy=json.loads(row[21]),
            flap=json.loads(row[22]),
        )
        if groups is None:
            groups = [
                r[0]
                for r in self.db.execute(
                    "SELECT g.name FROM groups g JOIN process_groups pg ON pg.group_id = g.id "
                    "WHERE pg.process_id = ? ORDER BY g.name",
                    (p.id,),
                )
            ]
        p.groups = groups
        return p

    def list_processes(self) -> list[Process]:
        groups: dict[int, list[str]] = {}
        for pid, name in self.db.execute(
            "SELECT pg.process_id, g.name FROM process_groups pg JOIN groups g ON g.id = pg.group_id ORDER BY g.name"
        ):
            groups.setdefault(pid, []).append(name)
        procs = [
            self._row(r, groups.get(r[0], [])) for r in self.db.execute(f"SELECT {_COLUMNS} FROM processes ORDER BY id")
        ]
        for p in procs:
            self._cache[p.id] = _copy(p)
        return procs

    def get(self, pid_or_name: str | int) -> Optional[Process]:
        """By id when the key is all digits and such an id exists, else by name (pmon3's id-or-name)."""
        key = str(pid_or_name)
        if key.isdigit():
            cached = self._cache.get(int(key))
            if cached is not None:
                return _copy(cached)
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM processes WHERE id = ?", (int(key),)).fetchall()
            if rows:
                return self._remember(self._row(rows[0]))
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM processes WHERE name = ?", (key,)).fetchall()
        return self._remember(self._row(rows[0])) if rows else None

    def _remember(self, p: Process) -> Process:
        self._cache[p.id] = _copy(p)
        return p

    def get_by_name(self, name: str) -> Optional[Process]:
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM processes WHERE name = ?", (name,)).fetchall()
        return self._remember(self._row(rows[0])) if rows else None

    def insert(self, p: Process) -> Process:
        """Ids are max(id)+1 as in pmon3, so a dropped table starts again at 1."""
        ts = now_text()
        p.created_at = p.updated_at = ts
        with self.db:
            p.id = self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM processes").fetchall()[0][0]
            self.db.execute(
                f"INSERT INTO processes ({_COLUMNS}) VALUES ({', '.join('?' * 23)})",
                self._values(p),
            )
            self._set_groups(p)
        self._remember(p)
        return p

    def update(self, p: Process) -> None:
        p.updated_at = now_text()
        values = self._values(p)
        cols = [c.strip() for c in _COLUMNS.split(",")]
        assignments = ", ".join(f"{c} = ?" for c in cols[1:])
        with self.db:
            self.db.execute(f"UPDATE processes SET {assignments} WHERE id = ?", (*values[1:], p.id))
        self._cache.pop(p.id, None)  # groups are not part of this write: reread them on next use

    def update_runtime(self, p: Process) -> None:
        """The hot path after a spawn or an exit: only the columns that change."""
        p.updated_at = now_text()
        self.db.execute(
            "UPDATE processes SET pid = ?, pid_start_time = ?, status = ?, restart_count = ?, started_at = ?, "
            "last_exit_code = ?, last_exit_signal = ?, updated_at = ?, flap = ? WHERE id = ?",
            (
                p.pid,
                p.pid_start_time,
                int(p.status),
                p.restart_count,
                p.started_at,
                p.last_exit_code,
                p.last_exit_signal,
                p.updated_at,
                json.dumps(p.flap),
                p.id,
            ),
        )
        cached = self._cache.get(p.id)
        if cached is not None:
            for field in _RUNTIME_FIELDS:
                setattr(cached, field, getattr(p, field))

    def delete(self, process_id: int) -> None:
        self._cache.pop(process_id, None)
        with self.db:
            self.db.execute("DELETE FROM process_groups WHERE process_id = ?", (process_id,))
            self.db.execute("DELETE FROM processes WHERE id = ?", (process_id,))

    # -- groups ---------------------------------------------------------------------------------------------
    def list_groups(self) -> list[tuple[int, str]]:
        return [(r[0], r[1]) for r in self.db.execute("SELECT id, name FROM groups ORDER BY id")]

    def get_group(self, id_or_name: str) -> Optional[tuple[int, str]]:
        if id_or_name.isdigit():
            rows = self.db.execute("SELECT id, name FROM groups WHERE id = ?", (int(id_or_name),)).fetchall()
            if rows:
                return rows[0][0], rows[0][1]
        rows = self.db.execute("SELECT id, name FROM groups WHERE name = ?", (id_or_name,)).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None

    def create_group(self, name: str) -> tuple[int, str]:
        with self.db:
            gid = self.db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM groups").fetchall()[0][0]
            self.db.execute(
                "INSERT INTO groups(id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (gid, name, now_text(), now_text()),
            )
        return gid, name

    def delete_group(self, group_id: int) -> None:
        """The group goes, its memberships with it; the processes stay."""
        with self.db:
            self.db.execute("DELETE FROM process_groups WHERE group_id = ?", (group_id,))
            self.db.execute("DELETE FROM groups WHERE id = ?", (group_id,))
        self._cache.clear()

    def group_members(self, group_id: int) -> list[int]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT process_id FROM process_groups WHERE group_id = ? ORDER BY process_id", (group_id,)
            )
        ]

    def change_membership(self, group_ids: list[int], process_ids: list[int], add: bool) -> None:
        """Every (group, process) pair, all or nothing."""
        with self.db:
            for g in group_ids:
                for p in process_ids:
                    if add:
                        self.db.execute(
                            "INSERT OR IGNORE INTO process_groups(process_id, group_id) VALUES (?, ?)", (p, g)
                        )
                    else:
                        self.db.execute("DELETE FROM process_groups WHERE process_id = ? AND group_id = ?", (p, g))
        for p in process_ids:
            self._cache.pop(p, None)

    def _values(self, p: Process) -> tuple[Any, ...]:
        return (
            p.id,
            p.name,
            p.process_file,
            json.dumps(p.argv),
            json.dumps(p.env_vars),
            p.username,
            p.uid,
            p.gid,
            p.log,
            p.cwd,
            p.pid,
            p.pid_start_time,
            int(p.status),
            int(p.auto_restart),
            json.dumps(p.dependencies),
            p.restart_count,
            p.started_at,
            p.last_exit_code,
            p.last_exit_signal,
            p.created_at,
            p.updated_at,
            json.dumps(p.policy),
            json.dumps(p.flap),
        )

    def set_groups(self, p: Process) -> None:
        self._cache.pop(p.id, None)
        with self.db:
            self._set_groups(p)

    def _set_groups(self, p: Process) -> None:
        self.db.execute("DELETE FROM process_groups WHERE process_id = ?", (p.id,))
        for name in p.groups:
            self.db.execute(
                "INSERT OR IGNORE INTO groups(id, name, created_at, updated_at) "
                "SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ? FROM groups",
                (name, now_text(), now_text()),
            )
            self.db.execute(
                "INSERT OR IGNORE INTO process_groups(process_id, group_id) SELECT ?, id FROM groups WHERE name = ?",
                (p.id, name),
            )
