"""The chaos suite's oracle on made-up histories: what it may conclude from replies, and what it calls broken.
If these drift, the chaos rounds would pass vacuously or fail for nothing."""

from __future__ import annotations

from chaoslib import PREFIX, History, Op, problems

A, B = f"{PREFIX}a", f"{PREFIX}b"
UIDS = {"root": 0, "u": 1000}


def history(*ops: Op) -> History:
    h = History()
    for op in ops:
        h.add(op)
    return h


def op(cmd: str, target: str, start: float, end: float, outcome: str = "ack", **kw: object) -> Op:
    return Op("c", kw.pop("owner", "root"), cmd, target, start=start, end=end, outcome=outcome, **kw)


def row(name: str, pid: int, status: str = "running", owner: str = "root", id_: int = 1) -> dict[str, object]:
    return {"id": id_, "name": name, "owner": owner, "pid": pid, "status": status}


def test_an_acknowledged_exec_must_exist_unless_a_delete_may_have_come_after():
    assert history(op("exec", A, 1, 2)).expectations()[0] == {("root", A)}
    assert history(op("exec", A, 1, 2), op("del", A, 0, 1)).expectations()[0] == {("root", A)}  # before it
    for outcome in ("ack", "error", "down"):  # overlapping or later, whatever it was told
        assert history(op("exec", A, 1, 2), op("del", A, 1.5, 3, outcome)).expectations()[0] == set()
    assert history(op("exec", A, 1, 2, "down")).expectations()[0] == set()  # never acknowledged
    assert history(op("exec", A, 1, 2, owner="u")).expectations()[0] == {("u", A)}


def test_a_group_drop_may_delete_what_was_ever_assigned_to_it_before_it_ended():
    assign = op("group_assign", "g", 0, 0.5, "error", names=(A,))  # even a refused assign may have landed
    assert history(op("exec", A, 1, 2), assign, op("group_drop", "g", 3, 4)).expectations()[0] == set()
    assert history(op("exec", A, 1, 2), op("group_drop", "g", 3, 4)).expectations()[0] == {("root", A)}
    late = op("group_assign", "g", 5, 6, names=(A,))  # assigned after the drop ended
    assert history(op("exec", A, 1, 2), op("group_drop", "g", 3, 4), late).expectations()[0] == {("root", A)}
    dropped = op("group_drop", "g", 3, 4, removed=(A,))
    assert history(op("exec", A, 1, 2, "down"), dropped).expectations()[1] == set()  # a drop is not a del


def test_an_acknowledged_del_or_stop_must_hold_unless_something_may_have_undone_it():
    assert history(op("exec", A, 0, 1), op("del", A, 2, 3)).expectations()[1] == {("root", A)}
    assert history(op("del", A, 2, 3), op("exec", A, 2.5, 4, "down")).expectations()[1] == set()
    assert history(op("stop", A, 2, 3)).expectations()[2] == {("root", A)}
    assert history(op("stop", A, 2, 3), op("restart", A, 4, 5, "error")).expectations()[2] == set()
    assign = op("group_assign", "g", 0, 1, names=(A,))
    assert history(assign, op("stop", A, 2, 3), op("group_restart", "g", 4, 5)).expectations()[2] == set()


def test_problems_names_lost_acks_copies_and_untracked_processes():
    h = history(op("exec", A, 1, 2), op("del", B, 1, 2), op("stop", B, 0, 0.5))
    procs = {10: (A, 1, 0), 11: (A, 10, 0)}  # a leader and its child
    assert problems([row(A, 10)], procs, h, UIDS) == []
    assert problems([], {}, h, UIDS) == [f"lost ack: exec of ('root', '{A}') was acknowledged, rows now: 0"]
    found = problems([row(A, 10), row(B, 20, "stopped", id_=2)], procs, h, UIDS)
    assert found == [f"lost ack: del of ('root', '{B}') was acknowledged, yet the row exists"]
    found = problems([row(A, 10), row(B, 20, id_=2)], {**procs, 20: (B, 1, 0)}, history(op("stop", B, 0, 1)), UIDS)
    assert any("stop of" in f for f in found)
    assert any("untracked: pid 12" in f for f in problems([row(A, 10)], {**procs, 12: (A, 1, 0)}, h, UIDS))
    assert any("no row" in f for f in problems([row(A, 10)], {**procs, 30: (B, 1, 0)}, h, UIDS))
    assert any("is restarting" in f for f in problems([row(A, 10, "restarting")], procs, h, UIDS))
    assert any("not its live process" in f for f in problems([row(A, 99)], {}, history(), UIDS))
    assert any("is stopped, yet" in f for f in problems([row(A, 10, "stopped")], procs, history(), UIDS))
    assert any("duplicate rows" in f for f in problems([row(A, 10), row(A, 10, id_=2)], procs, h, UIDS))
    assert any("not as its owner" in f for f in problems([row(A, 10, owner="u")], procs, history(), UIDS))
