"""Procfiles (Heroku, foreman, honcho) -> pmon3 process config entries.

A process line is `name: command` (foreman's pattern: a name of letters, digits, `_` and `-`); blank lines and
`#` comments are skipped, any other line is listed in a warning. foreman hands the command to a shell; pmon3 runs no
shell, so the command is split into words with shlex (as sh splits them) and:
- `$PORT`/`${PORT}` outside single quotes become the entry's port: like foreman, entry number i (from 0) gets
  PORT = port_base + 100 * i (port_base 5000 unless given), also set as the environment variable PORT;
- any other `$VAR` stays a literal argument, with a warning (nothing expands it);
- leading `NAME=value` words become environment variables and a leading `exec` is dropped, as sh would do;
- shell syntax (`&&`, `|`, `;`, redirections, `$(...)`, backticks) is not interpreted: a warning says so;
- the program is looked up in PATH (pmond needs an absolute path; not found is an error naming the line), a
  program with a slash is relative to the Procfile's directory, which is also every entry's working directory.
A `.env` beside the Procfile (foreman reads it) becomes every entry's `env_file`.
"""

from __future__ import annotations

import os
import re
import shlex

from .common import (
    ImporterError,
    ImportResult,
    check_program,
    entry,
    place,
    process_name,
    resolve_program,
    search_path,
)

DEFAULT_PORT_BASE = 5000
PORT_STEP = 100  # foreman: base + 100 * the process type's index
LINE_RE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
_VARIABLE = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-=+?][^}]*)?\})")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = set("();<>|&")


def convert(path: str, *, port_base: int = DEFAULT_PORT_BASE) -> ImportResult:
    """The process types of the Procfile at `path` as pmon3 entries, PORT numbered from `port_base`."""
    result = ImportResult()
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ImporterError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImporterError(f"{path}: not UTF-8 text") from None
    if not 0 < port_base < 65536:
        raise ImporterError(f"port base {port_base} is not a port number")
    cwd = os.path.dirname(os.path.abspath(path))
    env_file = os.path.join(cwd, ".env")
    if os.path.isfile(env_file):
        result.info(path, f"{env_file} is read by foreman: every entry gets it as env_file")
    else:
        env_file = ""
    index = 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        m = LINE_RE.match(text)
        if not m:
            result.warn(f"{path}:{number}", f"not a `name: command` line: ignored ({text!r})")
            continue
        name, command = m.group(1), m.group(2)
        where = place(f"{path}:{number}", name)
        port = port_base + PORT_STEP * index
        if port > 65535:
            raise ImporterError(f"{where}: PORT {port} is past 65535 (use a lower port base)")
        index += 1
        file, argv, env = _command(command, port, cwd, where, result)
        if name == "release":
            result.warn(
                where,
                "Heroku runs `release` once per deploy; pmon3 would run it as a service and restart it whenever it "
                "exits: leave it out, or add no_auto_restart: true",
            )
        fields = {"name": process_name(name, where, result), "cwd": cwd, "env_file": env_file}
        result.add(entry(file=file, argv=argv, env=env, where=where, result=result, **fields), where)
    return result


def _command(
    command: str, port: int, cwd: str, where: str, result: ImportResult
) -> tuple[str, list[str], dict[str, str]]:
    """The program, its arguments and environment variables of a Procfile command."""
    text, names = _scan(command, port)
    if "PORT" in names:
        result.info(where, f"$PORT is {port}")
    for name in dict.fromkeys(n for n in names if n != "PORT"):
        result.warn(where, f"${name} is passed on literally: pmon3 runs no shell to expand it")
    if "`" in text or "$(" in text or _has_operator(text):
        result.warn(where, "shell syntax (&&, |, ;, <, >, $(...), `...`) is not interpreted: pmon3 runs no shell")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ImporterError(f"{where}: cannot split the command: {exc}") from None
    env = {"PORT": str(port)}
    while words and _ASSIGNMENT.match(words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
        result.info(where, f"{key}= before the command: an environment variable, as sh does")
    if words and words[0] == "exec":
        words.pop(0)
        result.info(where, "`exec` dropped: pmon3 runs the program itself")
    if not words:
        raise ImporterError(f"{where}: no program in {command!r}")
    file = resolve_program(words[0], where, cwd, search_path(env))
    check_program(file, where, result)
    return file, words[1:], env


def _scan(command: str, port: int) -> tuple[str, list[str]]:
    """The command with $PORT / ${PORT} expanded as sh would (not inside single quotes) and a trailing comment cut
    (`#` at the start of a word, outside quotes); and the names of the variables found (PORT included)."""
    out: list[str] = []
    names: list[str] = []
    quote = ""
    i = 0
    while i < len(command):
        c = command[i]
        if quote == "'":
            quote = "" if c == "'" else quote
        elif c == "\\":
            out.append(command[i : i + 2])
            i += 2
            continue
        elif c == "'" and not quote:
            quote = "'"
        elif c == '"':
            quote = "" if quote == '"' else '"'
        elif c == "#" and not quote and (i == 0 or command[i - 1].isspace()):
            break
        elif c == "$":
            m = _VARIABLE.match(command, i)
            if m:
                name = m.group(1) or m.group(2)
                out.append(str(port) if name == "PORT" else m.group(0))
                names.append(name)
                i = m.end()
                continue
        out.append(c)
        i += 1
    return "".join(out).rstrip(), names


def _has_operator(command: str) -> bool:
    lexer = shlex.shlex(command, posix=False, punctuation_chars=True)  # quoted tokens keep their quotes
    lexer.whitespace_split = True
    try:
        return any(token and set(token) <= _OPERATORS for token in lexer)
    except ValueError:
        return False
