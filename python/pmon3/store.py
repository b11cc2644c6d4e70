"""The daemon's SQLite database (APSW): schema, migrations and typed queries. Nothing else opens it."""

from __future__ import annotations

import contextlib
import json
import logging
import operator
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable, NamedTuple, Optional, Union

import apsw

from .errors import CommandError
from .models import ExitRecord, Group, Process
from .states import Status

log = logging.getLogger("pmond.store")
# What a write meets when the disk (or the filesystem's quota) is full, or the disk fails.
_WRITE_FAILURES = (apsw.FullError, apsw.IOError)


class StoreWriteError(CommandError):
    """A change could not be written (disk full): nothing of it was changed."""


def _per_owner_namespaces(db: apsw.Connection, default_owner: int) -> None:
    """v3: names and groups belong to an owner (the uid that created them); two users may both have `api`.

    Rows get the owner the old code assumed (the run-as uid). A group is split per owner of its members, so
    that no group holds another owner's processes (a group root acts on can never contain a row that a user
    put there); an empty group goes to pmond's own user. The tables are rebuilt because SQLite cannot change
    a UNIQUE constraint in place; foreign keys are off meanwhile (a DROP would cascade to the memberships)."""
    db.execute(
        """
        CREATE TABLE processes_v3 (
            id INTEGER PRIMARY KEY,
            owner INTEGER NOT NULL,
            name TEXT NOT NULL,
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
            updated_at TEXT NOT NULL,
            policy TEXT NOT NULL DEFAULT '{}',
            flap TEXT NOT NULL DEFAULT '{}',
            UNIQUE (owner, name)
        );
        INSERT INTO processes_v3 SELECT id, uid, name, process_file, argv, env_vars, username, uid, gid, log, cwd,
            pid, pid_start_time, status, auto_restart, dependencies, restart_count, started_at, last_exit_code,
            last_exit_signal, created_at, updated_at, policy, flap FROM processes;
        CREATE TABLE groups_v3 (
            id INTEGER PRIMARY KEY,
            owner INTEGER NOT NULL,
            name TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (owner, name)
        );
        CREATE TABLE process_groups_v3 (
            process_id INTEGER NOT NULL REFERENCES processes(id) ON DELETE CASCADE,
            group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
            PRIMARY KEY (process_id, group_id)
        );
        """
    )
    owners_of: dict[int, set[int]] = {}
    for group_id, owner in db.execute(
        "SELECT pg.group_id, p.uid FROM process_groups pg JOIN processes p ON p.id = pg.process_id"
    ):
        owners_of.setdefault(int(group_id or 0), set()).add(int(owner or 0))
    next_id = 1 + int(_scalar(db, "SELECT COALESCE(MAX(id), 0) FROM groups"))
    for row in db.execute("SELECT id, name, created_at, updated_at FROM groups").fetchall():
        group_id, name, created, updated = int(row[0] or 0), row[1], row[2], row[3]
        owners = sorted(owners_of.get(group_id, set())) or [default_owner]
        for i, owner in enumerate(owners):
            new_id = group_id if i == 0 else next_id
            next_id += 0 if i == 0 else 1
            db.execute("INSERT INTO groups_v3 VALUES (?, ?, ?, ?, ?)", (new_id, owner, name, created, updated))
            db.execute(
                "INSERT INTO process_groups_v3 SELECT pg.process_id, ? FROM process_groups pg "
                "JOIN processes p ON p.id = pg.process_id WHERE pg.group_id = ? AND p.uid = ?",
                (new_id, group_id, owner),
            )
    db.execute(
        """
        DROP TABLE process_groups;
        DROP TABLE groups;
        DROP TABLE processes;
        ALTER TABLE processes_v3 RENAME TO processes;
        ALTER TABLE groups_v3 RENAME TO groups;
        ALTER TABLE process_groups_v3 RENAME TO process_groups;
        """
    )


def _scalar(db: apsw.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    """The first column of the first row (APSW types values as a union; callers know what they asked for)."""
    return db.execute(query, params).fetchall()[0][0]


Migration = Union[str, Callable[[apsw.Connection, int], None]]
# Each entry migrates from user_version == index to index + 1; never edit a released step.
MIGRATIONS: list[Migration] = [
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
    _per_owner_namespaces,
    # v4: per-process options beyond the restart policy (strict_modes, listen, ready, limits, ...), as JSON.
    "ALTER TABLE processes ADD COLUMN options TEXT NOT NULL DEFAULT '{}';",
    # v5: the history of exits (models.ExitRecord), newest last; at most `history.retain` rows per process.
    """
    CREATE TABLE exits (
        id INTEGER PRIMARY KEY,
        process_id INTEGER NOT NULL,
        owner INTEGER NOT NULL,
        name TEXT NOT NULL,
        time REAL NOT NULL,
        pid INTEGER NOT NULL,
        code INTEGER,
        signal INTEGER,
        core_dumped INTEGER NOT NULL DEFAULT 0,
        detected TEXT NOT NULL,
        uptime REAL NOT NULL,
        reason TEXT NOT NULL,
        action TEXT NOT NULL,
        delay_ms REAL,
        peak_rss INTEGER,
        cpu_seconds REAL,
        oom_kill INTEGER,
        oom_source TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX exits_by_process ON exits (process_id, id);
    """,
]

_COLUMNS = (
    "id, owner, name, process_file, argv, env_vars, username, uid, gid, log, cwd, pid, pid_start_time, status, "
    "auto_restart, dependencies, restart_count, started_at, last_exit_code, last_exit_signal, "
    "created_at, updated_at, policy, flap, options"
)
_NCOLUMNS = _COLUMNS.count(",") + 1


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


_UPDATE_RUNTIME = (
    "UPDATE processes SET pid = ?, pid_start_time = ?, status = ?, restart_count = ?, started_at = ?, "
    "last_exit_code = ?, last_exit_signal = ?, updated_at = ?, flap = ? WHERE id = ?"
)


def _field_values(process_id: int, f: dict[str, Any]) -> tuple[Any, ...]:
    """_UPDATE_RUNTIME's values from a kept runtime state (Store.pending)."""
    return (
        f["pid"],
        f["pid_start_time"],
        int(f["status"]),
        f["restart_count"],
        f["started_at"],
        f["last_exit_code"],
        f["last_exit_signal"],
        f["updated_at"],
        json.dumps(f["flap"]),
        process_id,
    )


def _runtime_values(p: Process) -> tuple[Any, ...]:
    return (
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
    )


# The cache's rows share what rows have in common (docs/scale.md: pmond holds every row, 10,000 on a big host):
# empty lists and dicts are these two objects, which nothing mutates (every read returns a copy), and the
# strings many rows repeat (the program, user, directory, timestamps) are interned.
_NO_ITEMS: list[Any] = []
_NO_KEYS: dict[str, Any] = {}
_LISTS = ("argv", "env_vars", "dependencies", "groups")
_DICTS = ("policy", "flap", "options")


def _compact(q: Process) -> Process:
    """`q`, a copy owned by the cache, made to share what it can (see _NO_ITEMS)."""
    for name in _LISTS:
        if not getattr(q, name):
            setattr(q, name, _NO_ITEMS)
    for name in _DICTS:
        if not getattr(q, name):
            setattr(q, name, _NO_KEYS)
    q.process_file, q.username, q.cwd = sys.intern(q.process_file), sys.intern(q.username), sys.intern(q.cwd)
    q.created_at, q.updated_at = sys.intern(q.created_at), sys.intern(q.updated_at)
    return q


def _copy(p: Process) -> Process:
    """A copy that shares nothing mutable with `p` (dataclasses.replace is ten times slower: `ls` copies every
    row). The nested values of flap and options are JSON data: lists and dicts of scalars, copied one level."""
    q = object.__new__(Process)
    q.__dict__.update(p.__dict__)
    q.argv, q.env_vars, q.dependencies, q.groups = list(p.argv), list(p.env_vars), list(p.dependencies), list(p.groups)
    q.policy = dict(p.policy)
    q.flap = {k: (list(v) if isinstance(v, list) else v) for k, v in p.flap.items()}
    q.options = {
        k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v) for k, v in p.options.items()
    }
    return q


def _group(row: tuple[Any, ...]) -> Group:
    return Group(int(row[0]), int(row[1]), str(row[2]))


_now: tuple[int, str] = (0, "")


def now_text() -> str:
    """Local time to the second; the same string object within a second (rows share it)."""
    global _now
    second = int(time.time())
    if second != _now[0]:
        _now = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
    return _now[1]


PAGE_CACHE_KIB = 512


_EXIT_COLUMNS = (
    "process_id, owner, name, time, pid, code, signal, core_dumped, detected, uptime, reason, action, delay_ms, "
    "peak_rss, cpu_seconds, oom_kill, oom_source, note"
)


def _exit_values(r: ExitRecord) -> tuple[Any, ...]:
    return (
        r.process_id,
        r.owner,
        r.name,
        r.time,
        r.pid,
        r.code,
        r.signal,
        int(r.core_dumped),
        r.detected,
        r.uptime,
        r.reason,
        r.action,
        r.delay_ms,
        r.peak_rss,
        r.cpu_seconds,
        None if r.oom_kill is None else int(r.oom_kill),
        r.oom_source,
        r.note,
    )


def _exit_row(row: tuple[Any, ...]) -> ExitRecord:
    return ExitRecord(
        id=row[0],
        process_id=row[1],
        owner=row[2],
        name=row[3],
        time=row[4],
        pid=row[5],
        code=row[6],
        signal=row[7],
        core_dumped=bool(row[8]),
        detected=row[9],
        uptime=row[10],
        reason=row[11],
        action=row[12],
        delay_ms=row[13],
        peak_rss=row[14],
        cpu_seconds=row[15],
        oom_kill=None if row[16] is None else bool(row[16]),
        oom_source=row[17],
        note=row[18],
    )


class Summary(NamedTuple):
    """A process as the metrics show it (Store.summaries)."""

    id: int
    owner: int
    name: str
    status: Status
    restart_count: int
    started_at: float
    last_exit_code: Optional[int]
    last_exit_signal: Optional[int]
    max_memory: int


class SchemaError(Exception):
    """The database was written by a newer pmond."""


class Store:
    """Only pmond opens the database. Process rows are written by the supervisor alone (see
    tests/unit/test_ownership.py); groups by the group service.

    When a write fails (disk full): a change asked for (a row, a group, a membership) raises StoreWriteError and
    changes nothing; the runtime state of a row (pid, status, counters: what happened, not what was asked) is
    kept here and shown as it is, and written as soon as a write succeeds again (`flush`, retried by pmond), so
    that supervision goes on while the disk is full. A pmond that dies before then loses those states: the next
    one finds what runs again (adoption, leftovers ended, rows revived), so e.g. a `stop` answered while the disk
    was full can be undone by such a crash."""

    def __init__(self, path: str, default_owner: Optional[int] = None) -> None:
        fresh = not os.path.exists(path)
        old_umask = os.umask(0o077)  # the database holds env vars: owner-only
        try:
            self.db = apsw.Connection(path)
        finally:
            os.umask(old_umask)
        self.db.setbusytimeout(5000)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Reads are served from the row cache below: SQLite's own page cache is kept small (default 2 MiB).
        self.db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
        # Rows by id. This connection is the database's only writer (pmond holds the instance lock), so a
        # write-through cache is exact; it keeps SQLite reads off the restart path.
        self._cache: dict[int, Process] = {}
        self._names: dict[tuple[int, str], int] = {}  # (owner, name) -> id of the cached rows
        self._complete = False  # the cache holds every row (after a full listing): `ls` needs no SQL
        # Rows whose runtime columns the cache has and SQLite not yet (update_runtime(deferred=True)): written
        # by flush(), in one transaction, before any SQL touches processes and at close.
        self._dirty: set[int] = set()
        # Runtime fields of rows whose last runtime write failed: what the rows really are until written.
        self.pending: dict[int, dict[str, Any]] = {}
        self.on_pending: Callable[[], None] = lambda: None  # pmond retries `flush` after this
        self._migrate(os.geteuid() if default_owner is None else default_owner)
        self.db.execute("PRAGMA foreign_keys=ON")
        if fresh:
            os.chmod(path, 0o600)

    def _migrate(self, default_owner: int) -> None:
        version = int(_scalar(self.db, "PRAGMA user_version"))
        if version > len(MIGRATIONS):
            raise SchemaError(
                f"database schema {version} is newer than this pmond understands ({len(MIGRATIONS)}): "
                "upgrade pmon3, or move the data directory away"
            )
        for step in range(version, len(MIGRATIONS)):
            migration = MIGRATIONS[step]
            with self.db:
                if callable(migration):
                    migration(self.db, default_owner)
                else:
                    self.db.execute(migration)
                self.db.execute(f"PRAGMA user_version = {step + 1}")

    def close(self) -> None:
        self.flush()
        self.db.close()

    @property
    def deferred(self) -> int:
        """Rows with deferred writes."""
        return len(self._dirty)

    def integrity_check(self) -> str:
        return str(_scalar(self.db, "PRAGMA integrity_check"))

    # -- meta -----------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Optional[str]:
        rows = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._writing():
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """A write that either happens or changes nothing, with one line saying why not."""
        try:
            yield
        except _WRITE_FAILURES as exc:
            raise StoreWriteError(f"pmond cannot write its database ({_reason(exc)})") from None

    # -- processes ------------------------------------------------------------------------------------
    def _row(self, row: tuple[Any, ...], groups: Optional[list[str]] = None) -> Process:
        p = Process(
            id=row[0],
            owner=row[1],
            name=row[2],
            process_file=row[3],
            argv=json.loads(row[4]),
            env_vars=json.loads(row[5]),
            username=row[6],
            uid=row[7],
            gid=row[8],
            log=row[9],
            cwd=row[10],
            pid=row[11],
            pid_start_time=row[12],
            status=Status(row[13]),
            auto_restart=bool(row[14]),
            dependencies=json.loads(row[15]),
            restart_count=row[16],
            started_at=row[17],
            last_exit_code=row[18],
            last_exit_signal=row[19],
            created_at=row[20],
            updated_at=row[21],
            policy=json.loads(row[22]),
            flap=json.loads(row[23]),
            options=json.loads(row[24]),
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
        for field, value in self.pending.get(p.id, {}).items():
            setattr(p, field, value)
        return p

    def summaries(self, owner: Optional[int] = None) -> list[Summary]:
        """What metrics need of every row (or one owner's), by id: ~10x cheaper than list_processes, which
        decodes and caches whole rows."""
        self._write_deferred()
        query = (
            "SELECT id, owner, name, status, restart_count, started_at, last_exit_code, last_exit_signal, "
            "json_extract(options, '$.max_memory') FROM processes"
        )
        if owner is None:
            rows = self.db.execute(query + " ORDER BY id")
        else:
            rows = self.db.execute(query + " WHERE owner = ? ORDER BY id", (owner,))
        out = [Summary(r[0], r[1], r[2], Status(r[3]), r[4], r[5], r[6], r[7], int(r[8] or 0)) for r in rows]
        if self.pending:  # runtime states not written yet (disk full) are the true ones
            fields = set(Summary._fields)
            for i, row in enumerate(out):
                changes = {k: v for k, v in self.pending.get(row.id, {}).items() if k in fields}
                if changes:
                    out[i] = row._replace(**changes)
        return out

    def list_processes(self, owner: Optional[int] = None) -> list[Process]:
        """Every row, or one owner's, by id."""
        if self._complete:
            return [_copy(p) for i, p in sorted(self._cache.items()) if owner is None or p.owner == owner]
        self._write_deferred()
        groups: dict[int, list[str]] = {}
        for pid, name in self.db.execute(
            "SELECT pg.process_id, g.name FROM process_groups pg JOIN groups g ON g.id = pg.group_id ORDER BY g.name"
        ):
            groups.setdefault(pid, []).append(name)
        if owner is None:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM processes ORDER BY id")
        else:
            rows = self.db.execute(f"SELECT {_COLUMNS} FROM processes WHERE owner = ? ORDER BY id", (owner,))
        procs = [self._row(r, groups.get(r[0], [])) for r in rows]
        for p in procs:
            self._put(_copy(p))
        self._complete = owner is None
        return procs

    def get(self, process_id: int) -> Optional[Process]:
        cached = self._cache.get(process_id)
        if cached is not None:
            return _copy(cached)
        self._write_deferred()
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM processes WHERE id = ?", (process_id,)).fetchall()
        return self._remember(self._row(rows[0])) if rows else None

    def _remember(self, p: Process) -> Process:
        self._put(_copy(p))
        return p

    def _put(self, q: Process) -> None:
        """`q` (the cache's own copy) becomes the cached row of its id."""
        old = self._cache.get(q.id)
        if old is not None and (old.owner, old.name) != (q.owner, q.name):
            self._names.pop((old.owner, old.name), None)
        self._cache[q.id] = _compact(q)
        self._names[(q.owner, q.name)] = q.id

    def _forget(self, process_id: int) -> None:
        old = self._cache.pop(process_id, None)
        if old is not None:
            self._names.pop((old.owner, old.name), None)

    def _forget_all(self) -> None:
        self._cache.clear()
        self._names.clear()
        self._complete = False

    def rows(self, owner: Optional[int] = None) -> list[Process]:
        """Every row (or one owner's) by id, for reading only: the cache's own objects when it holds every row
        (`ls` of 10,000 processes copies none). Never modify or keep them; list_processes() gives copies."""
        if not self._complete:
            return self.list_processes(owner)
        return [p for i, p in sorted(self._cache.items()) if owner is None or p.owner == owner]

    def columns(self, *names: str) -> list[tuple[Any, ...]]:
        """Some fields of every row, without copying the rows (for a look at all of them every so often)."""
        if not self._complete:
            self.list_processes()
        get = operator.attrgetter(*names)
        if len(names) == 1:
            return [(get(p),) for p in self._cache.values()]
        return [get(p) for p in self._cache.values()]

    def get_by_name(self, owner: int, name: str) -> Optional[Process]:
        if self._complete:  # the cache has every row: no SQL (a boot looks up every entry of the config)
            process_id = self._names.get((owner, name))
            return _copy(self._cache[process_id]) if process_id is not None else None
        self._write_deferred()
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM processes WHERE owner = ? AND name = ?", (owner, name)
        ).fetchall()
        return self._remember(self._row(rows[0])) if rows else None

    def insert(self, p: Process) -> Process:
        """Ids are max(id)+1 as in pmon3, so a dropped table starts again at 1."""
        ts = now_text()
        p.created_at = p.updated_at = ts
        self._write_deferred()  # the deferred writes first (a write of their own: batched)
        with self._writing(), self.db:
            p.id = int(_scalar(self.db, "SELECT COALESCE(MAX(id), 0) + 1 FROM processes"))
            self.db.execute(
                f"INSERT INTO processes ({_COLUMNS}) VALUES ({', '.join('?' * _NCOLUMNS)})",
                self._values(p),
            )
            self._set_groups(p)
        p.groups = sorted(set(p.groups))  # as a read gives them
        self._remember(p)
        return p

    def update(self, p: Process, with_groups: bool = False) -> None:
        """The whole row (and with `with_groups` its groups: p.groups), in one transaction."""
        p.updated_at = now_text()
        values = self._values(p)
        cols = [c.strip() for c in _COLUMNS.split(",")]
        assignments = ", ".join(f"{c} = ?" for c in cols[1:])
        self._write_deferred()  # the deferred writes first (a write of their own: batched)
        with self._writing(), self.db:
            self.db.execute(f"UPDATE processes SET {assignments} WHERE id = ?", (*values[1:], p.id))
            if with_groups:
                self._set_groups(p)
        self.pending.pop(p.id, None)  # its runtime fields were written with it
        cached = self._cache.get(p.id)
        if cached is None:
            self._complete = False
            return
        fresh = _copy(p)
        fresh.groups = sorted(set(p.groups)) if with_groups else cached.groups  # else not part of this write
        self._put(fresh)

    def update_runtime(self, p: Process, deferred: bool = False) -> None:
        """The hot path after a spawn or an exit: only the columns that change. `deferred`: the cache (which
        every read is served from) now, SQLite at the next write or flush(), batched with the others. Never
        fails: what cannot be written now is kept (and shown) until `flush` writes it."""
        p.updated_at = now_text()
        cached = self._cache.get(p.id)
        if cached is not None:
            for field in _RUNTIME_FIELDS:
                value = getattr(p, field)
                setattr(cached, field, (dict(value) or _NO_KEYS) if field == "flap" else value)
            if deferred:
                self._dirty.add(p.id)
                return
        self._dirty.discard(p.id)
        try:
            self.db.execute(_UPDATE_RUNTIME, _runtime_values(p))
        except _WRITE_FAILURES as exc:
            self._keep([p], exc)
            return
        self.pending.pop(p.id, None)
        if self.pending:
            self.flush()

    def set_start_time(self, process_id: int, pid: int, start_time: int) -> bool:
        """The kernel's start time of the row's pid, once it is known (deferred like update_runtime); False
        if the row is gone or has another pid by now."""
        cached = self._cache.get(process_id)
        if cached is None or cached.pid != pid:
            return False
        cached.pid_start_time = start_time
        self._dirty.add(process_id)
        return True

    def _keep(self, rows: list[Process], exc: Exception) -> None:
        """Runtime states SQLite refused (disk full): kept, shown by reads, written by a later flush()."""
        if not self.pending:
            log.warning("cannot write the database (%s): keeping process states in memory until it works", _reason(exc))
        for p in rows:
            fields = {field: getattr(p, field) for field in _RUNTIME_FIELDS}
            fields["flap"] = json.loads(json.dumps(p.flap))
            self.pending[p.id] = fields
        self.on_pending()

    def _write_deferred(self) -> None:
        """The deferred runtime columns (update_runtime(deferred=True)) in one transaction; what SQLite
        refuses joins `pending`."""
        if not self._dirty:
            return
        ids, self._dirty = sorted(self._dirty), set()
        rows = [self._cache[i] for i in ids if i in self._cache]
        try:
            with self.db:
                self.db.executemany(_UPDATE_RUNTIME, [_runtime_values(p) for p in rows])
        except _WRITE_FAILURES as exc:
            self._keep(rows, exc)
            return
        if self.pending:
            for p in rows:
                self.pending.pop(p.id, None)  # older than what was just written

    def flush(self) -> bool:
        """Write the deferred runtime states, then those kept since writes failed; True once nothing is left."""
        self._write_deferred()
        if not self.pending:
            return True
        for process_id, fields in list(self.pending.items()):
            try:
                self.db.execute(_UPDATE_RUNTIME, _field_values(process_id, fields))
            except _WRITE_FAILURES:
                return False
            del self.pending[process_id]
        log.info("the database can be written again: process states written")
        return True

    def delete(self, process_id: int) -> None:
        self._write_deferred()
        with self._writing(), self.db:
            self.db.execute("DELETE FROM process_groups WHERE process_id = ?", (process_id,))
            # its history goes too: ids are reused (max + 1), a new process must not inherit it
            self.db.execute("DELETE FROM exits WHERE process_id = ?", (process_id,))
            self.db.execute("DELETE FROM processes WHERE id = ?", (process_id,))
        self._forget(process_id)
        self.pending.pop(process_id, None)

    # -- exits (the history) -------------------------------------------------------------------------------
    def add_exits(self, records: list[ExitRecord]) -> None:
        """One transaction for a batch (pmond writes them after the restarts they record)."""
        with self._writing(), self.db:
            self.db.executemany(
                f"INSERT INTO exits ({_EXIT_COLUMNS}) VALUES ({', '.join('?' * (_EXIT_COLUMNS.count(',') + 1))})",
                [_exit_values(r) for r in records],
            )

    def exits(self, process_ids: Optional[list[int]], limit: int) -> list[ExitRecord]:
        """The newest `limit` exits of these processes (all when None), newest first."""
        if process_ids is None:
            rows = self.db.execute(f"SELECT id, {_EXIT_COLUMNS} FROM exits ORDER BY id DESC LIMIT ?", (limit,))
        else:
            marks = ", ".join("?" * len(process_ids))
            rows = self.db.execute(
                f"SELECT id, {_EXIT_COLUMNS} FROM exits WHERE process_id IN ({marks}) ORDER BY id DESC LIMIT ?",
                (*process_ids, limit),
            )
        return [_exit_row(r) for r in rows]

    def exit_counts(self) -> dict[int, int]:
        return {
            int(r[0] or 0): int(r[1] or 0) for r in self.db.execute("SELECT process_id, COUNT(*) FROM exits GROUP BY 1")
        }

    def trim_exits(self, process_id: int, keep: int) -> None:
        """Keep the newest `keep` exits of a process."""
        with self._writing(), self.db:
            self.db.execute(
                "DELETE FROM exits WHERE process_id = ? AND id <= "
                "(SELECT id FROM exits WHERE process_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (process_id, process_id, keep),
            )

    def delete_exits(self, process_id: int) -> None:
        with self._writing(), self.db:
            self.db.execute("DELETE FROM exits WHERE process_id = ?", (process_id,))

    # -- groups ---------------------------------------------------------------------------------------------
    def list_groups(self, owner: Optional[int] = None) -> list[Group]:
        if owner is None:
            rows = self.db.execute("SELECT id, owner, name FROM groups ORDER BY id")
        else:
            rows = self.db.execute("SELECT id, owner, name FROM groups WHERE owner = ? ORDER BY id", (owner,))
        return [_group(r) for r in rows]

    def get_group(self, group_id: int) -> Optional[Group]:
        rows = self.db.execute("SELECT id, owner, name FROM groups WHERE id = ?", (group_id,)).fetchall()
        return _group(rows[0]) if rows else None

    def get_group_by_name(self, owner: int, name: str) -> Optional[Group]:
        rows = self.db.execute(
            "SELECT id, owner, name FROM groups WHERE owner = ? AND name = ?", (owner, name)
        ).fetchall()
        return _group(rows[0]) if rows else None

    def create_group(self, owner: int, name: str) -> Group:
        with self._writing(), self.db:
            gid = int(_scalar(self.db, "SELECT COALESCE(MAX(id), 0) + 1 FROM groups"))
            self.db.execute(
                "INSERT INTO groups(id, owner, name, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                (gid, owner, name, now_text(), now_text()),
            )
        return Group(gid, owner, name)

    def delete_group(self, group_id: int) -> None:
        """The group goes, its memberships with it; the processes stay."""
        self._write_deferred()  # the deferred writes first (a write of their own: batched)
        with self._writing(), self.db:
            self.db.execute("DELETE FROM process_groups WHERE group_id = ?", (group_id,))
            self.db.execute("DELETE FROM groups WHERE id = ?", (group_id,))
        self._forget_all()

    def group_members(self, group_id: int) -> list[int]:
        return [
            int(r[0] or 0)
            for r in self.db.execute(
                "SELECT process_id FROM process_groups WHERE group_id = ? ORDER BY process_id", (group_id,)
            )
        ]

    def change_membership(self, group_ids: list[int], process_ids: list[int], add: bool) -> None:
        """Every (group, process) pair, all or nothing."""
        self._write_deferred()  # the deferred writes first (a write of their own: batched)
        with self._writing(), self.db:
            for g in group_ids:
                for p in process_ids:
                    if add:
                        self.db.execute(
                            "INSERT OR IGNORE INTO process_groups(process_id, group_id) VALUES (?, ?)", (p, g)
                        )
                    else:
                        self.db.execute("DELETE FROM process_groups WHERE process_id = ? AND group_id = ?", (p, g))
        for p in process_ids:
            self._forget(p)
        self._complete = False

    def _values(self, p: Process) -> tuple[Any, ...]:
        return (
            p.id,
            p.owner,
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
            json.dumps(p.options),
        )

    def set_groups(self, p: Process) -> None:
        self._write_deferred()  # the deferred writes first (a write of their own: batched)
        with self._writing(), self.db:
            self._set_groups(p)
        cached = self._cache.get(p.id)
        if cached is not None:
            cached.groups = sorted(set(p.groups)) or _NO_ITEMS

    def _set_groups(self, p: Process) -> None:
        """p.groups are names in p's owner's namespace; missing groups are created for that owner."""
        self.db.execute("DELETE FROM process_groups WHERE process_id = ?", (p.id,))
        for name in p.groups:
            self.db.execute(
                "INSERT OR IGNORE INTO groups(id, owner, name, created_at, updated_at) "
                "SELECT COALESCE(MAX(id), 0) + 1, ?, ?, ?, ? FROM groups",
                (p.owner, name, now_text(), now_text()),
            )
            self.db.execute(
                "INSERT OR IGNORE INTO process_groups(process_id, group_id) "
                "SELECT ?, id FROM groups WHERE owner = ? AND name = ?",
                (p.id, p.owner, name),
            )


def _reason(exc: Exception) -> str:
    """apsw's text of a failed write, e.g. `database or disk is full`."""
    text = str(exc)
    return text.split(": ", 1)[1] if text.startswith(type(exc).__name__) else text
