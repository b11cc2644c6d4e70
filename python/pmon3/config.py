"""config.yml: loading, defaults, validation, environment overrides and the paths of each mode.

Keys are pmon3 1.18's (reference §7.1) plus our own sections `ipc`, `daemon` and `restart`, and `logs`'s
rotation keys. Every key is checked for its type and range; a bad one is a ConfigError naming the file, the
dotted key and what was expected (`/etc/pmon3/config/config.yml: restart.stop_timeout: invalid duration
'soon' ...`). An empty value (`key:` or `key: ""`) means the default, as in pmon3. An unknown key is ignored,
as pmon3 does, but reported: `Config.warnings` (pmond logs them at start and on a reload).

One small parser per section (`_restart`, `_logs`, ...) reads its keys through a `_Section`, which knows the
file and the dotted prefix for the messages and which keys were read. Each field of `Config` says whether a
reload may change it (field metadata, see `Config.apply_reload`): paths and IPC endpoints are fixed until
pmond restarts.

Imported by every CLI command: nothing heavy at import time (PyYAML and signal are imported on use).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from .errors import ConfigError

SYSTEM_CONFIG = "/etc/pmon3/config/config.yml"
# The PATH of processes and hooks: a clean base, never pmond's own environment.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_DATA_DIR = "/etc/pmon3/data"
SYSTEM_LOG_DIR = "/var/log/pmond"
LOG_LEVELS = ("debug", "info", "warn", "error")
RESTART_MODES = ("always", "on-failure", "never")
TRANSPORTS = ("mq", "unix")
PROCESS_TREES = ("auto", "cgroup", "session")
MAX_RETAIN = 1000
# The JSON cache of the CLI (read_yaml_cached) is only valid for the loader of this version.
CACHE_FORMAT = 2


# -- values -------------------------------------------------------------------------------------------------
# Each parser takes the value and its label (`<file>: <dotted key>`, or a flag name) and raises ConfigError.


def _show(value: Any) -> str:
    """A short repr for a message: `['should', 'not', 'be', ...]`."""
    import reprlib

    r = reprlib.Repr()
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 3
    r.maxstring = r.maxother = 60
    return r.repr(value)


def _expected(key: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"{key}: expected {what}, got {_show(value)}")


def parse_bool(value: Any, key: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise _expected(key, "true or false", value)


def parse_int(
    value: Any, key: str, default: int, low: Optional[int] = None, high: Optional[int] = None, unit: str = ""
) -> int:
    """An integer (or its digits as a string) in [low, high]; empty: `default`."""
    if value is None or value == "":
        return default
    if low is not None and high is not None:
        what = f"an integer from {low} to {high}"
    elif low is not None:
        what = f"an integer >= {low}"
    else:
        what = "an integer"
    what += f" ({unit})" if unit else ""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _expected(key, what, value)
    try:
        number = int(value)
    except ValueError:
        raise _expected(key, what, value) from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise _expected(key, what, value)
    return number


def parse_str(value: Any, key: str, default: str) -> str:
    """A scalar as text (YAML may have made `name_suffix: 123` a number); empty: `default`."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _expected(key, "a string", value)
    return str(value)


def parse_choice(value: Any, key: str, default: str, choices: tuple[str, ...]) -> str:
    if value is None or value == "":
        return default
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in choices:
        raise _expected(key, f"one of {', '.join(choices)}", value)
    return text


def parse_path(value: Any, key: str, default: str) -> str:
    """An absolute path, normalised; empty: `default` (which may be "")."""
    text = parse_str(value, key, default)
    if not text:
        return text
    if not os.path.isabs(text):
        raise _expected(key, "an absolute path", value)
    return os.path.normpath(text)


def parse_octal(value: Any, key: str, default: int) -> int:
    """A permission mode written in octal, as pmon3 reads it: `0770`, `770` or `"0o770"`; empty: `default`.
    (read_yaml keeps a leading-zero number as its text, so `0770` is not YAML 1.1's decimal 504.)"""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _expected(key, "an octal mode such as 0755", value)
    text = str(value).strip().lower().removeprefix("0o") if isinstance(value, str) else str(value)
    if not re.fullmatch(r"[0-7]{1,5}", text) or int(text, 8) > 0o7777:
        raise _expected(key, "an octal mode such as 0755", value)
    return int(text, 8)


def parse_duration_ms(value: Any, key: str) -> int:
    """Milliseconds from an int (ms, as pmon3) or a string such as `250ms`, `1.5s`, `2m`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _expected(key, "a duration such as 500, 500ms or 2s", value)
    if isinstance(value, (int, float)):
        ms = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", value)
        if not m:
            raise ConfigError(f"{key}: invalid duration {_show(value)} (use e.g. 500, 500ms, 2s)")
        ms = float(m.group(1)) * {"ms": 1, None: 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]
    if ms < 0:
        raise ConfigError(f"{key}: duration must not be negative, got {_show(value)}")
    return int(ms)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(value: Any, key: str) -> int:
    """Bytes from an int or a string such as `10M`, `512K`, `1.5G`, `2048` (K/M/G are powers of 1024,
    an optional `B`/`iB` is accepted); empty: 0."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _expected(key, "a size in bytes or with K, M or G (e.g. 10M)", value)
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)(?:I?B)?\s*", value.upper())
        if not m:
            raise ConfigError(f"{key}: invalid size {_show(value)} (use bytes or a number with K, M or G, e.g. 10M)")
        size = float(m.group(1)) * _UNITS[m.group(2)]
    if size < 0:
        raise ConfigError(f"{key}: size must not be negative, got {_show(value)}")
    return int(size)


def check_mode(value: Any, key: str) -> str:
    """A restart mode (config.yml's restart.mode, a process's `restart`)."""
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in RESTART_MODES:
        raise _expected(key, f"one of {', '.join(RESTART_MODES)}", value)
    return text


def check_signal(value: Any, key: str) -> str:
    """The one signal parser: a signal as given (SIGTERM, TERM, term, 15) -> its canonical text (SIGTERM, or the
    number)."""
    import signal

    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(f"{key}: unknown signal {_show(value)}")
    text = str(value).strip().upper()
    if text.isdigit() and 0 < int(text) < signal.NSIG:
        return text
    name = text if text.startswith("SIG") else "SIG" + text
    if name not in signal.Signals.__members__:
        raise ConfigError(f"{key}: unknown signal {_show(value)}")
    return name


def signal_number(value: Any) -> int:
    """The number of a signal in any form check_signal accepts."""
    import signal

    text = check_signal(value, "signal")
    return int(text) if text.isdigit() else int(signal.Signals[text])


def signal_name(value: Any, key: str) -> str:
    """check_signal, with a number given as the name it has (`15` -> `SIGTERM`) when it has one."""
    import signal

    text = check_signal(value, key)
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name
        except ValueError:
            pass
    return text


def check_exit_codes(value: Any, key: str) -> tuple[int, ...]:
    """Exit codes: a list, or text such as `0,2` or `0 2`."""
    if isinstance(value, (list, tuple)):
        items: list[Any] = list(value)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        items = str(value).replace(",", " ").split()
    else:
        raise _expected(key, "exit codes such as 0,2", value)
    if not items or any(isinstance(v, bool) or not isinstance(v, (int, str)) for v in items):
        raise _expected(key, "exit codes such as 0,2", value)
    try:
        codes = tuple(int(v) for v in items)
    except ValueError:
        raise _expected(key, "exit codes such as 0,2", value) from None
    if any(not 0 <= c <= 255 for c in codes):
        raise ConfigError(f"{key}: exit codes are 0 to 255, got {_show(value)}")
    return codes


# -- settings -----------------------------------------------------------------------------------------------
# Each field says what a reload does with it: `_reloadable`: a reload takes the new value; `_fixed`: kept until
# pmond restarts, `key` names it in the message; `_partly_reloadable`: a settings class whose own fields say
# which of them are fixed. A field without one is not a setting (the file's path, the mode, ...).
#
# The settings classes are built on `_Settings` rather than dataclasses: every CLI command imports this module,
# and generating the four dataclasses was ~3.5 ms of each command's start-up (issue 12).

_MISSING: Any = object()


class _Spec:
    """A field's default (a value or a factory) and its reload rule."""

    __slots__ = ("default", "factory", "reload", "key", "nested")

    def __init__(
        self,
        default: Any = _MISSING,
        factory: Optional[Callable[[], Any]] = None,
        reload: Optional[bool] = None,
        key: str = "",
        nested: Optional[type] = None,
    ) -> None:
        self.default, self.factory, self.reload, self.key, self.nested = default, factory, reload, key, nested


def _reloadable(*, default: Any = _MISSING, default_factory: Optional[Callable[[], Any]] = None) -> Any:
    return _Spec(default, default_factory, reload=True)


def _partly_reloadable(*, default_factory: type) -> Any:
    """Nested settings with fixed fields: a reload takes only the others."""
    return _Spec(factory=default_factory, reload=True, nested=default_factory)


def _fixed(key: str, *, default: Any = _MISSING) -> Any:
    return _Spec(default, reload=False, key=key)


def _factory(*, default_factory: Callable[[], Any]) -> Any:
    return _Spec(factory=default_factory)


if TYPE_CHECKING:
    from typing_extensions import Self, dataclass_transform
else:

    def dataclass_transform(**kw: Any) -> Any:
        return lambda cls: cls


@dataclass_transform(field_specifiers=(_reloadable, _partly_reloadable, _fixed, _factory))
class _Settings:
    """A record of settings: its annotated attributes are its fields, in order, with their defaults (as a
    dataclass: keyword or positional construction, equality and repr by fields; `frozen=True` in the class
    statement makes instances immutable and hashable)."""

    _FIELDS: ClassVar[tuple[tuple[str, _Spec], ...]] = ()
    _FROZEN: ClassVar[bool] = False

    def __init_subclass__(cls, frozen: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = list(cls._FIELDS)
        for name, kind in cls.__dict__.get("__annotations__", {}).items():
            if str(kind).startswith("ClassVar"):
                continue
            value = cls.__dict__.get(name, _MISSING)
            fields.append((name, value if isinstance(value, _Spec) else _Spec(value)))
            if value is not _MISSING:
                delattr(cls, name)  # instances carry the value
        cls._FIELDS = tuple(fields)
        cls._FROZEN = frozen
        if not frozen:
            cls.__hash__ = None  # type: ignore[assignment]  # mutable and compared by value: unhashable

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self._FIELDS):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._FIELDS)} arguments")
        for (name, _), value in zip(self._FIELDS, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            kwargs[name] = value
        values = self.__dict__
        for name, spec in self._FIELDS:
            value = kwargs.pop(name, _MISSING)
            if value is _MISSING:
                if spec.factory is not None:
                    value = spec.factory()
                elif spec.default is _MISSING:
                    raise TypeError(f"{type(self).__name__} is missing {name!r}")
                else:
                    value = spec.default
            values[name] = value
        if kwargs:
            raise TypeError(f"{type(self).__name__} has no field {next(iter(kwargs))!r}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[name] for name, _ in self._FIELDS)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={self.__dict__[n]!r}' for n, _ in self._FIELDS)})"

    def __setattr__(self, name: str, value: Any) -> None:
        if self._FROZEN:
            raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if self._FROZEN:
            raise AttributeError(f"cannot delete field {name!r} of a frozen {type(self).__name__}")
        super().__delattr__(name)

    @classmethod
    def fields(cls) -> tuple[tuple[str, _Spec], ...]:
        """(name, spec) of every field, in order."""
        return cls._FIELDS

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (dataclasses.replace). On a restart's path (a process's own restart keys over
        the defaults): the values are copied, not passed through __init__ again."""
        for name in changes:
            if name not in self.__dict__:
                raise TypeError(f"{type(self).__name__} has no field {name!r}")
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


class RestartSettings(_Settings, frozen=True):
    """A restart policy: config.yml's `restart:` section gives the defaults, policy.effective applies a
    process's own keys to them. Durations in seconds."""

    mode: str = "always"
    success_exit_codes: tuple[int, ...] = (0,)
    min_uptime: float = 1.0
    restart_delay: float = 0.1
    max_restart_delay: float = 30.0
    stop_signal: str = "SIGTERM"
    stop_timeout: float = 10.0


class FlapDetection(_Settings, frozen=True):
    enabled: bool = False
    threshold_restarted: int = 5
    threshold_countdown: int = 120  # in process_monitor_interval units
    threshold_decrement: int = 60


class LogSettings(_Settings, frozen=True):
    """config.yml's `logs:`: where pmond's own process logs go, and the built-in rotation (docs/logs.md)."""

    directory: str = _fixed("logs.directory", default=SYSTEM_LOG_DIR)
    directory_mode: int = _fixed("logs.directory_mode", default=0o755)
    max_size: int = _reloadable(default=0)  # bytes; 0: no rotation
    retain: int = _reloadable(default=5)  # rotated files kept; 0: what is over max_size is dropped
    compress: bool = _reloadable(default=False)

    @property
    def enabled(self) -> bool:
        return self.max_size > 0


class Config(_Settings):
    path: str
    mode: str  # "system" or "user"
    exists: bool = False
    log_level: str = _reloadable(default="info")
    handle_interrupts: bool = _reloadable(default=True)
    disable_reloads: bool = _reloadable(default=False)
    process_monitor_interval_ms: int = _reloadable(default=500)
    initialization_period_s: int = _reloadable(default=30)
    process_config_file: str = _reloadable(default="")
    data_directory: str = _fixed("data.directory", default="")
    logs: LogSettings = _partly_reloadable(default_factory=LogSettings)  # its directory fields are fixed
    name_suffix: str = _fixed("message_queue.name_suffix", default="")
    transport: str = _fixed("ipc.transport", default="mq")
    # auto | cgroup | session: how a process's whole tree is tracked (daemon/trees.py)
    trees: str = _fixed("process_trees", default="auto")
    socket_path: str = _fixed("ipc.socket", default="")
    autostart: bool = _reloadable(default=True)  # the CLI's, read by each command
    daemon_log: str = _fixed("daemon.log", default="")
    wait_dependent_ms: int = _reloadable(default=1000)
    restart: RestartSettings = _reloadable(default_factory=RestartSettings)
    flap: FlapDetection = _reloadable(default_factory=FlapDetection)
    # event name (restart|failure|backoff) -> command line, run without a shell
    hooks: dict[str, str] = _reloadable(default_factory=dict)
    hook_timeout_ms: int = _reloadable(default=30000)
    history_retain: int = _reloadable(default=1000)  # exits kept per process (history.retain); 0: no history is written
    memory_check_ms: int = _reloadable(default=5000)  # limits.memory_check_interval: how often max_memory is checked
    metrics_listen: str = _fixed("metrics.listen", default="")  # "HOST:PORT" or a unix socket path; "": no endpoint
    metrics_users: str = _reloadable(default="root")  # metrics.users: root (pmond's own user's processes) | all
    # Unknown keys, ignored: one line each, naming the file and the key.
    warnings: tuple[str, ...] = ()
    raw: dict[str, Any] = _factory(default_factory=dict)

    @property
    def db_path(self) -> str:
        return os.path.join(self.data_directory, "data.db")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.data_directory, "pmond.lock")

    @property
    def mq_base(self) -> str:
        """POSIX MQ names are /pmon3 or /pmon3_<suffix>; every daemon queue starts with this."""
        return "/pmon3" + (f"_{self.name_suffix}" if self.name_suffix else "")

    @classmethod
    def fixed_keys(cls) -> list[str]:
        """The keys of config.yml that a reload never changes (paths and IPC endpoints)."""
        return _fixed_keys(cls)

    def apply_reload(self, fresh: Config) -> list[str]:
        """Take over from `fresh` (the same file read again) what a reload may change, in place: the daemon's
        parts share this object. Returns the keys whose new value waits for the next pmond start."""
        take, pending = _merge(self, fresh)
        for name, value in take.items():
            setattr(self, name, value)
        self.exists, self.raw, self.warnings = fresh.exists, fresh.raw, fresh.warnings
        return pending


def _fixed_keys(cls: Any) -> list[str]:
    keys: list[str] = []
    for _, spec in cls.fields():
        if spec.reload is False:
            keys.append(spec.key)
        elif spec.nested is not None:
            keys += _fixed_keys(spec.nested)
    return keys


def _merge(current: Any, fresh: Any) -> tuple[dict[str, Any], list[str]]:
    """The settings to take from `fresh` (a nested one with fixed fields is rebuilt with those kept), and the
    keys of the fixed settings that differ."""
    take: dict[str, Any] = {}
    pending: list[str] = []
    for name, spec in current.fields():
        if spec.reload is None:
            continue
        old, new = getattr(current, name), getattr(fresh, name)
        if not spec.reload:
            if old != new:
                pending.append(spec.key)
        elif spec.nested is not None:
            inner, more = _merge(old, new)
            take[name] = old.replace(**inner)
            pending += more
        else:
            take[name] = new
    return take, pending


# -- reading config.yml -------------------------------------------------------------------------------------


class _Section:
    """One mapping of config.yml: typed getters whose errors name `<file>: <dotted key>`, and the keys read,
    so that `done` can report the others as unknown."""

    def __init__(self, path: str, prefix: str, data: dict[str, Any], warnings: list[str]) -> None:
        self.path, self.prefix, self.data, self.warnings = path, prefix, data, warnings
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}: {self.prefix}{name}"

    def get(self, name: str) -> Any:
        self.seen.add(name)
        return self.data.get(name)

    def section(self, name: str) -> _Section:
        value = self.get(name)
        if value is None or value == "":
            value = {}
        if not isinstance(value, dict):
            raise _expected(self.key(name), "a mapping", value)
        return _Section(self.path, f"{self.prefix}{name}.", value, self.warnings)

    def done(self) -> None:
        for name in self.data:
            if name not in self.seen:
                self.warnings.append(f"{self.path}: {self.prefix}{name}: unknown key, ignored")

    # typed getters: an empty value means the default
    def boolean(self, name: str, default: bool) -> bool:
        return parse_bool(self.get(name), self.key(name), default)

    def integer(self, name: str, default: int, low: Optional[int], high: Optional[int] = None, unit: str = "") -> int:
        return parse_int(self.get(name), self.key(name), default, low, high, unit)

    def text(self, name: str, default: str = "") -> str:
        return parse_str(self.get(name), self.key(name), default)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        return parse_choice(self.get(name), self.key(name), default, choices)

    def abspath(self, name: str, default: str) -> str:
        return parse_path(self.get(name), self.key(name), default)

    def octal(self, name: str, default: int) -> int:
        return parse_octal(self.get(name), self.key(name), default)

    def seconds(self, name: str, default: float) -> float:
        value = self.get(name)
        return default if value is None or value == "" else parse_duration_ms(value, self.key(name)) / 1000

    def ms(self, name: str, default: int) -> int:
        value = self.get(name)
        return default if value is None or value == "" else parse_duration_ms(value, self.key(name))


def _xdg(var: str, fallback: str) -> str:
    value = os.environ.get(var, "")
    return value if os.path.isabs(value) else os.path.join(os.path.expanduser("~"), fallback)


def _state_dir() -> str:
    return os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), "pmon3")


def default_config_path(mode: str) -> str:
    if mode == "system":
        return SYSTEM_CONFIG
    return os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "pmon3", "config.yml")


def current_mode() -> str:
    return "system" if os.geteuid() == 0 else "user"


def _log_level(s: _Section) -> str:
    level = s.choice("log_level", "info", LOG_LEVELS)
    debug = os.environ.get("PMON3_DEBUG", "")
    if debug:  # pmon3: `true` is debug, a level name that level, anything else info
        return "debug" if debug.lower() == "true" else (debug if debug in LOG_LEVELS else "info")
    return level


def _top_level(s: _Section, cfg: Config) -> None:
    cfg.log_level = _log_level(s)
    cfg.handle_interrupts = s.boolean("handle_interrupts", True)
    cfg.disable_reloads = s.boolean("disable_reloads", False)
    cfg.process_monitor_interval_ms = s.integer("process_monitor_interval", 500, 1, 3_600_000, "ms")
    # pmon3 replaced a value under 5 by 30 (with a message) and panicked at an interval <= 0: refused here.
    cfg.initialization_period_s = s.integer("initialization_period", 30, 5, None, "seconds")
    cfg.process_config_file = s.text("process_config_file")
    cfg.trees = s.choice("process_trees", "auto", PROCESS_TREES)


def _ownership(s: _Section) -> None:
    """pmon3's user/group/modes of a directory: accepted and checked, not used (pmond never chowns or
    chmods an existing directory, README "Security")."""
    s.text("user")
    s.text("group")
    s.octal("directory_mode", 0o770)
    s.octal("file_mode", 0o660)


def _data(s: _Section, mode: str, state: str) -> str:
    directory = s.abspath("directory", SYSTEM_DATA_DIR if mode == "system" else state)
    _ownership(s)
    s.done()
    return directory


def _logs(s: _Section, mode: str, state: str) -> LogSettings:
    settings = LogSettings(
        directory=s.abspath("directory", SYSTEM_LOG_DIR if mode == "system" else os.path.join(state, "logs")),
        directory_mode=s.octal("directory_mode", 0o755),
        max_size=parse_size(s.get("max_size"), s.key("max_size")),
        retain=s.integer("retain", 5, 0, MAX_RETAIN, "rotated files"),
        compress=s.boolean("compress", False),
    )
    s.text("user")
    s.text("group")
    s.octal("file_mode", 0o660)
    s.done()
    return settings


# The characters of message_queue.name_suffix: checked without a regex, whose compilation (~0.2 ms) every CLI
# command would pay.
_SUFFIX_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


def _message_queue(s: _Section, mode: str) -> str:
    suffix = s.text("name_suffix")
    if suffix and (len(suffix) > 64 or not _SUFFIX_CHARS.issuperset(suffix)):
        raise _expected(s.key("name_suffix"), "up to 64 letters, digits, '_', '.' or '-'", suffix)
    directory = s.section("directory")  # pmon3's shared memory / mqueue mount points: not used
    directory.text("shmem")
    directory.text("posix_mq")
    directory.done()
    _ownership(s)
    s.done()
    return suffix or (f"u{os.geteuid()}" if mode == "user" else "")


def _ipc(s: _Section, cfg: Config) -> None:
    cfg.transport = s.choice("transport", "mq", TRANSPORTS)
    suffix = cfg.name_suffix
    default = (
        f"/run/pmon3{'_' + suffix if suffix else ''}.sock"
        if cfg.mode == "system"
        else os.path.join(cfg.data_directory, "pmond.sock")
    )
    cfg.socket_path = s.abspath("socket", default)
    s.done()


def _daemon(s: _Section, cfg: Config, state: str) -> None:
    cfg.autostart = s.boolean("autostart", True)
    cfg.daemon_log = s.abspath("log", "" if cfg.mode == "system" else os.path.join(state, "pmond.log"))
    s.done()


def _wait(s: _Section) -> int:
    # The CLI's pauses of pmon3 (we need none): checked against pmon3's ranges, not used.
    s.integer("cmd_exec_response", 1500, 0, 10000, "ms")
    s.integer("ipc_connection", 0, 0, 5000, "ms")
    dependent = s.integer("dependent_process_enqueued", 1000, 0, 20000, "ms")
    s.done()
    return dependent


def _restart(s: _Section) -> RestartSettings:
    d = RestartSettings()
    mode = s.get("mode")
    codes = s.get("success_exit_codes")
    signal = s.get("stop_signal")
    settings = RestartSettings(
        mode=d.mode if mode in (None, "") else check_mode(mode, s.key("mode")),
        success_exit_codes=(
            d.success_exit_codes if codes in (None, "") else check_exit_codes(codes, s.key("success_exit_codes"))
        ),
        min_uptime=s.seconds("min_uptime", d.min_uptime),
        restart_delay=s.seconds("restart_delay", d.restart_delay),
        max_restart_delay=s.seconds("max_restart_delay", d.max_restart_delay),
        stop_signal=d.stop_signal if signal in (None, "") else check_signal(signal, s.key("stop_signal")),
        stop_timeout=s.seconds("stop_timeout", d.stop_timeout),
    )
    s.done()
    return settings


def _flap(s: _Section) -> FlapDetection:
    flap = FlapDetection(
        enabled=s.boolean("is_enabled", False),
        threshold_restarted=s.integer("threshold_restarted", 5, 1, 32767, "restarts"),
        threshold_countdown=s.integer("threshold_countdown", 120, 1, None, "monitor intervals"),
        threshold_decrement=s.integer("threshold_decrement", 60, 0, None, "monitor intervals"),
    )
    s.done()
    return flap


def _events(s: _Section, top: _Section, cfg: Config) -> None:
    # pmon3 1.13/1.14 spelled two of them as top-level keys; the nested ones win.
    legacy = {
        "restart": top.text("on_process_restart_exec"),
        "failure": top.text("on_process_failure_exec"),
        "backoff": "",
    }
    cfg.hooks = {}
    for event in ("restart", "failure", "backoff"):
        command = s.text(f"process_{event}").strip() or legacy[event].strip()
        if command:
            cfg.hooks[event] = command
    cfg.hook_timeout_ms = s.ms("timeout", 30000)
    s.done()


def _history(s: _Section) -> int:
    retain = s.integer("retain", 1000, 0, None, "exits kept per process; 0: none")
    s.done()
    return retain


def _limits(s: _Section) -> int:
    interval = s.ms("memory_check_interval", 5000)
    if interval < 100:
        raise _expected(s.key("memory_check_interval"), "a duration of at least 100ms", s.get("memory_check_interval"))
    s.done()
    return interval


def _metrics(s: _Section, cfg: Config) -> None:
    cfg.metrics_listen = s.text("listen").strip()
    if cfg.metrics_listen:
        check_listen(cfg.metrics_listen, s.key("listen"))
    cfg.metrics_users = s.choice("users", "root", ("root", "all"))
    s.done()


def check_listen(value: str, key: str) -> tuple[str, int]:
    """metrics.listen: an absolute unix socket path -> (path, 0); HOST:PORT or [V6]:PORT -> (host, port)."""
    if value.startswith("/"):
        return value, 0
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _expected(key, "HOST:PORT (e.g. 127.0.0.1:9465) or a unix socket path", value)
    return host, int(port)


def from_mapping(raw: dict[str, Any], path: str, mode: str, exists: bool = True) -> Config:
    """Check and apply every key of a parsed config.yml; raises ConfigError on the first bad one."""
    warnings: list[str] = []
    top = _Section(path, "", raw, warnings)
    state = _state_dir()
    cfg = Config(path=path, mode=mode, exists=exists, raw=raw)
    _top_level(top, cfg)
    cfg.data_directory = _data(top.section("data"), mode, state)
    cfg.logs = _logs(top.section("logs"), mode, state)
    cfg.name_suffix = _message_queue(top.section("message_queue"), mode)
    _ipc(top.section("ipc"), cfg)
    _daemon(top.section("daemon"), cfg, state)
    cfg.wait_dependent_ms = _wait(top.section("wait"))
    permissions = top.section("permissions")
    _ownership(permissions)
    permissions.done()
    cfg.restart = _restart(top.section("restart"))
    cfg.flap = _flap(top.section("flap_detection"))
    _events(top.section("event_handling"), top, cfg)
    cfg.history_retain = _history(top.section("history"))
    cfg.memory_check_ms = _limits(top.section("limits"))
    _metrics(top.section("metrics"), cfg)
    top.done()
    cfg.warnings = tuple(warnings)
    return cfg


_LOADER: Any = None


def _loader() -> Any:
    """PyYAML's fastest safe loader, except that a number with a leading zero (`0770`, a mode in pmon3's
    config.yml) stays text: YAML 1.1 would make it the octal value, which reads back wrong."""
    global _LOADER
    if _LOADER is None:
        import yaml  # lazy: the CLI's start-up time matters

        base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

        class Loader(base):  # type: ignore[valid-type,misc]
            pass

        def construct_int(loader: Any, node: Any) -> Any:
            if re.fullmatch(r"[-+]?0[0-7_]+", node.value):
                return node.value
            return loader.construct_yaml_int(node)

        Loader.add_constructor("tag:yaml.org,2002:int", construct_int)
        _LOADER = Loader
    return _LOADER


def read_yaml(path: str) -> dict[str, Any]:
    """Parse one YAML file into a mapping; a ConfigError names the file on any problem."""
    import yaml  # lazy: the CLI's start-up time matters

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_loader())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def _cache_file(path: str) -> Optional[str]:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    # FNV-1a, not hashlib (its import, OpenSSL, is ~5 ms of every command) nor zlib (~0.4 ms): a clash only
    # misses, as the cache names the path it was made for.
    h = 0xCBF29CE484222325
    for byte in path.encode():
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return os.path.join(base, "pmon3", f"config-{h:016x}.json")


def read_yaml_cached(path: str) -> dict[str, Any]:
    """read_yaml, through a JSON copy in the caller's cache keyed by the file's identity and mtime:
    importing PyYAML would be a third of the CLI's start-up time. A cache that cannot be used is skipped."""
    from . import fastjson

    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    cache = _cache_file(path)
    if cache:
        try:
            with open(cache, encoding="utf-8") as fh:
                saved = fastjson.loads(fh.read())
            fresh = saved.get("format") == CACHE_FORMAT and saved.get("path") == path and saved.get("stamp") == stamp
            if fresh and isinstance(saved.get("data"), dict):
                return saved["data"]  # type: ignore[no-any-return]
        except (OSError, ValueError):
            pass
    data = read_yaml(path)
    if cache:
        try:
            text = fastjson.dumps({"format": CACHE_FORMAT, "path": path, "stamp": stamp, "data": data})
            os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
            tmp = f"{cache}.{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, cache)
        except (OSError, TypeError, ValueError):
            pass  # not JSON-able (e.g. YAML dates) or no writable cache: parse next time too
    return data


def load(path: Optional[str] = None, mode: Optional[str] = None, cached: bool = False) -> Config:
    """Load the config of this program: PMON3_CONF, else the mode's default path. A missing file means defaults."""
    mode = mode or current_mode()
    path = path or os.environ.get("PMON3_CONF") or default_config_path(mode)
    exists = os.path.isfile(path)
    raw = (read_yaml_cached(path) if cached else read_yaml(path)) if exists else {}
    return from_mapping(raw, path, mode, exists)


def ensure_dir(path: str, mode: int) -> None:
    """Create a daemon-owned directory; an existing one is left exactly as it is (never chmod-ed)."""
    os.makedirs(path, mode=mode, exist_ok=True)
