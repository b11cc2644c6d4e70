"""The result every importer returns, and what they share: places, entry shape, names, durations, PATH look-ups."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
from typing import Any, Literal, Optional

from ..daemon.policy import POLICY_KEYS
from ..errors import ErrorCode, Pmon3Error

Level = Literal["warning", "info"]

# Entry keys in the order pmon3's export writes them (procconfig.export_entry), then the keys only we have.
KEY_ORDER = (
    "file",
    "user",
    "log",
    "log_dir",
    "args",
    "env_vars",
    "name",
    "dependencies",
    "groups",
    "no_auto_restart",
    "cwd",
    "env_file",
    *POLICY_KEYS,
    "strict_modes",
    "listen",
    "ready",
    "ready_timeout",
    "watchdog",
    "instances",
    "limits",
    "max_memory",
    "memory_max",
    "cpu_max",
    "pids_max",
)
# What pmond accepts as a process or group name (daemon/authz.py NAME_RE; a test keeps the two equal).
NAME_RE = re.compile(r"[A-Za-z0-9_@+:][A-Za-z0-9_.@+:-]{0,127}")
# The most instances pmond runs of one process (daemon/spec.py MAX_INSTANCES; a test keeps the two equal).
MAX_INSTANCES = 256
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ImporterError(Pmon3Error):
    """The source cannot be converted. The message is one line and names the file (and entry, key)."""

    default_code = ErrorCode.CONFIG


@dataclasses.dataclass(frozen=True)
class Warning:  # noqa: A001 - shadows the builtin inside this package only; the name says what it is
    """Something of the source that pmon3 does not do (level "warning"), or a note on how it was mapped ("info").

    `place` is "FILE: ENTRY: KEY" with as much of it as applies, e.g.
    "supervisord.conf: [program:web]: startretries" or "Procfile:3: web".
    """

    place: str
    message: str
    level: Level = "warning"

    def __str__(self) -> str:
        return f"{self.level}: {self.place}: {self.message}"


@dataclasses.dataclass
class ImportResult:
    entries: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    warnings: list[Warning] = dataclasses.field(default_factory=list)
    _places: dict[str, str] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def warn(self, place: str, message: str) -> None:
        self.warnings.append(Warning(place, message))

    def info(self, place: str, message: str) -> None:
        self.warnings.append(Warning(place, message, "info"))

    def add(self, entry: dict[str, Any], place: str) -> None:
        """Append a finished entry (see `entry`); a second entry of the same name is an error, as in pmon3."""
        name = entry["name"]
        if name in self._places:
            raise ImporterError(f"{place}: duplicate process name {name!r} (also {self._places[name]})")
        self._places[name] = place
        self.entries.append(entry)


def place(*parts: Any) -> str:
    return ": ".join(str(p) for p in parts if p not in (None, ""))


def entry(
    *,
    file: str,
    name: str,
    argv: list[str],
    env: dict[str, str],
    where: str,
    result: ImportResult,
    **fields: Any,
) -> dict[str, Any]:
    """A process config entry in pmon3's export order: `args` and `env_vars` as the strings pmon3 exports
    (split again with shell-like quoting by pmond, never run by a shell), empty optional keys left out."""
    values: dict[str, Any] = dict(fields)
    values["file"] = file
    values["name"] = name
    values["args"] = shlex.join(argv)
    good = []
    for key, value in env.items():
        if ENV_KEY_RE.fullmatch(key):
            good.append(f"{key}={value}")
        else:
            result.warn(where, f"environment variable {key!r} is not a valid name for pmon3: left out")
    values["env_vars"] = " ".join(shlex.quote(item) for item in good)
    values["no_auto_restart"] = bool(values.get("no_auto_restart"))
    unknown = set(values) - set(KEY_ORDER)
    if unknown:  # a bug in an importer, not in the source
        raise AssertionError(f"not pmon3 entry keys: {sorted(unknown)}")
    return {
        key: values[key]
        for key in KEY_ORDER
        if key in values and (key in ("args", "no_auto_restart") or values[key] not in (None, "", [], ()))
    }


def process_name(name: str, where: str, result: ImportResult, what: str = "process name") -> str:
    """`name` made acceptable to pmond (letters, digits and . _ - @ + :), with a warning when it changed."""
    fixed = re.sub(r"[^A-Za-z0-9_.@+:-]", "-", name.strip()).lstrip(".-")[:128]
    if not fixed:
        raise ImporterError(f"{where}: {what} {name!r} has nothing pmon3 accepts in a name")
    if fixed != name:
        result.warn(where, f"{what} {name!r} is not valid in pmon3 (letters, digits, . _ - @ + :): renamed {fixed!r}")
    return fixed


def group_name(name: str, where: str, result: ImportResult) -> str:
    """A group name pmond accepts: a process name that is not only digits (those are group ids)."""
    fixed = process_name(name, where, result, "group name")
    if fixed.isdigit():
        fixed = f"group-{fixed}"
        result.warn(where, f"group name {name!r} is only digits, which pmon3 reads as an id: renamed {fixed!r}")
    return fixed


def duration(ms: float) -> str:
    """Milliseconds as pmon3 writes durations: whole seconds as `5s`, else `1500ms`."""
    value = int(round(ms))
    return f"{value // 1000}s" if value % 1000 == 0 else f"{value}ms"


def search_path(env: Optional[dict[str, str]] = None) -> str:
    """The PATH to look programs up in: the entry's own PATH if it sets one, else ours."""
    if env and env.get("PATH"):
        return env["PATH"]
    return os.environ.get("PATH") or os.defpath


def resolve_program(word: str, where: str, base_dir: str, path: Optional[str] = None) -> str:
    """An absolute path for a command word: with a slash, relative to `base_dir`; without, looked up in PATH.
    pmond runs only absolute paths, so a word found nowhere is an error that names the place."""
    if "/" in word:
        return os.path.normpath(os.path.join(base_dir, os.path.expanduser(word)))
    found = shutil.which(word, path=path or search_path())
    if found is None:
        raise ImporterError(f"{where}: {word!r} is not found in PATH (pmon3 needs an absolute path)")
    return os.path.abspath(found)


def check_program(file: str, where: str, result: ImportResult) -> None:
    """Warn (not fail: the config may be meant for another machine) when the program cannot run here."""
    if not os.path.exists(file):
        result.warn(where, f"{file} does not exist on this machine")
    elif not os.path.isfile(file) or not os.access(file, os.X_OK):
        result.warn(where, f"{file} is not an executable file: pmond will refuse to start it")


def absolute(path: str, base_dir: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def check_user(user: str, where: str, result: ImportResult) -> None:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        result.warn(where, f"user {user!r} does not exist on this machine: pmond will refuse to start the process")
