"""Groups: named sets of one owner's processes. Creation, deletion and membership changes, each one
transaction; who may do what is decided by authz before these are called."""

from __future__ import annotations

from ..models import Group, Process
from ..store import Store


class Groups:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, owner: int, name: str) -> Group:
        return self.store.create_group(owner, name)

    def delete(self, g: Group) -> None:
        self.store.delete_group(g.id)

    def change(self, groups: list[Group], procs: list[Process], add: bool) -> None:
        """Every (group, process) pair, all or nothing."""
        self.store.change_membership([g.id for g in groups], [p.id for p in procs], add)
