"""What the CLI does with no daemon: help, versions and usage work; commands fail in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import BIN
from pmon3 import PMON3_COMPAT_VERSION, __version__


@pytest.fixture(scope="module")
def env(offline_env: dict[str, str]) -> dict[str, str]:
    return offline_env


def pmon3(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "pmon3"), *args], env=env, capture_output=True, text=True, timeout=30)


def test_help(env: dict[str, str]) -> None:
    res = pmon3(env, "--help")
    assert res.returncode == 0, res.stderr
    for command in ("exec|run", "ls|list", "stop", "completion"):
        assert command in res.stdout
    assert pmon3(env, "-h").stdout == res.stdout


@pytest.mark.parametrize("args", [["--version"], ["-v"], ["version"]])
def test_version(env: dict[str, str], args: list[str]) -> None:
    res = pmon3(env, *args)
    assert res.returncode == 0, res.stderr
    assert __version__ in res.stdout
    assert PMON3_COMPAT_VERSION in res.stdout


@pytest.mark.parametrize("command", ["exec", "ls", "stop", "del", "log"])
def test_command_help(env: dict[str, str], command: str) -> None:
    res = pmon3(env, command, "--help")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"Usage: pmon3 {command}")


def test_ls_without_daemon_fails_in_one_line(env: dict[str, str]) -> None:
    res = pmon3(env, "ls")
    assert res.returncode == 1
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert "pmond" in lines[0]
    assert "Traceback" not in res.stderr
    # autostart is off: nothing was started, nothing was created
    assert not (Path(env["PMON3_CONF"]).parent / "data").exists()


def test_usage_error_exits_2(env: dict[str, str]) -> None:
    res = pmon3(env, "no-such-command")
    assert res.returncode == 2
    assert "no-such-command" in res.stderr
