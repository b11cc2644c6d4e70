"""init and dgraph|order: bring processes up in dependency order, from the database and the process config."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import time
from typing import Any

from ... import procconfig
from ...states import Status
from ..supervisor import SpawnError
from . import CommandError, Context, command
from .exec import upsert_and_start

log = logging.getLogger("pmond")


def config_entries(ctx: Context) -> list[dict[str, Any]]:
    try:
        return procconfig.load(procconfig.resolve_path(ctx.daemon.cfg.process_config_file))
    except procconfig.ProcessConfigError as exc:
        raise CommandError(str(exc), "config") from None


def entry_args(entry: dict[str, Any]) -> dict[str, Any]:
    """A config entry as exec arguments: relative paths are taken from the config file's point of view
    (absolute in practice), and no user means the daemon's own user, as pmon3."""
    args = dict(entry)
    if not args.get("user"):
        args["user"] = pwd.getpwuid(os.geteuid()).pw_name
    return args


def plan(ctx: Context, config_only: bool, revive: frozenset[Status] | None = None) -> dict[str, Any]:
    """The candidates and their start order: config entries override stored rows of the same name."""
    entries = {e["name"]: e for e in config_entries(ctx)} if ctx.is_root or ctx.daemon.cfg.mode == "user" else {}
    stored = {p.name: p for p in ctx.visible()}
    candidates: list[tuple[str, list[str]]] = [(n, list(e.get("dependencies", []))) for n, e in entries.items()]
    if not config_only:
        for name, p in stored.items():
            if name not in entries and (revive is None or p.status in revive):
                candidates.append((name, list(p.dependencies)))
    try:
        ordered, independent, unknown = procconfig.dependency_order(candidates)
    except procconfig.DependencyError as exc:
        raise CommandError(str(exc), "dependencies") from None
    for name in unknown:
        log.warning("dependencies: %s is not a valid process name", name)
    return {"entries": entries, "stored": stored, "ordered": ordered, "independent": independent}


async def bring_up(ctx: Context, config_only: bool, revive: frozenset[Status] | None = None) -> list[str]:
    """Start every candidate that is not alive (user-stopped rows stay stopped), dependencies first with
    `wait.dependent_process_enqueued` between them. Returns the errors, one line each."""
    d = ctx.daemon
    steps = plan(ctx, config_only, revive)
    errors: list[str] = []
    pause = d.cfg.wait_dependent_ms / 1000
    for name in steps["ordered"] + steps["independent"]:
        try:
            started = await _bring_one(ctx, name, steps)
        except CommandError as exc:
            errors.append(f"{name}: {exc.message}")
            log.error("could not start %s: %s", name, exc.message)
            started = False
        if started and name in steps["ordered"] and pause:
            await asyncio.sleep(pause)  # pmon3's grace period for a dependency to come up
    return errors


async def _bring_one(ctx: Context, name: str, steps: dict[str, Any]) -> bool:
    d = ctx.daemon
    entry = steps["entries"].get(name)
    p = d.store.get_by_name(name)
    if entry is not None:
        if p is not None and (d.supervisor.is_alive(p.id) or p.status == Status.STOPPED):
            return False  # never a second copy; a user stop is respected
        sub = Context(d, ctx.uid, entry_args(entry))
        await upsert_and_start(sub, reuse_only_stopped=False)
        return True
    if p is None or d.supervisor.is_alive(p.id) or p.status == Status.STOPPED:
        return False
    if p.status == Status.BACKOFF and float(p.flap.get("backoff_until", 0)) > time.time():
        d.supervisor.resume_backoff(p)  # flap state survives a daemon restart
        return False
    async with d.supervisor.lock(p.id):
        current = d.store.get(p.id)
        if current is None or d.supervisor.is_alive(p.id):
            return False
        try:
            d.supervisor.start(current)
        except SpawnError as exc:
            raise CommandError(str(exc), "spawn") from None
    return True


@command("init")
async def init(ctx: Context) -> list[dict[str, Any]]:
    config_only = bool(ctx.arg("process_config_only", False))
    if ctx.arg("blocking", False):
        errors = await bring_up(ctx, config_only)
        if errors:
            raise CommandError("; ".join(errors), "spawn")
    else:
        plan(ctx, config_only)  # report a broken config or a cycle now, then work in the background
        task = asyncio.get_running_loop().create_task(bring_up(ctx, config_only))
        ctx.daemon.background.add(task)
        task.add_done_callback(ctx.daemon.background.discard)
    return [p.to_json() for p in ctx.visible()]


def stop_order(ctx: Context) -> list[list[str]]:
    """Layers of the live processes for shutdown: dependents before what they depend on."""
    procs = [p for p in ctx.visible() if ctx.daemon.supervisor.is_alive(p.id)]
    try:
        ordered, independent, _ = procconfig.dependency_order([(p.name, p.dependencies) for p in procs])
    except procconfig.DependencyError:
        return [[p.name for p in procs]]
    return [[n] for n in reversed(ordered)] + [independent]


@command("dgraph", "order")
async def dgraph(ctx: Context) -> dict[str, Any]:
    steps = plan(ctx, bool(ctx.arg("process_config_only", False)))
    return {"queue": steps["ordered"] + steps["independent"], "dependency_order": steps["ordered"]}
