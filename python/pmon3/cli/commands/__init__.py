"""Shared pieces of the commands: the session, --json, id arguments with live completion."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import click

from ...errors import Pmon3Error
from ..output import fail

F = TypeVar("F", bound=Callable[..., Any])


class Command(click.Command):
    """A click command whose parser takes a known short option (`-a`) as that option at once. click tries each
    `-x` as a long option first and makes a NoSuchOption of the miss, whose "did you mean" imports difflib and
    compares the token with every long option: ~1.5 ms of `pmon3 exec ... -a ARGS`. click then parses it as
    short options, as here, so nothing else changes (anything else, unknown options included, goes click's
    own way)."""

    def make_parser(self, ctx: click.Context) -> Any:
        parser = super().make_parser(ctx)
        short = getattr(parser, "_short_opt", None)
        long_first = getattr(parser, "_process_opts", None)
        as_short = getattr(parser, "_match_short_opt", None)
        if not isinstance(short, dict) or long_first is None or as_short is None:  # another click: leave it be
            return parser

        def process_opts(arg: str, state: Any) -> None:
            if arg in short:
                as_short(arg, state)
            else:
                long_first(arg, state)

        parser._process_opts = process_opts  # type: ignore[method-assign]
        return parser


def live_completions(values_of: Callable[[Any], list[tuple[str, str]]], incomplete: str) -> list[Any]:
    """Completion items from the daemon's answers; silent when none answers (never starts one)."""
    from click.shell_completion import CompletionItem

    from ...client import Client

    try:
        with Client(autostart=False, timeout=2.0) as c:
            data = values_of(c)
    except (Pmon3Error, OSError):
        return []
    return [CompletionItem(v, help=h) for v, h in data if v.startswith(incomplete)]


def complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Live process names and ids."""
    return live_completions(
        lambda c: [(v, p["status"]) for p in c.list() for v in (display_name(p), str(p["id"]))], incomplete
    )


def id_argument(name: str = "id", required: bool = True) -> Callable[[F], F]:
    return click.argument(name, required=required, shell_complete=complete_ids)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")


def handle_errors(fn: F) -> F:
    """Any pmon3 error -> one line on stderr (escaped), exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Pmon3Error as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


def session() -> Any:
    """The client of the CLI: starts a user daemon when none runs (if allowed); config warnings on stderr."""
    from .. import client

    return client()


def display_name(p: dict[str, Any]) -> str:
    from ..output import display_name as name

    return name(p)


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
