"""PM2 ecosystem files -> pmon3 process config entries.

Read the way PM2 (7.x) reads them (lib/Common.js parseConfig, lib/API/schema.json): `.json` and `.yaml`/`.yml`
directly. A `.json` that is not strict JSON (comments, trailing commas) is evaluated by node as a JavaScript
expression, as PM2 evaluates it, in a fresh context without `require` or `process` (node's vm: it keeps an ordinary
file from reaching anything, but is no security boundary). `.js`/`.cjs`/`.mjs` are `require()`d by node and
`module.exports.apps` (or `module.exports`) taken, so the ecosystem file's code runs, as it does under PM2. The path
reaches node as an argv element, never inside the JavaScript source, and no shell is involved.

The apps are `apps` (or `pm2`) of the top level, a bare list, or one app object. Each app becomes one entry; every
PM2 key is either mapped, or listed in a warning (an info when its value is PM2's default, so nothing is lost).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
from typing import Any, Callable, Optional

from .. import limits
from .common import (
    MAX_INSTANCES,
    ImporterError,
    ImportResult,
    absolute,
    check_program,
    check_user,
    duration,
    entry,
    group_name,
    place,
    process_name,
    resolve_program,
)

# PM2's lib/API/interpreter.json: the interpreter of a script without `interpreter`, by extension.
INTERPRETERS = {
    ".sh": "bash",
    ".py": "python",
    ".rb": "ruby",
    ".php": "php",
    ".pl": "perl",
    ".js": "node",
    ".coffee": "coffee",
    ".ls": "lsc",
    ".ts": "bun",
    ".tsx": "bun",
}
# schema.json aliases -> the key PM2 uses internally.
ALIASES = {
    "exec": "script",
    "interpreter": "exec_interpreter",
    "interpreter_args": "node_args",
    "interpreterArgs": "node_args",
    "out": "out_file",
    "output": "out_file",
    "out_log": "out_file",
    "error": "error_file",
    "err": "error_file",
    "err_file": "error_file",
    "err_log": "error_file",
    "log": "log_file",
    "pid": "pid_file",
    "cron": "cron_restart",
    "combine_logs": "merge_logs",
    "user": "uid",
}
# PM2 stops a process with SIGINT (PM2_KILL_SIGNAL), then SIGKILL after kill_timeout.
STOP_SIGNAL = "SIGINT"
# exp_backoff_restart_delay grows up to 15 s in PM2 (lib/God.js).
EXP_BACKOFF_CAP_MS = 15000
NODE_TIMEOUT = 30.0


class _App:
    """One app being converted: where it is, and the pmon3 fields found so far."""

    def __init__(self, result: ImportResult, label: str, base_dir: str) -> None:
        self.result = result
        self.label = label
        self.base_dir = base_dir
        self.fields: dict[str, Any] = {}

    def at(self, key: str) -> str:
        return place(self.label, key)


Rule = Callable[[_App, str, Any], None]


def _handled(app: _App, key: str, value: Any) -> None:
    """Read by convert_app itself (it needs several keys at once)."""


def _to(pmon3_key: str, convert: Callable[[Any, str], Any]) -> Rule:
    def rule(app: _App, key: str, value: Any) -> None:
        app.fields[pmon3_key] = convert(value, app.at(key))

    return rule


def _unsupported(message: str, *defaults: Any) -> Rule:
    """No pmon3 equivalent: a warning, or an info when the value is PM2's default (nothing is lost)."""

    def rule(app: _App, key: str, value: Any) -> None:
        if any(_is_default(value, d) for d in defaults):
            app.result.info(app.at(key), f"{_show(value)} is PM2's default: nothing to map")
        else:
            app.result.warn(app.at(key), message)

    return rule


def _note(message: str) -> Rule:
    def rule(app: _App, key: str, value: Any) -> None:
        app.result.info(app.at(key), message)

    return rule


def _ms(value: Any, where: str) -> int:
    """PM2 durations: milliseconds (a number or digits), or a number with h, m or s (min_uptime's format);
    ms is accepted too."""
    if isinstance(value, bool):
        raise ImporterError(f"{where}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return int(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
    if not m:
        raise ImporterError(f"{where}: invalid duration {value!r} (milliseconds, or e.g. 10s, 2m, 1h)")
    return int(float(m.group(1)) * {None: 1, "ms": 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)])


def _max_memory(app: _App, key: str, value: Any) -> None:
    """PM2's max_memory_restart (bytes, or 300M, 1G, 512K: powers of 1024, as pmon3's sizes) as pmon3's
    max_memory, in its shortest exact spelling. A value pmond would refuse is left out with a warning."""
    try:
        size = limits.parse_size(value, "max_memory_restart")
    except limits.LimitError:
        app.result.warn(
            app.at(key), f"{_show(value)} is not a size (bytes, or e.g. 300M, 1G, 512K): left out, no memory limit"
        )
        return
    if size < limits.MAX_MEMORY_MIN:
        app.result.warn(
            app.at(key),
            f"{_show(value)} is {size} bytes, below pmon3's smallest max_memory "
            f"({limits.size_text(limits.MAX_MEMORY_MIN)}): left out, no memory limit",
        )
        return
    app.fields["max_memory"] = limits.size_text(size)
    app.result.info(
        app.at(key),
        f"max_memory {app.fields['max_memory']}: pmon3 counts the whole process tree's resident memory (PM2: the "
        "process's own) and restarts after two looks above it, limits.memory_check_interval apart",
    )


def _stop_timeout(value: Any, where: str) -> str:
    return duration(_ms(value, where))


# Every PM2 app key (lib/API/schema.json) and what becomes of it. A key pmon3 cannot do yet is an _unsupported
# line: when pmon3 gains the feature, that line becomes a _to(...) mapping.
KEYS: dict[str, Rule] = {
    "script": _handled,
    "name": _handled,
    "cwd": _handled,
    "args": _handled,
    "exec_interpreter": _handled,
    "node_args": _handled,
    "env": _handled,
    "port": _handled,
    "out_file": _handled,
    "error_file": _handled,
    "log_file": _handled,
    "disable_logs": _handled,
    "autorestart": _handled,
    "stop_exit_codes": _handled,
    "restart_delay": _handled,
    "exp_backoff_restart_delay": _handled,
    "uid": _handled,
    "namespace": _handled,
    "treekill": _handled,
    "min_uptime": _to("min_uptime", lambda v, w: duration(_ms(v, w))),
    "kill_timeout": _to("stop_timeout", _stop_timeout),
    "instances": _handled,
    "exec_mode": _handled,
    "max_memory_restart": _max_memory,
    "max_restarts": _unsupported(
        "pmon3 has no per-process restart limit: quick deaths wait restart_delay, doubled up to max_restart_delay; "
        "flap_detection in config.yml stops restarting flapping processes, for all of them"
    ),
    "listen_timeout": _handled,
    "wait_ready": _handled,
    "shutdown_with_message": _unsupported("pmon3 stops processes with a signal only", False),
    "cron_restart": _unsupported("pmon3 has no scheduled restarts (a cron job can run `pmon3 restart NAME`)", 0, "0"),
    "autostart": _unsupported(
        "pmon3 starts every config entry at boot and on `pmon3 init`; there is no key to create it stopped", True
    ),
    "watch": _unsupported("pmon3 does not watch files for changes", False),
    "ignore_watch": _unsupported("pmon3 does not watch files for changes"),
    "watch_options": _unsupported("pmon3 does not watch files for changes"),
    "watch_delay": _unsupported("pmon3 does not watch files for changes"),
    "pid_file": _unsupported("pmon3 writes no pid files (`pmon3 desc NAME --json` shows the pid)"),
    "log_date_format": _unsupported("pmon3 logs the output as it is, without timestamps"),
    "time": _unsupported("pmon3 logs the output as it is, without timestamps", False),
    "log_type": _unsupported("pmon3 logs the output as it is (no JSON log lines)"),
    "merge_logs": _note(
        "pmon3 has one log per process; instances write to log: when it is set, else each to its own NAME@k.log"
    ),
    "gid": _unsupported("pmon3 runs the process with its user's own groups"),
    "filter_env": _note("pmon3 never passes its own environment on: the process gets PATH, HOME, USER, ... and env"),
    "name_prefix": _unsupported("PM2-specific: no meaning for pmon3"),
    "install_url": _unsupported("PM2-specific: no meaning for pmon3"),
    "source_map_support": _unsupported("PM2-specific: no meaning for pmon3", True),
    "disable_source_map_support": _unsupported("PM2-specific: no meaning for pmon3", False),
    "vizion": _unsupported("PM2-specific: no meaning for pmon3", True),
    "pmx": _unsupported("PM2-specific: no meaning for pmon3", True),
    "automation": _unsupported("PM2-specific: no meaning for pmon3", True),
    "trace": _unsupported("PM2-specific: no meaning for pmon3", False),
    "disable_trace": _unsupported("PM2-specific: no meaning for pmon3", True),
    "v8": _unsupported("PM2-specific: no meaning for pmon3", False),
    "event_loop_inspector": _unsupported("PM2-specific: no meaning for pmon3", False),
    "deep_monitoring": _unsupported("PM2-specific: no meaning for pmon3", False),
    "io": _unsupported("PM2-specific: no meaning for pmon3"),
    "post_update": _unsupported("PM2-specific: no meaning for pmon3"),
    "force": _unsupported("PM2-specific: no meaning for pmon3", False),
    "append_env_to_name": _unsupported("pmon3 does not rename processes by environment", False),
    "increment_var": _handled,
    "instance_var": _handled,
    "windowsHide": _unsupported("PM2-specific: no meaning for pmon3", True),
    "kill_retry_time": _unsupported("pmon3 sends SIGKILL once after stop_timeout", 100),
    "write": _unsupported("PM2-specific: no meaning for pmon3"),
    "execute_command": _unsupported("PM2-specific: no meaning for pmon3"),
    "username": _unsupported("PM2 fills this in itself; `user` sets the run user"),
}

_ENV_KEY = re.compile(r"env_\S+")
# Config.js of PM2: how a string becomes an argument list for `args` and `node_args`.
_PM2_WORDS = re.compile(r"""[^\s"'=]+="[^"]*"|[^\s"'=]+='[^']*'|"[^"]*"|'[^']*'|\S+""")

# Evaluates an ecosystem file the way PM2 does and prints JSON on the real stdout (the file's own output, if any,
# goes to stderr). argv: mode ("require" or "json") and the absolute path.
NODE_SCRIPT = r"""
'use strict';
const realWrite = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => process.stderr.write(chunk, ...rest);
const [mode, file] = process.argv.slice(1);
const unwrap = (c) => (c && c.apps === undefined && c.default !== undefined ? c.default : c); // ES modules
const done = (conf) => realWrite(JSON.stringify(unwrap(conf) ?? null) + '\n', () => process.exit(0));
const fail = (e) => {
  process.stderr.write('\npmon3-import-error: ' + String((e && e.message) || e).split('\n')[0] + '\n');
  process.exit(3);
};
try {
  if (mode === 'json') {
    const text = require('fs').readFileSync(file, 'utf8');
    done(require('vm').runInNewContext('(' + text + ')', {}, { filename: file, timeout: 1000 }));
  } else {
    let conf;
    try {
      conf = require(file);
    } catch (e) {
      if (!e || e.code !== 'ERR_REQUIRE_ESM') throw e;
      conf = null;
      import(require('url').pathToFileURL(file).href).then(done, fail);
    }
    if (conf !== null) done(conf);
  }
} catch (e) {
  fail(e);
}
"""


def convert(path: str, *, env: Optional[str] = None) -> ImportResult:
    """The apps of the PM2 ecosystem file at `path` as pmon3 entries; `env` picks `env_<env>` (PM2's --env)."""
    result = ImportResult()
    data = load(path, result)
    base_dir = os.path.dirname(os.path.abspath(path))
    apps: Any
    if isinstance(data, list):
        apps = data
    elif isinstance(data, dict):
        if "apps" in data or "pm2" in data:
            apps = data["apps"] if "apps" in data else data["pm2"]
            for key in data:
                if key == "deploy":
                    result.warn(place(path, key), "PM2 deployments have no pmon3 equivalent: ignored")
                elif key not in ("apps", "pm2"):
                    result.warn(place(path, key), "not a PM2 ecosystem key: ignored")
        else:
            apps = data  # one app, as PM2 accepts
    else:
        raise ImporterError(f"{path}: expected `apps` (a list of apps), a list, or one app")
    if isinstance(apps, dict):
        apps = [apps]
    if not isinstance(apps, list):
        raise ImporterError(f"{path}: `apps` must be a list of apps")
    result.info(
        path,
        f"PM2 stops processes with {STOP_SIGNAL}: every entry gets stop_signal {STOP_SIGNAL} "
        "(SIGKILL follows after kill_timeout, else pmon3's stop_timeout)",
    )
    for i, app in enumerate(apps):
        if not isinstance(app, dict):
            raise ImporterError(f"{place(path, f'apps[{i}]')}: an app must be a mapping")
        _convert_app(app, f"apps[{i}]", path, base_dir, env, result)
    return result


def load(path: str, result: ImportResult) -> Any:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".js", ".cjs", ".mjs"):
        return _node(path, "require")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ImporterError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImporterError(f"{path}: not UTF-8 text") from None
    if ext in (".yml", ".yaml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ImporterError(f"{path}: cannot parse YAML: {' '.join(str(exc).split())}") from None
    if ext == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            if shutil.which("node") is None:
                raise ImporterError(f"{path}: cannot parse JSON: {exc}") from None
        # PM2 evaluates .json files as JavaScript: comments, trailing commas and bare keys are common.
        result.info(path, "not strict JSON: evaluated by node as a JavaScript expression, as PM2 evaluates .json files")
        return _node(path, "json")
    raise ImporterError(f"{path}: unknown ecosystem file type {ext!r} (.json, .yaml, .yml, .js, .cjs or .mjs)")


def _node(path: str, mode: str) -> Any:
    node = shutil.which("node")
    if node is None:
        raise ImporterError(
            f"{path}: node is not installed (not in PATH): it is needed to read a JavaScript ecosystem file; "
            "install node, or write the apps as JSON or YAML"
        )
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise ImporterError(f"{path}: no such file")
    try:
        proc = subprocess.run(
            [node, "-e", NODE_SCRIPT, "--", mode, full],
            cwd=os.path.dirname(full),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise ImporterError(f"{path}: node did not finish evaluating it within {NODE_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise ImporterError(f"{path}: cannot run {node}: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        marked = [line.split(":", 1)[1].strip() for line in lines if line.startswith("pmon3-import-error:")]
        reason = marked[-1] if marked else (lines[-1] if lines else f"exit status {proc.returncode}")
        raise ImporterError(f"{path}: node could not evaluate it: {reason}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise ImporterError(f"{path}: node printed no JSON for it") from None


def _convert_app(
    raw: dict[str, Any], index: str, path: str, base_dir: str, env_name: Optional[str], result: ImportResult
) -> None:
    # Aliases first, as PM2's Config.js; the key as written stays in every warning.
    app: dict[str, tuple[str, Any]] = {}
    repeated: list[tuple[str, str]] = []
    for key, value in raw.items():
        key = str(key)
        canonical = ALIASES.get(key, key)
        if canonical in app:
            repeated.append((key, app[canonical][0]))
            continue
        app[canonical] = (key, value)
    for alias in ("cmd", "command"):  # "JSON conf: alias cmd/command to script"
        if alias in app and "script" not in app:
            app["script"] = app.pop(alias)

    def get(key: str, default: Any = None) -> Any:
        return app[key][1] if key in app else default

    script = get("script")
    if not isinstance(script, str) or not script.strip():
        raise ImporterError(f"{place(path, index)}: `script` is required (the file PM2 runs)")
    name = get("name")
    if name is None:
        name = os.path.basename(script)
        dot = name.rfind(".")
        name = name[:dot] if dot > 0 else name  # PM2's renderApplicationName
    label = place(path, f"{index} ({name})")
    a = _App(result, label, base_dir)
    for key, first in repeated:
        result.warn(a.at(key), f"the same setting as {first!r}: ignored")
    a.fields["name"] = process_name(str(name), label, result)

    cwd = absolute(str(get("cwd")), base_dir) if get("cwd") else base_dir
    a.fields["cwd"] = cwd
    if not get("cwd"):
        result.info(a.at("cwd"), f"not set: the ecosystem file's directory {cwd}")
    elif not os.path.isdir(cwd):
        result.warn(a.at(app["cwd"][0]), f"{cwd} does not exist on this machine")

    args = _words(get("args"), a.at("args"))
    if script == "serve":
        raise ImporterError(f"{a.at('script')}: PM2's static file server (script: serve) has no pmon3 equivalent")
    if " " in script.strip():
        words = _split(script.strip(), a.at(app["script"][0]))
        script, args = words[0], words[1:] + args
        result.warn(
            a.at(app["script"][0]),
            "a command line: PM2 runs it through bash -c, pmon3 runs no shell: split into the program and its "
            "arguments (shell syntax such as $VAR, | or && is not interpreted)",
        )
    script_path = absolute(script, cwd)
    if not os.path.exists(script_path) and "/" not in script and shutil.which(script):
        script_path = os.path.abspath(str(shutil.which(script)))  # PM2 falls back to PATH
    if not os.path.exists(script_path):
        result.warn(a.at(app["script"][0]), f"{script_path} does not exist on this machine")

    env = _environment(app, env_name, a)
    file, argv = _command(app, script_path, args, env, a)

    _logs(app, cwd, a)
    _restart(app, a)
    _user(app, a)
    _instances(app, file, script_path, env, a)
    _readiness(app, a)
    namespace = get("namespace")
    if namespace not in (None, "", "default"):
        group = group_name(str(namespace), a.at(app["namespace"][0]), result)
        a.fields["groups"] = [group]
        result.info(a.at(app["namespace"][0]), f"becomes the pmon3 group {group}")
    elif "namespace" in app:
        result.info(a.at(app["namespace"][0]), "PM2's default namespace: no group")
    treekill = get("treekill")
    if treekill is not None:
        if treekill is False or str(treekill).lower() == "false":
            result.warn(a.at(app["treekill"][0]), "pmon3 always signals the whole process group")
        else:
            result.info(a.at(app["treekill"][0]), "pmon3 always signals the whole process group, as this asks")
    a.fields.setdefault("stop_signal", STOP_SIGNAL)

    for canonical, (key, value) in app.items():
        if _ENV_KEY.fullmatch(canonical):
            continue  # read by _environment
        rule = KEYS.get(canonical)
        if rule is None:
            result.warn(a.at(key), "not a PM2 app key: ignored")
        else:
            rule(a, key, value)
    result.add(entry(file=file, argv=argv, env=env, where=label, result=result, **a.fields), label)


def _environment(app: dict[str, tuple[str, Any]], env_name: Optional[str], a: _App) -> dict[str, str]:
    """env, then env_<env_name> over it (PM2's mergeEnvironmentVariables), then `port` as PORT."""
    env: dict[str, str] = {}
    layers = ["env"] + ([f"env_{env_name}"] if env_name else [])
    for layer in layers:
        if layer not in app:
            if layer != "env":
                a.result.warn(a.at(layer), f"no {layer} in this app (PM2: environment [{env_name}] is not defined)")
            continue
        key, value = app[layer]
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ImporterError(f"{a.at(key)}: expected a mapping of environment variables")
        env.update({str(k): _js_string(v) for k, v in value.items()})
    for canonical, (key, _) in app.items():
        if _ENV_KEY.fullmatch(canonical) and canonical not in layers:
            hint = f"--env {canonical[4:]}" if env_name is None else f"only env_{env_name} was asked for"
            a.result.info(a.at(key), f"another environment: not applied ({hint})")
    if "port" in app:
        key, port = app["port"]
        env["PORT"] = _js_string(port)
        a.result.info(a.at(key), "becomes the environment variable PORT, as in PM2")
    return env


def _command(
    app: dict[str, tuple[str, Any]], script: str, args: list[str], env: dict[str, str], a: _App
) -> tuple[str, list[str]]:
    """The program and its arguments: the interpreter with its own arguments and the script, or the script."""
    given = app["exec_interpreter"][1] if "exec_interpreter" in app else None
    key = app["exec_interpreter"][0] if "exec_interpreter" in app else "interpreter"
    interpreter_args = _words(app["node_args"][1], a.at(app["node_args"][0])) if "node_args" in app else []
    if given is not None and not isinstance(given, str):
        raise ImporterError(f"{a.at(key)}: expected a program name or path")
    if given:
        name = given.strip()
        if "@" in name and os.path.basename(name).startswith("node@"):
            a.result.warn(a.at(key), f"{name}: PM2's node version selection is not supported: using node from PATH")
            name = "node"
    else:
        ext = os.path.splitext(script)[1]
        name = INTERPRETERS.get(ext, "")
        if name == "python" and shutil.which("python") is None and shutil.which("python3"):
            name = "python3"  # as PM2 does
        if name == "bun" and shutil.which("bun") is None:
            name = "node"
            interpreter_args.append("--experimental-strip-types")
            a.result.warn(a.at("script"), "bun is not installed: run with node and --experimental-strip-types")
        if not name:
            name = "none" if _is_binary(script) else "node"
        how = "a binary: run directly" if name == "none" else f"run with {name}, as PM2 does for it"
        a.result.info(a.at("script"), f"no interpreter given: {how}")
    if name == "none":
        if interpreter_args:
            a.result.warn(a.at(app["node_args"][0]), "interpreter arguments without an interpreter: ignored")
        check_program(script, a.at("script"), a.result)
        return script, args
    interpreter = resolve_program(name, a.at(key), a.base_dir)
    if "/" in name:
        check_program(interpreter, a.at(key), a.result)
    if "python" in os.path.basename(interpreter):
        env["PYTHONUNBUFFERED"] = "1"  # PM2 sets it for python interpreters
        a.result.info(a.at(key), "PYTHONUNBUFFERED=1 is set, as PM2 does for python")
    return interpreter, [*interpreter_args, script, *args]


def _logs(app: dict[str, tuple[str, Any]], cwd: str, a: _App) -> None:
    """pmon3 has one log for stdout and stderr: log_file, else out_file, else error_file."""

    def path_of(key: str) -> Optional[str]:
        value = app[key][1] if key in app else None
        if value is None or value is False or value is True or value == "":
            return None
        text = str(value)
        return "/dev/null" if text in ("NULL", "/dev/null") else absolute(text, cwd)

    if "disable_logs" in app and app["disable_logs"][1] not in (False, "false", None):
        a.fields["log"] = "/dev/null"
        a.result.info(a.at(app["disable_logs"][0]), "the log is /dev/null")
        for key in ("log_file", "out_file", "error_file"):
            if key in app:
                a.result.warn(a.at(app[key][0]), "disable_logs is set: ignored")
        return
    combined, out, err = path_of("log_file"), path_of("out_file"), path_of("error_file")
    if "log_file" in app and app["log_file"][1] is True:
        a.result.info(a.at(app["log_file"][0]), "a combined log in pmon3's log directory, as pmon3 always writes")
    if combined:
        a.fields["log"] = combined
        for key in ("out_file", "error_file"):
            if key in app and path_of(key) not in (None, combined):
                a.result.warn(
                    a.at(app[key][0]),
                    f"pmon3 writes one log per process: this output goes to {combined} (log_file) only",
                )
    elif out:
        a.fields["log"] = out
        if err and err != out:
            a.result.warn(a.at(app["error_file"][0]), f"pmon3 writes one log per process: stderr goes to {out} too")
        elif not err:
            a.result.info(a.at(app["out_file"][0]), "pmon3 writes one log per process: stderr goes to it too")
    elif err:
        a.fields["log"] = err
        a.result.warn(a.at(app["error_file"][0]), "pmon3 writes one log per process: stdout goes to it too")
    log = a.fields.get("log", "")
    if log and log != "/dev/null" and not os.path.isdir(os.path.dirname(log)):
        a.result.warn(a.at("log"), f"the directory of {log} does not exist (PM2 creates it, pmond does not)")


def _restart(app: dict[str, tuple[str, Any]], a: _App) -> None:
    if "autorestart" in app:
        key, value = app["autorestart"]
        if value is False or value == "false":
            a.fields["no_auto_restart"] = True
    if "stop_exit_codes" in app and not a.fields.get("no_auto_restart"):
        key, value = app["stop_exit_codes"]
        items = value if isinstance(value, list) else [value]
        try:
            codes = [int(v) for v in items]
        except (TypeError, ValueError):
            raise ImporterError(f"{a.at(key)}: expected exit codes") from None
        if codes:
            a.fields["restart"] = "on-failure"
            a.fields["success_exit_codes"] = codes
            a.result.info(a.at(key), "restart: on-failure with these as the success exit codes")
    elif "stop_exit_codes" in app:
        a.result.info(a.at(app["stop_exit_codes"][0]), "autorestart is false: no exit code restarts it anyway")
    if "exp_backoff_restart_delay" in app:
        key, value = app["exp_backoff_restart_delay"]
        a.fields["restart_delay"] = duration(_ms(value, a.at(key)))
        a.fields["max_restart_delay"] = duration(EXP_BACKOFF_CAP_MS)
        a.result.info(
            a.at(key),
            f"restart_delay, with max_restart_delay {duration(EXP_BACKOFF_CAP_MS)} as PM2's cap; pmon3 doubles the "
            "delay (PM2: x1.5) and forgets it once the process ran min_uptime (PM2: 30 s)",
        )
        if "restart_delay" in app:
            a.result.warn(a.at(app["restart_delay"][0]), "exp_backoff_restart_delay wins, as in PM2: ignored")
    elif "restart_delay" in app:
        key, value = app["restart_delay"]
        a.fields["restart_delay"] = duration(_ms(value, a.at(key)))
        a.result.info(
            a.at(key),
            "pmon3 waits this only after a death sooner than min_uptime, doubling it up to max_restart_delay; "
            "a process that ran longer is restarted at once",
        )


def _user(app: dict[str, tuple[str, Any]], a: _App) -> None:
    if "uid" not in app:
        return
    key, value = app["uid"]
    if isinstance(value, bool) or value in (None, ""):
        return
    user = str(value)
    if isinstance(value, (int, float)) or user.isdigit():
        import pwd

        try:
            user = pwd.getpwuid(int(value)).pw_name
        except (KeyError, ValueError, OverflowError):
            a.result.warn(a.at(key), f"uid {value} has no user on this machine and pmon3 needs a name: left out")
            return
    a.fields["user"] = user
    check_user(user, a.at(key), a.result)


def _instance_count(value: Any) -> Optional[int]:
    """PM2's `instances` as the number PM2 computes with (Common.verifyConfs, God.prepare): "max" is 0, a
    string of digits its number; None for anything else (PM2 would read a word as 0: one per CPU)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "max":
            return 0
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
    return None


def _instances(app: dict[str, tuple[str, Any]], file: str, script: str, env: dict[str, str], a: _App) -> None:
    """instances -> instances; and what depends on the number of copies: exec_mode (PM2's cluster mode, also
    PM2's default for a node script with `instances`), instance_var and increment_var."""
    count, given = 1, None
    if "instances" in app:
        key, value = app["instances"]
        given = _instance_count(value)
        if given is None:
            pm2_reads = " (PM2 reads a word as 0: one per CPU)" if isinstance(value, str) else ""
            a.result.warn(
                a.at(key), f"{_show(value)} is not a whole number of instances or max{pm2_reads}: left out, one process"
            )
        else:
            notes = []
            count = given
            if given <= 0:  # God.prepare: 0 is one per CPU, -N is N fewer than the CPUs, at least one
                cpus = os.cpu_count() or 1
                count = max(cpus + given, 1)
                notes.append(
                    f"{_show(value)} is {'one per CPU' if given == 0 else f'{-given} fewer than the CPUs'} in PM2: "
                    f"{count}, from the {cpus} CPUs of this machine at import time (pmon3 keeps the number)"
                )
            if count > MAX_INSTANCES:
                a.result.warn(
                    a.at(key), f"{count} copies: pmon3 runs at most {MAX_INSTANCES} of a process: {MAX_INSTANCES}"
                )
                count = MAX_INSTANCES
            name = a.fields["name"]
            if count > 1:
                a.fields["instances"] = count
                last = f" ... {name}@{count - 1}" if count > 2 else ""
                numbers = "0, 1" if count == 2 else f"0 ... {count - 1}"
                logs = f"all writing to {a.fields['log']}" if a.fields.get("log") else "each to its own log"
                notes.append(
                    f"{count} copies {name}, {name}@1{last}, each with PMON3_INSTANCE={numbers} (PM2: "
                    f"NODE_APP_INSTANCE, which pmon3 does not set), {logs}; `pmon3 scale {name} N` changes the number"
                )
            elif given == 1:
                notes.append("1 is PM2's default: nothing to map")
            else:
                notes.append("one process")
            a.result.info(a.at(key), "; ".join(notes))

    cluster_at: Optional[str] = None  # the key that asks for PM2's cluster mode
    implied = ""
    if "exec_mode" in app:
        key, value = app["exec_mode"]
        mode = value.strip() if isinstance(value, str) else None
        if mode in ("fork", "fork_mode"):
            a.result.info(a.at(key), f"{_show(value)} is PM2's default: nothing to map")
        elif mode in ("cluster", "cluster_mode"):
            cluster_at = key
        else:
            a.result.warn(a.at(key), f"{_show(value)} is not a PM2 exec_mode (fork or cluster): ignored")
    elif given is not None and (given >= 0 or given == -1) and file != script:
        # Common.sink.determineExecMode: with `instances` and a node (or bun) interpreter, cluster mode
        if any(n in os.path.basename(file) for n in ("node", "bun")):
            cluster_at, implied = app["instances"][0], " (PM2's default for a node script with instances)"
    if cluster_at is not None:
        if count > 1:
            port = env.get("PORT", "")
            listen = f"listen: tcp:0.0.0.0:{port}" if port.isdigit() else "listen: tcp:HOST:PORT"
            a.result.warn(
                a.at(cluster_at),
                f"PM2's cluster mode{implied} shares one port between the copies through PM2's master, which pmon3 "
                f"does not have: the {count} copies are plain processes and a second one listening on the same "
                f"port fails (EADDRINUSE). Add {listen} and have the program use the socket pmond holds (fd 3), "
                "or bind it with SO_REUSEPORT",
            )
        else:
            a.result.info(
                a.at(cluster_at),
                f"PM2's cluster mode{implied} with one copy: one plain process, which listens on its port itself",
            )

    if "instance_var" in app:
        key, value = app["instance_var"]
        if count > 1:
            a.result.warn(
                a.at(key), f"the copies are numbered in PMON3_INSTANCE only: {_show(value)} is not set in them"
            )
        elif _is_default(value, "NODE_APP_INSTANCE"):
            a.result.info(a.at(key), f"{_show(value)} is PM2's default: nothing to map (one process)")
        else:
            a.result.warn(a.at(key), f"pmon3 does not set {_show(value)} (PM2 sets it to 0 in its one copy)")
    if "increment_var" in app:
        key, value = app["increment_var"]
        if count > 1:
            a.result.warn(
                a.at(key),
                f"every copy gets the same environment: {_show(value)} is not incremented per copy "
                "(PMON3_INSTANCE=k is there to add to it)",
            )
        else:
            a.result.info(a.at(key), "one process: nothing to increment")


WAIT_READY = (
    "PM2 waits for process.send('ready') (Node IPC), which pmon3 cannot receive: not mapped. pmon3's "
    "counterpart is ready: notify (the program sends READY=1 to $NOTIFY_SOCKET, e.g. with `systemd-notify "
    "--ready`) or ready: log:REGEX; add it by hand once the program does that (else pmon3 stops it after "
    "ready_timeout)"
)


def _readiness(app: dict[str, tuple[str, Any]], a: _App) -> None:
    """wait_ready and listen_timeout. Nothing becomes `ready:` (PM2's signal is not one pmon3 understands), so
    nothing becomes ready_timeout either, which bounds only a readiness check: the lines say what to add."""
    if "wait_ready" in app:
        key, value = app["wait_ready"]
        if _is_default(value, False) or value is None:
            a.result.info(a.at(key), f"{_show(value)} is PM2's default: nothing to map")
        else:
            a.result.warn(a.at(key), WAIT_READY)
    if "listen_timeout" in app:
        key, value = app["listen_timeout"]
        try:
            ms = _ms(value, a.at(key))
        except ImporterError:
            a.result.warn(a.at(key), f"{_show(value)} is not a duration (milliseconds): left out")
            return
        if ms == 0:
            a.result.info(a.at(key), "0 is PM2's default (3 s): nothing to map")
            return
        a.result.info(
            a.at(key),
            f"pmon3's counterpart, ready_timeout, bounds a readiness check (ready:), which no PM2 key gives: "
            f"with ready: added by hand, ready_timeout: {duration(ms)} (PM2 carries on after it, pmon3 stops a "
            "copy that is not ready by then)",
        )


def _words(value: Any, where: str) -> list[str]:
    """`args`/`node_args`: a list, or a string split as PM2's Config.js splits it."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return [_js_string(v) for v in value]
    if isinstance(value, str):
        words = []
        for match in _PM2_WORDS.finditer(value):
            word = match.group(0)
            if word[0] in "\"'" and word[-1] == word[0]:
                word = word[1:-1]
            if word.strip():
                words.append(word)
        return words
    raise ImporterError(f"{where}: expected a list or a string of arguments")


def _split(command: str, where: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError as exc:
        raise ImporterError(f"{where}: cannot split {command!r}: {exc}") from None


def _js_string(value: Any) -> str:
    """A value as JavaScript turns it into a string (environment variables, arguments)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return value is default or str(value).lower() == str(default).lower()
    if isinstance(default, (int, float)):
        if isinstance(value, bool):
            return False
        try:
            return float(value) == default
        except (TypeError, ValueError):
            return False
    return bool(value == default)


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (bool, int, float, str)) or value is None else repr(value)


def _is_binary(path: str) -> bool:
    """PM2's isbinaryfile, in short: a NUL byte, or many control bytes, in the first 512 bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    if not head:
        return False
    if b"\0" in head:
        return True
    suspicious = sum(1 for b in head if b < 7 or 14 <= b < 32)
    return suspicious / len(head) > 0.1
