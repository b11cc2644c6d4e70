"""How a process's log files are named: <log>, and its rotations <log>.1 (newest) … <log>.N, maybe .gz.

Shared by the CLI (`log -a`), the daemon's rotation and `del` (which removes the files pmond made)."""

from __future__ import annotations

import glob
import re


def rotated_files(log: str) -> list[str]:
    """The rotations of `log`, oldest first."""
    found = []
    for path in glob.glob(glob.escape(log) + ".*"):
        m = re.fullmatch(re.escape(log) + r"\.(\d+)(\.gz)?", path)
        if m:
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found, reverse=True)]
