"""Boot reconciliation, `init`, the dependency order and the shutdown order.

At start pmond first adopts live processes a previous pmond left (same pid, start time and boot), then
brings back what was running (or closed by a shutdown) and the process config's entries, dependencies
first. User-stopped and failed rows stay as they are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Optional

from .. import procconfig
from ..config import Config
from ..errors import CommandError, DependencyError, ProcessConfigError
from ..models import Process
from ..states import REVIVE_AT_BOOT, Status
from ..store import Store, StoreWriteError
from . import spec
from .authz import Authz, Caller
from .readiness import NotReady
from .supervisor import Supervisor

log = logging.getLogger("pmond.boot")
# Seconds of starting processes before the loop serves anything else (requests, deaths, timers) once.
BOOT_SLICE = 0.02


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            return fh.read().strip()
    except OSError:
        return ""


@dataclasses.dataclass
class Plan:
    entries: dict[str, dict[str, Any]]
    stored: dict[str, Process]
    ordered: list[str]
    independent: list[str]
    unknown: list[str]

    @property
    def queue(self) -> list[str]:
        return self.ordered + self.independent


class Boot:
    def __init__(self, store: Store, cfg: Config, authz: Authz, supervisor: Supervisor) -> None:
        self.store = store
        self.cfg = cfg
        self.authz = authz
        self.supervisor = supervisor

    def adopt_survivors(self) -> None:
        """Take over live processes a previous pmond left behind (same pid and start time, same boot)."""
        this_boot = boot_id()
        same_boot = bool(this_boot) and self.store.get_meta("boot_id") == this_boot
        if not same_boot:
            try:
                self.store.set_meta("boot_id", this_boot)
            except StoreWriteError as exc:  # a full disk must not keep pmond from starting
                log.error("%s", exc.message)
        for p in self.store.list_processes():
            if p.status in REVIVE_AT_BOOT:
                self.supervisor.adopt(p, same_boot)

    def config_entries(self, caller: Caller) -> dict[str, dict[str, Any]]:
        """The process config file belongs to pmond's own user (root's system config): its entries are that
        user's rows. Another caller's init or dgraph does not see them."""
        if caller.uid != self.authz.own_uid:
            return {}
        try:
            entries = procconfig.load(procconfig.resolve_path(self.cfg.process_config_file))
        except ProcessConfigError as exc:
            raise CommandError(str(exc), exc.code) from None
        return {e["name"]: e for e in entries}

    def build_entry(self, caller: Caller, entry: dict[str, Any]) -> Process:
        """A process config entry as a validated spec of the caller's; no user means pmond's own, as pmon3."""
        req, env_file = spec.from_entry(entry)
        if not req.user:
            req = req.replace(user=caller.name)
        return spec.build(self.authz, caller, req, env_file)

    def plan(self, caller: Caller, config_only: bool, revive: Optional[frozenset[Status]] = None) -> Plan:
        """The candidates and their start order: config entries override stored rows of the same name."""
        entries = self.config_entries(caller)
        stored = {p.name: p for p in self.store.list_processes(caller.uid)}
        candidates: list[tuple[str, list[str]]] = [(n, list(e.get("dependencies", []))) for n, e in entries.items()]
        if not config_only:
            for name, p in stored.items():
                if name not in entries and (revive is None or p.status in revive):
                    candidates.append((name, list(p.dependencies)))
        try:
            ordered, independent, unknown = procconfig.dependency_order(candidates)
        except DependencyError as exc:
            raise CommandError(f"command error: could not get graph: {exc}", exc.code) from None
        for name in unknown:
            log.warning("dependencies: %r is not a valid process name", name)
        return Plan(entries, stored, ordered, independent, unknown)

    async def bring_up(
        self, caller: Caller, config_only: bool, revive: Optional[frozenset[Status]] = None
    ) -> list[str]:
        """Start every candidate that is not alive (user-stopped rows stay stopped), dependencies first. A
        dependency with a readiness check is waited for until it is ready; one without gets pmon3's fixed
        `wait.dependent_process_enqueued`. Returns the errors, one line each."""
        plan = self.plan(caller, config_only, revive)
        errors: list[str] = []
        pause = self.cfg.wait_dependent_ms / 1000
        turn = time.monotonic()
        for name in plan.queue:
            if time.monotonic() - turn > BOOT_SLICE:  # a long boot lets requests, deaths and timers in
                await asyncio.sleep(0)
                turn = time.monotonic()
            try:
                started = await self._bring_one(caller, name, plan)
            except CommandError as exc:
                errors.append(f"{name}: {exc.message}")
                log.error("could not start %r: %s", name, exc.message)
                started = False
            if started and name in plan.ordered:
                p = self.store.get_by_name(caller.uid, name)
                if p is not None and p.options.get("ready"):
                    try:
                        await self.supervisor.wait_ready(p.id)
                    except NotReady as exc:
                        log.error("%r, a dependency, is not ready: %s", name, exc)
                elif pause:
                    await asyncio.sleep(pause)  # pmon3's grace period for a dependency to come up
        return errors

    async def _bring_one(self, caller: Caller, name: str, plan: Plan) -> bool:
        sup = self.supervisor
        entry = plan.entries.get(name)
        p = self.store.get_by_name(caller.uid, name)
        if entry is not None:
            if p is not None and (sup.is_alive(p.id) or p.status == Status.STOPPED):
                return False  # never a second copy; a user stop is respected
            new = self.build_entry(caller, entry)
            instances = entry.get("instances")  # none: the copies a `scale` made stay
            count = instances if isinstance(instances, int) else None
            await sup.upsert(new, exec_semantics=False, groups_given=bool(entry.get("groups")), instances=count)
            return True
        if p is None:
            return False
        return await sup.revive(p.id)

    def stop_order(self) -> list[list[int]]:
        """Layers of the live processes for shutdown, per owner: dependents before what they depend on."""
        live = [p for p in self.store.list_processes() if self.supervisor.is_alive(p.id)]
        by_owner: dict[int, list[Process]] = {}
        for p in live:
            by_owner.setdefault(p.owner, []).append(p)
        layers: list[list[int]] = []
        independent: list[int] = []
        for procs in by_owner.values():
            ids = {p.name: p.id for p in procs}
            try:
                ordered, rest, _ = procconfig.dependency_order([(p.name, p.dependencies) for p in procs])
            except DependencyError:
                independent += ids.values()
                continue
            for depth, name in enumerate(reversed(ordered)):
                while len(layers) <= depth:
                    layers.append([])
                layers[depth].append(ids[name])
            independent += [ids[n] for n in rest]
        return layers + [independent]
