"""Users and groups: name <-> uid, the groups a user is in. Resolved here in the parent, never after fork
(NSS is not async-signal-safe), and cached while /etc/passwd and /etc/group are unchanged so that a
restart does not pay for a lookup."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd

from ..errors import InvalidRequestError


@dataclasses.dataclass(frozen=True)
class RunAs:
    """Who a process runs as: everything spawn needs, resolved before fork."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str
    shell: str


_users: dict[str, RunAs] = {}
_names: dict[int, str] = {}
_stamp: tuple[float, ...] = ()


def _fresh() -> None:
    global _stamp
    stamp = []
    for path in ("/etc/passwd", "/etc/group"):
        try:
            stamp.append(os.stat(path).st_mtime)
        except OSError:
            stamp.append(0.0)
    if tuple(stamp) != _stamp:
        _users.clear()
        _names.clear()
        _members.clear()
        _stamp = tuple(stamp)


def resolve_user(name: str) -> RunAs:
    _fresh()
    cached = _users.get(name)
    if cached is not None:
        return cached
    try:
        pw = pwd.getpwnam(name)
    except (KeyError, ValueError):  # ValueError: a NUL in the name (a request's bytes, never a user's)
        raise InvalidRequestError(f"user: unknown user {name}") from None
    user = RunAs(
        pw.pw_name, pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(pw.pw_name, pw.pw_gid)), pw.pw_dir, pw.pw_shell
    )
    _users[name] = user
    return user


def user_of(uid: int) -> RunAs:
    """The account of `uid`; a uid without a name cannot own or run anything here."""
    return resolve_user(name_of(uid))


def name_of(uid: int) -> str:
    _fresh()
    cached = _names.get(uid)
    if cached is not None:
        return cached
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise InvalidRequestError(f"uid {uid} has no user name") from None
    _names[uid] = name
    return name


def uid_of(name: str) -> int:
    return resolve_user(name).uid


def primary_gid(uid: int, fallback: int) -> int:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return fallback


_members: dict[int, frozenset[int]] = {}


def group_members(gid: int) -> frozenset[int]:
    """Every uid that is in group `gid`, as a supplementary member or by its primary group."""
    _fresh()
    cached = _members.get(gid)
    if cached is not None:
        return cached
    uids = {pw.pw_uid for pw in pwd.getpwall() if pw.pw_gid == gid}
    try:
        names = grp.getgrgid(gid).gr_mem
    except KeyError:
        names = []
    for name in names:
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            continue
    _members[gid] = frozenset(uids)
    return _members[gid]


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
