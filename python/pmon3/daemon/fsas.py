"""Filesystem checks made with a given user's rights, so that an answer reveals nothing that user could not
see for themself (root's pmond checking a user's path must not say whether it exists behind a 0700 dir)."""

from __future__ import annotations

import os
import stat

from ..errors import InvalidRequestError


def _stat(uid: int, path: str) -> os.stat_result:
    return os.stat(path)


def is_dir(uid: int, path: str) -> bool:
    try:
        return stat.S_ISDIR(_stat(uid, path).st_mode)
    except OSError:
        return False


def check_executable(uid: int, file: str) -> None:
    """pmon3's wording for a file that cannot be run."""
    try:
        st = _stat(uid, file)
    except OSError as exc:
        reason = (exc.strerror or "").lower()
        raise InvalidRequestError(
            f"command error: file argument error: {file} does not exist: stat {file}: {reason}"
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidRequestError(f"command error: file argument error: {file} is not a regular file")
    if not st.st_mode & 0o111:
        raise InvalidRequestError(f"command error: file argument error: {file} is not executable")
