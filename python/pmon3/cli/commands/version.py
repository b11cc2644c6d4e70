"""version: this CLI's version, and the daemon's when one answers."""

from __future__ import annotations

import click

from ... import PMON3_COMPAT_VERSION, __version__
from ...errors import Pmon3Error
from ..output import print_json


@click.command("version")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def version_cmd(as_json: bool) -> None:
    """Show the version of pmon3 (and of pmond when it is running)."""
    from ...client import Client

    daemon = None
    try:
        with Client(autostart=False, timeout=2.0) as c:
            daemon = c.version()
    except (Pmon3Error, OSError):
        pass
    if as_json:
        print_json({"version": __version__, "pmon3": PMON3_COMPAT_VERSION, "daemon": daemon})
        return
    click.echo(f"pmon3 version {__version__} (compatible with pmon3 {PMON3_COMPAT_VERSION})")
    if daemon:
        click.echo(f"pmond version {daemon['version']} (pid {daemon['pid']})")
