"""A full disk under pmond: its data and log directories on a 2 MiB tmpfs that a chatty process fills. pmond
keeps supervising (crashes are restarted), refuses changes it cannot write with one line and changes nothing,
shows what happened even when it cannot write it, `ls` answers throughout, a pmond killed meanwhile starts
again, and once the big file is gone every write works again and the database says what `ls` says."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib import integrity
from helpers import (
    Pmond,
    kill_and_reap,
    live_copies,
    mount_tmpfs,
    reap_orphans,
    set_subreaper,
    umount,
    unique,
    wait_for,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs: root only")
YES = shutil.which("yes") or "/usr/bin/yes"


@pytest.fixture
def full(tmp_root: Path) -> Iterator[Pmond]:
    """A pmond whose data and log directories are on a small tmpfs (its own log and config are not)."""
    if not os.path.exists(YES):
        pytest.skip("no `yes` here to fill the disk")
    where = tmp_root / "tmpfs"
    mount_tmpfs(where, "2m")
    set_subreaper(True)
    root = tmp_root / "enospc"
    root.mkdir(exist_ok=True)
    d = Pmond(root)
    d.conf.write_text(
        d.conf.read_text().replace(str(d.data), str(where / "data")).replace(str(d.logs), str(where / "logs"))
    )
    d.data, d.logs = where / "data", where / "logs"
    try:
        d.start()
        d.wait_booted()
        yield d
    finally:
        if d.proc is not None:
            d.kill_all_children()
            d.stop()
        set_subreaper(False)
        reap_orphans()
        umount(where)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def db_row(d: Pmond, name: str) -> tuple[Any, ...]:
    import apsw

    db = apsw.Connection(f"file:{d.db_path}?mode=ro", flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    try:
        rows = db.execute("SELECT pid, status FROM processes WHERE name = ?", (name,)).fetchall()
        return tuple(rows[0]) if rows else ()
    finally:
        db.close()


def test_a_full_disk_costs_no_supervision_and_no_consistency(full: Pmond):
    from pmon3 import Client
    from pmon3.errors import CommandError
    from pmon3.states import Status

    d = full
    steady, chatty, late = unique("steady"), unique("chatty"), unique("late")
    c = Client(str(d.conf), timeout=20)

    def ls() -> dict[str, dict[str, Any]]:
        t0 = time.monotonic()
        procs = {p["name"]: p for p in c.list()}
        assert time.monotonic() - t0 < 1.0, "ls took more than 1 s"
        return procs

    first = c.exec("/bin/sleep", name=steady, args="3600")
    log = Path(c.exec(YES, name=chatty, args=chatty)["log"])
    assert log.parent == d.logs
    wait_for(lambda: free_bytes(d.logs) == 0, what="the chatty process to fill the disk")
    wait_for(lambda: ls()[chatty]["restart_count"] >= 2, what="the chatty process to be restarted while full")
    assert "cannot write the database" in d.stderr_path.read_text()  # writes really failed from here on

    # Supervision goes on: a crash is restarted (its new pid is shown, though it cannot be written).
    kill_and_reap(first["pid"])
    again = wait_for(lambda: (p := ls()[steady])["pid"] != first["pid"] and p["status"] == "running" and p)
    assert live_copies(steady) == [again["pid"]] and db_row(d, steady)[0] == first["pid"]

    # Changes that cannot be written are refused with one line, and nothing changed.
    for attempt in (
        lambda: c.restart(steady),
        lambda: c.exec("/bin/sleep", name=late, args="3600"),
        lambda: c.group_create(unique("g")),
    ):
        with pytest.raises(CommandError, match="cannot write its database"):
            attempt()
    procs = ls()
    assert procs[steady]["pid"] == again["pid"] and live_copies(steady) == [again["pid"]]
    assert late not in procs and live_copies(late) == [] and c.group_list() == []
    assert integrity(d.db_path) == "ok"

    # pmond killed while the disk is full starts again: the copy it could not record is not left untracked.
    d.stop(signal.SIGKILL)
    d.start()
    d.wait_booted()
    procs = ls()
    assert procs[steady]["status"] == "running" and live_copies(steady) == [procs[steady]["pid"]]

    c.stop(chatty)  # a stop works on a full disk: what fills it can be stopped
    log.unlink()  # the big file: space comes back
    assert free_bytes(d.logs) > 1 << 20

    # Once it can, pmond writes what it kept: the database says what ls says.
    for name in (steady, chatty):
        wait_for(lambda name=name: db_row(d, name) == (ls()[name]["pid"], int(Status[ls()[name]["status"].upper()])),
                 what=f"the database to catch up with {name}")  # fmt: skip
    assert c.restart(steady)["status"] == "running"
    c.exec("/bin/sleep", name=late, args="3600")
    c.group_create(unique("g"))
    assert integrity(d.db_path) == "ok"

    # And that state survives pmond's death: nothing stopped comes back, nothing runs twice.
    procs = ls()
    d.stop(signal.SIGKILL)
    d.start()
    d.wait_booted()
    after = ls()
    assert after[chatty]["status"] == "stopped" and live_copies(chatty) == []
    for name in (steady, late):
        assert after[name]["pid"] == procs[name]["pid"] and live_copies(name) == [procs[name]["pid"]]
    c.close()
