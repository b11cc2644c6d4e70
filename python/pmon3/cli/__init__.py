"""pmon3: the command line. `main` is here with the CLI's client of pmond (one per command, the same settings for
all); the click application is app.py, the commands cli/commands/.

`pmon3 ls` (argv exactly `ls` or `list` and its flags) skips click altogether (cli/ls.py), and its request
goes to pmond first, before the modules that print the answer load. Kept in this module: every command loads
it, and each module more costs `pmon3 --version` ~0.2 ms here."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ..client import Client

_early: Optional[Client] = None


def warn(text: str) -> None:
    """Config warnings from pmond, escaped: they may quote a user's file."""
    from .output import escape

    sys.stderr.write(f"error: {escape(text)}\n")


def client() -> Client:
    """The command's client: the early one if its request was sent, else a new one (which starts a user
    daemon when none runs, if allowed)."""
    global _early
    made, _early = _early, None
    if made is not None:
        return made
    from ..client import Client

    return Client(autostart=True, on_warning=warn)


def start_early() -> None:
    """Send the request of `pmon3 ls` now: pmond answers while the rest loads. Silent: on any failure the
    command makes its own client, which then does everything itself and reports any error."""
    global _early
    from ..client import Client
    from ..errors import Pmon3Error
    from ..ipc.messages import ListRequest

    try:
        made = Client(autostart=True, on_warning=warn)
    except (Pmon3Error, OSError):  # a bad config: the command reports it
        return
    if made.prefetch(ListRequest()):
        _early = made


def end() -> None:
    """A request sent early that the command did not take (it failed first): drop its reply."""
    global _early
    if _early is not None:
        _early.close()
        _early = None


def main(argv: Optional[list[str]] = None) -> Any:
    from . import ls

    options = None if os.environ.get("_PMON3_COMPLETE") else ls.parse(sys.argv[1:] if argv is None else argv)
    if options is None:
        from .app import run

        return run(argv)
    start_early()
    try:
        return ls.run(options)
    finally:
        end()
