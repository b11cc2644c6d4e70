"""Request handlers: one module per command family, each registering its commands here."""

from __future__ import annotations

import dataclasses
import importlib
import pwd
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ...models import Process
    from ..app import Daemon


class CommandError(Exception):
    """Answered to the client as {ok: false, error: {code, message}}."""

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclasses.dataclass
class Context:
    daemon: Daemon
    uid: int
    args: dict[str, Any]

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    @property
    def username(self) -> str:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:
            raise CommandError(f"uid {self.uid} has no user name", "denied") from None

    def may_see(self, p: Process) -> bool:
        return self.is_root or p.uid == self.uid

    def arg(self, key: str, default: Any = "") -> Any:
        return self.args.get(key, default)

    def find(self, key: Any) -> Process:
        """The caller's process by id or name; someone else's is reported exactly like a missing one."""
        p = self.daemon.store.get(str(key))
        if p is None or not self.may_see(p):
            raise CommandError(f"process ({key}) does not exist", "not_found")
        return p

    def visible(self) -> list[Process]:
        return [p for p in self.daemon.store.list_processes() if self.may_see(p)]


HandlerFn = Callable[[Context], Awaitable[Any]]
REGISTRY: dict[str, HandlerFn] = {}
MODULES = ("exec", "listing", "stop", "restart", "delete", "init", "misc", "group", "export")


def command(*names: str) -> Callable[[HandlerFn], HandlerFn]:
    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            REGISTRY[name] = fn
        return fn

    return register


def load_all() -> dict[str, HandlerFn]:
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY
