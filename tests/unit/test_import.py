"""`pmon3 import`: PM2 ecosystem files, supervisord configs and Procfiles as pmon3 process configs.

Every result must load with procconfig.load in each format, and every source key without an equivalent must be
named in a warning. The supervisord sample is supervisor's own (echo_supervisord_conf of the test dependency), and
its programs are cross-checked with supervisor's own parser.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pmon3 import procconfig
from pmon3.daemon import policy
from pmon3.importers import common, pm2, procfile, supervisord
from pmon3.importers.common import ImporterError, ImportResult

DATA = Path(__file__).with_name("data") / "import"
BIN = Path(sys.executable).parent
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


# -- helpers -----------------------------------------------------------------------------------------------


def loads_back(result: ImportResult, tmp_path: Path, *, validate: bool = True) -> list[dict[str, Any]]:
    """Write the entries in every format, load each with procconfig.load, and check they come back the same;
    also check pmond's own parsing of args, env_vars and the restart keys accepts them, and that what
    `pmon3 apply --dry-run` checks (apply.Applier.validate: every key, spec.build) accepts every entry (unless
    `validate` is false: an entry for another machine, e.g. with a user that does not exist here)."""
    from pmon3.daemon.authz import check_group_name, check_name
    from pmon3.daemon.spec import env_list, split_words

    expected = []
    for e in result.entries:
        want = {k: v for k, v in e.items() if not (k == "no_auto_restart" and v is False)}
        want.setdefault("dependencies", [])
        want.setdefault("groups", [])
        expected.append(want)
        check_name(e["name"])
        for group in e.get("groups", []):
            check_group_name(group)
        split_words(e["args"], "args")
        env_list(e.get("env_vars"))
        policy.normalize_overrides({k: e[k] for k in policy.POLICY_KEYS if k in e})
        assert os.path.isabs(e["file"]), e
    for fmt in procconfig.FORMATS:
        f = tmp_path / f"imported.{fmt}"
        f.write_text(procconfig.render(result.entries, fmt))
        got = [
            {k: v for k, v in e.items() if not (k == "no_auto_restart" and v is False)} for e in procconfig.load(str(f))
        ]
        assert got == expected, fmt
        if validate:
            assert len(accepted(str(f))) == len(expected), fmt
    return result.entries


def accepted(path: str) -> list[Any]:
    """The entries of a process config file as `pmon3 apply --dry-run` validates them (as root's pmond would)."""
    from pmon3.config import from_mapping
    from pmon3.daemon.apply import Applier
    from pmon3.daemon.authz import Authz, Caller

    cfg = from_mapping({}, os.path.join(os.path.dirname(path), "config.yml"), "system")
    applier = Applier(None, cfg, Authz(None, cfg), None)  # type: ignore[arg-type]  # validate() needs neither
    return applier.validate(Caller(os.geteuid()), procconfig.load(path), path, create_dirs=False)


def by_name(result: ImportResult) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in result.entries}


def argv(e: dict[str, Any]) -> list[str]:
    return shlex.split(e["args"])


def env(e: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(e.get("env_vars", "")))


def warned(result: ImportResult, level: str = "warning") -> set[tuple[str, ...]]:
    """(entry, key) of each warning, the file left out: ("apps[0] (api)", "instances")."""
    out = set()
    for w in result.warnings:
        if w.level == level:
            out.add(tuple(w.place.split(": ")[1:]))
    return out


def which(name: str) -> str:
    found = shutil.which(name)
    assert found, name
    return os.path.abspath(found)


# -- shared ------------------------------------------------------------------------------------------------


def test_names_are_checked_like_pmond():
    from pmon3.daemon import authz

    assert common.NAME_RE.pattern == authz.NAME_RE.pattern


def test_entries_use_every_key_procconfig_knows_in_export_order():
    assert set(common.KEY_ORDER) == set(procconfig._TOML_KEYS.values())
    export = list(procconfig.export_entry({"process_file": "f", "username": "u", "name": "n", "log": "l"}))
    assert [k for k in common.KEY_ORDER if k in export] == export


def test_entry_shape_and_quoting():
    result = ImportResult()
    e = common.entry(
        file="/bin/echo",
        name="x",
        argv=["a b", "it's", "$HOME"],
        env={"A": "1 2", "bad-key": "x"},
        where="f: x",
        result=result,
        cwd="/tmp",
        user="",
    )
    assert list(e) == ["file", "args", "env_vars", "name", "no_auto_restart", "cwd"]
    assert shlex.split(e["args"]) == ["a b", "it's", "$HOME"]
    assert e["env_vars"] == "'A=1 2'"
    assert [str(w) for w in result.warnings] == [
        "warning: f: x: environment variable 'bad-key' is not a valid name for pmon3: left out"
    ]


def test_names_are_made_valid_with_a_warning():
    result = ImportResult()
    assert common.process_name("my app/v2", "f: x", result) == "my-app-v2"
    assert common.process_name("ok.name", "f: x", result) == "ok.name"
    assert len(result.warnings) == 1 and "renamed 'my-app-v2'" in result.warnings[0].message
    with pytest.raises(ImporterError, match="f: x: process name"):
        common.process_name("...", "f: x", result)


def test_durations():
    assert [common.duration(ms) for ms in (0, 100, 1000, 1500, 30000)] == ["0s", "100ms", "1s", "1500ms", "30s"]


def test_duplicate_names_are_an_error():
    result = ImportResult()
    e = common.entry(file="/bin/true", name="x", argv=[], env={}, where="f:1", result=result)
    result.add(e, "f:1")
    with pytest.raises(ImporterError, match=r"f:2: duplicate process name 'x' \(also f:1\)"):
        result.add(dict(e), "f:2")


# -- PM2 ---------------------------------------------------------------------------------------------------

PM2_DIR = DATA / "pm2"
# Every key of PM2 7's lib/API/schema.json, and its aliases.
PM2_SCHEMA_KEYS = (
    "script name name_prefix filter_env namespace install_url cwd args exec_interpreter node_args out_file "
    "error_file log_file disable_logs log_type log_date_format time env max_memory_restart pid_file restart_delay "
    "exp_backoff_restart_delay source_map_support disable_source_map_support wait_ready instances kill_timeout "
    "shutdown_with_message listen_timeout cron_restart merge_logs vizion autostart autorestart stop_exit_codes "
    "watch_delay watch ignore_watch watch_options min_uptime max_restarts execute_command exec_mode force "
    "append_env_to_name post_update trace disable_trace v8 event_loop_inspector deep_monitoring increment_var "
    "instance_var pmx automation treekill port username uid gid windowsHide kill_retry_time write io"
).split()
PM2_ALIASES = (
    "exec interpreter interpreterArgs interpreter_args out output out_log error err err_file err_log log pid cron "
    "combine_logs user"
).split()
PM2_FILES = ["ecosystem.json", "ecosystem.yaml", pytest.param("ecosystem.config.js", marks=needs_node)]
# What the three fixtures (the same apps) leave unmapped, with --env production.
PM2_WARNINGS = {
    ("apps[0] (api)", "exec_mode"),
    ("apps[0] (api)", "max_restarts"),
    ("apps[0] (api)", "error_file"),
    ("apps[1] (worker)", "cron_restart"),
    ("apps[2] (ticker)", "wait_ready"),
    ("apps[2] (ticker)", "env_production"),
}


def test_pm2_table_covers_the_whole_schema():
    assert set(PM2_SCHEMA_KEYS) == set(pm2.KEYS)
    assert set(PM2_ALIASES) == set(pm2.ALIASES)
    assert set(pm2.ALIASES.values()) <= set(pm2.KEYS)


@pytest.mark.parametrize("name", PM2_FILES)
def test_pm2_ecosystem(tmp_path, name):
    result = pm2.convert(str(PM2_DIR / name), env="production")
    loads_back(result, tmp_path)
    apps = by_name(result)
    assert list(apps) == ["api", "worker", "ticker"]
    here = str(PM2_DIR)

    api = apps["api"]
    assert api["file"] == which("node")
    assert argv(api) == [
        "--max-old-space-size=512",
        f"{here}/server.js",
        "--port",
        "3000",
        "--greeting",
        "hello world",
    ]
    assert env(api) == {"NODE_ENV": "production", "PORT": "80"}
    assert api["cwd"] == here
    assert api["log"] == f"{here}/api-out.log"
    assert (api["min_uptime"], api["restart_delay"], api["stop_timeout"]) == ("10s", "4s", "5s")
    assert api["stop_signal"] == "SIGINT"
    assert "no_auto_restart" in api and not api["no_auto_restart"]
    assert (api["instances"], api["max_memory"]) == (4, "300M")

    worker = apps["worker"]
    assert worker["file"] == which("python3")
    assert argv(worker) == ["-X", "dev", f"{here}/jobs/worker.py", "--queue", "default", "--concurrency", "2"]
    assert env(worker) == {"QUEUE": "critical", "PYTHONUNBUFFERED": "1"}
    assert worker["cwd"] == f"{here}/jobs"
    assert worker["log"] == f"{here}/jobs/worker.log"
    assert worker["no_auto_restart"] is True
    assert (worker["restart_delay"], worker["max_restart_delay"]) == ("100ms", "15s")

    ticker = apps["ticker"]
    assert (ticker["file"], argv(ticker), ticker["user"]) == ("/bin/sleep", ["3600"], "nobody")
    assert (ticker["restart"], ticker["success_exit_codes"]) == ("on-failure", [0, 3])
    assert ticker["groups"] == ["batch"]
    assert not {"ready", "ready_timeout"} & set(ticker)  # wait_ready is warned, listen_timeout an info

    extra = {("deploy",)} if name.endswith(".js") else set()
    assert warned(result) == PM2_WARNINGS | extra


@needs_node
def test_pm2_formats_agree():
    results = [pm2.convert(str(PM2_DIR / name), env="production") for name in ("ecosystem.json", "ecosystem.yaml")]
    results.append(pm2.convert(str(PM2_DIR / "ecosystem.config.js"), env="production"))
    assert results[0].entries == results[1].entries == results[2].entries


def test_pm2_without_env_keeps_env_and_says_how_to_pick_one(tmp_path):
    result = pm2.convert(str(PM2_DIR / "ecosystem.json"))
    loads_back(result, tmp_path)
    assert env(by_name(result)["api"]) == {"NODE_ENV": "development", "PORT": "3000"}
    assert ("apps[0] (api)", "env_production") in warned(result, "info")
    assert any("--env production" in w.message for w in result.warnings)
    assert ("apps[2] (ticker)", "env_production") not in warned(result)


def test_pm2_defaults_are_infos_not_warnings(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text(
        '{"apps": [{"script": "/bin/sleep", "interpreter": "none", "instances": 1, "watch": false,'
        ' "exec_mode": "fork", "autostart": true, "vizion": true}]}'
    )
    result = pm2.convert(str(f))
    assert warned(result) == set()
    assert {("apps[0] (sleep)", k) for k in ("instances", "watch", "exec_mode", "autostart", "vizion")} <= warned(
        result, "info"
    )


def one_app(tmp_path: Path, **keys: Any) -> ImportResult:
    """One app `app` (/bin/sleep, run directly, min_uptime 10s) with `keys` added, converted."""
    app = {"name": "app", "script": "/bin/sleep", "args": "300", "interpreter": "none", "min_uptime": "10s", **keys}
    f = tmp_path / "eco.json"
    f.write_text(json.dumps({"apps": [app]}))
    return pm2.convert(str(f))


def said(result: ImportResult, key: str, level: str = "warning") -> str:
    """The messages of that level on `key` of the app, one per line."""
    return "\n".join(w.message for w in result.warnings if w.level == level and w.place.endswith(f": {key}"))


@pytest.mark.parametrize(
    "value, cpus, instances, fragment",
    [
        (4, 8, 4, "4 copies app, app@1 ... app@3, each with PMON3_INSTANCE=0 ... 3"),
        ("4", 8, 4, "4 copies app"),
        (
            2,
            8,
            2,
            "2 copies app, app@1, each with PMON3_INSTANCE=0, 1 (PM2: NODE_APP_INSTANCE, which pmon3 does not "
            "set), each to its own log; `pmon3 scale app N` changes the number",
        ),
        (2.0, 8, 2, "2 copies app"),
        (1, 8, None, "1 is PM2's default: nothing to map"),
        ("max", 8, 8, '"max" is one per CPU in PM2: 8, from the 8 CPUs of this machine at import time'),
        (0, 8, 8, "0 is one per CPU in PM2: 8, from the 8 CPUs"),
        (-1, 8, 7, "-1 is 1 fewer than the CPUs in PM2: 7, from the 8 CPUs"),
        (-3, 2, None, "-3 is 3 fewer than the CPUs in PM2: 1, from the 2 CPUs"),  # at least one, as PM2
        ("max", 1, None, '"max" is one per CPU in PM2: 1, from the 1 CPUs'),
    ],
)
def test_pm2_instances_become_instances(tmp_path, monkeypatch, value, cpus, instances, fragment):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    result = one_app(tmp_path, instances=value)
    (entry,) = loads_back(result, tmp_path)  # accepted as apply --dry-run accepts a process config
    assert entry.get("instances") == instances
    assert warned(result) == set()
    assert fragment in said(result, "instances", "info")


@pytest.mark.parametrize(
    "value, cpus, instances, fragment",
    [
        (300, 8, 256, "300 copies: pmon3 runs at most 256 of a process: 256"),
        ("max", 512, 256, "512 copies: pmon3 runs at most 256 of a process: 256"),
        ("lots", 8, None, '"lots" is not a whole number of instances or max (PM2 reads a word as 0: one per CPU)'),
        (True, 8, None, "true is not a whole number of instances or max: left out, one process"),
        (2.5, 8, None, "2.5 is not a whole number of instances or max: left out, one process"),
        ([2], 8, None, "[2] is not a whole number of instances or max: left out, one process"),
    ],
)
def test_pm2_bad_instances_are_warned_and_the_rest_imported(tmp_path, monkeypatch, value, cpus, instances, fragment):
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    result = one_app(tmp_path, instances=value, max_memory_restart="1G")
    (entry,) = loads_back(result, tmp_path)
    assert entry.get("instances") == instances
    assert (entry["min_uptime"], entry["max_memory"]) == ("10s", "1G")  # the rest of the app is there
    assert warned(result) == {("apps[0] (app)", "instances")}
    assert fragment in said(result, "instances")


@needs_node
def test_pm2_cluster_mode_is_plain_copies(tmp_path, monkeypatch):
    """PM2's cluster mode (asked for, or PM2's default for a node script with instances) shares a port
    through PM2's master: with several copies a warning that suggests listen:, with one an info."""
    (tmp_path / "server.js").write_text("")
    node_app = {"script": "server.js", "env": {"PORT": 3000}}

    result = one_app(tmp_path, **node_app, interpreter="node", exec_mode="cluster", instances=2)
    (entry,) = loads_back(result, tmp_path)
    assert entry["instances"] == 2 and "listen" not in entry
    assert warned(result) == {("apps[0] (app)", "exec_mode")}
    message = said(result, "exec_mode")
    assert "PM2's cluster mode shares one port" in message and "the 2 copies are plain processes" in message
    assert "Add listen: tcp:0.0.0.0:3000 and have the program use the socket pmond holds (fd 3)" in message

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    result = one_app(tmp_path, **node_app, interpreter="node", instances="max")  # cluster by PM2's default
    assert loads_back(result, tmp_path)[0]["instances"] == 4
    assert warned(result) == {("apps[0] (app)", "instances")}
    assert "PM2's cluster mode (PM2's default for a node script with instances) shares one port" in said(
        result, "instances"
    )

    result = one_app(tmp_path, **node_app, interpreter="node", exec_mode="cluster_mode")  # one copy
    loads_back(result, tmp_path)
    assert warned(result) == set()
    assert "cluster mode with one copy: one plain process" in said(result, "exec_mode", "info")

    # PM2's fork mode, asked for or for a program run directly: copies as pmon3 runs them
    for fork in ({**node_app, "interpreter": "node", "exec_mode": "fork_mode"}, {"env": {"PORT": 3000}}):
        result = one_app(tmp_path, **fork, instances=3)
        (entry,) = loads_back(result, tmp_path)
        assert entry["instances"] == 3 and warned(result) == set()

    result = one_app(tmp_path, exec_mode="swarm")
    assert said(result, "exec_mode") == '"swarm" is not a PM2 exec_mode (fork or cluster): ignored'


def test_pm2_instance_variables(tmp_path):
    result = one_app(tmp_path, instances=3, instance_var="INSTANCE_ID", increment_var="PORT")
    loads_back(result, tmp_path)
    assert warned(result) == {("apps[0] (app)", "instance_var"), ("apps[0] (app)", "increment_var")}
    assert (
        said(result, "instance_var")
        == 'the copies are numbered in PMON3_INSTANCE only: "INSTANCE_ID" is not set in them'
    )
    assert '"PORT" is not incremented per copy' in said(result, "increment_var")

    result = one_app(tmp_path, instance_var="NODE_APP_INSTANCE", increment_var="PORT")
    assert warned(result) == set()
    assert {("apps[0] (app)", "instance_var"), ("apps[0] (app)", "increment_var")} <= warned(result, "info")
    result = one_app(tmp_path, instance_var="INSTANCE_ID")
    assert said(result, "instance_var") == 'pmon3 does not set "INSTANCE_ID" (PM2 sets it to 0 in its one copy)'


@pytest.mark.parametrize(
    "value, max_memory",
    [
        ("300M", "300M"),
        ("1G", "1G"),
        ("2048K", "2M"),
        ("1536M", "1536M"),
        ("1.5G", "1536M"),
        ("300", None),  # bytes, as PM2: below pmond's 1M
        (314572800, "300M"),
        ("314572800", "300M"),
        (300000000, "300000000"),  # not a whole number of K: as bytes
        (1048576, "1M"),
        (1048575, None),
        ("512K", None),
        (0, None),
    ],
)
def test_pm2_max_memory_restart_becomes_max_memory(tmp_path, value, max_memory):
    result = one_app(tmp_path, max_memory_restart=value)
    (entry,) = loads_back(result, tmp_path)
    assert entry.get("max_memory") == max_memory
    if max_memory is None:
        assert warned(result) == {("apps[0] (app)", "max_memory_restart")}
        assert "below pmon3's smallest max_memory (1M): left out, no memory limit" in said(result, "max_memory_restart")
    else:
        assert warned(result) == set()
        assert f"max_memory {max_memory}: pmon3 counts the whole process tree" in said(
            result, "max_memory_restart", "info"
        )


@pytest.mark.parametrize("value", ["lots", "-5M", -5, True, "1E", {"size": "1G"}])
def test_pm2_bad_max_memory_restart_is_warned_and_the_rest_imported(tmp_path, value):
    result = one_app(tmp_path, max_memory_restart=value, instances=2, kill_timeout=3000)
    (entry,) = loads_back(result, tmp_path)
    assert "max_memory" not in entry
    assert (entry["instances"], entry["min_uptime"], entry["stop_timeout"]) == (2, "10s", "3s")
    assert warned(result) == {("apps[0] (app)", "max_memory_restart")}
    assert said(result, "max_memory_restart") == (
        f"{pm2._show(value)} is not a size (bytes, or e.g. 300M, 1G, 512K): left out, no memory limit"
    )


def test_pm2_wait_ready_and_listen_timeout_are_not_mapped(tmp_path):
    """process.send('ready') is Node IPC, not sd_notify: ready: notify would stop the unchanged program, so
    wait_ready is a warning naming pmon3's counterpart, and listen_timeout (which bounds it) an info."""
    result = one_app(tmp_path, wait_ready=True, listen_timeout=8000)
    (entry,) = loads_back(result, tmp_path)
    assert not {"ready", "ready_timeout", "watchdog"} & set(entry)
    assert warned(result) == {("apps[0] (app)", "wait_ready")}
    message = said(result, "wait_ready")
    assert "process.send('ready') (Node IPC), which pmon3 cannot receive: not mapped" in message
    assert "ready: notify" in message and "ready: log:REGEX" in message
    assert "with ready: added by hand, ready_timeout: 8s (PM2 carries on after it" in said(
        result, "listen_timeout", "info"
    )

    result = one_app(tmp_path, wait_ready="false", listen_timeout="1500ms")
    assert warned(result) == set()
    assert said(result, "wait_ready", "info") == '"false" is PM2\'s default: nothing to map'
    assert "ready_timeout: 1500ms" in said(result, "listen_timeout", "info")
    assert (
        said(one_app(tmp_path, listen_timeout=0), "listen_timeout", "info")
        == "0 is PM2's default (3 s): nothing to map"
    )

    result = one_app(tmp_path, listen_timeout="soon")
    (entry,) = loads_back(result, tmp_path)
    assert entry["min_uptime"] == "10s"
    assert said(result, "listen_timeout") == '"soon" is not a duration (milliseconds): left out'


def test_pm2_bounds_are_pmonds(tmp_path):
    """The importer's bounds are the ones pmond checks, and the check it is tested with refuses what is past them."""
    from pmon3 import limits
    from pmon3.daemon import spec
    from pmon3.errors import InvalidRequestError

    assert common.MAX_INSTANCES == spec.MAX_INSTANCES
    for bad in ({"instances": spec.MAX_INSTANCES + 1}, {"max_memory": limits.MAX_MEMORY_MIN - 1}, {"ready_timeout": 0}):
        f = tmp_path / "p.json"
        f.write_text(procconfig.render([{"file": "/bin/sleep", "name": "x", **bad}], "json"))
        with pytest.raises(InvalidRequestError, match=f"processes\\[0\\] \\(x\\): {next(iter(bad))}: "):
            accepted(str(f))


def test_pm2_unknown_keys_and_duplicates_warn(tmp_path):
    f = tmp_path / "eco.yaml"
    f.write_text("- script: /bin/sleep\n  interpreter: none\n  colour: blue\n  exec_interpreter: none\n")
    result = pm2.convert(str(f))
    assert warned(result) == {("apps[0] (sleep)", "colour"), ("apps[0] (sleep)", "exec_interpreter")}


@pytest.mark.parametrize(
    "app, expected",
    [
        ({"script": "/bin/sleep", "interpreter": "none"}, {"file": "/bin/sleep"}),
        ({"script": "app.py"}, {"file": "python", "args": ["{dir}/app.py"]}),
        ({"script": "app.sh", "args": "-x"}, {"file": "bash", "args": ["{dir}/app.sh", "-x"]}),
        ({"script": "run", "interpreter": "/bin/sh"}, {"file": "/bin/sh", "args": ["{dir}/run"]}),
        ({"script": "sleep", "args": ["5"]}, {"file": "/usr/bin/sleep", "args": ["5"]}),  # PATH, a binary
        ({"script": "app.js", "node_args": ["--inspect"]}, {"file": "node", "args": ["--inspect", "{dir}/app.js"]}),
    ],
)
def test_pm2_interpreter_rules(tmp_path, app, expected):
    for script in ("app.py", "app.sh", "app.js", "run"):
        (tmp_path / script).write_text("#\n")
    f = tmp_path / "eco.json"
    f.write_text(json.dumps({"apps": [app]}))
    result = pm2.convert(str(f))
    loads_back(result, tmp_path)
    e = result.entries[0]
    want_file = expected["file"]
    if want_file == "python":
        want_file = which("python") if shutil.which("python") else which("python3")
    elif want_file in ("bash", "node"):
        want_file = which(want_file)
    elif want_file == "/usr/bin/sleep":
        want_file = which("sleep")
    assert e["file"] == want_file
    assert argv(e) == [a.format(dir=tmp_path) for a in expected.get("args", [])]


def test_pm2_interpreter_not_found_is_an_error(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text('{"apps": [{"name": "x", "script": "a.rb", "interpreter": "no-such-ruby"}]}')
    with pytest.raises(ImporterError, match=r"eco.json: apps\[0\] \(x\): interpreter: 'no-such-ruby' is not found"):
        pm2.convert(str(f))


def test_pm2_command_line_script_is_split_with_a_warning(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text('{"apps": [{"name": "s", "script": "sleep 10", "args": "20"}]}')
    result = pm2.convert(str(f))
    assert (result.entries[0]["file"], argv(result.entries[0])) == (which("sleep"), ["10", "20"])
    assert ("apps[0] (s)", "script") in warned(result)


@pytest.mark.parametrize(
    "logs, log, warned_keys",
    [
        ({"out_file": "o.log"}, "{dir}/o.log", set()),
        ({"out_file": "o.log", "error_file": "o.log"}, "{dir}/o.log", set()),
        ({"out_file": "o.log", "error_file": "e.log"}, "{dir}/o.log", {"error_file"}),
        ({"error": "e.log"}, "{dir}/e.log", {"error"}),
        ({"log": "all.log", "output": "o.log"}, "{dir}/all.log", {"output"}),
        ({"out_file": "/dev/null", "error_file": "NULL"}, "/dev/null", set()),
        ({"disable_logs": True, "out_file": "o.log"}, "/dev/null", {"out_file"}),
        ({"log_file": True}, None, set()),
    ],
)
def test_pm2_one_log(tmp_path, logs, log, warned_keys):
    f = tmp_path / "eco.json"
    f.write_text(json.dumps({"apps": [{"name": "x", "script": "/bin/sleep", "interpreter": "none", **logs}]}))
    result = pm2.convert(str(f))
    assert result.entries[0].get("log") == (log.format(dir=tmp_path) if log else None)
    assert warned(result) == {("apps[0] (x)", k) for k in warned_keys}


@pytest.mark.parametrize(
    "value, ms", [(4000, 4000), ("4000", 4000), ("10s", 10000), ("2m", 120000), ("1h", 3600000), ("1.5s", 1500)]
)
def test_pm2_durations(value, ms):
    assert pm2._ms(value, "x") == ms


def test_pm2_bad_duration_names_the_key(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text('{"apps": [{"name": "x", "script": "/bin/sleep", "interpreter": "none", "min_uptime": "soon"}]}')
    with pytest.raises(ImporterError, match=r"apps\[0\] \(x\): min_uptime: invalid duration 'soon'"):
        pm2.convert(str(f))


def test_pm2_args_string_is_split_as_pm2_does():
    assert pm2._words('--x="a b" \'c d\' "e" f', "x") == ['--x="a b"', "c d", "e", "f"]
    assert pm2._words(["--n", 2, True, None], "x") == ["--n", "2", "true", "null"]


def test_pm2_bare_list_and_single_app(tmp_path):
    (tmp_path / "list.json").write_text('[{"script": "/bin/sleep", "interpreter": "none"}]')
    (tmp_path / "one.json").write_text('{"name": "solo", "script": "/bin/sleep", "interpreter": "none"}')
    assert [e["name"] for e in pm2.convert(str(tmp_path / "list.json")).entries] == ["sleep"]
    assert [e["name"] for e in pm2.convert(str(tmp_path / "one.json")).entries] == ["solo"]


def test_pm2_namespace_becomes_a_valid_group(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text(
        '[{"name": "a", "script": "/bin/sleep", "interpreter": "none", "namespace": "2024"},'
        ' {"name": "b", "script": "/bin/sleep", "interpreter": "none", "namespace": "default"}]'
    )
    result = pm2.convert(str(f))
    loads_back(result, tmp_path)
    assert [e.get("groups") for e in result.entries] == [["group-2024"], None]
    assert warned(result) == {("apps[0] (a)", "namespace")}


def test_pm2_duplicate_names_are_an_error(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text('[{"script": "/bin/sleep", "interpreter": "none"}, {"exec": "/bin/sleep", "interpreter": "none"}]')
    with pytest.raises(ImporterError, match=r"apps\[1\] \(sleep\): duplicate process name 'sleep'"):
        pm2.convert(str(f))


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("{", "cannot parse JSON" if NODE is None else "node could not evaluate it"),
        ('{"apps": [{"name": "x"}]}', r"apps\[0\]: `script` is required"),
        ('{"apps": 3}', "`apps` must be a list"),
        ('{"apps": [{"script": "/bin/sleep", "env": "A=1"}]}', "env: expected a mapping"),
    ],
)
def test_pm2_broken_files_are_one_line_errors(tmp_path, text, fragment):
    f = tmp_path / "eco.json"
    f.write_text(text)
    with pytest.raises(ImporterError, match=fragment) as info:
        pm2.convert(str(f))
    assert "\n" not in str(info.value) and str(f) in str(info.value)


@needs_node
def test_pm2_json_with_comments_is_read_as_pm2_reads_it(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text('{\n  // the api\n  apps: [{name: "x", script: "/bin/sleep", interpreter: "none",},],\n}\n')
    result = pm2.convert(str(f))
    assert [e["name"] for e in result.entries] == ["x"]
    assert any("evaluated by node" in w.message for w in result.warnings)


@needs_node
def test_pm2_json_evaluation_has_no_require(tmp_path):
    f = tmp_path / "eco.json"
    f.write_text('{apps: [{script: require("child_process").execSync("touch pwned").toString()}]}')
    with pytest.raises(ImporterError, match="require is not defined"):
        pm2.convert(str(f))
    assert not (tmp_path / "pwned").exists()


@needs_node
def test_pm2_js_path_goes_to_node_as_an_argument(tmp_path):
    odd = tmp_path / 'it\'s $(touch pwned) `touch pwned2` "dir"'
    odd.mkdir()
    f = odd / "ecosystem.config.js"
    f.write_text(
        'console.log("noise on stdout");\n'
        'module.exports = {apps: [{name: "x", script: "/bin/sleep", interpreter: "none", cwd: __dirname}]};\n'
    )
    result = pm2.convert(str(f))
    assert result.entries[0]["cwd"] == str(odd)
    assert not list(tmp_path.glob("pwned*")) and not list(odd.glob("pwned*"))


@needs_node
@pytest.mark.parametrize(
    "source, fragment",
    [
        ('throw new Error("no config for you")', "node could not evaluate it: no config for you"),
        ("module.exports = {apps: [", "node could not evaluate it: "),
    ],
)
def test_pm2_js_errors(tmp_path, source, fragment):
    f = tmp_path / "ecosystem.config.js"
    f.write_text(source)
    with pytest.raises(ImporterError, match=fragment) as info:
        pm2.convert(str(f))
    assert "\n" not in str(info.value)


@needs_node
def test_pm2_esm_ecosystem(tmp_path):
    f = tmp_path / "ecosystem.config.mjs"
    f.write_text('export default {apps: [{name: "esm", script: "/bin/sleep", interpreter: "none"}]};\n')
    assert [e["name"] for e in pm2.convert(str(f)).entries] == ["esm"]


def test_pm2_js_without_node_is_a_clear_error(tmp_path, monkeypatch):
    f = tmp_path / "ecosystem.config.js"
    f.write_text("module.exports = {apps: []};\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImporterError, match="node is not installed"):
        pm2.convert(str(f))


# -- supervisord -------------------------------------------------------------------------------------------

SUP_DIR = DATA / "supervisord"
# The sample's [program:theprogramname] keys and what becomes of each (the sample as printed, uncommented).
SAMPLE_MAPPED = {
    "command",
    "process_name",
    "numprocs",
    "directory",
    "priority",
    "startsecs",
    "autorestart",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stderr_logfile",
    "environment",
}
SAMPLE_WARNED = {
    "umask",
    "stopasgroup",
    "killasgroup",
    "stdout_logfile_maxbytes",
    "stdout_capture_maxbytes",
    "stderr_logfile_maxbytes",
    "stderr_capture_maxbytes",
}
SAMPLE_DEFAULTS = {  # no equivalent, but the sample sets supervisord's default: an info
    "autostart",
    "startretries",
    "stdout_logfile_backups",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile_backups",
    "stderr_events_enabled",
    "stderr_syslog",
    "serverurl",
}
SITE_WARNINGS = {
    ("[program:web]", "startretries"),
    ("[program:web]", "stdout_logfile_maxbytes"),
    ("[program:db]", "stderr_logfile"),
    ("[program:cache]", "autostart"),
    ("[program:cache]", "umask"),
}


def sample(tmp_path: Path, runnable: bool = False) -> Path:
    """supervisor's own sample config with its [program:theprogramname] and [include] uncommented, plus our
    programs.conf (web with numprocs, db, cache, [group:site]) and conf.d/worker.ini, in a copy of the data dir.
    `runnable`: the sample's user and log path made real, so that supervisor's own parser accepts the file."""
    shutil.copytree(SUP_DIR, tmp_path / "sup")
    root = tmp_path / "sup"
    text = subprocess.run([str(BIN / "echo_supervisord_conf")], capture_output=True, text=True, check=True).stdout
    lines, in_program = [], False
    for line in text.splitlines():
        if line.startswith(";[program:theprogramname]"):
            in_program = True
        elif not line.startswith(";"):
            in_program = False
        if in_program or line.startswith((";[include]", ";files = ")):
            line = line[1:]
        if line.startswith("files = "):
            line = "files = conf.d/*.ini"
        if runnable:
            line = line.replace("/a/path", "%(here)s/logs/sample.log").replace("user=chrism", "user=nobody")
        lines.append(line)
    assert "[program:theprogramname]" in lines and "[include]" in lines  # the sample still has them
    conf = root / "supervisord.conf"
    conf.write_text("\n".join(lines) + "\n" + (root / "programs.conf").read_text())
    return conf


def section_warnings(result: ImportResult, level: str = "warning") -> set[tuple[str, str]]:
    return {(w.place.split(": ")[1], w.place.split(": ")[-1]) for w in result.warnings if w.level == level}


def test_supervisord_program_table_covers_what_supervisord_reads():
    import inspect
    import re

    from supervisor.options import ServerOptions

    source = inspect.getsource(ServerOptions._processes_from_section)
    read = set(re.findall(r"get\(section,\s*'(\w+)'", source))
    for stream in ("stdout", "stderr"):  # read as '%s_logfile' % k and the like
        read |= {f"{stream}_logfile", f"{stream}_logfile_backups", f"{stream}_logfile_maxbytes", f"{stream}_syslog"}
    assert read == set(supervisord.KEYS)


def test_supervisord_sample(tmp_path):
    conf = sample(tmp_path)
    result = supervisord.convert(str(conf))
    loads_back(result, tmp_path, validate=False)  # its user chrism does not exist here (warned below)
    names = [e["name"] for e in result.entries]
    assert names == ["theprogramname", "web_00", "web_01", "web_02", "db", "cache", "worker"]

    prog = by_name(result)["theprogramname"]
    assert (prog["file"], prog["args"], prog["cwd"], prog["user"]) == ("/bin/cat", "", "/tmp", "chrism")
    assert env(prog) == {"A": "1", "B": "2"}
    assert (prog["restart"], prog["min_uptime"], prog["stop_signal"], prog["stop_timeout"]) == (
        "on-failure",
        "1s",
        "SIGQUIT",
        "10s",
    )
    assert prog["log"] == "/a/path"
    sample_keys = {key for section, key in section_warnings(result) if section == "[program:theprogramname]"}
    # chrism is no user here, /a is no directory, and stderr_logfile is ignored under redirect_stderr.
    assert sample_keys == SAMPLE_WARNED | {"user", "stdout_logfile", "stderr_logfile"}
    infos = {key for section, key in section_warnings(result, "info") if section == "[program:theprogramname]"}
    assert SAMPLE_DEFAULTS <= infos
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read(conf)
    assert set(parser.options("program:theprogramname")) == SAMPLE_MAPPED | SAMPLE_WARNED | SAMPLE_DEFAULTS
    # supervisord's own sections are noted, not warned
    own = {s for s, _ in section_warnings(result, "info")}
    assert {"[unix_http_server]", "[supervisord]", "[rpcinterface:supervisor]", "[supervisorctl]"} <= own
    warned_sections = {s for s, _ in section_warnings(result)}
    assert warned_sections == {f"[program:{p}]" for p in ("theprogramname", "web", "db", "cache", "worker")}


def test_supervisord_site(tmp_path):
    conf = sample(tmp_path, runnable=True)
    root = conf.parent
    result = supervisord.convert(str(conf))
    loads_back(result, tmp_path)
    e = by_name(result)
    python3 = which("python3")
    for n in range(3):
        web = e[f"web_0{n}"]
        assert web["file"] == python3
        assert argv(web) == ["-m", "http.server", f"800{n}", "--bind", "127.0.0.1"]
        assert env(web) == {"PORT": f"800{n}", "APP_ENV": "production", "GREETING": "hello, world"}
        assert web["cwd"] == str(root)
        assert web["log"] == f"{root}/logs/web_0{n}.log"
        assert (web["restart"], web["min_uptime"], web["stop_signal"], web["stop_timeout"]) == (
            "always",
            "5s",
            "SIGINT",
            "30s",
        )
        assert web["groups"] == ["site"]
    db = e["db"]
    assert (db["file"], argv(db), db["restart"], db["success_exit_codes"]) == (
        "/bin/sleep",
        ["infinity"],
        "on-failure",
        [0, 2],
    )
    assert db["log"] == f"{root}/logs/db.log"
    assert (e["cache"]["file"], e["cache"]["groups"]) == (which("sleep"), ["site"])
    worker = e["worker"]
    assert worker["file"] == f"{root}/bin/worker.sh"  # %(here)s of conf.d/worker.ini, normalized
    assert (worker["cwd"], worker["user"], worker["no_auto_restart"]) == (str(root), "nobody", True)
    assert env(worker) == {"QUEUE_URL": "redis://127.0.0.1:6379/0", "HOME_DIR": os.environ["HOME"]}
    assert worker["log"] == f"{root}/logs/worker.err"  # stdout is NONE: stderr's file is the one log
    # priorities: db (100) < group site (300: web 200 < cache 999) < the rest (999)
    deps = {n: x.get("dependencies", []) for n, x in e.items()}
    assert deps == {
        "theprogramname": ["cache"],
        "web_00": ["db"],
        "web_01": ["db"],
        "web_02": ["db"],
        "db": [],
        "cache": ["web_00", "web_01", "web_02"],
        "worker": ["cache"],
    }
    assert SITE_WARNINGS | {(f"{root}/conf.d/worker.ini", "stderr_logfile")} <= section_warnings(result) | {
        (w.place.split(": ")[0], w.place.split(": ")[-1]) for w in result.warnings if w.level == "warning"
    }
    site = {w for w in section_warnings(result) if w[0] not in ("[program:theprogramname]", "[program:worker]")}
    assert site == SITE_WARNINGS


def test_supervisord_agrees_with_supervisor_itself(tmp_path):
    """The same file through supervisor's own ServerOptions: names, commands, environments, directories, users,
    restart modes, exit codes, signals, logs; and supervisord's start order respects every dependency."""

    from supervisor import datatypes
    from supervisor.options import ServerOptions

    conf = sample(tmp_path, runnable=True)
    result = supervisord.convert(str(conf))
    ours = by_name(result)
    options = ServerOptions()
    options.configfile = str(conf)
    options.here = str(conf.parent)
    options.process_config(do_usage=False)
    order = []
    for group in options.process_group_configs:  # sorted as supervisord starts them
        for pc in group.process_configs:
            order.append(pc.name)
            e = ours[pc.name]
            words = shlex.split(pc.command)
            assert argv(e) == words[1:]
            assert os.path.normpath(e["file"]) == os.path.normpath(
                words[0] if "/" in words[0] else shutil.which(words[0]) or ""
            )
            assert env(e) == pc.environment
            assert e.get("cwd") == (os.path.normpath(pc.directory) if pc.directory else None)
            assert e.get("user") == (pwd.getpwuid(pc.uid).pw_name if pc.uid is not None else None)
            mode = {
                datatypes.RestartUnconditionally: "always",
                datatypes.RestartWhenExitUnexpected: "on-failure",
                False: None,
            }[pc.autorestart]
            assert e.get("restart") == mode and e["no_auto_restart"] is (pc.autorestart is False)
            if mode == "on-failure":
                assert e.get("success_exit_codes", [0]) == pc.exitcodes
            assert e.get("stop_signal", "SIGTERM") == pc.stopsignal.name
            assert e.get("stop_timeout", "10s") == f"{pc.stopwaitsecs}s"
            assert e.get("min_uptime", "1s") == f"{pc.startsecs}s"
            if isinstance(pc.stdout_logfile, str):
                assert e["log"] == os.path.normpath(pc.stdout_logfile)
    assert sorted(order) == sorted(ours)
    for name, e in ours.items():
        for dep in e.get("dependencies", []):
            assert order.index(dep) < order.index(name), (dep, name)


@pytest.mark.parametrize(
    "text",
    ['A="1",B="2"', "KEY=val,KEY2=val2", "A=\"x, y\",B='z'", "PATH=/usr/bin:/bin,X=a.b+c-d(e)", "", "A=1,"],
)
def test_supervisord_environment_syntax_is_supervisords(text):
    from supervisor.datatypes import dict_of_key_value_pairs

    assert supervisord.key_value_pairs(text, "x") == dict_of_key_value_pairs(text)


def test_supervisord_environment_errors_like_supervisord():
    from supervisor.datatypes import dict_of_key_value_pairs

    with pytest.raises(ValueError):
        dict_of_key_value_pairs("A")
    with pytest.raises(ImporterError, match="x: unexpected end of key/value pairs"):
        supervisord.key_value_pairs("A", "x")


def write_conf(tmp_path: Path, text: str) -> str:
    f = tmp_path / "s.conf"
    f.write_text(text)
    return str(f)


@pytest.mark.parametrize(
    "value, fields",
    [
        ("true", {"restart": "always"}),
        ("false", {"no_auto_restart": True}),
        ("unexpected", {"restart": "on-failure"}),
    ],
)
def test_supervisord_autorestart(tmp_path, value, fields):
    result = supervisord.convert(write_conf(tmp_path, f"[program:x]\ncommand=/bin/sleep 1\nautorestart={value}\n"))
    e = result.entries[0]
    for key, want in fields.items():
        assert e[key] == want
    assert ("no_auto_restart" in fields) is e["no_auto_restart"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("[program:x]\nautorestart=true\n", r"\[program:x\]: no `command`"),
        ("[program:x]\ncommand=/bin/sleep %(nope)s\n", r"\[program:x\]: command: .* cannot be expanded"),
        ("[program:x]\ncommand=no-such-program-here 1\n", r"\[program:x\]: command: 'no-such-program-here' is not"),
        ("[program:x]\ncommand=/bin/sleep 1\nautorestart=sometimes\n", "invalid autorestart value"),
        ("[program:x]\ncommand=/bin/sleep 1\nnumprocs=2\n", r"%\(process_num\) must be in it"),
        ("[program:x]\ncommand=/bin/sleep 1\nstopsignal=NOPE\n", r"stopsignal: unknown signal .NOPE."),
        (
            "[program:x]\ncommand=/bin/sleep\n[group:g]\nprograms=x,y\n",
            r"\[group:g\]: programs: names unknown program y",
        ),
        ("[program:x y]\ncommand=/bin/sleep\n", "invalid name"),
        ("[program:x]\ncommand=/bin/sleep\n  oops\nnot a line\n", "cannot parse"),
    ],
)
def test_supervisord_errors_are_one_line(tmp_path, text, fragment):
    with pytest.raises(ImporterError, match=fragment) as info:
        supervisord.convert(write_conf(tmp_path, text))
    assert "\n" not in str(info.value)


def test_supervisord_unknown_keys_and_sections_warn(tmp_path):
    result = supervisord.convert(
        write_conf(
            tmp_path,
            "[program:x]\ncommand=/bin/sleep 1\ncolour=blue\n[eventlistener:e]\ncommand=/bin/cat\nevents=TICK_5\n"
            "[fcgi-program:f]\ncommand=/bin/cat\n[whatever]\na=1\n[group:g]\nprograms=x\nlabel=1\n",
        )
    )
    assert section_warnings(result) == {
        ("[program:x]", "colour"),
        ("[eventlistener:e]", "[eventlistener:e]"),
        ("[fcgi-program:f]", "[fcgi-program:f]"),
        ("[whatever]", "[whatever]"),
        ("[group:g]", "label"),
    }
    assert [e["name"] for e in result.entries] == ["x"]


def test_supervisord_names_shared_by_two_groups_get_supervisorctls_names(tmp_path):
    result = supervisord.convert(
        write_conf(
            tmp_path,
            "[program:a]\ncommand=/bin/sleep 1\nprocess_name=w\n[program:b]\ncommand=/bin/sleep 2\nprocess_name=w\n",
        )
    )
    assert [e["name"] for e in result.entries] == ["a:w", "b:w"]


def test_supervisord_groups(tmp_path):
    result = supervisord.convert(
        write_conf(
            tmp_path,
            "[program:q]\ncommand=/bin/sleep %(group_name)s\nnumprocs=2\nprocess_name=q%(process_num)d\n"
            "[program:a]\ncommand=/bin/sleep %(group_name)s\n[program:b]\ncommand=/bin/sleep 1\n"
            "[group:7]\nprograms=a,b\n",
        )
    )
    assert [(e["name"], e.get("groups"), argv(e)) for e in result.entries] == [
        ("q0", ["q"], ["q"]),
        ("q1", ["q"], ["q"]),
        ("a", ["group-7"], ["7"]),  # supervisord's group name in expansions, a valid pmon3 group name in groups
        ("b", ["group-7"], ["1"]),
    ]
    assert section_warnings(result) == {("[group:7]", "[group:7]")}


def test_supervisord_includes(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "a.conf").write_text(
        "[program:a]\ncommand=%(here)s/run.sh\n[include]\nfiles=nested/*.conf\n"
    )
    (tmp_path / "conf.d" / "run.sh").write_text("#!/bin/sh\n")
    main = write_conf(tmp_path, "[include]\nfiles = conf.d/*.conf missing/*.conf\n")
    result = supervisord.convert(main)
    assert [(e["name"], e["file"]) for e in result.entries] == [("a", f"{tmp_path}/conf.d/run.sh")]
    assert (f"{tmp_path}/conf.d/a.conf", "[include]") in {
        tuple(w.place.split(": ")[:2]) for w in result.warnings if w.level == "warning"
    }
    assert any("no file matches" in w.message and "missing" in w.message for w in result.warnings)


def test_supervisord_program_environment_expands_in_later_keys(tmp_path):
    from supervisor.options import ServerOptions

    text = "[supervisord]\n[program:x]\nenvironment=FOO=bar\ncommand=/bin/echo %(ENV_FOO)s\n"
    result = supervisord.convert(write_conf(tmp_path, text))
    assert argv(result.entries[0]) == ["bar"]
    options = ServerOptions()
    options.configfile, options.here = str(tmp_path / "s.conf"), str(tmp_path)
    options.process_config(do_usage=False)
    assert options.process_group_configs[0].process_configs[0].command == "/bin/echo bar"


def test_supervisord_section_gives_programs_environment_directory_user(tmp_path, monkeypatch):
    monkeypatch.setenv("GLOBAL", "from the environment")  # [supervisord] environment wins, as in supervisord
    result = supervisord.convert(
        write_conf(
            tmp_path,
            "[supervisord]\nenvironment=GLOBAL=1,SHARED=g\ndirectory=/tmp\nuser=nobody\nlogfile=/tmp/x.log\n"
            "[program:x]\ncommand=/bin/echo %(ENV_GLOBAL)s\nenvironment=SHARED=p\n",
        )
    )
    e = result.entries[0]
    assert (argv(e), env(e), e["cwd"], e["user"]) == (["1"], {"GLOBAL": "1", "SHARED": "p"}, "/tmp", "nobody")
    assert section_warnings(result) == set()


@pytest.mark.parametrize(
    "keys, log, warned_keys",
    [
        ("", None, set()),
        ("stdout_logfile=NONE\n", None, {"stdout_logfile"}),
        ("stdout_logfile=NONE\nstderr_logfile=NONE\n", "/dev/null", set()),
        ("stdout_logfile=NONE\nredirect_stderr=true\n", "/dev/null", set()),
        ("stdout_logfile=%(here)s/o.log\n", "{dir}/o.log", set()),
        ("stdout_logfile=%(here)s/o.log\nstderr_logfile=NONE\n", "{dir}/o.log", {"stderr_logfile"}),
        ("stdout_logfile=%(here)s/o.log\nstderr_logfile=%(here)s/e.log\n", "{dir}/o.log", {"stderr_logfile"}),
        ("stderr_logfile=%(here)s/e.log\n", "{dir}/e.log", {"stderr_logfile"}),
        ("stdout_logfile=syslog\n", None, {"stdout_logfile"}),
    ],
)
def test_supervisord_one_log(tmp_path, keys, log, warned_keys):
    result = supervisord.convert(write_conf(tmp_path, f"[program:x]\ncommand=/bin/sleep 1\n{keys}"))
    assert result.entries[0].get("log") == (log.format(dir=tmp_path) if log else None)
    assert section_warnings(result) == {("[program:x]", k) for k in warned_keys}


def test_supervisord_user_by_uid(tmp_path):
    result = supervisord.convert(write_conf(tmp_path, "[program:x]\ncommand=/bin/sleep 1\nuser=65534\n"))
    assert result.entries[0]["user"] == pwd.getpwuid(65534).pw_name


def test_supervisord_startsecs_zero_is_not_a_hot_loop(tmp_path):
    result = supervisord.convert(write_conf(tmp_path, "[program:x]\ncommand=/bin/sleep 1\nstartsecs=0\n"))
    assert "min_uptime" not in result.entries[0]
    assert section_warnings(result) == {("[program:x]", "startsecs")}


# -- Procfile ----------------------------------------------------------------------------------------------

PROCFILE = DATA / "procfile" / "Procfile"


def test_procfile(tmp_path):
    result = procfile.convert(str(PROCFILE))
    loads_back(result, tmp_path)
    here = str(PROCFILE.parent)
    e = by_name(result)
    assert list(e) == ["web", "worker", "clock", "release"]
    web = e["web"]
    assert (web["file"], argv(web)) == (which("python3"), ["-m", "http.server", "5000", "--bind", "127.0.0.1"])
    assert env(web) == {"PORT": "5000"}
    assert (web["cwd"], web["env_file"]) == (here, f"{here}/.env")
    assert (e["worker"]["file"], argv(e["worker"])) == (which("sleep"), ["3600"])
    assert env(e["worker"]) == {"PORT": "5100", "WORKER_CONCURRENCY": "4"}
    clock = e["clock"]
    assert (clock["file"], argv(clock)) == (
        f"{here}/bin/clock",
        ["--interval", "${INTERVAL:-60}", "--tz", "UTC $notexpanded"],
    )
    assert env(clock) == {"PORT": "5200"}
    assert argv(e["release"]) == ["--once", "&&", "echo", "done"]
    assert [w.message[:33] for w in result.warnings if w.place.endswith("release")] == [
        "shell syntax (&&, |, ;, <, >, $(.",
        "Heroku runs `release` once per de",
    ]
    assert {w.place.split(": ", 1)[1] for w in result.warnings if w.level == "warning"} == {"clock", "release"}
    assert [w.message.split(" ")[0] for w in result.warnings if w.place.endswith("clock")] == ["$INTERVAL"]


def test_procfile_port_base(tmp_path):
    result = procfile.convert(str(PROCFILE), port_base=8000)
    assert [env(e)["PORT"] for e in result.entries] == ["8000", "8100", "8200", "8300"]
    assert argv(result.entries[0])[2] == "8000"


@pytest.mark.parametrize(
    "command, args, variables",
    [
        ("run $PORT", ["5000"], []),
        ("run ${PORT}", ["5000"], []),
        ('run "--port=$PORT"', ["--port=5000"], []),
        ("run '$PORT'", ["$PORT"], []),
        ("run \\$PORT", ["$PORT"], []),
        ("run $HOME/x", ["$HOME/x"], ["HOME"]),
        ("run a#b # comment", ["a#b"], []),
        ("run '# not a comment'", ["# not a comment"], []),
    ],
)
def test_procfile_words_as_sh_splits_them(tmp_path, command, args, variables):
    f = tmp_path / "Procfile"
    (tmp_path / "run").write_text("#!/bin/sh\n")
    (tmp_path / "run").chmod(0o755)
    f.write_text(f"p: ./{command}\n")
    result = procfile.convert(str(f))
    assert argv(result.entries[0]) == args
    assert [w.message.split(" ")[0] for w in result.warnings if w.level == "warning"] == [f"${v}" for v in variables]


def test_procfile_program_not_found_names_the_line(tmp_path):
    f = tmp_path / "Procfile"
    f.write_text("web: /bin/sleep 1\n\n# comment\nworker: no-such-program-here --x\n")
    with pytest.raises(ImporterError, match=r"Procfile:4: worker: 'no-such-program-here' is not found in PATH"):
        procfile.convert(str(f))


def test_procfile_odd_lines_are_warned(tmp_path):
    f = tmp_path / "Procfile"
    f.write_text("web /bin/sleep 1\nok: /bin/sleep 2\nbad name: /bin/true\n")
    result = procfile.convert(str(f))
    assert [e["name"] for e in result.entries] == ["ok"]
    assert [w.place for w in result.warnings] == [f"{f}:1", f"{f}:3"]


def test_procfile_duplicate_names_are_an_error(tmp_path):
    f = tmp_path / "Procfile"
    f.write_text("web: /bin/sleep 1\nweb: /bin/sleep 2\n")
    with pytest.raises(
        ImporterError, match=r"Procfile:2: web: duplicate process name 'web' \(also .*Procfile:1: web\)"
    ):
        procfile.convert(str(f))
