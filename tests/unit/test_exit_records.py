"""Exit records: the one-line summary desc shows, the history table in the store, and when it is written."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path
from typing import Any, Optional

import pytest
from pmon3 import config
from pmon3.daemon.history import History
from pmon3.errors import ConfigError
from pmon3.models import ExitInfo, ExitRecord, Process, duration_text
from pmon3.store import MIGRATIONS, Store


def rec(**kw: Any) -> ExitRecord:
    base: dict[str, Any] = dict(
        process_id=1, owner=0, name="api", time=0.0, pid=42, code=None, signal=9, core_dumped=False,
        detected="child", uptime=11520.0, reason="signal", action="restarted", delay_ms=2.04,
    )  # fmt: skip
    base.update(kw)
    return ExitRecord(**base)


def test_summaries():
    assert rec().summary() == "killed by SIGKILL after 3h12m, restarted in 2.0 ms"
    assert rec(signal=None, code=3, reason="exit", action="scheduled", delay_ms=400, uptime=0.2).summary() == (
        "exited with code 3 after 200ms, restart in 400ms"
    )
    assert rec(signal=11, core_dumped=True, action="failed", uptime=5.25).summary() == (
        "killed by SIGSEGV (core dumped) after 5.2s, not restarted (failed)"
    )
    assert rec(reason="oom", oom_kill=True, oom_source="kmsg").summary().startswith("killed by SIGKILL (OOM killer)")
    assert "(OOM killer? " in rec(oom_kill=None, oom_source="vmstat").summary()
    assert rec(signal=15, reason="stop", action="stopped", uptime=90).summary() == (
        "stopped on request (killed by SIGTERM) after 1m30s, stopped"
    )
    assert rec(signal=None, reason="unknown", detected="adopted", delay_ms=None).summary() == (
        "ended (exit status unknown: not pmond's child) after 3h12m, restarted"
    )
    assert rec(action="backoff", delay_ms=30000).summary().endswith("flapping: backoff, next try in 30.0s")
    assert [duration_text(s) for s in (0.0004, 59.94, 3599, 86400 * 2 + 7200)] == ["0ms", "59.9s", "59m59s", "2d2h"]


def test_a_v4_database_gets_the_exits_table_and_deleting_a_process_deletes_its_exits(tmp_path: Path):
    path = tmp_path / "data.db"
    import apsw

    db = apsw.Connection(str(path))
    with db:
        for step, migration in enumerate(MIGRATIONS[:4]):
            if callable(migration):
                migration(db, 0)
            else:
                db.execute(migration)
            db.execute(f"PRAGMA user_version = {step + 1}")
    db.close()
    s = Store(str(path))
    try:
        p = s.insert(Process(id=0, name="api", process_file="/bin/true"))
        s.add_exits([rec(process_id=p.id, pid=i) for i in range(5)])
        assert [r.pid for r in s.exits([p.id], 3)] == [4, 3, 2]  # newest first
        s.trim_exits(p.id, 2)
        assert [r.pid for r in s.exits(None, 10)] == [4, 3]
        back = s.exits([p.id], 1)[0]
        assert dataclasses.replace(back, id=0) == rec(process_id=p.id, pid=4)  # every field round-trips
        s.delete(p.id)
        assert s.exits(None, 10) == []  # ids are reused: a new process must not inherit them
    finally:
        s.close()


class FakeTrees:
    base = None

    def cpu_usec(self, copy: Any) -> Optional[int]:
        return None

    def oom_kills(self, copy: Any) -> Optional[int]:
        return None


class CountingStore(Store):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.batches: list[int] = []

    def add_exits(self, records: list[ExitRecord]) -> None:
        self.batches.append(len(records))
        super().add_exits(records)


def test_records_are_written_after_the_current_work_in_one_batch(tmp_path: Path):
    """The supervisor records an exit right after it respawned: record() must not touch the database; the
    exits of one loop iteration are written together, after it."""

    async def main() -> tuple[list[int], list[int], list[int]]:
        loop = asyncio.get_running_loop()
        store = CountingStore(str(tmp_path / "data.db"))
        p = store.insert(Process(id=0, name="api", process_file="/bin/true"))
        h = History(store, FakeTrees(), loop, lambda: 1000)  # type: ignore[arg-type]
        h.oom.close()
        info = ExitInfo(42, None, signal.SIGKILL, 0.5, 0.25, 1)
        for _ in range(3):
            h.record(process_id=p.id, owner=0, name="api", copy=(p.id, "a"), started=0.0, ended=1.0, info=info,
                     detected="child", reason="signal", action="restarted", delay_ms=1.0)  # fmt: skip
        during = list(store.batches)
        seen: list[int] = []
        h.when_final(lambda: seen.append(len(h.last)))
        await asyncio.sleep(0)  # the loop runs what is ready: the records wait (FLUSH_DELAY)
        during += store.batches
        deadline = loop.time() + 5
        while not store.batches and loop.time() < deadline:
            await asyncio.sleep(0.01)
        after = list(store.batches)
        recs = store.exits([p.id], 10)
        store.close()
        return during, after, [len(recs), *seen]

    during, after, counts = asyncio.run(main())
    assert during == []  # nothing written while the supervisor was still at work
    assert after == [3]  # one transaction for the three
    assert counts == [3, 1]  # all stored; the hook waiting for them ran once they were complete


def test_cpu_and_peak_of_an_exit(tmp_path: Path):
    async def main() -> ExitRecord:
        loop = asyncio.get_running_loop()
        store = Store(str(tmp_path / "data.db"))
        h = History(store, FakeTrees(), loop, lambda: 0)  # type: ignore[arg-type]
        h.oom.close()
        big = ExitInfo(42, 1, None, 0.5, 0.25, 10 << 20)  # 10 GiB: above pmond's own peak
        r = h.record(process_id=1, owner=0, name="api", copy=(1, "a"), started=0.0, ended=2.5, info=big,
                     detected="child", reason="exit", action="failed")  # fmt: skip
        small = ExitInfo(43, 1, None, 0.0, 0.0, 1)  # 1 KiB: could be pmond's memory shared until exec
        r2 = h.record(process_id=1, owner=0, name="api", copy=(1, "a"), started=0.0, ended=2.5, info=small,
                      detected="child", reason="exit", action="failed")  # fmt: skip
        h.flush()
        store.close()
        assert r2.peak_rss is None
        return r

    r = asyncio.run(main())
    assert (r.cpu_seconds, r.peak_rss, r.uptime) == (0.75, 10 << 30, 2.5)


@pytest.mark.parametrize("retain", [0, 2])
def test_retain(tmp_path: Path, retain: int):
    async def main() -> int:
        loop = asyncio.get_running_loop()
        store = Store(str(tmp_path / "data.db"))
        h = History(store, FakeTrees(), loop, lambda: retain)  # type: ignore[arg-type]
        h.oom.close()
        for i in range(5):
            h.record(process_id=1, owner=0, name="api", copy=(1, "a"), started=0.0, ended=1.0,
                     info=ExitInfo(i, 0, None), detected="child", reason="exit", action="stopped")  # fmt: skip
            h.flush()
        n = len(store.exits([1], 100))
        store.close()
        return n

    assert asyncio.run(main()) == retain


def test_retain_config(tmp_path: Path):
    path = str(tmp_path / "c.yml")
    assert config.from_mapping({"history": {"retain": 10}}, path, "system").history_retain == 10
    assert config.from_mapping({}, path, "system").history_retain == 1000
    with pytest.raises(ConfigError, match=r"history.retain: expected an integer >= 0"):
        config.from_mapping({"history": {"retain": -1}}, path, "system")
