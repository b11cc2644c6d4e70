"""Fixtures only; the machinery they use is in helpers.py (tests import it from there)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    REGISTRY,
    RUN,
    Pmond,
    ensure_shared_users,
    make_daemon,
    pid_alive,  # noqa: F401 - test_privileges.py still imports it (and Pmond, make_daemon) from here
    reap_dead_runs,
    temp_dir,
)


@pytest.fixture(scope="session", autouse=True)
def run_housekeeping() -> Iterator[None]:
    """Before the run: undo what killed runs left (their daemons, queues, sockets, temp dirs, users) and
    create the shared fixed test users under a lock. After it: remove what this run made."""
    reap_dead_runs()
    if os.geteuid() == 0:
        ensure_shared_users()
    yield
    REGISTRY.close()


@pytest.fixture(scope="module")
def tmp_root() -> Iterator[Path]:
    path = temp_dir("test")
    REGISTRY.add(root=str(path))
    path.chmod(0o755)  # unprivileged test users must reach the config
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Own data and log dirs, own IPC names, no autostart: nothing answers and nothing gets started."""
    root = tmp_path_factory.mktemp("offline")
    conf = root / "config.yml"
    conf.write_text(
        f"data:\n  directory: {root / 'data'}\nlogs:\n  directory: {root / 'logs'}\n"
        f"message_queue:\n  name_suffix: t{RUN}off\ndaemon:\n  autostart: false\n"
    )
    yield {**os.environ, "PMON3_CONF": str(conf)}


@pytest.fixture(scope="module")
def pmond(tmp_root: Path) -> Iterator[Pmond]:
    yield from make_daemon(tmp_root, "restart:\n  stop_timeout: 1500ms\n")
