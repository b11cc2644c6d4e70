"""The one place that writes to the terminal: tables, JSON, and errors on stderr.

Tables are drawn here rather than with Rich: Rich costs ~90 ms to import and ~1 ms per row, which made
`pmon3 ls` with 100 processes slower than `supervisorctl status`; CLI latency is a feature. `topn` keeps Rich
for its live view. Colours follow pmon3 (status colours, cyan headers) and only on a terminal, never with
NO_COLOR set.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn, Optional

from ..errors import Pmon3Error

# ANSI SGR parameters: pmon3's status colours (truecolor).
STATUS_SGR = {
    "running": "1;38;2;22;255;22",
    "stopped": "1;38;2;255;255;0",
    "failed": "1;38;2;255;0;0",
    "init": "38;2;128;128;128",
    "backoff": "1;38;2;244;67;54",
}
OTHER_STATUS_SGR = "38;2;100;100;100"
HEADER_SGR = "1;36"


class CliError(Pmon3Error):
    """An error for the user: printed as one line on stderr, exit status 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"{escape(message)}\n")
    sys.exit(code)


def escape(text: str) -> str:
    """C0 and C1 controls (an escape sequence in a name, a newline in a message) are shown, never run."""
    if text.isprintable():  # text.escape's own first test: most tables need nothing else (nor its import)
        return text
    from ..text import escape as escape_text

    return escape_text(text)


@functools.cache
def own_name() -> str:
    """The caller's user name: looked up once (NSS reads /etc/passwd on each call; a table asks per row)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def display_name(p: Mapping[str, Any]) -> str:
    """How this caller names a record: plain when it is theirs, `owner/name` when root looks at another's."""
    owner = p.get("owner") or ""
    return str(p["name"]) if not owner or owner == own_name() else f"{owner}/{p['name']}"


def print_json(data: Any) -> None:
    """json.dumps(data, indent=2) and a newline."""
    from .. import fastjson

    print_json_text(fastjson.dumps(data))


def print_json_text(text: str) -> None:
    """Compact JSON text (as json.dumps(data, separators=(",", ":")) writes it) printed as json.dumps(data,
    indent=2) would: json has no C path for an indent (its Python encoder takes 2.5 s for `ls --json` of 10,000
    processes), so the compact text is written in C and re-indented natively."""
    from .. import _native

    sys.stdout.write(_native.json_indent(text, 2) + "\n")


def message(text: str) -> None:
    """Our own text; anything from the daemon or a user in it must have been through `escape`."""
    sys.stdout.write(text + "\n")


def _colour() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def display_width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def render_table(
    headers: list[str],
    rows: list[list[str]],
    justify: Optional[list[str]] = None,
    styles: Optional[list[list[Optional[str]]]] = None,
) -> str:
    """A rounded box table; `justify` per column (left, right, center), `styles` an SGR string per cell."""
    colour = _colour()
    justify = justify or ["left"] * len(headers)
    cells = [[escape(str(c)) for c in row] for row in rows]
    widths = [display_width(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], display_width(c))

    def fit(text: str, i: int, sgr: Optional[str]) -> str:
        pad = widths[i] - display_width(text)
        how = justify[i]
        left = pad // 2 if how == "center" else pad if how == "right" else 0
        body = f"\x1b[{sgr}m{text}\x1b[0m" if colour and sgr else text
        return " " + " " * left + body + " " * (pad - left) + " "

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    lines = [rule("╭", "┬", "╮"), "│" + "│".join(fit(h, i, HEADER_SGR) for i, h in enumerate(headers)) + "│"]
    lines.append(rule("├", "┼", "┤"))
    for r, row in enumerate(cells):
        row_styles = styles[r] if styles else [None] * len(row)
        lines.append("│" + "│".join(fit(c, i, row_styles[i]) for i, c in enumerate(row)) + "│")
    lines.append(rule("╰", "┴", "╯"))
    return "\n".join(lines) + "\n"


def _status_sgr(label: str) -> str:
    return STATUS_SGR.get(label, OTHER_STATUS_SGR)


def process_table(processes: Sequence[Mapping[str, Any]]) -> None:
    headers = ["ID", "Name", "PID", "⟳", "Status", "User", "CPU", "Memory", "Date"]
    justify = ["center", "left", "left", "left", "left", "left", "right", "right", "left"]
    rows, styles = [], []
    for p in sorted(processes, key=lambda p: p["id"]):
        rows.append(
            [
                str(p["id"]),
                display_name(p),
                str(p["pid"]),
                str(p["restart_count"]),
                p["status"],
                p["username"],
                p.get("cpu_usage", ""),
                p.get("memory_usage", ""),
                p["updated_at"],
            ]
        )
        styles.append([None, None, None, None, _status_sgr(p["status"]), None, None, None, None])
    sys.stdout.write(render_table(headers, rows, justify, styles))


def process_table_for_terminal(processes: Sequence[Mapping[str, Any]]) -> None:
    """The table, all of it when written to a pipe or a file. On a terminal at most a screenful (10,000 rows
    scroll away unread): the first processes by id, then a line with how many are not shown, the count per
    status and how to see all of them (--all, or a pipe: `pmon3 ls | less`)."""
    room = _rows_on_terminal()
    if room is None or len(processes) <= room:
        process_table(processes)
        return
    shown = sorted(processes, key=lambda p: p["id"])[:room]
    process_table(shown)
    counts: dict[str, int] = {}
    for p in processes:
        counts[p["status"]] = counts.get(p["status"], 0) + 1
    by_status = ", ".join(f"{n:,} {escape(status)}" for status, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    message(
        f"… {len(processes) - room:,} more not shown ({len(processes):,} processes: {by_status}); "
        "every one: pmon3 ls --all, or pmon3 ls | less; for scripts: pmon3 ls --json"
    )


# Lines of a terminal that are not process rows: the table's frame and header, the summary, the next prompt.
TABLE_CHROME = 7
MIN_ROWS = 20


def _rows_on_terminal() -> Optional[int]:
    """How many process rows fit on the terminal stdout is, or None when stdout is not a terminal."""
    if not sys.stdout.isatty():
        return None
    lines = os.environ.get("LINES", "")
    if lines.isdigit() and int(lines) > 0:
        height = int(lines)
    else:
        try:
            height = os.get_terminal_size(sys.stdout.fileno()).lines
        except OSError:
            height = 24
    return max(MIN_ROWS, height - TABLE_CHROME)


def describe_table(p: dict[str, Any]) -> None:
    fields: list[tuple[str, str]] = [
        ("status", p["status"]),
        ("id", str(p["id"])),
        ("name", display_name(p)),
        ("pid", str(p["pid"]) if p["pid"] else ""),
        ("restarted", str(p["restart_count"])),
        ("process", p["process_file"]),
        ("args", p["args"]),
        ("env-vars", p["env_vars"]),
        ("user", p["username"]),
        ("log", p["log"]),
        ("no-autorestart", "false" if p["auto_restart"] else "true"),
        ("dependencies", " ".join(p["dependencies"])),
        ("groups", ", ".join(p["groups"])),
        ("tree", p.get("tree", "")),
        ("notify-status", p.get("notify_status", "")),
        ("listen", " ".join((p.get("options") or {}).get("listen", []))),
        ("ready", str((p.get("options") or {}).get("ready", ""))),
        ("cpu", p.get("cpu_usage", "")),
        ("memory", p.get("memory_usage", "")),
        ("last exit", p.get("last_exit", "")),
        ("created_at", p["created_at"]),
        ("updated_at", p["updated_at"]),
    ]
    rows = [[k, v] for i, (k, v) in enumerate(fields) if i == 0 or v]
    styles: list[list[Optional[str]]] = [[None, None] for _ in rows]
    styles[0][1] = _status_sgr(p["status"])
    sys.stdout.write(render_table(["property", "description"], rows, styles=styles))


def group_table(groups: list[dict[str, Any]]) -> None:
    rows = [[str(g["id"]), display_name(g)] for g in sorted(groups, key=lambda g: g["id"])]
    sys.stdout.write(render_table(["ID", "Name"], rows, ["center", "left"]))
