"""Instances (NAME, NAME@1 ... of one entry) made by boot, `init`, `exec -i` and `scale`: every copy knows its place
from its first start (PMON3_INSTANCE in its environment), and a family stays one across a reboot of pmond."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Pmond, environ, make_daemon, pid_alive, running_daemon, unique, wait_for

ENTRY = unique("inst")  # an entry with instances: 3
SOLO = unique("solo")  # an entry without instances


def entries(root: Path) -> str:
    path = root / "process.config.yaml"
    path.write_text(
        "processes:\n"
        f"  - file: /bin/sleep\n    name: {ENTRY}\n    args: '300'\n    instances: 3\n"
        f"  - file: /bin/sleep\n    name: {SOLO}\n    args: '300'\n"
    )
    path.chmod(0o644)
    return str(path)


@pytest.fixture(scope="module")
def daemon(tmp_root: Path) -> Iterator[Pmond]:
    gen = make_daemon(tmp_root, f"process_config_file: {entries(tmp_root)}\n")
    d = next(gen)
    d.wait_booted()
    yield d
    gen.close()


@pytest.fixture
def fresh_root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pmon3-inst-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def family_of(d: Pmond, name: str) -> dict[str, dict[str, Any]]:
    """NAME and its copies NAME@k as `ls` shows them, by name."""
    return {p["name"]: p for p in d.json("ls") if p["name"] == name or p["name"].startswith(f"{name}@")}


def running(d: Pmond, name: str, n: int) -> dict[str, dict[str, Any]]:
    """Until NAME and its n-1 copies run, each under a live pid."""

    def check() -> dict[str, dict[str, Any]] | None:
        procs = family_of(d, name)
        ok = len(procs) == n and all(p["status"] == "running" and pid_alive(p["pid"]) for p in procs.values())
        return procs if ok else None

    found: dict[str, dict[str, Any]] = wait_for(check, 15, f"{name} running as {n} instances")
    return found


def instance_vars(procs: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """The PMON3_INSTANCE entries of each process's environment, read from /proc."""
    return {n: [e for e in environ(p["pid"]) if e.startswith("PMON3_INSTANCE=")] for n, p in procs.items()}


def expected(name: str, n: int) -> dict[str, list[str]]:
    return {(f"{name}@{k}" if k else name): [f"PMON3_INSTANCE={k}"] for k in range(n)}


def test_boot_starts_every_instance_with_its_place_in_the_family(daemon: Pmond):
    procs = running(daemon, ENTRY, 3)
    assert all(p["restart_count"] == 0 for p in procs.values())  # their first start, not a restart
    assert instance_vars(procs) == expected(ENTRY, 3)


def test_init_starts_every_instance_with_its_place_in_the_family(daemon: Pmond):
    running(daemon, ENTRY, 3)
    daemon.cli("del", ENTRY)  # NAME goes with its copies
    assert family_of(daemon, ENTRY) == {}
    daemon.cli("init", "-c", "-b")
    procs = running(daemon, ENTRY, 3)
    assert all(p["restart_count"] == 0 for p in procs.values())
    assert instance_vars(procs) == expected(ENTRY, 3)


def test_exec_with_instances_starts_every_instance_with_its_place_in_the_family(daemon: Pmond):
    name = unique("execi")
    daemon.cli("exec", "/bin/sleep", "--name", name, "-a", "300", "-i", "3")
    procs = running(daemon, name, 3)
    assert all(p["restart_count"] == 0 for p in procs.values())
    assert instance_vars(procs) == expected(name, 3)
    daemon.cli("del", name)


def test_an_entry_without_instances_keeps_its_scaled_copies_across_a_reboot(fresh_root: Path):
    with running_daemon(fresh_root, f"process_config_file: {entries(fresh_root)}\n") as d:
        d.wait_booted()
        running(d, SOLO, 1)
        d.cli("scale", SOLO, "3")
        before = running(d, SOLO, 3)
        assert instance_vars(before)[f"{SOLO}@2"] == ["PMON3_INSTANCE=2"]
        d.stop()  # a shutdown closes them all: the next boot brings them back, SOLO from its entry
        d.start()
        d.wait_booted()
        after = running(d, SOLO, 3)
        assert {n: p["id"] for n, p in after.items()} == {n: p["id"] for n, p in before.items()}
        assert all(p["options"].get("family") == SOLO for p in after.values())  # still one family
        assert instance_vars(after) == expected(SOLO, 3)
        # what acts on the family still finds the copies: scale down, then del
        d.cli("scale", SOLO, "2")
        assert sorted(running(d, SOLO, 2)) == [SOLO, f"{SOLO}@1"]
        d.cli("del", SOLO)
        assert family_of(d, SOLO) == {}
