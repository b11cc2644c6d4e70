"""config.yml: loading, defaults, validation, environment overrides and the paths of each mode.

Keys are pmon3 1.18's (reference §7.1) plus our own sections `ipc`, `daemon` and `restart`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Optional

from .errors import ConfigError

SYSTEM_CONFIG = "/etc/pmon3/config/config.yml"
# The PATH of processes and hooks: a clean base, never pmond's own environment.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_DATA_DIR = "/etc/pmon3/data"
SYSTEM_LOG_DIR = "/var/log/pmond"
LOG_LEVELS = ("debug", "info", "warn", "error")


def parse_duration_ms(value: Any, key: str) -> int:
    """Milliseconds from an int (ms, as pmon3) or a string such as `250ms`, `1.5s`, `2m`."""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a duration, got {value!r}")
    if isinstance(value, (int, float)):
        ms = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
        if not m:
            raise ConfigError(f"{key}: invalid duration {value!r} (use e.g. 500, 500ms, 2s)")
        ms = float(m.group(1)) * {"ms": 1, None: 1, "s": 1000, "m": 60000, "h": 3600000}[m.group(2)]
    if ms < 0:
        raise ConfigError(f"{key}: duration must not be negative")
    return int(ms)


def _octal(value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    try:
        return int(str(value), 8)
    except ValueError:
        return default


RESTART_MODES = ("always", "on-failure", "never")


@dataclasses.dataclass
class RestartDefaults:
    mode: str = "always"
    success_exit_codes: tuple[int, ...] = (0,)
    min_uptime_ms: int = 1000
    restart_delay_ms: int = 100
    max_restart_delay_ms: int = 30000
    stop_timeout_ms: int = 10000
    stop_signal: str = "SIGTERM"


@dataclasses.dataclass
class FlapDetection:
    enabled: bool = False
    threshold_restarted: int = 5
    threshold_countdown: int = 120  # in process_monitor_interval units
    threshold_decrement: int = 60


@dataclasses.dataclass
class Config:
    path: str
    mode: str  # "system" or "user"
    exists: bool = False
    log_level: str = "info"
    handle_interrupts: bool = True
    disable_reloads: bool = False
    process_monitor_interval_ms: int = 500
    initialization_period_s: int = 30
    process_config_file: str = ""
    data_directory: str = ""
    logs_directory: str = ""
    logs_directory_mode: int = 0o755
    name_suffix: str = ""
    transport: str = "mq"
    trees: str = "auto"  # auto | cgroup | session: how a process's whole tree is tracked (daemon/trees.py)
    socket_path: str = ""
    autostart: bool = True
    daemon_log: str = ""
    wait_dependent_ms: int = 1000
    restart: RestartDefaults = dataclasses.field(default_factory=RestartDefaults)
    flap: FlapDetection = dataclasses.field(default_factory=FlapDetection)
    # event name (restart|failure|backoff) -> command line, run without a shell
    hooks: dict[str, str] = dataclasses.field(default_factory=dict)
    hook_timeout_ms: int = 30000
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)

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


def _xdg(var: str, fallback: str) -> str:
    value = os.environ.get(var, "")
    return value if os.path.isabs(value) else os.path.join(os.path.expanduser("~"), fallback)


def default_config_path(mode: str) -> str:
    if mode == "system":
        return SYSTEM_CONFIG
    return os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "pmon3", "config.yml")


def current_mode() -> str:
    return "system" if os.geteuid() == 0 else "user"


def _section(raw: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: `{key}` must be a mapping")
    return value


def parse_bool(value: Any, key: str, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def parse_int(value: Any, key: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key}: expected an integer, got {value!r}") from None


def read_yaml(path: str) -> dict[str, Any]:
    """Parse one YAML file into a mapping; a ConfigError names the file on any problem."""
    import yaml  # lazy: the CLI's start-up time matters

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader)
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
    import hashlib

    return os.path.join(base, "pmon3", f"config-{hashlib.sha1(path.encode()).hexdigest()[:16]}.json")


def read_yaml_cached(path: str) -> dict[str, Any]:
    """read_yaml, through a JSON copy in the caller's cache keyed by the file's identity and mtime:
    importing PyYAML would be a third of the CLI's start-up time. A cache that cannot be used is skipped."""
    import json

    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
    cache = _cache_file(path)
    if cache:
        try:
            with open(cache, encoding="utf-8") as fh:
                saved = json.load(fh)
            if saved.get("path") == path and saved.get("stamp") == stamp and isinstance(saved.get("data"), dict):
                return saved["data"]  # type: ignore[no-any-return]
        except (OSError, ValueError):
            pass
    data = read_yaml(path)
    if cache:
        try:
            text = json.dumps({"path": path, "stamp": stamp, "data": data})
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


def from_mapping(raw: dict[str, Any], path: str, mode: str, exists: bool = True) -> Config:
    cfg = Config(path=path, mode=mode, exists=exists, raw=raw)
    level = str(raw.get("log_level") or "info").lower()
    cfg.log_level = level if level in LOG_LEVELS else "info"
    debug = os.environ.get("PMON3_DEBUG", "")
    if debug:
        cfg.log_level = "debug" if debug.lower() == "true" else (debug if debug in LOG_LEVELS else "info")
    cfg.handle_interrupts = parse_bool(raw.get("handle_interrupts"), "handle_interrupts", True)
    cfg.disable_reloads = parse_bool(raw.get("disable_reloads"), "disable_reloads", False)
    interval = parse_int(raw.get("process_monitor_interval"), "process_monitor_interval", 500)
    if interval <= 0:
        raise ConfigError(f"{path}: process_monitor_interval must be greater than 0")
    cfg.process_monitor_interval_ms = interval
    period = parse_int(raw.get("initialization_period"), "initialization_period", 30)
    cfg.initialization_period_s = period if period >= 5 else 30
    cfg.process_config_file = str(raw.get("process_config_file") or "")

    data = _section(raw, "data", path)
    logs = _section(raw, "logs", path)
    mq = _section(raw, "message_queue", path)
    ipc = _section(raw, "ipc", path)
    daemon = _section(raw, "daemon", path)
    wait = _section(raw, "wait", path)
    restart = _section(raw, "restart", path)

    state = os.path.join(_xdg("XDG_STATE_HOME", ".local/state"), "pmon3")
    cfg.data_directory = str(data.get("directory") or (SYSTEM_DATA_DIR if mode == "system" else state))
    cfg.logs_directory = str(
        logs.get("directory") or (SYSTEM_LOG_DIR if mode == "system" else os.path.join(state, "logs"))
    )
    for key in ("data_directory", "logs_directory"):
        value = getattr(cfg, key)
        if not os.path.isabs(value):
            raise ConfigError(f"{path}: {key.replace('_', '.')} must be an absolute path, got {value!r}")
        setattr(cfg, key, os.path.normpath(value))
    cfg.logs_directory_mode = _octal(logs.get("directory_mode"), 0o755)

    suffix = str(mq.get("name_suffix") or "")
    if suffix and not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", suffix):
        raise ConfigError(f"{path}: message_queue.name_suffix may only hold letters, digits, '_', '.', '-'")
    if not suffix and mode == "user":
        suffix = f"u{os.geteuid()}"
    cfg.name_suffix = suffix

    cfg.transport = str(ipc.get("transport") or "mq")
    if cfg.transport not in ("mq", "unix"):
        raise ConfigError(f"{path}: ipc.transport must be mq or unix, got {cfg.transport!r}")
    sock_default = (
        f"/run/pmon3{'_' + suffix if suffix else ''}.sock"
        if mode == "system"
        else os.path.join(cfg.data_directory, "pmond.sock")
    )
    cfg.socket_path = str(ipc.get("socket") or sock_default)

    cfg.trees = str(raw.get("process_trees") or "auto")
    if cfg.trees not in ("auto", "cgroup", "session"):
        raise ConfigError(f"{path}: process_trees must be auto, cgroup or session, got {cfg.trees!r}")
    cfg.autostart = parse_bool(daemon.get("autostart"), "daemon.autostart", True)
    cfg.daemon_log = str(daemon.get("log") or ("" if mode == "system" else os.path.join(state, "pmond.log")))
    dep_wait = parse_int(wait.get("dependent_process_enqueued"), "wait.dependent_process_enqueued", 1000)
    cfg.wait_dependent_ms = dep_wait if 0 <= dep_wait <= 20000 else 1000

    rd = RestartDefaults()
    for key, attr in (
        ("min_uptime", "min_uptime_ms"),
        ("restart_delay", "restart_delay_ms"),
        ("max_restart_delay", "max_restart_delay_ms"),
        ("stop_timeout", "stop_timeout_ms"),
    ):
        if restart.get(key) not in (None, ""):
            setattr(rd, attr, parse_duration_ms(restart[key], f"{path}: restart.{key}"))
    if restart.get("stop_signal"):
        rd.stop_signal = check_signal(restart["stop_signal"], f"{path}: restart.stop_signal")
    if restart.get("mode"):
        rd.mode = check_mode(restart["mode"], f"{path}: restart.mode")
    if restart.get("success_exit_codes") not in (None, ""):
        rd.success_exit_codes = check_exit_codes(restart["success_exit_codes"], f"{path}: restart.success_exit_codes")
    cfg.restart = rd

    flap = _section(raw, "flap_detection", path)
    cfg.flap = FlapDetection(
        enabled=parse_bool(flap.get("is_enabled"), "flap_detection.is_enabled", False),
        threshold_restarted=parse_int(flap.get("threshold_restarted"), "flap_detection.threshold_restarted", 5),
        threshold_countdown=parse_int(flap.get("threshold_countdown"), "flap_detection.threshold_countdown", 120),
        threshold_decrement=parse_int(flap.get("threshold_decrement"), "flap_detection.threshold_decrement", 60),
    )
    if cfg.flap.threshold_restarted < 1 or cfg.flap.threshold_countdown < 1 or cfg.flap.threshold_decrement < 0:
        raise ConfigError(f"{path}: flap_detection thresholds must be positive (decrement may be 0)")

    events = _section(raw, "event_handling", path)
    # pmon3 1.13/1.14 spelled two of them as top-level keys; the nested ones win.
    legacy = {"restart": raw.get("on_process_restart_exec"), "failure": raw.get("on_process_failure_exec")}
    for event in ("restart", "failure", "backoff"):
        command = events.get(f"process_{event}") or legacy.get(event) or ""
        if not isinstance(command, str):
            raise ConfigError(f"{path}: event_handling.process_{event} must be a command line")
        if command.strip():
            cfg.hooks[event] = command.strip()
    if events.get("timeout") not in (None, ""):
        cfg.hook_timeout_ms = parse_duration_ms(events["timeout"], f"{path}: event_handling.timeout")
    return cfg


def check_mode(value: Any, key: str) -> str:
    mode = str(value).strip().lower()
    if mode not in RESTART_MODES:
        raise ConfigError(f"{key}: expected one of {', '.join(RESTART_MODES)}, got {value!r}")
    return mode


def check_signal(value: Any, key: str) -> str:
    """A signal as given (SIGTERM, TERM, term, 15) -> its canonical text (SIGTERM, or the number)."""
    import signal

    text = str(value).strip().upper()
    if text.isdigit() and 0 < int(text) < signal.NSIG:
        return text
    name = text if text.startswith("SIG") else "SIG" + text
    if name not in signal.Signals.__members__:
        raise ConfigError(f"{key}: unknown signal {value!r}")
    return name


def signal_number(value: Any) -> int:
    """The number of a signal in any form check_signal accepts."""
    import signal

    text = check_signal(value, "signal")
    return int(text) if text.isdigit() else int(signal.Signals[text])


def check_exit_codes(value: Any, key: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else str(value).replace(",", " ").split()
    try:
        codes = tuple(int(v) for v in items)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: expected exit codes such as 0,2") from None
    if not codes or any(not 0 <= c <= 255 for c in codes):
        raise ConfigError(f"{key}: exit codes are 0 to 255")
    return codes


def ensure_dir(path: str, mode: int) -> None:
    """Create a daemon-owned directory; an existing one is left exactly as it is (never chmod-ed)."""
    os.makedirs(path, mode=mode, exist_ok=True)
