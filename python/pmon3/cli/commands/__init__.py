"""Shared pieces of the commands: the session, --json, id arguments with live completion."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import click

from ..output import CliError, fail

F = TypeVar("F", bound=Callable[..., Any])


def live_completions(cmd: str, values: Callable[[Any], list[tuple[str, str]]], incomplete: str) -> list[Any]:
    """Completion items from the daemon's answer to `cmd`; silent when none answers (never starts one)."""
    from click.shell_completion import CompletionItem

    from ..client import Session

    try:
        with Session(autostart=False) as s:
            data = s.call(cmd, timeout=2.0)
    except (CliError, OSError):
        return []
    return [CompletionItem(v, help=h) for v, h in values(data) if v.startswith(incomplete)]


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Live process names and ids."""
    return live_completions(
        "list", lambda procs: [(v, p["status"]) for p in procs for v in (p["name"], str(p["id"]))], incomplete
    )


def id_argument(name: str = "id", required: bool = True) -> Callable[[F], F]:
    return click.argument(name, required=required, shell_complete=complete_ids)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")


def handle_errors(fn: F) -> F:
    """CliError -> one line on stderr, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CliError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def session() -> Any:
    from ..client import Session

    return Session()


def show_processes(data: list[dict[str, Any]], as_json: bool) -> None:
    from ..output import print_json, process_table

    if as_json:
        print_json(data)
    else:
        process_table(data)


def show_process(data: dict[str, Any], as_json: bool, table: str = "row") -> None:
    from ..output import describe_table, print_json, process_table

    if as_json:
        print_json(data)
    elif table == "desc":
        describe_table(data)
    else:
        process_table([data])
