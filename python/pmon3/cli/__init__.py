"""pmon3: the command line. `main` is here with the CLI's client of pmond (one per command, the same settings for
all); the click application is app.py, the commands cli/commands/.

For `ls` the client is made, and its request sent, before click and the command load (~40 ms of the CLI's
start-up, ~3 ms of pmond's answer for 100 processes): the command then finds the reply waiting. Only requests
that change nothing, fully known from argv, go early; anything odd about argv, the config or pmond leaves it
to the command, which then does everything itself and reports any error (the early attempt is silent). Kept
in this module: every command loads it, and each module more costs `pmon3 --version` ~0.2 ms here."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ..client import Client

# argv (after `pmon3`) that may go early: the command and the flags that do not change its request.
EARLY_COMMANDS = frozenset(("ls", "list"))
EARLY_FLAGS = frozenset(("--json", "-A", "--all"))

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


def start_early(args: Sequence[str]) -> None:
    """Send the request of `pmon3 ls` now, when argv is exactly that command and its flags."""
    global _early
    if not args or args[0] not in EARLY_COMMANDS or not EARLY_FLAGS.issuperset(args[1:]):
        return
    if os.environ.get("_PMON3_COMPLETE"):  # shell completion: click reads its own words
        return
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
    """A request sent early that no command took (click printed help or an error instead): drop its reply."""
    global _early
    if _early is not None:
        _early.close()
        _early = None


def main(argv: Optional[list[str]] = None) -> Any:
    start_early(sys.argv[1:] if argv is None else argv)
    try:
        from .app import run

        return run(argv)
    finally:
        end()
