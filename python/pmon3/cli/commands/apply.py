"""apply [FILE] [--dry-run] [--prune]: make your processes match a process config file."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import click

from . import Command, handle_errors, json_option, session


@click.command("apply", cls=Command)
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="print the plan and change nothing")
@click.option("--prune", is_flag=True, help="also delete your processes that the file does not list")
@json_option
@handle_errors
def apply_cmd(file: Optional[str], dry_run: bool, prune: bool, as_json: bool) -> None:
    """Make your processes match a process config file.

    FILE (default: process_config_file, or PMON3_PROCESS_CONF) is read here with your rights, env files too.
    Every entry is validated first: an invalid file changes nothing. Then, in dependency order, missing
    processes are created, changed ones updated (a running one is restarted only when its file, args,
    environment, user, log or cwd changed), unchanged ones are left alone, and with --prune your processes that
    the file does not list are deleted. --dry-run prints the plan only.
    """
    with session() as c:
        plan = c.apply(file, dry_run=dry_run, prune=prune)
    if as_json:
        from ..output import print_json

        print_json(plan)
    else:
        show_plan(dict(plan))
    if not plan["ok"]:
        sys.exit(1)


def _value(value: Any) -> str:
    return "default" if value is None else json.dumps(value, ensure_ascii=False)


def _restart(a: dict[str, Any]) -> str:
    if a["action"] != "change":
        return ""
    if a["restart"]:
        return "yes"
    if any(c["restart"] for c in a["changes"]):
        return f"no ({a['status']})"  # what it runs changed, but it is not running
    return "no"


def _result(a: dict[str, Any]) -> str:
    result = str(a.get("result", ""))
    if result in ("created", "restarted") and a.get("pid"):
        return f"{result} (pid {a['pid']})"
    if result == "updated" and any(c["restart"] for c in a["changes"]):
        return f"updated, still {a['status']}"
    return result


def show_plan(plan: dict[str, Any]) -> None:
    from ..output import escape, message, render_table

    done = not plan["dry_run"]
    headers = ["Name", "Action", "Restart", "Change"] + (["Result"] if done else [])
    rows: list[list[str]] = []
    for a in plan["actions"]:
        changes = [f"{c['field']}: {_value(c['old'])} → {_value(c['new'])}" for c in a["changes"]] or [""]
        first = [a["name"], a["action"], _restart(a), changes[0]] + ([_result(a)] if done else [])
        rows.append(first)
        rows += [["", "", "", more] + ([""] if done else []) for more in changes[1:]]
    source = escape(plan["source"])
    message(f"{'Applied' if done else 'Plan for'} {source}{'' if done else ' (dry run: nothing changed)'}:")
    if rows:
        sys.stdout.write(render_table(headers, rows))  # render_table escapes every cell
    counts = {k: sum(1 for a in plan["actions"] if a["action"] == k) for k in ("create", "change", "delete")}
    unchanged = sum(1 for a in plan["actions"] if a["action"] == "unchanged")
    restarts = sum(1 for a in plan["actions"] if a["restart"])
    if done:
        results = [a.get("result") for a in plan["actions"]]
        changed, restarted = results.count("updated") + results.count("restarted"), results.count("restarted")
        failed = results.count("failed")
        summary = (
            f"{results.count('created')} created, {changed} changed ({restarted} restarted), "
            f"{results.count('deleted')} deleted, {unchanged} unchanged" + (f", {failed} failed" if failed else "")
        )
    else:
        summary = (
            f"{counts['create']} to create, {counts['change']} to change ({restarts} to restart), "
            f"{counts['delete']} to delete, {unchanged} unchanged"
        )
    message(summary)
    for warning in plan["warnings"]:
        sys.stderr.write(f"warning: {escape(warning)}\n")
    for a in plan["actions"]:
        if a.get("error"):
            sys.stderr.write(f"error: {escape(a['error'])}\n")
