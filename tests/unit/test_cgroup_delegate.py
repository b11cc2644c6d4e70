"""Passing cgroup controllers down to the per-process cgroups (trees.delegate), on a directory laid out like a
cgroup v2 tree (the machine's own may have no controllers to give: this checks the procedure, not the kernel)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pmon3.daemon.trees import DAEMON_LEAF, CgroupError, delegate


def fake_tree(root: Path, offered: str, own_procs: str, base_has: str = "") -> tuple[Path, Path, Path]:
    """mount/service (pmond's cgroup, offering `offered`) / pmon3 (the base)."""
    mount = root / "mount"
    own = mount / "system.slice" / "pmond.service"
    base = own / "pmon3"
    base.mkdir(parents=True)
    (own / "cgroup.controllers").write_text(offered + "\n")
    (own / "cgroup.subtree_control").write_text("\n")
    (own / "cgroup.procs").write_text(own_procs)
    (base / "cgroup.controllers").write_text(base_has + "\n")
    (base / "cgroup.subtree_control").write_text("\n")
    return mount, own, base


class MovingFs:
    """Writing a pid into a leaf's cgroup.procs takes it out of its old cgroup, as the kernel does."""

    def __init__(self, own: Path) -> None:
        self.own = own

    def __call__(self, path: str, text: str) -> None:
        if path.endswith("cgroup.procs"):
            left = [p for p in (self.own / "cgroup.procs").read_text().split() if p != text]
            (self.own / "cgroup.procs").write_text("\n".join(left))
        Path(path).write_text(text)


def test_pmond_moves_into_a_leaf_and_enables_the_controllers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mount, own, base = fake_tree(tmp_path, "cpu memory pids", "4242\n")
    from pmon3.daemon import trees

    monkeypatch.setattr(trees, "_write", MovingFs(own))
    delegate(str(mount), str(base), {"memory", "pids"}, 4242)
    assert (base / DAEMON_LEAF / "cgroup.procs").read_text() == "4242"  # out of the parent first
    assert (own / "cgroup.procs").read_text() == ""
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"


def test_other_processes_in_pmonds_cgroup_stop_it_with_their_pids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    mount, own, base = fake_tree(tmp_path, "memory", "4242\n77\n")
    from pmon3.daemon import trees

    monkeypatch.setattr(trees, "_write", MovingFs(own))
    with pytest.raises(CgroupError, match=r"processes other than pmond live there \(77\)"):
        delegate(str(mount), str(base), {"memory"}, 4242)
    assert (own / "cgroup.subtree_control").read_text() == "\n"  # nothing enabled


def test_controllers_not_offered_are_refused_with_what_is(tmp_path: Path):
    mount, own, base = fake_tree(tmp_path, "hugetlb", "4242\n")
    with pytest.raises(CgroupError, match=r"the memory cgroup controller is not delegated .*offers: hugetlb"):
        delegate(str(mount), str(base), {"memory"}, 4242)
    assert not (base / DAEMON_LEAF).exists()  # pmond did not move


def test_controllers_the_base_has_already_need_no_move(tmp_path: Path):
    mount, own, base = fake_tree(tmp_path, "memory", "4242\n", base_has="memory")
    delegate(str(mount), str(base), {"memory"}, 4242)
    assert (base / "cgroup.subtree_control").read_text() == "+memory"
    assert not (base / DAEMON_LEAF).exists() and (own / "cgroup.subtree_control").read_text() == "\n"


def test_the_root_cgroup_may_keep_processes(tmp_path: Path):
    """Under the root cgroup (a container's own namespace root) no move is needed."""
    mount = tmp_path / "mount"
    base = mount / "pmon3"
    base.mkdir(parents=True)
    (mount / "cgroup.controllers").write_text("memory\n")
    (mount / "cgroup.procs").write_text("1\n4242\n")
    (base / "cgroup.controllers").write_text("\n")
    delegate(str(mount), str(base), {"memory"}, os.getpid())
    assert (mount / "cgroup.subtree_control").read_text() == "+memory"
    assert not (base / DAEMON_LEAF).exists()


def test_a_pmond_started_in_the_daemon_leaf_finds_the_same_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """After the move a replaced pmond (daemon restart) runs in <base>/daemon: its base is still <base>."""
    from pmon3 import config
    from pmon3.daemon import trees

    mount = tmp_path / "mount"
    base = mount / "system.slice" / "pmond.service" / "pmon3"
    (base / DAEMON_LEAF).mkdir(parents=True)
    (base / "cgroup.kill").write_text("")
    cfg = config.from_mapping({}, str(tmp_path / "c.yml"), "system")
    monkeypatch.setattr(trees, "cgroup2_mount", lambda: str(mount))
    for own in ("/system.slice/pmond.service", "/system.slice/pmond.service/pmon3/daemon"):
        monkeypatch.setattr(trees, "own_cgroup", lambda own=own: own)
        assert trees.Trees._cgroup_base(cfg) == str(base)
