"""The one place that writes to the terminal: Rich tables, JSON, and errors on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

STATUS_STYLE = {
    "running": "bold #16ff16",
    "stopped": "bold #ffff00",
    "failed": "bold #ff0000",
    "init": "#808080",
    "backoff": "bold #f44336",
}


class CliError(Exception):
    """An error for the user: printed as one line on stderr, exit status 1."""


def fail(message: str, code: int = 1) -> NoReturn:
    sys.stderr.write(f"{message}\n")
    sys.exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _console() -> Any:
    import shutil

    from rich.console import Console  # lazy: rich costs start-up time

    # Piped output keeps whole rows (Rich would assume 80 columns and elide dates and paths).
    width = None if sys.stdout.isatty() else max(shutil.get_terminal_size((200, 24)).columns, 200)
    return Console(highlight=False, soft_wrap=False, width=width)


def _status(label: str) -> Any:
    from rich.text import Text

    return Text(label, style=STATUS_STYLE.get(label, "#646464"))


def process_table(processes: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.ROUNDED, header_style="bold cyan")
    for title, justify in (
        ("ID", "center"),
        ("Name", "left"),
        ("PID", "left"),
        ("⟳", "left"),
        ("Status", "left"),
        ("User", "left"),
        ("CPU", "right"),
        ("Memory", "right"),
        ("Date", "left"),
    ):
        table.add_column(title, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for p in sorted(processes, key=lambda p: p["id"]):
        table.add_row(
            str(p["id"]),
            p["name"],
            str(p["pid"]),
            str(p["restart_count"]),
            _status(p["status"]),
            p["username"],
            p.get("cpu_usage", ""),
            p.get("memory_usage", ""),
            p["updated_at"],
        )
    _console().print(table)


def describe_table(p: dict[str, Any]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.ROUNDED, header_style="bold cyan")
    table.add_column("property", min_width=15)
    table.add_column("description", min_width=15)
    rows: list[tuple[str, Any]] = [
        ("status", _status(p["status"])),
        ("id", str(p["id"])),
        ("name", p["name"]),
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
        ("cpu", p.get("cpu_usage", "")),
        ("memory", p.get("memory_usage", "")),
        ("created_at", p["created_at"]),
        ("updated_at", p["updated_at"]),
    ]
    for i, (key, value) in enumerate(rows):
        if i == 0 or value:
            table.add_row(key, value)
    _console().print(table)


def message(text: str) -> None:
    sys.stdout.write(text + "\n")


def group_table(groups: list[dict[str, Any]]) -> None:
    from rich import box
    from rich.table import Table

    table = Table(box=box.ROUNDED, header_style="bold cyan")
    table.add_column("ID", justify="center")
    table.add_column("Name")
    for g in sorted(groups, key=lambda g: g["id"]):
        table.add_row(str(g["id"]), g["name"])
    _console().print(table)
