"""Process config files (JSON, YAML or TOML by extension): loading, the dependency order, and export.

An entry is pmon3's ExecFlags: file, name, args, env_vars, user, log, log_dir, no_auto_restart, dependencies,
groups; plus our env_file and cwd. Export reproduces pmon3 1.18's formats byte for byte (reference App. A).
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional

from .errors import DependencyError, ProcessConfigError

FORMATS = ("json", "toml", "yaml")
# TOML keys as pmon3 exports them (key matching is case-insensitive on input, as in pmon3).
_TOML_KEYS = {
    "file": "file",
    "name": "name",
    "args": "args",
    "envvars": "env_vars",
    "env_vars": "env_vars",
    "user": "user",
    "log": "log",
    "logdir": "log_dir",
    "log_dir": "log_dir",
    "noautorestart": "no_auto_restart",
    "no_auto_restart": "no_auto_restart",
    "dependencies": "dependencies",
    "groups": "groups",
    "envfile": "env_file",
    "env_file": "env_file",
    "cwd": "cwd",
    "restart": "restart",
    "successexitcodes": "success_exit_codes",
    "success_exit_codes": "success_exit_codes",
    "minuptime": "min_uptime",
    "min_uptime": "min_uptime",
    "restartdelay": "restart_delay",
    "restart_delay": "restart_delay",
    "maxrestartdelay": "max_restart_delay",
    "max_restart_delay": "max_restart_delay",
    "stopsignal": "stop_signal",
    "stop_signal": "stop_signal",
    "stoptimeout": "stop_timeout",
    "stop_timeout": "stop_timeout",
    "strictmodes": "strict_modes",
    "strict_modes": "strict_modes",
    "listen": "listen",
    "ready": "ready",
    "readytimeout": "ready_timeout",
    "ready_timeout": "ready_timeout",
    "watchdog": "watchdog",
    "instances": "instances",
    "limits": "limits",
    "maxmemory": "max_memory",
    "max_memory": "max_memory",
    "memorymax": "memory_max",
    "memory_max": "memory_max",
    "cpumax": "cpu_max",
    "cpu_max": "cpu_max",
    "pidsmax": "pids_max",
    "pids_max": "pids_max",
}


def default_path() -> str:
    return "/etc/pmon3/config/process.config.json"


def resolve_path(configured: str) -> str:
    """`process_config_file` if set; else PMON3_PROCESS_CONF, else the default path if that file exists."""
    if configured:
        return configured
    env = os.environ.get("PMON3_PROCESS_CONF", "")
    candidate = env or default_path()
    return candidate if os.path.isfile(candidate) else ""


def load(path: str) -> list[dict[str, Any]]:
    """The entries of a process config file; a missing file is empty (as pmon3)."""
    if not path or not os.path.exists(path):
        return []
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ProcessConfigError(f"{path}: {exc.strerror}") from None
    try:
        if ext == ".json":
            data = json.loads(raw or b"{}")
        elif ext in (".yml", ".yaml"):
            import yaml

            # libyaml's safe loader when PyYAML has it: the same documents, ~10x faster (1000 entries: 25 ms)
            data = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}  # noqa: S506
        elif ext == ".toml":
            try:
                import tomllib  # type: ignore[import-not-found,unused-ignore]
            except ModuleNotFoundError:  # Python < 3.11
                import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
            data = tomllib.loads(raw.decode())
        else:
            raise ProcessConfigError(f"{path}: unknown format {ext!r} (use .json, .yaml, .yml or .toml)")
    except ProcessConfigError:
        raise
    except Exception as exc:  # each parser has its own error class; the message is what matters
        raise ProcessConfigError(f"{path}: cannot parse: {' '.join(str(exc).split())}") from None
    return normalize(data, path)


def normalize(data: Any, path: str = "process config") -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        raise ProcessConfigError(f"{path}: the top level must be a mapping with `processes`")
    items: Any = next((v for k, v in data.items() if str(k).lower() == "processes"), [])
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ProcessConfigError(f"{path}: `processes` must be a list")
    entries = []
    names: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ProcessConfigError(f"{path}: processes[{i}] must be a mapping")
        entry: dict[str, Any] = {}
        for key, value in item.items():
            norm = _TOML_KEYS.get(str(key).lower())
            if norm is None:
                raise ProcessConfigError(f"{path}: processes[{i}]: unknown key {key!r}")
            entry[norm] = value
        if not entry.get("file"):
            raise ProcessConfigError(f"{path}: processes[{i}]: `file` is required")
        entry.setdefault("name", os.path.basename(str(entry["file"])))
        if not isinstance(entry["name"], str):
            raise ProcessConfigError(f"{path}: processes[{i}]: `name` must be a string")
        if entry["name"] in names:
            raise ProcessConfigError(f"{path}: processes[{i}]: duplicate name {entry['name']!r}")
        names.add(entry["name"])
        for key in ("dependencies", "groups"):
            value = entry.get(key) or []
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ProcessConfigError(f"{path}: processes[{i}]: `{key}` must be a list of names")
            entry[key] = value
        entries.append(entry)
    return entries


def dependency_order(items: list[tuple[str, list[str]]]) -> tuple[list[str], list[str], list[str]]:
    """(dependency-ordered names, non-dependent names, unknown dependency names) for (name, deps) pairs.

    Kahn's layered sort as pmon3 (§8.3), ties broken by name so the order is deterministic. A dependency
    that names no process is reported and left out of the order, but its dependent stays in the graph (and
    so still waits for its other dependencies, as in pmon3); cycles and self-dependencies raise
    DependencyError.
    """
    names = [n for n, _ in items]
    known = set(names)
    deps: dict[str, set[str]] = {}
    unknown: list[str] = []
    for name, wanted in items:
        for dep in wanted:
            if dep == name:
                raise DependencyError("self-referential dependencies not allowed")
            if dep not in known:
                unknown.append(dep)
            deps.setdefault(name, set()).add(dep)
    if len(items) <= 1 or not deps:
        return [], names, sorted(set(unknown))
    in_graph = set(deps) | {d for ds in deps.values() for d in ds}
    remaining = {n: set(deps.get(n, ())) for n in in_graph}
    ordered: list[str] = []
    while remaining:
        layer = sorted(n for n, ds in remaining.items() if not ds)
        if not layer:
            raise DependencyError("circular dependencies not allowed")
        ordered += [n for n in layer if n in known]
        for n in layer:
            del remaining[n]
        for ds in remaining.values():
            ds.difference_update(layer)
    non_dependent = sorted(n for n in names if n not in in_graph)
    return ordered, non_dependent, sorted(set(unknown))


# -- export ----------------------------------------------------------------------------------------------


def export_entry(p: dict[str, Any]) -> dict[str, Any]:
    """A process (wire form) as pmon3's ExecFlags, keys in pmon3's order, empty optional keys left out."""
    entry: dict[str, Any] = {"file": p["process_file"], "user": p["username"]}
    if p.get("log"):
        entry["log"] = p["log"]
    entry["args"] = p.get("args", "")
    if p.get("env_vars"):
        entry["env_vars"] = p["env_vars"]
    entry["name"] = p["name"]
    if p.get("dependencies"):
        entry["dependencies"] = list(p["dependencies"])
    if p.get("groups"):
        entry["groups"] = list(p["groups"])
    entry["no_auto_restart"] = not p.get("auto_restart", True)
    # Ours after pmon3's keys, only when set: a process pmon3 could describe exports byte for byte as pmon3.
    if p.get("cwd"):
        entry["cwd"] = p["cwd"]
    for key, value in (p.get("policy") or {}).items():
        entry[key] = value
    for key, value in (p.get("options") or {}).items():
        entry[key] = option_text(key, value)
    return entry


def option_text(key: str, value: Any) -> Any:
    """Options as a process config spells them: limits as `core=0,nofile=65536`, sizes as 512M."""
    from . import limits

    if key == "limits" and isinstance(value, dict):
        return limits.limits_text(value)
    if key in ("max_memory", "memory_max") and isinstance(value, int):
        return limits.size_text(value)
    return value


def render(entries: list[dict[str, Any]], fmt: str) -> str:
    """The document; a C1 control in a value is written as an escape, never raw (it would act on a terminal)."""
    from .text import escape_c1_in_json

    if fmt == "json":
        return escape_c1_in_json(json.dumps({"processes": entries}, indent=2, ensure_ascii=False))
    if fmt == "toml":
        return escape_c1_in_json(_render_toml(entries))
    if fmt == "yaml":  # a C1 control is only ever inside a double-quoted scalar there, where \u00XX is YAML too
        return escape_c1_in_json(_render_yaml(entries))
    return _render(entries, fmt)


def _render(entries: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"processes": entries}, indent=2, ensure_ascii=False)
    if fmt == "yaml":
        return _render_yaml(entries)
    if fmt == "toml":
        return _render_toml(entries)
    raise ValueError("accepted formats: json, toml or yaml")


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _yaml_scalar(str(value))


def _yaml_scalar(value: str) -> str:
    import yaml

    if value == "":
        return '""'
    text: str = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30)
    text = text.removesuffix("\n...\n").removesuffix("\n")
    # Go's YAML encoder quotes with double quotes where PyYAML uses single ones.
    return json.dumps(value, ensure_ascii=False) if text.startswith("'") else text


def _render_yaml(entries: list[dict[str, Any]]) -> str:
    lines = ["processes:"]
    for e in entries:
        first = True
        for key, value in e.items():
            if key == "no_auto_restart" and not value:
                continue
            prefix = "    - " if first else "      "
            first = False
            if isinstance(value, list):
                lines.append(f"{prefix}{key}:")
                lines += [f"        - {_yaml_value(v)}" for v in value]
            else:
                lines.append(f"{prefix}{key}: {_yaml_value(value)}")
    if not entries:
        lines = ["processes: []"]
    return "\n".join(lines) + "\n"


_TOML_OUT = {
    "file": "File",
    "user": "User",
    "log": "Log",
    "log_dir": "LogDir",
    "args": "Args",
    "env_vars": "EnvVars",
    "name": "Name",
    "dependencies": "dependencies",
    "groups": "groups",
    "no_auto_restart": "NoAutoRestart",
    # ours (`pmon3 import` writes them), in the same style; _TOML_KEYS reads them back
    "cwd": "Cwd",
    "env_file": "EnvFile",
    "restart": "Restart",
    "success_exit_codes": "SuccessExitCodes",
    "min_uptime": "MinUptime",
    "restart_delay": "RestartDelay",
    "max_restart_delay": "MaxRestartDelay",
    "stop_signal": "StopSignal",
    "stop_timeout": "StopTimeout",
    "strict_modes": "StrictModes",
    "listen": "Listen",
    "ready": "Ready",
    "ready_timeout": "ReadyTimeout",
    "watchdog": "Watchdog",
    "instances": "Instances",
    "limits": "Limits",
    "max_memory": "MaxMemory",
    "memory_max": "MemoryMax",
    "cpu_max": "CpuMax",
    "pids_max": "PidsMax",
}


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string uses JSON's escapes


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _toml_str(str(value))


def _render_toml(entries: list[dict[str, Any]]) -> str:
    blocks = []
    for e in entries:
        lines = ["[[Processes]]"]
        for key, value in e.items():
            if key == "no_auto_restart" and not value:
                continue
            name = _TOML_OUT[key]
            if isinstance(value, list):
                lines.append(f"  {name} = [{', '.join(_toml_value(v) for v in value)}]")
            else:
                lines.append(f"  {name} = {_toml_value(value)}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def parse_env_file(path: str) -> list[str]:
    """dotenv syntax: KEY=VALUE lines, `export ` prefixes, # comments, single or double quoted values."""
    import shlex

    out: list[str] = []
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ProcessConfigError(f"env file {path}: {exc.strerror}") from None
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[7:].lstrip()
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise ProcessConfigError(f"env file {path}:{n}: expected KEY=VALUE")
        value = value.strip()
        if value[:1] in ("'", '"'):
            try:
                parts = shlex.split(value, comments=False)
            except ValueError:
                raise ProcessConfigError(f"env file {path}:{n}: unterminated quote") from None
            value = parts[0] if parts else ""
        else:
            value = value.split(" #", 1)[0].rstrip()
        out.append(f"{key}={value}")
    return out


def load_for_apply(path: str) -> list[dict[str, Any]]:
    """The entries of a process config file as `pmon3 apply` sends them, read with this process's rights: the
    file must exist (a missing file is not an empty one here: `--prune` would delete everything), and the env
    files it names are read here too, their variables put before the entry's own `env_vars` (which win), so
    that pmond opens no path named in an apply."""
    import shlex

    if not os.path.exists(path):
        raise ProcessConfigError(f"{path}: no such file")
    entries = load(path)
    for i, entry in enumerate(entries):
        env_file = entry.pop("env_file", None)
        if env_file in (None, ""):
            continue
        where = f"{path}: processes[{i}] ({entry['name']})"
        if not isinstance(env_file, str) or not os.path.isabs(env_file):
            raise ProcessConfigError(f"{where}: env_file: must be an absolute path: {env_file!r}")
        try:
            from_file = parse_env_file(env_file)
        except ProcessConfigError as exc:
            raise ProcessConfigError(f"{where}: env_file: {exc.message}") from None
        own = entry.get("env_vars") or []
        if isinstance(own, str):
            try:
                own = shlex.split(own)
            except ValueError as exc:
                raise ProcessConfigError(f"{where}: env_vars: {exc}") from None
        if not isinstance(own, list):
            raise ProcessConfigError(f"{where}: env_vars: must be a string or a list of strings")
        entry["env_vars"] = from_file + own
    return entries


def find(entries: list[dict[str, Any]], name: str) -> Optional[dict[str, Any]]:
    return next((e for e in entries if e.get("name") == name), None)
