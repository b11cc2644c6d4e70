"""restart|start: restart always restarts (and counts); start of a running process is a no-op that says so."""

from __future__ import annotations

from typing import Any

from ... import procconfig
from . import CommandError, Context, command
from .exec import log_path, name_list, run_user, split_words, start


@command("restart", "start")
async def restart(ctx: Context) -> dict[str, Any]:
    key = str(ctx.arg("id"))
    found = ctx.daemon.store.get(key)
    if found is None or not ctx.may_see(found):
        return await start_from_config(ctx, key)
    p = found
    sup = ctx.daemon.supervisor
    verb = ctx.arg("verb", "restart")
    flags = ctx.arg("flags", {}) or {}
    if not isinstance(flags, dict):
        raise CommandError("could not parse flags: expected an object", "invalid")
    async with sup.lock(p.id):
        p = ctx.daemon.store.get(p.id) or p
        # Validate every flag before touching the process: a bad flag leaves it as it was.
        user = run_user(ctx, flags["user"]) if flags.get("user") else None
        changed = dict(
            username=user.name if user else p.username,
            uid=user.uid if user else p.uid,
            gid=user.gid if user else p.gid,
            argv=split_words(flags.get("argv") if flags.get("argv") is not None else flags.get("args"), "args")
            if flags.get("args") or flags.get("argv")
            else p.argv,
            log=log_path(ctx, p.name, flags.get("log") or "", flags.get("log_dir") or "")
            if flags.get("log") or flags.get("log_dir")
            else p.log,
            dependencies=name_list(flags.get("dependencies"), "dependencies") or p.dependencies,
        )
        if verb == "start" and sup.is_alive(p.id):
            data = p.to_json()
            data["message"] = f"process ({p.name}) is already running"
            return data
        if sup.is_alive(p.id):
            await sup.terminate(p.id, force=False)
        p = ctx.daemon.store.get(p.id) or p
        for key, value in changed.items():
            setattr(p, key, value)
        if flags.get("no_auto_restart"):
            p.auto_restart = False
        if verb == "restart":
            p.restart_count += 1
        sup.forget(p.id)
        ctx.daemon.store.update(p)
        start(ctx, p, fresh=False)
    return (ctx.daemon.store.get(p.id) or p).to_json()


async def start_from_config(ctx: Context, name: str) -> dict[str, Any]:
    """A name that is not stored but is in the process config is created from there and started (pmon3)."""
    from .exec import upsert_and_start
    from .init import config_entries, entry_args

    entry = procconfig.find(config_entries(ctx), name) if ctx.is_root else None
    if entry is None:
        raise CommandError(
            f"command error: start process error: could not find process in Process Config with name {name}",
            "not_found",
        )
    p = await upsert_and_start(Context(ctx.daemon, ctx.uid, entry_args(entry)), reuse_only_stopped=False)
    return p.to_json()
