"""The systemd unit, its default config, the install script (staged) and pmond's sd_notify messages."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from helpers import BIN, RUN, Pmond
from pmon3 import config
from pmon3.daemon import notify

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "pmond.service"
DEFAULT_CONFIG = ROOT / "systemd" / "config.yml"


def unit_settings() -> dict[str, str]:
    settings = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings[key] = value
    return settings


def test_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "pmond.service"
    unit.write_text(re.sub(r"(?m)^ExecStart=.*$", f"ExecStart={BIN / 'pmond'}", UNIT.read_text()))
    res = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # Unknown keys and bad values are only warnings for systemd: any line about our unit is a failure.
    ours = [line for line in (res.stdout + res.stderr).splitlines() if "pmond.service" in line]
    assert res.returncode == 0 and not ours, res.stdout + res.stderr


def test_unit_contract() -> None:
    s = unit_settings()
    assert s["Type"] == "notify"
    assert s["NotifyAccess"] == "main"
    assert s["KillMode"] == "process"  # pmond stops (or deliberately keeps) its children itself
    assert s["Delegate"] == "yes"  # its cgroup subtree is pmond's: per-process cgroups and their controllers
    assert s["ExecStart"].endswith("/pmond")
    assert "WatchdogSec" in s
    assert s["WantedBy"] == "multi-user.target"
    # hardening that would break uid switching or the supervised services
    for key in ("NoNewPrivileges", "User", "DynamicUser", "CapabilityBoundingSet", "ProtectSystem", "PrivateTmp"):
        assert key not in s, key


def _uncommented(text: str) -> str:
    """The default config with every commented-out key switched on."""
    return re.sub(r"(?m)^# ?(\s*[a-z_]+:(?: |$))", r"\1", text)


def test_default_config(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text()
    cfg = config.load(str(DEFAULT_CONFIG), "system")
    assert cfg.autostart is False
    # What the comments show are the real defaults: switching them all on changes nothing else.
    (tmp_path / "full.yml").write_text(_uncommented(text))
    full = config.from_mapping(config.read_yaml(str(tmp_path / "full.yml")), str(DEFAULT_CONFIG), "system")
    assert full.raw.keys() >= {"log_level", "handle_interrupts", "data", "logs", "message_queue", "ipc", "restart"}
    defaults = config.from_mapping({}, str(DEFAULT_CONFIG), "system")
    skip = {"raw", "autostart"}
    for name, _ in config.Config.fields():
        if name not in skip:
            assert getattr(full, name) == getattr(defaults, name), name


def test_staged_install_keeps_config(tmp_path: Path) -> None:
    env = {**os.environ, "DESTDIR": str(tmp_path), "PMOND": str(BIN / "pmond")}
    script = str(ROOT / "scripts" / "systemd.sh")

    def run(action: str) -> str:
        res = subprocess.run([script, action], env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    out = run("install")
    assert "skipped 'systemctl daemon-reload && systemctl enable --now pmond'" in out
    unit = tmp_path / "etc/systemd/system/pmond.service"
    assert f"\nExecStart={BIN / 'pmond'}\n" in unit.read_text()
    conf = tmp_path / "etc/pmon3/config/config.yml"
    assert conf.read_text() == DEFAULT_CONFIG.read_text()
    installed = [
        tmp_path / "etc/logrotate.d/pmond",
        tmp_path / "usr/share/bash-completion/completions/pmon3",
        tmp_path / "usr/share/zsh/site-functions/_pmon3",
        tmp_path / "usr/share/fish/vendor_completions.d/pmon3.fish",
    ]
    assert all(p.is_file() for p in installed)
    assert installed[1].read_text() == (ROOT / "completions/pmon3.bash").read_text()

    conf.write_text("log_level: debug\n")  # the admin's own config is never replaced
    assert "kept the existing" in run("install")
    assert conf.read_text() == "log_level: debug\n"

    run("uninstall")
    assert not unit.exists() and not any(p.exists() for p in installed)
    assert conf.read_text() == "log_level: debug\n"


def recv_until(sock: socket.socket, wanted: str, timeout: float = 10) -> list[str]:
    """Datagrams until one holds the line `wanted`; fail at the deadline."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {wanted} within {timeout} s; got {seen}")
        sock.settimeout(left)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            continue
        seen.append(msg)
        if wanted in msg.splitlines():
            return seen


def test_sd_notify_ready_watchdog_stopping(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        daemon = Pmond(tmp_path)
        daemon.env.update(NOTIFY_SOCKET=str(path), WATCHDOG_USEC="200000")  # a ping every 100 ms
        daemon.start()
        try:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            ready = recv_until(sock, "READY=1")[-1].splitlines()
            assert f"MAINPID={pid}" in ready
            daemon.cli("ls")  # READY=1 means it answers requests
            recv_until(sock, "WATCHDOG=1")
            recv_until(sock, "WATCHDOG=1", timeout=2)  # and again: it is periodic
        finally:
            if daemon.proc is not None:
                code = daemon.stop(signal.SIGTERM)
        assert code == 0
        recv_until(sock, "STOPPING=1", timeout=1)


def test_notify_abstract_socket_and_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pmon3-test-notify-{RUN}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify.notify("READY=1")
        sock.settimeout(5)
        assert sock.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify.notify("READY=1") is False


def test_watchdog_interval_is_for_this_process_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert notify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert notify.watchdog_interval() is None
