import pytest
from pmon3 import config


def test_defaults_of_system_mode(tmp_path):
    cfg = config.load(str(tmp_path / "missing.yml"), "system")
    assert cfg.data_directory == "/etc/pmon3/data"
    assert cfg.logs_directory == "/var/log/pmond"
    assert cfg.mq_base == "/pmon3"
    assert cfg.handle_interrupts is True
    assert cfg.restart.min_uptime_ms == 1000 and cfg.restart.stop_timeout_ms == 10000


def test_keys_isolate_a_daemon(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("data:\n  directory: /x/d\nlogs:\n  directory: /x/l\nmessage_queue:\n  name_suffix: abc\n")
    cfg = config.load(str(f), "system")
    assert (cfg.db_path, cfg.logs_directory, cfg.mq_base) == ("/x/d/data.db", "/x/l", "/pmon3_abc")


def test_durations_accept_units(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text("restart:\n  min_uptime: 2s\n  restart_delay: 250ms\n  stop_timeout: 1500\n")
    r = config.load(str(f), "system").restart
    assert (r.min_uptime_ms, r.restart_delay_ms, r.stop_timeout_ms) == (2000, 250, 1500)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("data: [1, 2", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("restart:\n  min_uptime: soon\n", "invalid duration"),
        ("handle_interrupts: maybe\n", "expected true or false"),
        ("process_monitor_interval: 0\n", "greater than 0"),
        ("data:\n  directory: relative/dir\n", "absolute path"),
        ("message_queue:\n  name_suffix: a/b\n", "name_suffix"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, fragment):
    f = tmp_path / "c.yml"
    f.write_text(text)
    with pytest.raises(config.ConfigError, match=fragment):
        config.load(str(f), "system")


def test_pmon3_debug_overrides_log_level(tmp_path, monkeypatch):
    monkeypatch.setenv("PMON3_DEBUG", "true")
    assert config.load(str(tmp_path / "none.yml"), "system").log_level == "debug"


def test_event_handling_keys_and_pmon3_113_spellings(tmp_path):
    f = tmp_path / "c.yml"
    f.write_text(
        "on_process_restart_exec: /old/restart\non_process_failure_exec: /old/failure\n"
        "event_handling:\n  process_failure: /new/failure --flag\n  process_backoff: /new/backoff\n  timeout: 5s\n"
    )
    cfg = config.load(str(f), "system")
    assert cfg.hooks == {"restart": "/old/restart", "failure": "/new/failure --flag", "backoff": "/new/backoff"}
    assert cfg.hook_timeout_ms == 5000


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
    assert config.load(str(f), "system", cached=True).restart.min_uptime_ms == 2000
    assert list((tmp_path / "cache" / "pmon3").iterdir())  # cached
    assert config.load(str(f), "system", cached=True).restart.min_uptime_ms == 2000  # from the cache
    f.write_text("restart:\n  min_uptime: 3s\n")  # new size: a new stamp
    assert config.load(str(f), "system", cached=True).restart.min_uptime_ms == 3000
    f.write_text("restart: [oops\n")
    with pytest.raises(config.ConfigError, match="invalid YAML"):
        config.load(str(f), "system", cached=True)
