"""export [json|yaml|toml] and dgraph|order: the process config view of what is stored."""

from __future__ import annotations

import click

from ..output import CliError, escape, message, print_json
from . import Command, handle_errors, session


@click.command("export", cls=Command)
@click.argument("fmt", required=False, default="json", metavar="[json|toml|yaml]")
@click.option("-o", "--order", default="id", show_default=True, help="the field to order by: id or name")
@handle_errors
def export_cmd(fmt: str, order: str) -> None:
    """Export Process Configuration."""
    from ... import procconfig

    if fmt not in procconfig.FORMATS:
        raise CliError("accepted formats: json, toml or yaml")
    with session() as c:
        entries = c.export(order)
    # Like pmon3, the rendered document plus the print's own newline.
    click.echo(procconfig.render(entries, fmt))


@click.command("dgraph", cls=Command)
@click.option("-c", "--process-config-only", is_flag=True, help="only the process config file's entries")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
@handle_errors
def dgraph_cmd(process_config_only: bool, as_json: bool) -> None:
    """List the process queue order."""
    with session() as c:
        data = c.dgraph(process_config_only)
    if as_json:
        print_json(data)
        return
    lines = ["Queue Order"] + [f"\t{i}: {escape(name)}" for i, name in enumerate(data["queue"])]
    if data["dependency_order"]:
        order = data["dependency_order"]
        lines += ["Dependency Graph Order"] + [f"\t{i}: {escape(name)}" for i, name in enumerate(order)]
    message("\n".join(lines))
