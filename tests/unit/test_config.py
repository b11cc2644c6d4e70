import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pmon3 import config

ROOT = Path(__file__).resolve().parents[2]


def load_text(tmp_path: Path, text: str) -> config.Config:
    f = tmp_path / "config.yml"
    f.write_text(text)
    return config.load(str(f), "system")


def logs(mapping: object) -> config.LogSettings:
    return config.from_mapping({"logs": mapping}, "c.yml", "system").logs


def test_defaults_of_system_mode(tmp_path):
    cfg = config.load(str(tmp_path / "missing.yml"), "system")
    assert cfg.data_directory == "/etc/pmon3/data"
    assert cfg.logs == config.LogSettings("/var/log/pmond", 0o755, 0, 5, False)
    assert cfg.mq_base == "/pmon3"
    assert cfg.handle_interrupts is True
    assert cfg.restart == config.RestartSettings() and cfg.restart.stop_timeout == 10.0
    assert cfg.warnings == ()


def test_keys_isolate_a_daemon(tmp_path):
    cfg = load_text(
        tmp_path, "data:\n  directory: /x/d\nlogs:\n  directory: /x/l\nmessage_queue:\n  name_suffix: abc\n"
    )
    assert (cfg.db_path, cfg.logs.directory, cfg.mq_base) == ("/x/d/data.db", "/x/l", "/pmon3_abc")


def test_durations_accept_units(tmp_path):
    r = load_text(tmp_path, "restart:\n  min_uptime: 2s\n  restart_delay: 250ms\n  stop_timeout: 1500\n").restart
    assert (r.min_uptime, r.restart_delay, r.stop_timeout) == (2.0, 0.25, 1.5)


# -- every key is checked ----------------------------------------------------------------------------------

# Every leaf key config.yml accepts, with a valid value. A wrong type for any of them is an error naming it.
KEYS = {
    "log_level": "warn",
    "handle_interrupts": False,
    "disable_reloads": True,
    "process_monitor_interval": 250,
    "initialization_period": 10,
    "process_config_file": "/etc/p.json",
    "process_trees": "session",
    "on_process_restart_exec": "/bin/true",
    "on_process_failure_exec": "/bin/true",
    "data.directory": "/d",
    "data.user": "root",
    "data.group": "root",
    "data.directory_mode": "0770",
    "data.file_mode": "0660",
    "logs.directory": "/l",
    "logs.directory_mode": "0775",
    "logs.file_mode": "0640",
    "logs.user": "root",
    "logs.group": "root",
    "logs.max_size": "10M",
    "logs.retain": 3,
    "logs.compress": True,
    "message_queue.name_suffix": "abc",
    "message_queue.directory.shmem": "/dev/shm/",
    "message_queue.directory.posix_mq": "/dev/mqueue/",
    "message_queue.user": "root",
    "message_queue.group": "root",
    "message_queue.directory_mode": "0775",
    "message_queue.file_mode": "0666",
    "permissions.user": "root",
    "permissions.group": "root",
    "permissions.directory_mode": "0770",
    "permissions.file_mode": "0660",
    "ipc.transport": "unix",
    "ipc.socket": "/run/x.sock",
    "daemon.autostart": False,
    "daemon.log": "/var/log/pmond.log",
    "wait.cmd_exec_response": 1500,
    "wait.ipc_connection": 0,
    "wait.dependent_process_enqueued": 500,
    "restart.mode": "on-failure",
    "restart.success_exit_codes": [0, 2],
    "restart.min_uptime": "2s",
    "restart.restart_delay": "50ms",
    "restart.max_restart_delay": "10s",
    "restart.stop_timeout": "5s",
    "restart.stop_signal": "SIGINT",
    "flap_detection.is_enabled": True,
    "flap_detection.threshold_restarted": 3,
    "flap_detection.threshold_countdown": 100,
    "flap_detection.threshold_decrement": 0,
    "event_handling.process_restart": "/bin/true restart",
    "event_handling.process_failure": "/bin/true failure",
    "event_handling.process_backoff": "/bin/true backoff",
    "event_handling.timeout": "5s",
}


def nested(flat: dict) -> dict:
    out: dict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def test_every_key_is_known_and_takes_effect():
    cfg = config.from_mapping(nested(KEYS), "/c.yml", "system")
    assert cfg.warnings == ()
    assert (cfg.log_level, cfg.handle_interrupts, cfg.disable_reloads) == ("warn", False, True)
    assert (cfg.process_monitor_interval_ms, cfg.initialization_period_s, cfg.trees) == (250, 10, "session")
    assert cfg.logs == config.LogSettings("/l", 0o775, 10 << 20, 3, True)
    assert (cfg.data_directory, cfg.name_suffix, cfg.transport, cfg.socket_path) == ("/d", "abc", "unix", "/run/x.sock")
    assert (cfg.autostart, cfg.daemon_log, cfg.wait_dependent_ms) == (False, "/var/log/pmond.log", 500)
    assert cfg.restart == config.RestartSettings("on-failure", (0, 2), 2.0, 0.05, 10.0, "SIGINT", 5.0)
    assert cfg.flap == config.FlapDetection(True, 3, 100, 0)
    assert cfg.hooks == {"restart": "/bin/true restart", "failure": "/bin/true failure", "backoff": "/bin/true backoff"}
    assert cfg.hook_timeout_ms == 5000


def test_the_readme_documents_only_known_keys():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Configuration", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    import yaml

    cfg = config.from_mapping(yaml.safe_load(block), "/README", "system")
    assert cfg.warnings == ()


@pytest.mark.parametrize("key", sorted(KEYS))
def test_a_wrong_type_is_an_error_naming_the_file_and_the_key(key):
    with pytest.raises(config.ConfigError) as err:
        config.from_mapping(nested({key: {"not": "this"}}), "/etc/x/config.yml", "system")
    message = str(err.value)
    assert message.startswith(f"/etc/x/config.yml: {key}: "), message
    assert "{'not': 'this'}" in message and "\n" not in message


def test_the_message_of_issue_10_7(tmp_path):
    f = tmp_path / "config.yml"
    f.write_text('log_level: ["should","not","be","array"]\n')
    with pytest.raises(config.ConfigError) as err:
        config.load(str(f), "system")
    assert str(err.value) == (
        f"{f}: log_level: expected one of debug, info, warn, error, got ['should', 'not', 'be', ...]"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("data: [1, 2", "invalid YAML"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("log_level: verbose\n", "log_level: expected one of debug, info, warn, error, got 'verbose'"),
        ("handle_interrupts: maybe\n", "handle_interrupts: expected true or false, got 'maybe'"),
        ("disable_reloads: 2\n", "disable_reloads: expected true or false, got 2"),
        ("process_monitor_interval: 0\n", "process_monitor_interval: expected an integer from 1 to 3600000 (ms)"),
        ("process_monitor_interval: 1.5\n", "process_monitor_interval: expected an integer"),
        ("initialization_period: 3\n", "initialization_period: expected an integer >= 5 (seconds), got 3"),
        ("process_trees: tree\n", "process_trees: expected one of auto, cgroup, session, got 'tree'"),
        ("process_config_file: [a]\n", "process_config_file: expected a string, got ['a']"),
        ("data: /var/lib/pmon3\n", "data: expected a mapping, got '/var/lib/pmon3'"),
        ("data:\n  directory: relative/dir\n", "data.directory: expected an absolute path, got 'relative/dir'"),
        ("logs:\n  directory_mode: 0799\n", "logs.directory_mode: expected an octal mode such as 0755, got '0799'"),
        ("logs:\n  directory_mode: rwx\n", "logs.directory_mode: expected an octal mode"),
        ("logs:\n  directory_mode: 17777\n", "logs.directory_mode: expected an octal mode"),
        ("logs:\n  max_size: 10X\n", "logs.max_size: invalid size '10X'"),
        ("logs:\n  max_size: -1\n", "logs.max_size: size must not be negative"),
        ("logs:\n  retain: -1\n", "logs.retain: expected an integer from 0 to 1000 (rotated files), got -1"),
        ("logs:\n  retain: 5000\n", "logs.retain: expected an integer from 0 to 1000"),
        ("logs:\n  compress: maybe\n", "logs.compress: expected true or false"),
        ("message_queue:\n  name_suffix: a/b\n", "message_queue.name_suffix: expected up to 64 letters"),
        ("message_queue:\n  directory: /dev/shm\n", "message_queue.directory: expected a mapping"),
        ("ipc:\n  transport: tcp\n", "ipc.transport: expected one of mq, unix, got 'tcp'"),
        ("ipc:\n  socket: pmond.sock\n", "ipc.socket: expected an absolute path"),
        ("daemon:\n  autostart: sure\n", "daemon.autostart: expected true or false"),
        ("daemon:\n  log: pmond.log\n", "daemon.log: expected an absolute path"),
        ("wait:\n  dependent_process_enqueued: 30000\n", "wait.dependent_process_enqueued: expected an integer from 0"),
        ("wait:\n  cmd_exec_response: -1\n", "wait.cmd_exec_response: expected an integer from 0 to 10000 (ms)"),
        ("wait:\n  ipc_connection: 6000\n", "wait.ipc_connection: expected an integer from 0 to 5000 (ms)"),
        ("restart:\n  min_uptime: soon\n", "restart.min_uptime: invalid duration 'soon'"),
        ("restart:\n  stop_timeout: -1s\n", "restart.stop_timeout: invalid duration '-1s'"),
        ("restart:\n  stop_timeout: -5\n", "restart.stop_timeout: duration must not be negative"),
        ("restart:\n  stop_signal: SIGNOPE\n", "restart.stop_signal: unknown signal 'SIGNOPE'"),
        ("restart:\n  mode: sometimes\n", "restart.mode: expected one of always, on-failure, never"),
        ("restart:\n  success_exit_codes: [0, 300]\n", "restart.success_exit_codes: exit codes are 0 to 255"),
        ("restart:\n  success_exit_codes: zero\n", "restart.success_exit_codes: expected exit codes such as 0,2"),
        ("flap_detection:\n  threshold_restarted: 0\n", "flap_detection.threshold_restarted: expected an integer"),
        ("flap_detection:\n  threshold_countdown: 0\n", "flap_detection.threshold_countdown: expected an integer >= 1"),
        (
            "flap_detection:\n  threshold_decrement: -1\n",
            "flap_detection.threshold_decrement: expected an integer >= 0",
        ),
        ("event_handling:\n  process_failure: [a, b]\n", "event_handling.process_failure: expected a string"),
        ("event_handling:\n  timeout: forever\n", "event_handling.timeout: invalid duration 'forever'"),
    ],
)
def test_bad_values_name_the_file_the_key_and_what_was_expected(tmp_path, text, message):
    f = tmp_path / "c.yml"
    f.write_text(text)
    with pytest.raises(config.ConfigError) as err:
        config.load(str(f), "system")
    assert str(err.value).startswith(f"{f}: {message}"), str(err.value)


def test_empty_values_mean_the_defaults(tmp_path):
    # pmon3's shipped config.yml leaves many keys empty (`user:`): that is the default, not an error.
    cfg = load_text(
        tmp_path,
        'log_level:\nhandle_interrupts: ""\nrestart:\n  stop_signal:\n  min_uptime: ""\n'
        "logs:\n  file_mode:\n  max_size:\ndata:\nwait:\n  dependent_process_enqueued:\n",
    )
    assert cfg.log_level == "info" and cfg.handle_interrupts is True and cfg.restart == config.RestartSettings()
    assert cfg.logs.max_size == 0 and cfg.wait_dependent_ms == 1000 and cfg.warnings == ()


def test_octal_modes_read_as_pmon3_reads_them(tmp_path):
    # YAML 1.1 makes 0775 the number 509 and 775 the number 775; pmon3 (Go, a string field) reads both as 0o775.
    for text in ("0775", "775", '"0775"', '"0o775"'):
        assert load_text(tmp_path, f"logs:\n  directory_mode: {text}\n").logs.directory_mode == 0o775, text
    assert load_text(tmp_path, "wait:\n  dependent_process_enqueued: 0100\n").wait_dependent_ms == 100


def test_pmon3_shipped_config_is_accepted_as_it_is(tmp_path):
    shipped = (ROOT / "tests" / "unit" / "data" / "pmon3-1.18-config.yml").read_text()
    cfg = load_text(tmp_path, shipped)
    assert cfg.warnings == ()
    assert cfg.logs.directory_mode == 0o775 and cfg.logs.directory == "/var/log/pmond"
    assert cfg.process_config_file == "/etc/pmon3/config/process.config.json" and cfg.flap.threshold_decrement == 60


def test_unknown_keys_are_warnings_not_errors(tmp_path):
    cfg = load_text(
        tmp_path,
        "bogus: 1\nlogs_dir: /old\nrestart:\n  stop_timout: 5s\nlogs:\n  max_size: 1M\n  colour: blue\n"
        "message_queue:\n  directory:\n    tmp: /tmp\n",
    )
    f = tmp_path / "config.yml"
    assert set(cfg.warnings) == {
        f"{f}: bogus: unknown key, ignored",
        f"{f}: logs_dir: unknown key, ignored",
        f"{f}: restart.stop_timout: unknown key, ignored",
        f"{f}: logs.colour: unknown key, ignored",
        f"{f}: message_queue.directory.tmp: unknown key, ignored",
    }
    assert cfg.restart.stop_timeout == 10.0 and cfg.logs.max_size == 1 << 20


def test_pmon3_debug_overrides_log_level(tmp_path, monkeypatch):
    monkeypatch.setenv("PMON3_DEBUG", "true")
    assert config.load(str(tmp_path / "none.yml"), "system").log_level == "debug"
    monkeypatch.setenv("PMON3_DEBUG", "error")
    assert load_text(tmp_path, "log_level: debug\n").log_level == "error"
    with pytest.raises(config.ConfigError, match="log_level"):  # the file is still checked
        load_text(tmp_path, "log_level: [x]\n")


def test_event_handling_keys_and_pmon3_113_spellings(tmp_path):
    cfg = load_text(
        tmp_path,
        "on_process_restart_exec: /old/restart\non_process_failure_exec: /old/failure\n"
        "event_handling:\n  process_failure: /new/failure --flag\n  process_backoff: /new/backoff\n  timeout: 5s\n",
    )
    assert cfg.hooks == {"restart": "/old/restart", "failure": "/new/failure --flag", "backoff": "/new/backoff"}
    assert cfg.hook_timeout_ms == 5000


# -- logs: the rotation settings, parsed here once -----------------------------------------------------------


def test_log_rotation_defaults_mean_no_rotation():
    assert logs({}) == logs(None) == config.LogSettings(max_size=0, retain=5, compress=False)
    assert not logs({"directory": "/x"}).enabled


@pytest.mark.parametrize(
    "value,expected",
    [(2048, 2048), ("2048", 2048), ("2K", 2048), ("10M", 10 << 20), ("1g", 1 << 30), ("1.5K", 1536),
     ("10MB", 10 << 20), ("4 KiB", 4096), (0, 0), ("", 0), (None, 0)],
)  # fmt: skip
def test_max_size_values(value, expected):
    assert logs({"max_size": value}).max_size == expected


@pytest.mark.parametrize("value", ["10X", "M", "-1", -5, "ten", True, [1], "1T"])
def test_bad_max_size_is_a_config_error(value):
    with pytest.raises(config.ConfigError, match="c.yml: logs.max_size: "):
        logs({"max_size": value})


def test_retain_and_compress():
    s = logs({"max_size": "1M", "retain": 3, "compress": True})
    assert (s.max_size, s.retain, s.compress, s.enabled) == (1 << 20, 3, True, True)
    assert (logs({"retain": "0", "compress": "no"}).retain, logs({"compress": "no"}).compress) == (0, False)


@pytest.mark.parametrize(
    "mapping,key",
    [({"retain": -1}, "logs.retain"), ({"retain": "many"}, "logs.retain"), ({"retain": 2.5}, "logs.retain"),
     ({"retain": True}, "logs.retain"), ({"retain": 5000}, "logs.retain"), ({"compress": "maybe"}, "logs.compress"),
     ({"compress": 3}, "logs.compress")],
)  # fmt: skip
def test_bad_retain_or_compress_is_a_config_error(mapping, key):
    with pytest.raises(config.ConfigError, match=f"c.yml: {key}: "):
        logs(mapping)


def test_logs_must_be_a_mapping():
    with pytest.raises(config.ConfigError, match="c.yml: logs: expected a mapping"):
        logs("big")


# -- one signal parser -------------------------------------------------------------------------------------


def test_signals_in_every_form():
    assert [config.check_signal(v, "k") for v in ("SIGTERM", "term", " Int ", 9, "15")] == [
        "SIGTERM",
        "SIGTERM",
        "SIGINT",
        "9",
        "15",
    ]
    assert config.signal_number("hup") == 1 and config.signal_name(15, "k") == "SIGTERM"
    for bad in ("SIGNOPE", 0, 999, True, [15], ""):
        with pytest.raises(config.ConfigError, match="k: unknown signal"):
            config.check_signal(bad, "k")


def test_nothing_else_parses_signal_names():
    """signal.Signals[...] / .__members__ (name -> signal) appear only in config.py."""
    pkg = ROOT / "python" / "pmon3"
    offenders = [
        str(p.relative_to(pkg))
        for p in pkg.rglob("*.py")
        if p.name != "config.py" and re.search(r"Signals\[|Signals\.__members__|startswith\(.SIG", p.read_text())
    ]
    assert offenders == []


# -- reload: what a reload may change is declared by Config -------------------------------------------------


def test_fixed_keys_are_the_paths_and_ipc_endpoints():
    assert set(config.Config.fixed_keys()) == {
        "data.directory",
        "logs.directory",
        "logs.directory_mode",
        "message_queue.name_suffix",
        "ipc.transport",
        "ipc.socket",
        "process_trees",
        "daemon.log",
        "metrics.listen",
    }


def test_every_field_of_config_says_whether_a_reload_may_change_it():
    not_settings = {"path", "mode", "exists", "warnings", "raw"}
    for name, spec in config.Config.fields():
        assert (spec.reload is not None) != (name in not_settings), name


def test_apply_reload_takes_the_reloadable_settings_and_reports_the_fixed_ones():
    old = config.from_mapping({"logs": {"directory": "/l1"}, "data": {"directory": "/d1"}}, "c", "system")
    keep = old.logs
    fresh = config.from_mapping(
        {
            "logs": {"directory": "/l2", "max_size": "1M", "retain": 2},
            "data": {"directory": "/d2"},
            "ipc": {"transport": "unix"},
            "restart": {"stop_timeout": "2s"},
            "log_level": "debug",
            "bogus": 1,
        },
        "c",
        "system",
    )
    pending = old.apply_reload(fresh)
    assert pending == ["data.directory", "logs.directory", "ipc.transport"]  # ipc.socket: /run/pmon3.sock still
    assert (old.data_directory, old.transport, old.logs.directory) == ("/d1", "mq", "/l1")
    assert old.logs == keep.replace(max_size=1 << 20, retain=2)
    assert (old.restart.stop_timeout, old.log_level) == (2.0, "debug")
    assert old.warnings == ("c: bogus: unknown key, ignored",)
    assert old.apply_reload(fresh) == pending  # still pending: still reported


# -- the CLI's cache and import cost -----------------------------------------------------------------------


def test_process_config_path_override(tmp_path, monkeypatch):
    from pmon3 import procconfig

    f = tmp_path / "p.json"
    f.write_text('{"processes": []}')
    monkeypatch.setenv("PMON3_PROCESS_CONF", str(f))
    assert procconfig.resolve_path("") == str(f)
    assert procconfig.resolve_path("/explicit.json") == "/explicit.json"  # the config key wins
    monkeypatch.setenv("PMON3_PROCESS_CONF", str(tmp_path / "missing.json"))
    assert procconfig.resolve_path("") == ""


def test_cli_config_cache_follows_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f = tmp_path / "c.yml"
    f.write_text("restart:\n  min_uptime: 2s\n")
    assert config.load(str(f), "system", cached=True).restart.min_uptime == 2.0
    assert list((tmp_path / "cache" / "pmon3").iterdir())  # cached
    assert config.load(str(f), "system", cached=True).restart.min_uptime == 2.0  # from the cache
    f.write_text("restart:\n  min_uptime: 3s\n")  # new size: a new stamp
    assert config.load(str(f), "system", cached=True).restart.min_uptime == 3.0
    f.write_text("restart: [oops\n")
    with pytest.raises(config.ConfigError, match="invalid YAML"):
        config.load(str(f), "system", cached=True)
    f.write_text("restart:\n  stop_timeout: [1]\n")  # valid YAML, cached, and still refused from the cache
    for _ in range(2):
        with pytest.raises(config.ConfigError, match="restart.stop_timeout"):
            config.load(str(f), "system", cached=True)


def test_a_cache_of_another_format_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    f = tmp_path / "c.yml"
    f.write_text("logs:\n  directory_mode: 0700\n")
    assert config.load(str(f), "system", cached=True).logs.directory_mode == 0o700
    (cache,) = (tmp_path / "cache" / "pmon3").iterdir()
    saved = json.loads(cache.read_text())
    assert saved["data"] == {"logs": {"directory_mode": "0700"}}
    saved["format"], saved["data"] = 1, {"logs": {"directory_mode": 448}}  # what the old loader cached
    cache.write_text(json.dumps(saved))
    assert config.load(str(f), "system", cached=True).logs.directory_mode == 0o700


def _python(code: str, **env: str) -> str:
    res = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return res.stdout.strip()


def test_importing_config_is_cheap():
    heavy = "yaml signal hashlib json pmon3.daemon".split()
    out = _python(f"import sys, pmon3.config; print([m for m in {heavy!r} if m in sys.modules])")
    assert out == "[]"


def test_a_fresh_cache_spares_the_cli_pyyaml(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(f"logs:\n  directory: {tmp_path}\n  directory_mode: 0750\nrestart:\n  stop_signal: INT\n")
    code = (
        "import sys; from pmon3 import config; c = config.load(sys.argv[1] if len(sys.argv) > 1 else "
        f"{str(f)!r}, 'user', cached=True); print(c.logs.directory_mode, c.restart.stop_signal, 'yaml' in sys.modules)"
    )
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert _python(code, **env) == f"{0o750} SIGINT True"  # first run parses the YAML and fills the cache
    assert _python(code, **env) == f"{0o750} SIGINT False"  # then the cache serves it


def test_settings_records_behave_as_dataclasses():
    s = config.RestartSettings(mode="never", stop_timeout=2.0)
    assert s == config.RestartSettings("never", (0,), 1.0, 0.1, 30.0, "SIGTERM", 2.0) and hash(s) == hash(s.replace())
    assert s.replace(mode="always") == config.RestartSettings(stop_timeout=2.0) != s
    assert repr(config.FlapDetection()).startswith("FlapDetection(enabled=False, threshold_restarted=5,")
    with pytest.raises(AttributeError):
        s.mode = "always"  # type: ignore[misc]
    with pytest.raises(TypeError, match="no field 'bogus'"):
        config.RestartSettings(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="no field 'bogus'"):
        s.replace(bogus=1)
    assert s == config.RestartSettings(mode="never", stop_timeout=2.0)  # replace changed a copy only
    with pytest.raises(TypeError, match="missing 'mode'"):
        config.Config(path="p")  # type: ignore[call-arg]
    a, b = (config.Config(path="p", mode="user") for _ in range(2))
    assert a == b and a.hooks is not b.hooks and a.raw is not b.raw  # factories: one value each
    b.log_level = "debug"
    assert a != b
    with pytest.raises(TypeError):
        hash(a)
