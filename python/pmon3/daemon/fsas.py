"""Filesystem checks made with a given user's rights, so that an answer reveals nothing that user could not
see for themself: root's pmond checking a user's path must not say whether it exists behind a 0700 directory.
The native layer switches the credentials of a short-lived thread of its own (setfsuid), never pmond's."""

from __future__ import annotations

import os
import stat

from .. import _native
from ..errors import InvalidRequestError
from . import accounts


def stat_as(uid: int, path: str) -> os.stat_result:
    """os.stat as `uid` would see it (pmond's own user: as it is)."""
    if uid == os.geteuid():
        return os.stat(path)
    user = accounts.user_of(uid)
    return _native.stat_as(path, user.uid, user.gid, list(user.groups))


def open_as(uid: int, path: str, flags: int) -> int:
    """os.open(path, flags) as `uid` would (pmond's own user: as it is); a uid without an account opens nothing."""
    if uid == os.geteuid():
        return os.open(path, flags | os.O_CLOEXEC)
    try:
        user = accounts.user_of(uid)
    except InvalidRequestError:
        raise PermissionError(f"uid {uid} has no account") from None
    return _native.open_as(path, flags, 0, user.uid, user.gid, list(user.groups))


def is_dir(uid: int, path: str) -> bool:
    try:
        return stat.S_ISDIR(stat_as(uid, path).st_mode)
    except (OSError, InvalidRequestError):
        return False


def check_executable(uid: int, file: str) -> None:
    """pmon3's wording for a file that cannot be run, from what `uid` can see."""
    try:
        st = stat_as(uid, file)
    except OSError as exc:
        reason = (exc.strerror or "").lower()
        raise InvalidRequestError(
            f"command error: file argument error: {file} does not exist: stat {file}: {reason}"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidRequestError(f"command error: file argument error: {file} is not a regular file")
    if not st.st_mode & 0o111:
        raise InvalidRequestError(f"command error: file argument error: {file} is not executable")
