"""Resource limits of a process, as the CLI, process config files and pmond spell them.

- `limits`: setrlimit limits set in the child before exec (rust/spawn.rs `rlimits`): NOFILE, NPROC, CORE,
  MEMLOCK, AS, CPU, STACK. A value is `soft[:hard]`, each a number (sizes may carry K, M, G, T: powers of
  1024), or `unlimited`; one value sets both, as systemd's LimitNOFILE= does. Given as `nofile=65536,core=0`
  (the CLI's `--limit`, a comma list), a list of such items, or a mapping `{nofile: 65536, core: 0}`. Stored
  (Process.options["limits"]) as {name: [soft, hard]} with -1 for unlimited.
- `max_memory`: pmond restarts the process when its tree's resident memory stays above it (bytes).
- `memory_max`, `cpu_max`, `pids_max`: cgroup v2 limits of the process's tree, where pmond has the controllers.

Pure functions: no I/O, used by pmond (validation, spawn) and the CLI (export).
"""

from __future__ import annotations

import re
from typing import Any

UNLIMITED = -1
# name -> resource.RLIMIT_* number on Linux (the same on every architecture pmon3 builds for)
RLIMITS = {"cpu": 0, "stack": 3, "core": 4, "nproc": 6, "nofile": 7, "memlock": 8, "as": 9}
# limits whose values are sizes in bytes (K/M/G/T suffixes); cpu is seconds, nofile and nproc counts
SIZES = frozenset({"stack", "core", "memlock", "as"})
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
# The smallest max_memory pmond takes (below it a process would be restarted over and over).
MAX_MEMORY_MIN = 1 << 20


class LimitError(ValueError):
    """A limit that cannot be understood; the message names it."""


def parse_size(value: Any, what: str) -> int:
    """Bytes from 536870912, "512M", "1.5G", "64KiB" (powers of 1024)."""
    if isinstance(value, bool):
        raise LimitError(f"{what}: expected a size such as 512M, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise LimitError(f"{what}: must not be negative")
        return value
    m = _SIZE.fullmatch(str(value).strip())
    if not m:
        raise LimitError(f"{what}: expected a size such as 512M or 2G, got {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def size_text(n: int) -> str:
    """The shortest exact spelling: 536870912 -> 512M, 1000 -> 1000."""
    for suffix in ("T", "G", "M", "K"):
        unit = _UNITS[suffix.lower()]
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _one_value(name: str, text: str, what: str) -> int:
    text = text.strip()
    if text.lower() in ("unlimited", "infinity"):
        return UNLIMITED
    if name in SIZES:
        return parse_size(text, what)
    if not text.isdigit():
        raise LimitError(f"{what}: expected a number or unlimited, got {text!r}")
    return int(text)


def parse_limit(name: str, value: Any, where: str = "limits") -> list[int]:
    """One limit -> [soft, hard]."""
    key = name.strip().lower().removeprefix("rlimit_")
    if key not in RLIMITS:
        raise LimitError(f"{where}: unknown limit {name!r} (use {', '.join(sorted(RLIMITS))})")
    what = f"{where}: {key}"
    if isinstance(value, bool):
        raise LimitError(f"{what}: expected soft[:hard], got {value!r}")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        soft, hard = (UNLIMITED if v in (-1, "unlimited") else _one_value(key, str(v), what) for v in value)
    elif isinstance(value, str):
        soft_text, sep, hard_text = value.partition(":")
        soft = _one_value(key, soft_text, what)
        hard = _one_value(key, hard_text, what) if sep else soft
    else:
        raise LimitError(f"{what}: expected soft[:hard], got {value!r}")
    if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
        raise LimitError(f"{what}: the soft limit is above the hard one")
    return [soft, hard]


def parse_limits(value: Any, where: str = "limits") -> dict[str, list[int]]:
    """`nofile=65536,core=0`, a list of such items, or a mapping -> {name: [soft, hard]} (names lower case)."""
    if value in (None, "", [], {}):
        return {}
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    else:
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if not isinstance(text, str):
                raise LimitError(f"{where}: expected NAME=VALUE items such as nofile=65536, got {text!r}")
            for item in text.split(","):
                if not item.strip():
                    continue
                name, sep, v = item.partition("=")
                if not sep:
                    raise LimitError(f"{where}: expected NAME=VALUE (e.g. nofile=65536), got {item.strip()!r}")
                items.append((name, v))
    out: dict[str, list[int]] = {}
    for name, v in items:
        out[name.strip().lower().removeprefix("rlimit_")] = parse_limit(name, v, where)
    return dict(sorted(out.items()))


def limits_text(limits: dict[str, list[int]]) -> str:
    """{name: [soft, hard]} -> `core=0,nofile=1024:65536` (the form --limit and process configs accept)."""

    def one(name: str, v: int) -> str:
        if v == UNLIMITED:
            return "unlimited"
        return size_text(v) if name in SIZES else str(v)

    parts = []
    for name, (soft, hard) in sorted(limits.items()):
        text = one(name, soft) if soft == hard else f"{one(name, soft)}:{one(name, hard)}"
        parts.append(f"{name}={text}")
    return ",".join(parts)


def rlimits(limits: dict[str, list[int]]) -> list[tuple[int, int, int]]:
    """What _native.spawn takes: (resource, soft, hard), -1 for unlimited."""
    return [(RLIMITS[name], soft, hard) for name, (soft, hard) in sorted(limits.items())]


def parse_cpu_max(value: Any, what: str = "cpu_max") -> str:
    """`50%` (of one CPU; 200% is two), `1.5` (CPUs) or cgroup's own `QUOTA PERIOD` (microseconds) ->
    the cpu.max text `QUOTA PERIOD`."""
    text = str(value).strip()
    period = 100000
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text)
    if m:
        quota = round(float(m.group(1)) * period / 100)
    elif re.fullmatch(r"\d+(?:\.\d+)?", text) and not isinstance(value, bool):
        quota = round(float(text) * period)
    else:
        m = re.fullmatch(r"(\d+)\s+(\d+)", text)
        if not m:
            raise LimitError(f"{what}: expected a share of one CPU such as 50% or 1.5, or QUOTA PERIOD, got {value!r}")
        quota, period = int(m.group(1)), int(m.group(2))
    if not 1000 <= quota or not 1000 <= period <= 1000000:
        raise LimitError(f"{what}: {value!r} is below what cgroups allow (quota and period at least 1 ms)")
    return f"{quota} {period}"


def parse_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not str(value).strip().isdigit() or int(str(value).strip()) < 1:
        raise LimitError(f"{what}: expected a positive number, got {value!r}")
    return int(str(value).strip())
