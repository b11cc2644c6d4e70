"""group|groups: ls|list, create, del, assign, remove, desc|show, stop, restart, drop."""

from __future__ import annotations

from typing import Any, Optional

import click

from ..output import print_json
from . import Command, handle_errors, json_option, live_completions, session, show_processes
from .exec import user_flag_check


def complete_groups(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    from ..output import display_name

    return live_completions(lambda c: [(display_name(g), "") for g in c.group_list()], incomplete)


group_argument = click.argument("group", shell_complete=complete_groups)


def show_group(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    from ..output import group_table

    group_table([data["group"]])
    show_processes(data["processes"], False)


class AliasGroup(click.Group):
    aliases = {"list": "ls", "show": "desc"}
    command_class = Command

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        return super().get_command(ctx, self.aliases.get(name, name))


@click.group("group", cls=AliasGroup)
def group_cmd() -> None:
    """Group level commands."""


@group_cmd.command("ls")
@json_option
@handle_errors
def ls(as_json: bool) -> None:
    """List all groups (alias: list)."""
    with session() as c:
        groups = c.group_list()
    if as_json:
        print_json(groups)
    else:
        from ..output import group_table

        group_table(groups)


@group_cmd.command("create")
@click.argument("name")
@json_option
@handle_errors
def create(name: str, as_json: bool) -> None:
    """Create a new group."""
    with session() as c:
        g = c.group_create(name)
        groups = c.group_list()
    if as_json:
        print_json(g)
    else:
        from ..output import group_table

        group_table(groups)


@group_cmd.command("del")
@group_argument
@handle_errors
def delete(group: str) -> None:
    """Delete a group (its processes stay)."""
    with session() as c:
        c.group_delete(group)
        from ..output import group_table

        group_table(c.group_list())


@group_cmd.command("desc")
@group_argument
@json_option
@handle_errors
def desc(group: str, as_json: bool) -> None:
    """Show group details and associated processes (alias: show)."""
    with session() as c:
        show_group(c.group_describe(group), as_json)


def _membership(add: bool, groups: str, processes: str, as_json: bool) -> None:
    with session() as c:
        data = c.group_assign(groups, processes) if add else c.group_remove(groups, processes)
    if as_json:
        print_json(data)
        return
    for item in data:
        show_group(item, False)


@group_cmd.command("assign")
@click.argument("groups")
@click.argument("processes")
@json_option
@handle_errors
def assign(groups: str, processes: str, as_json: bool) -> None:
    """Assign group(s) to process(es): comma lists of ids or names."""
    _membership(True, groups, processes, as_json)


@group_cmd.command("remove")
@click.argument("groups")
@click.argument("processes")
@json_option
@handle_errors
def remove(groups: str, processes: str, as_json: bool) -> None:
    """Remove process(es) from group(s): comma lists of ids or names."""
    _membership(False, groups, processes, as_json)


@group_cmd.command("stop")
@group_argument
@click.option("-f", "--force", is_flag=True, help="force the processes to stop")
@json_option
@handle_errors
def stop(group: str, force: bool, as_json: bool) -> None:
    """Stop all processes associated to a group."""
    with session() as c:
        show_group(c.group_stop(group, force), as_json)


@group_cmd.command("restart")
@group_argument
@click.option("-n", "--no-autorestart", is_flag=True, help="do not restart upon process failure")
@click.option("-u", "--user", help="run the processes as this user")
@click.option("-l", "--log", help="absolute path of the log file")
@click.option("-d", "--log-dir", "--log_dir", "log_dir", help="log directory (pmon3's -d here)")
@click.option("-a", "--args", "args_", help="arguments as one string")
@json_option
@handle_errors
def restart(
    group: str,
    no_autorestart: bool,
    user: Optional[str],
    log: Optional[str],
    log_dir: Optional[str],
    args_: Optional[str],
    as_json: bool,
) -> None:
    """(Re)start processes by group id or name."""
    user_flag_check(user)
    with session() as c:
        data = c.group_restart(
            group,
            no_auto_restart=no_autorestart,
            user=user or "",
            log=log or "",
            log_dir=log_dir or "",
            args=args_ or "",
        )
    show_group(dict(data), as_json)


@group_cmd.command("reload")
@group_argument
@json_option
@handle_errors
def reload(group: str, as_json: bool) -> None:
    """Reload every process of a group without downtime, one at a time."""
    with session() as c:
        show_group(dict(c.group_reload(group)), as_json)


@group_cmd.command("drop")
@group_argument
@click.option("-f", "--force", is_flag=True, help="force kill before deleting processes")
@json_option
@handle_errors
def drop(group: str, force: bool, as_json: bool) -> None:
    """Delete all processes associated to a group (the group stays)."""
    with session() as c:
        show_group(c.group_drop(group, force), as_json)
