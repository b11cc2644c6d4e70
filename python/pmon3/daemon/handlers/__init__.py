"""Request handlers: one module per command family. A handler receives its typed request (ipc/messages.py),
asks `authz` who may do what, calls one supervisor or service method, and shapes the reply. No handler imports
another handler, takes a row's lock or writes a status."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ...ipc.messages import Request
from ...models import Process

if TYPE_CHECKING:
    from ...config import Config
    from ..apply import Applier
    from ..authz import Authz, Caller
    from ..boot import Boot
    from ..control import Control
    from ..groups import Groups
    from ..metrics import Metrics
    from ..supervisor import Supervisor
    from ..usage import Usage


@dataclasses.dataclass
class Context:
    """What a handler may use: who is asking, and the services it may call."""

    caller: Caller
    authz: Authz
    supervisor: Supervisor
    boot: Boot
    groups: Groups
    usage: Usage
    control: Control
    cfg: Config
    # Run a coroutine after the reply (init without -b); pmond keeps it and cancels it at shutdown.
    background: Callable[[Coroutine[Any, Any, Any]], None]
    applier: Applier
    metrics: Metrics

    def find(self, key: object) -> Process:
        return self.authz.find(self.caller, key)

    def visible(self) -> list[Process]:
        return self.authz.visible(self.caller)

    def record(self, p: Process) -> dict[str, Any]:
        """A process as the reply carries it (ipc.messages.ProcessInfo)."""
        return p.to_json(self.authz.owner_name(p.owner))


Q = TypeVar("Q", bound=Request)
HandlerFn = Callable[[Context, Any], Awaitable[Any]]
REGISTRY: dict[str, tuple[type[Request], HandlerFn]] = {}
MODULES = (
    "exec",
    "listing",
    "stop",
    "restart",
    "delete",
    "init",
    "misc",
    "group",
    "export",
    "daemon",
    "apply",
    "reload",
    "history",
    "metrics",
)


def handles(
    request_type: type[Q],
) -> Callable[[Callable[[Context, Q], Awaitable[Any]]], Callable[[Context, Q], Awaitable[Any]]]:
    def register(fn: Callable[[Context, Q], Awaitable[Any]]) -> Callable[[Context, Q], Awaitable[Any]]:
        REGISTRY[request_type.CMD] = (request_type, fn)
        return fn

    return register


def load_all() -> dict[str, tuple[type[Request], HandlerFn]]:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY
