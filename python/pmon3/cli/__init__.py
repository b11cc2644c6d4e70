"""pmon3: the command line (the click application is app.py, the commands cli/commands/).

`ls` sends its request before click loads (session.py): click is most of the CLI's start-up, and pmond
answers meanwhile."""

from __future__ import annotations

import sys
from typing import Any, Optional


def main(argv: Optional[list[str]] = None) -> Any:
    from . import session

    session.start_early(sys.argv[1:] if argv is None else argv)
    try:
        from .app import run

        return run(argv)
    finally:
        session.end()
