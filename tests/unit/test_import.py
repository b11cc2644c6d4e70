"""`pmon3 import`: PM2 ecosystem files, supervisord configs and Procfiles as pmon3 process configs.

Every result must load with procconfig.load in each format, and every source key without an equivalent must be
named in a warning. The supervisord sample is supervisor's own (echo_supervisord_conf of the test dependency), and
its programs are cross-checked with supervisor's own parser.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from pmon3 import procconfig
from pmon3.daemon import policy
from pmon3.importers import common, pm2
from pmon3.importers.common import ImporterError, ImportResult

DATA = Path(__file__).with_name("data") / "import"
BIN = Path(sys.executable).parent
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


# -- helpers -----------------------------------------------------------------------------------------------


def loads_back(result: ImportResult, tmp_path: Path) -> list[dict[str, Any]]:
    """Write the entries in every format, load each with procconfig.load, and check they come back the same;
    also check pmond's own parsing of args, env_vars and the restart keys accepts them."""
    from pmon3.daemon.authz import check_name
    from pmon3.daemon.spec import env_list, split_words

    expected = []
    for e in result.entries:
        want = {k: v for k, v in e.items() if not (k == "no_auto_restart" and v is False)}
        want.setdefault("dependencies", [])
        want.setdefault("groups", [])
        expected.append(want)
        check_name(e["name"])
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
    return result.entries


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
    ("apps[0] (api)", "instances"),
    ("apps[0] (api)", "exec_mode"),
    ("apps[0] (api)", "max_memory_restart"),
    ("apps[0] (api)", "max_restarts"),
    ("apps[0] (api)", "error_file"),
    ("apps[1] (worker)", "cron_restart"),
    ("apps[2] (ticker)", "wait_ready"),
    ("apps[2] (ticker)", "listen_timeout"),
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
