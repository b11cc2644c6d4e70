"""supervisord configs -> pmon3 process config entries.

Parsed as supervisord 4 parses them (supervisor/options.py: UnhosedConfigParser, ServerOptions.read_config,
process_groups_from_parser, _processes_from_section; supervisor/datatypes.py), without importing supervisor:
a RawConfigParser with `;`/`#` inline comments and strict=False; `[include] files` globbed relative to the main file
(as supervisord, includes inside included files are not followed), `%(here)s` being the directory of the file a
section came from; Python %-expansions of `here`, `program_name`, `process_num`, `numprocs`, `group_name`,
`host_node_name` and `ENV_X` (our environment at import time, then [supervisord] and the program's `environment`);
`numprocs` copies named by `process_name`; `command` split with shlex and its program looked up in the program's
PATH; `environment` parsed with supervisord's own KEY=val,KEY2="val 2" rules.

Every [program:x] key is mapped, or listed in a warning (an info when its value is supervisord's default and
nothing is lost). Other sections: [group:x] becomes pmon3 groups; [supervisord] gives `environment`, `directory`
and `user` to every program (its other keys are supervisord's own); the server/client sections are noted as
supervisord's own; [eventlistener:x] and [fcgi-program:x] are not supported and skipped with a warning.
"""

from __future__ import annotations

import configparser
import glob
import os
import platform
import shlex
from typing import Any, Callable, Optional

from .common import (
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
    search_path,
)

TRUTHY = ("yes", "true", "on", "1")
FALSY = ("no", "false", "off", "0")
DEFAULT_PRIORITY = 999
# Sections that configure supervisord, its servers and supervisorctl: nothing of a process in them.
OWN_SECTIONS = ("unix_http_server", "inet_http_server", "supervisorctl")
OWN_PREFIXES = ("rpcinterface:", "ctlplugin:")
# [supervisord] keys that reach the programs; the others configure supervisord itself.
SUPERVISORD_KEYS = ("environment", "directory", "user")

_AUTO = "AUTO"  # logfile_name's Automatic
_NONE = "NONE"
_SYSLOG = "SYSLOG"


class _Program:
    """One [program:x] section being read, for one process_num."""

    def __init__(self, result: ImportResult, label: str, section: str) -> None:
        self.result = result
        self.label = label
        self.section = section
        self.fields: dict[str, Any] = {}

    def at(self, key: str) -> str:
        return place(self.label, key)


Rule = Callable[[_Program, str, str], None]


def _handled(p: _Program, key: str, value: str) -> None:
    """Read by _process itself."""


def _unsupported(message: str, *defaults: str) -> Rule:
    """No pmon3 equivalent: a warning, or an info when the value is supervisord's default (nothing is lost)."""

    def rule(p: _Program, key: str, value: str) -> None:
        if value.strip().lower() in defaults:
            p.result.info(p.at(key), f"{value!r} is supervisord's default: nothing to map")
        else:
            p.result.warn(p.at(key), message)

    return rule


def _group_signals(p: _Program, key: str, value: str) -> None:
    if _boolean(value, p.at(key)):
        p.result.info(p.at(key), "pmon3 always signals the whole process group")
    else:
        p.result.warn(p.at(key), "pmon3 always signals the whole process group, not only the program")


_ROTATION = "pmon3 rotates logs for all processes at once: logs.max_size and logs.retain in config.yml"

# Every [program:x] key supervisord reads and what becomes of it. A key pmon3 cannot do yet is an _unsupported
# line: when pmon3 gains the feature, that line becomes a mapping.
KEYS: dict[str, Rule] = {
    "command": _handled,
    "process_name": _handled,
    "numprocs": _handled,
    "numprocs_start": _handled,
    "directory": _handled,
    "priority": _handled,
    "autorestart": _handled,
    "exitcodes": _handled,
    "startsecs": _handled,
    "stopsignal": _handled,
    "stopwaitsecs": _handled,
    "user": _handled,
    "environment": _handled,
    "redirect_stderr": _handled,
    "stdout_logfile": _handled,
    "stderr_logfile": _handled,
    "autostart": _unsupported(
        "pmon3 starts every config entry at boot and on `pmon3 init`; there is no key to create it stopped", "true"
    ),
    "startretries": _unsupported(
        "pmon3 has no per-process retry limit: quick deaths wait restart_delay, doubled up to max_restart_delay; "
        "flap_detection in config.yml stops restarting flapping processes, for all of them",
        "3",
    ),
    "stopasgroup": _group_signals,
    "killasgroup": _group_signals,
    "umask": _unsupported("pmon3 has no per-process umask"),
    "stdout_logfile_maxbytes": _unsupported(_ROTATION, "50mb"),
    "stdout_logfile_backups": _unsupported(_ROTATION, "10"),
    "stderr_logfile_maxbytes": _unsupported(_ROTATION, "50mb"),
    "stderr_logfile_backups": _unsupported(_ROTATION, "10"),
    "stdout_capture_maxbytes": _unsupported("pmon3 has no capture mode or events", "0"),
    "stderr_capture_maxbytes": _unsupported("pmon3 has no capture mode or events", "0"),
    "stdout_events_enabled": _unsupported("pmon3 has no capture mode or events", "false"),
    "stderr_events_enabled": _unsupported("pmon3 has no capture mode or events", "false"),
    "stdout_syslog": _unsupported("pmon3 does not log to syslog", "false"),
    "stderr_syslog": _unsupported("pmon3 does not log to syslog", "false"),
    "serverurl": _unsupported("pmon3 has no XML-RPC server for processes to call", "auto"),
}


class _Parser(configparser.RawConfigParser):
    """supervisord's UnhosedConfigParser: Python 2 style inline comments, duplicate sections merged."""

    def __init__(self) -> None:
        super().__init__(inline_comment_prefixes=(";", "#"), strict=False)
        self.section_to_file: dict[str, str] = {}

    def read_one(self, path: str, shown: str) -> None:
        before = set(self.sections())
        try:
            with open(path, encoding="utf-8") as fh:
                self.read_file(fh, source=shown)
        except OSError as exc:
            raise ImporterError(f"{shown}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ImporterError(f"{shown}: not UTF-8 text") from None
        except configparser.Error as exc:
            raise ImporterError(f"{shown}: cannot parse: {' '.join(str(exc).split())}") from None
        for section in set(self.sections()) - before:
            self.section_to_file[section] = shown

    def expand_here(self, here: str) -> None:
        for section in self.sections():
            for key, value in self.items(section):
                if "%(here)s" in value:
                    self.set(section, key, value.replace("%(here)s", here))


def convert(path: str) -> ImportResult:
    """The programs of the supervisord config at `path` (and the files it includes) as pmon3 entries."""
    result = ImportResult()
    parser = _Parser()
    parser.read_one(path, path)
    here = os.path.dirname(os.path.abspath(path))
    env_expansions = {f"ENV_{k}": v for k, v in os.environ.items()}
    base = {"here": here, "host_node_name": platform.node()}  # and env_expansions, which [supervisord] extends
    if parser.has_section("include"):
        _include(parser, path, here, {**env_expansions, **base}, result)

    defaults = _supervisord_section(parser, path, base, env_expansions, result)
    sections = parser.sections()
    groups: dict[str, tuple[str, str, int]] = {}  # program section -> (group name, pmon3 group name, priority)
    for section in sections:
        if section.startswith("group:"):
            _group(parser, section, sections, groups, base, env_expansions, result)
    procs: list[_Process] = []
    for section in sections:
        where = place(parser.section_to_file.get(section, path), f"[{section}]")
        if section.startswith("program:"):
            procs += _program(parser, section, where, groups.get(section), base, env_expansions, defaults, result)
        elif section in OWN_SECTIONS or section.startswith(OWN_PREFIXES):
            result.info(where, "configures supervisord/supervisorctl themselves: nothing to import")
        elif section.startswith(("eventlistener:", "fcgi-program:")):
            keys = ", ".join(parser.options(section))
            kind = section.split(":", 1)[0]
            result.warn(where, f"pmon3 has no {kind} processes: section skipped (keys: {keys})")
        elif section == "include" or section == "supervisord" or section.startswith("group:"):
            continue
        else:
            result.warn(where, "not a supervisord section: ignored")
    _finish(procs, result)
    return result


def _include(parser: _Parser, path: str, here: str, base: dict[str, Any], result: ImportResult) -> None:
    where = place(path, "[include]")
    parser.expand_here(here)
    if not parser.has_option("include", "files"):
        raise ImporterError(f"{where}: an [include] section needs `files`")
    files = _expand(parser.get("include", "files"), base, place(where, "files"))
    for pattern in files.split():
        pattern = os.path.join(here, pattern)
        found = sorted(glob.glob(pattern))
        if not found:
            result.warn(place(where, "files"), f"no file matches {pattern}")
        for filename in found:
            before = parser.get("include", "files")
            parser.read_one(filename, filename)
            parser.expand_here(os.path.abspath(os.path.dirname(filename)))
            if parser.get("include", "files") != before:
                result.warn(
                    place(filename, "[include]"),
                    "supervisord does not follow includes inside included files: ignored",
                )
                parser.set("include", "files", before)
            result.info(place(where, "files"), f"included {filename}")


def _supervisord_section(
    parser: _Parser, path: str, base: dict[str, Any], env_expansions: dict[str, str], result: ImportResult
) -> dict[str, Any]:
    """What [supervisord] gives every program: environment, working directory, user."""
    defaults: dict[str, Any] = {"env": {}, "directory": None, "user": None}
    if not parser.has_section("supervisord"):
        return defaults
    where = place(parser.section_to_file.get("supervisord", path), "[supervisord]")
    if parser.has_option("supervisord", "environment"):
        expansions = {**env_expansions, **base}
        text = _expand(parser.get("supervisord", "environment"), expansions, place(where, "environment"))
        defaults["env"] = key_value_pairs(text, place(where, "environment"))
        for k, v in defaults["env"].items():
            env_expansions[f"ENV_{k}"] = v  # supervisord extends the expansions with it
        result.info(place(where, "environment"), "added to every program's environment")
    if parser.has_option("supervisord", "directory"):
        defaults["directory"] = _expand(
            parser.get("supervisord", "directory"), {**env_expansions, **base}, place(where, "directory")
        )
        result.info(place(where, "directory"), "the working directory of programs without `directory`")
    if parser.has_option("supervisord", "user"):
        defaults["user"] = _expand(parser.get("supervisord", "user"), {**env_expansions, **base}, place(where, "user"))
        result.info(place(where, "user"), "the user of programs without `user`")
    others = [k for k in parser.options("supervisord") if k not in SUPERVISORD_KEYS]
    if others:
        result.info(where, f"configures supervisord itself: {', '.join(others)} not imported")
    return defaults


def _group(
    parser: _Parser,
    section: str,
    sections: list[str],
    groups: dict[str, tuple[str, str, int]],
    base: dict[str, Any],
    env_expansions: dict[str, str],
    result: ImportResult,
) -> None:
    where = place(parser.section_to_file.get(section, ""), f"[{section}]")
    name = _name(section.split(":", 1)[1], where)
    pmon3_name = group_name(name, where, result)
    expansions = {**env_expansions, **base}
    for key in parser.options(section):
        if key not in ("programs", "priority"):
            result.warn(place(where, key), "not a supervisord group key: ignored")
    text = ""
    if parser.has_option(section, "programs"):
        text = _expand(parser.get(section, "programs"), expansions, place(where, "programs"))
    priority = DEFAULT_PRIORITY
    if parser.has_option(section, "priority"):
        value = _expand(parser.get(section, "priority"), expansions, place(where, "priority"))
        priority = _integer(value, place(where, "priority"))
    for program in [p.strip() for p in text.split(",")] if text else []:
        target = f"program:{program}"
        if target not in sections:
            if f"fcgi-program:{program}" in sections:
                continue  # skipped with its own warning
            raise ImporterError(f"{place(where, 'programs')}: names unknown program {program}")
        groups[target] = (name, pmon3_name, priority)


class _Process:
    """One process of a [program:x] section, before names are final and priorities become dependencies."""

    def __init__(
        self,
        where: str,
        section_where: str,
        fields: dict[str, Any],
        group: str,
        in_group: bool,
        group_priority: int,
        priority: int,
        priority_set: bool,
    ) -> None:
        self.where = where
        self.section_where = section_where  # set for the first process of its section: it carries the notes
        self.fields = fields
        self.group = group  # supervisord's group: the [group:x], else the program itself
        self.in_group = in_group
        self.group_priority = group_priority
        self.priority = priority
        self.priority_set = priority_set


def _program(
    parser: _Parser,
    section: str,
    where: str,
    grouped: Optional[tuple[str, str, int]],
    base: dict[str, Any],
    env_expansions: dict[str, str],
    defaults: dict[str, Any],
    result: ImportResult,
) -> list[_Process]:
    program = _name(section.split(":", 1)[1], where)
    supervisord_group = grouped[0] if grouped else program
    common = {**env_expansions, **base, "program_name": program, "group_name": supervisord_group}

    def get(key: str, default: Optional[str] = None, expansions: Optional[dict[str, Any]] = None) -> Optional[str]:
        if not parser.has_option(section, key):
            return default
        return _expand(parser.get(section, key), expansions or common, place(where, key))

    def number(key: str, default: int) -> int:
        return _integer(get(key, str(default)) or "", place(where, key))

    priority = number("priority", DEFAULT_PRIORITY)
    numprocs = number("numprocs", 1)
    start = number("numprocs_start", 0)
    raw_name = parser.get(section, "process_name") if parser.has_option(section, "process_name") else "%(program_name)s"
    raw_name = _name(raw_name, place(where, "process_name"))  # checked before expansion, as supervisord does
    if numprocs > 1 and "%(process_num)" not in raw_name:
        raise ImporterError(f"{place(where, 'process_name')}: %(process_num) must be in it when numprocs > 1")
    stop_group = _boolean(get("stopasgroup", "false") or "", place(where, "stopasgroup"))
    kill_group = _boolean(get("killasgroup", str(stop_group)) or "", place(where, "killasgroup"))
    if stop_group and not kill_group:
        raise ImporterError(f"{where}: cannot set stopasgroup=true and killasgroup=false")

    # The keys first, once per section (not once per copy).
    section_level = _Program(result, where, section)
    for key in parser.options(section):
        rule = KEYS.get(key)
        if rule is None:
            result.warn(place(where, key), "not a supervisord program key: ignored")
        else:
            rule(section_level, key, parser.get(section, key))
    own_group = group_name(program, place(where, "numprocs"), result) if numprocs > 1 and not grouped else ""
    if own_group:
        result.info(place(where, "numprocs"), f"{numprocs} entries, in the pmon3 group {own_group} (as supervisord)")
    if grouped:
        result.info(where, f"in [group:{grouped[0]}]: the pmon3 group {grouped[1]}")

    env_text = parser.get(section, "environment") if parser.has_option(section, "environment") else ""
    processes = []
    for num in range(start, start + numprocs):
        expansions = {**common, "process_num": num, "numprocs": numprocs}
        env = key_value_pairs(_expand(env_text, expansions, place(where, "environment")), place(where, "environment"))
        for k, v in env.items():
            expansions[f"ENV_{k}"] = v  # as supervisord: usable in the keys read after it
        name = _expand(raw_name, expansions, place(where, "process_name"))
        label = where if numprocs == 1 else place(where, name)
        first = num == start
        fields = _process(
            parser, section, section_level, name, {**defaults["env"], **env}, expansions, defaults, get, first
        )
        if grouped:
            fields["groups"] = [grouped[1]]
        elif own_group:
            fields["groups"] = [own_group]
        processes.append(
            _Process(
                label,
                where if first else "",
                fields,
                supervisord_group,
                grouped is not None,
                grouped[2] if grouped else priority,
                priority,
                parser.has_option(section, "priority"),
            )
        )
    return processes


def _process(
    parser: _Parser,
    section: str,
    p: _Program,
    name: str,
    env: dict[str, str],
    expansions: dict[str, Any],
    defaults: dict[str, Any],
    get: Callable[..., Optional[str]],
    first: bool,
) -> dict[str, Any]:
    """The fields of one process. `first`: the first copy, which carries the notes that are the same for all."""
    fields: dict[str, Any] = {"name": name}

    def has(key: str) -> bool:
        return parser.has_option(section, key)

    directory = get("directory", expansions=expansions) or defaults["directory"]
    config_dir = os.path.dirname(os.path.abspath(parser.section_to_file.get(section, ".")))
    if directory:
        fields["cwd"] = absolute(directory, config_dir)
        if not os.path.isdir(fields["cwd"]):
            p.result.warn(p.at("directory"), f"{fields['cwd']} does not exist on this machine")
    command = get("command", expansions=expansions)
    if command is None:
        raise ImporterError(f"{p.label}: no `command`")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ImporterError(f"{p.at('command')}: cannot split {command!r}: {exc}") from None
    if not argv:
        raise ImporterError(f"{p.at('command')}: the command is empty")
    # A program without a slash is looked up in the PATH of its environment, else ours (supervisord: its own).
    fields["file"] = resolve_program(argv[0], p.at("command"), fields.get("cwd", config_dir), search_path(env))
    check_program(fields["file"], p.at("command"), p.result)
    fields["argv"] = argv[1:]
    fields["env"] = env

    user = get("user", expansions=expansions) or defaults["user"]
    if user and user.isdigit():  # supervisord takes a uid too; pmon3 needs the name
        import pwd

        try:
            user = pwd.getpwuid(int(user)).pw_name
        except KeyError:
            raise ImporterError(
                f"{p.at('user')}: uid {user} has no user on this machine (pmon3 needs a name)"
            ) from None
    if user:
        fields["user"] = user
        if first:
            check_user(user, p.at("user"), p.result)

    mode = (get("autorestart", "unexpected", expansions) or "").lower()
    codes = _exit_codes(get("exitcodes", "0", expansions) or "", p.at("exitcodes"))
    if mode in TRUTHY:
        fields["restart"] = "always"
    elif mode in FALSY:
        fields["no_auto_restart"] = True
    elif mode == "unexpected":
        fields["restart"] = "on-failure"
        if codes != [0]:
            fields["success_exit_codes"] = codes
    else:
        raise ImporterError(f"{p.at('autorestart')}: invalid autorestart value {mode!r}")
    if first and not has("autorestart"):
        p.result.info(p.at("autorestart"), "not set: supervisord's default `unexpected` is restart: on-failure")
    if first and has("exitcodes") and mode != "unexpected" and codes != [0]:
        p.result.info(p.at("exitcodes"), "matter only with autorestart=unexpected: not needed")

    if has("startsecs"):
        secs = _integer(get("startsecs", expansions=expansions) or "", p.at("startsecs"))
        if secs > 0:
            fields["min_uptime"] = duration(secs * 1000)
        elif first:
            p.result.warn(
                p.at("startsecs"),
                "0 is not mapped: with min_uptime 0 pmon3 would restart a crashing process without any delay; "
                "pmon3's min_uptime (1s) stays",
            )
    if has("stopsignal"):
        fields["stop_signal"] = _signal(get("stopsignal", expansions=expansions) or "", p.at("stopsignal"))
    if has("stopwaitsecs"):
        secs = _integer(get("stopwaitsecs", expansions=expansions) or "", p.at("stopwaitsecs"))
        fields["stop_timeout"] = duration(secs * 1000)

    _logs(p, fields, expansions, get, first)
    return fields


def _logs(
    p: _Program, fields: dict[str, Any], expansions: dict[str, Any], get: Callable[..., Optional[str]], first: bool
) -> None:
    """pmon3 has one log for stdout and stderr: stdout's file, else stderr's; /dev/null when both are NONE."""
    cwd = fields.get("cwd", "/")

    def logfile(key: str) -> str:
        value = get(key, None, expansions)
        if value is None:
            return _AUTO
        value = _expand(value, expansions, p.at(key))  # supervisord expands log file names twice
        lowered = value.lower()
        if lowered in ("none", "off"):
            return _NONE
        if lowered == "auto":
            return _AUTO
        if lowered == "syslog":
            return _SYSLOG
        return absolute(value, cwd)

    out = logfile("stdout_logfile")
    redirect = _boolean(get("redirect_stderr", "false", expansions) or "", p.at("redirect_stderr"))
    err = logfile("stderr_logfile")
    notes: list[tuple[str, str, str]] = []
    for key, value in (("stdout_logfile", out), ("stderr_logfile", err)):
        if value == _SYSLOG:
            notes.append(("warn", key, "pmon3 does not log to syslog: the log is a file"))
    if redirect:
        if err not in (_AUTO, _NONE):
            notes.append(("warn", "stderr_logfile", "redirect_stderr is true: ignored (as in supervisord)"))
        notes.append(("info", "redirect_stderr", "pmon3 writes stderr to the log too, always"))
        err = out
    files = [v for v in (out, err) if v not in (_AUTO, _NONE, _SYSLOG)]
    if out not in (_AUTO, _NONE, _SYSLOG):
        fields["log"] = out
        if err == _NONE:
            notes.append(("warn", "stderr_logfile", f"pmon3 does not discard stderr: it goes to {out} too"))
        elif err != out and err != _AUTO:
            notes.append(("warn", "stderr_logfile", f"pmon3 writes one log per process: stderr goes to {out} too"))
    elif files:
        fields["log"] = files[0]
        what = "stdout (NONE: discarded by supervisord)" if out == _NONE else "stdout"
        notes.append(("warn", "stderr_logfile", f"pmon3 writes one log per process: {what} goes to it too"))
    elif out == _NONE and err in (_NONE, out):
        fields["log"] = "/dev/null"
    elif out == _NONE:
        notes.append(("warn", "stdout_logfile", "pmon3 does not discard stdout: it goes to the log with stderr"))
    log = fields.get("log", "")
    if log and log != "/dev/null" and not os.path.isdir(os.path.dirname(log)):
        notes.append(("warn", "stdout_logfile", f"the directory of {log} does not exist"))
    if first:
        for level, key, message in notes:
            (p.result.warn if level == "warn" else p.result.info)(p.at(key), message)


def _finish(procs: list[_Process], result: ImportResult) -> None:
    """Names unique (supervisord's group:name where two groups share a process name), priority as dependencies,
    then the entries in file order."""
    counts: dict[str, int] = {}
    for proc in procs:
        counts[proc.fields["name"]] = counts.get(proc.fields["name"], 0) + 1
    for proc in procs:
        name = proc.fields["name"]
        if counts[name] > 1 and proc.group != name:
            proc.fields["name"] = f"{proc.group}:{name}"
            result.info(proc.where, f"{name} is in several groups: named {proc.fields['name']} (supervisorctl's name)")
        proc.fields["name"] = process_name(proc.fields["name"], proc.where, result)
    _priorities(procs, result)
    for proc in procs:
        fields = dict(proc.fields)
        argv, env = fields.pop("argv"), fields.pop("env")
        result.add(entry(argv=argv, env=env, where=proc.where, result=result, **fields), proc.where)


def _priorities(procs: list[_Process], result: ImportResult) -> None:
    """supervisord starts groups by priority (a program outside [group:x] is its own group, with its priority),
    and the programs of a [group:x] by their own priority; lower first. Each distinct level becomes dependencies
    on the level just before it (pmon3 starts dependencies first and stops them last); one level means none."""

    def layer(members: list[_Process], level: Callable[[_Process], int]) -> None:
        levels = sorted({level(m) for m in members})
        for before, after in zip(levels, levels[1:]):
            needed = [m.fields["name"] for m in members if level(m) == before]
            for m in members:
                if level(m) == after:
                    deps = m.fields.setdefault("dependencies", [])
                    deps += [n for n in needed if n not in deps]

    layer(procs, lambda m: m.group_priority)
    by_group: dict[str, list[_Process]] = {}
    for proc in procs:
        if proc.in_group:
            by_group.setdefault(proc.group, []).append(proc)
    for members in by_group.values():
        layer(members, lambda m: m.priority)
    # Leave out what another dependency already implies (web after db, cache after web: cache needs only web).
    deps_of = {p.fields["name"]: set(p.fields.get("dependencies", [])) for p in procs}

    def reachable(name: str) -> set[str]:
        seen: set[str] = set()
        todo = list(deps_of.get(name, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += deps_of.get(n, ())
        return seen

    implied = {name: set().union(*(reachable(d) for d in deps)) if deps else set() for name, deps in deps_of.items()}
    for proc in procs:
        if "dependencies" in proc.fields:
            proc.fields["dependencies"] = [
                d for d in proc.fields["dependencies"] if d not in implied[proc.fields["name"]]
            ]
    for proc in procs:
        if not proc.section_where:
            continue
        deps = proc.fields.get("dependencies")
        if deps:
            result.info(
                place(proc.section_where, "priority"),
                f"supervisord starts it after {', '.join(deps)} (lower priority): dependencies",
            )
        elif proc.priority_set:
            result.info(place(proc.section_where, "priority"), "no program starts before it: no dependencies")


def key_value_pairs(text: str, where: str) -> dict[str, str]:
    """supervisord's dict_of_key_value_pairs: KEY=val,KEY2="val, 2" (shlex tokens; quotes allow commas)."""
    lexer = shlex.shlex(text)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ImporterError(f"{where}: {exc}") from None
    pairs: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        kv = tokens[i : i + 3]
        if len(kv) != 3 or kv[1] != "=":
            raise ImporterError(f"{where}: unexpected end of key/value pairs in {text!r}")
        pairs[kv[0]] = kv[2].strip("'\"")
        i += 4
    return pairs


def _expand(text: str, expansions: dict[str, Any], where: str) -> str:
    try:
        return text % expansions
    except KeyError as exc:
        names = ", ".join(sorted(k for k in expansions if not k.startswith("ENV_")))
        raise ImporterError(
            f"{where}: {text!r} names {exc} which cannot be expanded (available: {names}, ENV_*)"
        ) from None
    except (ValueError, TypeError) as exc:
        raise ImporterError(f"{where}: {text!r} is badly formatted: {exc}") from None


def _name(name: str, where: str) -> str:
    text = name.strip()
    for character in " :/":
        if character in text:
            raise ImporterError(f"{where}: invalid name {name!r} because of character {character!r}")
    return text


def _integer(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ImporterError(f"{where}: expected an integer, got {value!r}") from None


def _boolean(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered in TRUTHY:
        return True
    if lowered in FALSY:
        return False
    raise ImporterError(f"{where}: not a valid boolean value: {value!r}")


def _exit_codes(value: str, where: str) -> list[int]:
    try:
        codes = [int(v) for v in value.split(",")] if value else []
    except ValueError:
        raise ImporterError(f"{where}: not a valid list of exit codes: {value!r}") from None
    if any(not 0 <= c <= 255 for c in codes):
        raise ImporterError(f"{where}: exit codes are 0 to 255")
    return codes


def _signal(value: str, where: str) -> str:
    """config's signal parser (the only one), with a number written as its name."""
    from ..config import signal_name
    from ..errors import ConfigError

    try:
        return signal_name(value, where)
    except ConfigError as exc:
        raise ImporterError(exc.message) from None
