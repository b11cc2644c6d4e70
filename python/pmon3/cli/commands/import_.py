"""import pm2|supervisord|procfile SOURCE: another process manager's config as a pmon3 process config."""

from __future__ import annotations

import os
from typing import Optional

import click

from ..output import CliError
from . import Command, handle_errors

EXTENSIONS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".toml": "toml"}


@click.command("import", cls=Command)
@click.argument(
    "source_type", metavar="pm2|supervisord|procfile", type=click.Choice(["pm2", "supervisord", "procfile"])
)
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", help="write the process config to this file (.json, .yaml, .yml or .toml)")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "yaml", "toml"]),
    help="output format (default: from -o's extension, else json)",
)
@click.option("-f", "--force", is_flag=True, help="overwrite the -o file if it exists")
@click.option("--env", "env_name", metavar="NAME", help="pm2: apply env_NAME over env, as `pm2 start --env NAME`")
@click.option(
    "--port-base",
    type=click.IntRange(1, 65535),
    help="procfile: PORT of the first entry, +100 for each next one (default 5000, as foreman)",
)
@handle_errors
def import_cmd(
    source_type: str,
    source: str,
    output: Optional[str],
    fmt: Optional[str],
    force: bool,
    env_name: Optional[str],
    port_base: Optional[int],
) -> None:
    """Import a PM2, supervisord or Procfile config.

    Prints the pmon3 process config (JSON unless --format says otherwise), or writes it to -o FILE. Every setting
    with no pmon3 equivalent is listed on stderr (warning: FILE: ENTRY: KEY: ...), with notes on how others were
    mapped (info: ...). See docs/migrating.md.
    """
    if env_name is not None and source_type != "pm2":
        raise CliError("--env applies to pm2 ecosystem files only")
    if port_base is not None and source_type != "procfile":
        raise CliError("--port-base applies to Procfiles only")
    fmt = output_format(output, fmt)
    if output and os.path.exists(output) and not force:
        raise CliError(f"{output} exists: use --force to overwrite it")

    from ... import procconfig

    # An ImporterError is a pmon3 error: handle_errors prints its one line and exits 1.
    if source_type == "pm2":
        from ...importers import pm2

        result = pm2.convert(source, env=env_name)
    elif source_type == "supervisord":
        from ...importers import supervisord

        result = supervisord.convert(source)
    else:
        from ...importers import procfile

        result = procfile.convert(source, **({"port_base": port_base} if port_base is not None else {}))
    text = procconfig.render(result.entries, fmt)
    text = text if text.endswith("\n") else text + "\n"
    for warning in result.warnings:
        click.echo(str(warning), err=True)
    if output:
        write(output, text, force)
        warned = sum(1 for w in result.warnings if w.level == "warning")
        click.echo(f"wrote {len(result.entries)} processes to {output} ({warned} warnings)", err=True)
    else:
        click.echo(text, nl=False)


def output_format(output: Optional[str], fmt: Optional[str]) -> str:
    """procconfig.load picks the format by extension, so -o's extension and --format must agree."""
    if not output:
        return fmt or "json"
    ext = os.path.splitext(output)[1].lower()
    if ext not in EXTENSIONS:
        raise CliError(f"{output}: use a .json, .yaml, .yml or .toml file name (pmon3 reads the format from it)")
    if fmt and fmt != EXTENSIONS[ext]:
        raise CliError(f"{output} is read as {EXTENSIONS[ext]}, not {fmt}: change the extension or --format")
    return EXTENSIONS[ext]


def write(path: str, text: str, force: bool) -> None:
    """Never through an existing file unless forced; replaced whole (a temp file renamed over it)."""
    try:
        if not force:
            with open(path, "x", encoding="utf-8") as fh:
                fh.write(text)
            return
        directory = os.path.dirname(os.path.abspath(path))
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            with open(tmp, "x", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except FileExistsError:
        raise CliError(f"{path} exists: use --force to overwrite it") from None
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
