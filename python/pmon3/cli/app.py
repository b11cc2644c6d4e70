"""The click application: the command group, its help, and the table of commands (each in cli/commands/,
imported only when used)."""

from __future__ import annotations

import importlib
import sys
from typing import Any, Optional

import click

from .. import PMON3_COMPAT_VERSION, __version__

# command name -> (module in cli/commands, attribute); aliases point at the same command.
COMMANDS: dict[str, tuple[str, str]] = {
    "exec": ("exec", "exec_cmd"),
    "run": ("exec", "exec_cmd"),
    "ls": ("listing", "ls_cmd"),
    "list": ("listing", "ls_cmd"),
    "desc": ("listing", "desc_cmd"),
    "show": ("listing", "desc_cmd"),
    "stop": ("stop", "stop_cmd"),
    "kill": ("stop", "kill_cmd"),
    "restart": ("restart", "restart_cmd"),
    "start": ("restart", "start_cmd"),
    "del": ("delete", "del_cmd"),
    "delete": ("delete", "del_cmd"),
    "drop": ("delete", "drop_cmd"),
    "init": ("init", "init_cmd"),
    "reset": ("init", "reset_cmd"),
    "log": ("log", "log_cmd"),
    "logf": ("log", "logf_cmd"),
    "version": ("version", "version_cmd"),
    "export": ("export", "export_cmd"),
    "dgraph": ("export", "dgraph_cmd"),
    "order": ("export", "dgraph_cmd"),
    "group": ("group", "group_cmd"),
    "groups": ("group", "group_cmd"),
    "topn": ("topn", "topn_cmd"),
    "completion": ("completion", "completion_cmd"),
    "import": ("import_", "import_cmd"),
    "daemon": ("daemon", "daemon_cmd"),
    "reload": ("reload", "reload_cmd"),
    "scale": ("reload", "scale_cmd"),
    "apply": ("apply", "apply_cmd"),
    "history": ("history", "history_cmd"),
    "metrics": ("history", "metrics_cmd"),
}
# The names listed in help; the others are aliases, shown beside them.
PRIMARY = sorted(
    (
        "apply completion daemon del desc dgraph drop exec export group history import init kill log logf ls "
        "metrics reload reset restart scale start stop topn version"
    ).split()
)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return PRIMARY

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module = importlib.import_module(f"{__package__}.commands.{target[0]}")
        command: click.Command = getattr(module, target[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        aliases: dict[str, list[str]] = {}
        for name, target in COMMANDS.items():
            aliases.setdefault(f"{target[0]}.{target[1]}", []).append(name)
        rows = []
        for name in PRIMARY:
            cmd = self.get_command(ctx, name)
            if cmd is None:
                continue
            names = aliases[".".join(COMMANDS[name])]
            rows.append(("|".join(names), cmd.get_short_help_str(70)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__,
    "-v",
    "--version",
    prog_name="pmon3",
    message=f"%(prog)s version %(version)s (compatible with pmon3 {PMON3_COMPAT_VERSION})",
)
def cli() -> None:
    """pmon3: keep your services alive, restart them the moment they die."""


def run(argv: Optional[list[str]] = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="pmon3", standalone_mode=True)
    except Exception as exc:  # a CliError raised outside click's own handling (e.g. during completion)
        from .output import CliError  # here: `pmon3 --version` never needs the output module

        if not isinstance(exc, CliError):
            raise
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
