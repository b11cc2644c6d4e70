"""config.yml checked key by key on a real pmond and the real CLI: refused at start, refused by the CLI, and a
reload that keeps the last good config, says which changes wait for the next start and which keys are unknown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import BIN, RUN, running_daemon, unique, wait_for

BAD = 'log_level: ["should", "not", "be", "array"]\n'
MESSAGE = "log_level: expected one of debug, info, warn, error, got ['should', 'not', 'be', ...]"


def _conf(tmp_path: Path, text: str) -> dict[str, str]:
    conf = tmp_path / "config.yml"
    conf.write_text(
        f"data:\n  directory: {tmp_path / 'data'}\nlogs:\n  directory: {tmp_path / 'logs'}\n"
        f"message_queue:\n  name_suffix: cfgfile{RUN}\ndaemon:\n  autostart: false\n{text}"
    )
    return {**os.environ, "PMON3_CONF": str(conf), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_pmond_refuses_to_start_with_a_broken_config(tmp_path: Path):
    env = _conf(tmp_path, BAD)
    res = subprocess.run(
        [sys.executable, "-m", "pmon3.daemon", "--foreground"], env=env, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 1
    assert res.stderr == f"pmond: {tmp_path / 'config.yml'}: {MESSAGE}\n"
    assert not (tmp_path / "data" / "pmond.lock").exists()  # refused before it took the data directory


def test_the_cli_refuses_it_too(tmp_path: Path):
    env = _conf(tmp_path, BAD)
    for _ in range(2):  # the second run reads the JSON cache: still refused
        res = subprocess.run([str(BIN / "pmon3"), "ls"], env=env, capture_output=True, text=True, timeout=30)
        assert (res.returncode, res.stdout) == (1, "")
        assert res.stderr == f"{tmp_path / 'config.yml'}: {MESSAGE}\n"


def test_unknown_keys_are_logged_at_start_and_do_not_stop_pmond(tmp_path: Path):
    with running_daemon(tmp_path, "restart:\n  stop_timout: 5s\nlogs_dir: /old\n") as d:
        assert d.json("ls") == []
        text = d.stderr_path.read_text()
        assert f"{d.conf}: restart.stop_timout: unknown key, ignored" in text
        assert f"{d.conf}: logs_dir: unknown key, ignored" in text


def test_reload_keeps_the_last_good_config_and_says_what_waits_for_a_restart(tmp_path: Path):
    from pmon3 import config
    from pmon3.client import Client

    with running_daemon(tmp_path, "restart:\n  stop_timeout: 2s\n") as d:
        log = d.stderr_path
        good = d.conf.read_text()
        good_cfg = config.load(str(d.conf))
        warnings: list[str] = []
        d.conf.write_text(good.replace("stop_timeout: 2s", "stop_timeout: [2]"))
        with Client(good_cfg, on_warning=warnings.append) as c:  # a client that still knows the endpoint
            c.list()
            c.list()
        refused = f"config reload failed, the last good config stays in force: {d.conf}: restart.stop_timeout: "
        assert len(warnings) == 2 and all(w.startswith(refused) for w in warnings), warnings
        assert log.read_text().count(refused) == 1  # logged once, reported to every command meanwhile

        # A good file again, with a new log directory (fixed until restart) and an unknown key.
        other_logs = tmp_path / "other-logs"
        d.conf.write_text(good.replace(f"directory: {d.logs}", f"directory: {other_logs}") + "colour: blue\n")
        warnings.clear()
        name = unique("napper")
        with Client(good_cfg, on_warning=warnings.append) as c:
            p = c.exec("/bin/sleep", name=name, args=["300"])
            c.list()
        assert warnings == [
            f"{d.conf}: colour: unknown key, ignored",
            "changes to logs.directory take effect at the next pmond start",
        ]
        assert p["log"] == str(d.logs / f"{name}.log")  # still the directory pmond started with
        assert not other_logs.exists()
        wait_for(lambda: "changes to logs.directory take effect" in log.read_text(), what="the note in the log")

        d.proc.send_signal(signal.SIGHUP)  # a forced re-read reports them again, and reloads
        wait_for(  # both lines: pmond may be between them when the first one is there
            lambda: (
                log.read_text().count("changes to logs.directory take effect") == 2
                and "config reloaded from" in log.read_text()
            ),
            what="SIGHUP",
        )
        d.kill_all_children()
