"""`pmon3 ls`, the command people type most: what it prints, and its way around click.

`pmon3 ls` or `pmon3 list` with nothing but the flags below runs here without importing click, which is
most of the CLI's start-up (~35 ms of ~60 here): `main` sends the request first, then `run` prints the
answer. Any other argv, `--help` included, goes through click, whose `ls` command (cli/commands/listing.py)
calls the same `show`; both print the same bytes and exit the same way (tests/integration/test_ls_path.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Optional

NAMES = frozenset(("ls", "list"))
# Every option of the click command, by every name it has (a test keeps the two equal).
FLAGS = {"--json": "as_json", "-A": "show_all", "--all": "show_all"}


def parse(args: Sequence[str]) -> Optional[dict[str, bool]]:
    """The options of `ls` when argv is that command with only its flags, else None (click's business)."""
    if not args or args[0] not in NAMES or not all(a in FLAGS for a in args[1:]):
        return None
    given = {FLAGS[a] for a in args[1:]}
    return {"as_json": "as_json" in given, "show_all": "show_all" in given}


def show(as_json: bool, show_all: bool) -> None:
    """List the processes: pmond's JSON text indented, or the table (on a terminal at most a screenful)."""
    from . import client
    from .output import print_json_text, process_table, process_table_for_terminal

    if as_json:  # pmond's JSON text as it came, indented: no record is decoded only to be encoded again
        with client() as c:
            text = c.list_json()
        print_json_text(text)
        return
    with client() as c:
        procs = c.list()
    if show_all:
        process_table(procs)
    else:
        process_table_for_terminal(procs)


def run(options: dict[str, bool]) -> None:
    """`show` as click's standalone mode and the commands' handle_errors would run it: a pmon3 error is one
    escaped line and status 1, ^C is "Aborted!" and 1, a reader gone (EPIPE) is a quiet 1."""
    from ..errors import Pmon3Error
    from .output import fail

    try:
        show(**options)
        sys.stdout.flush()
    except Pmon3Error as exc:
        fail(str(exc))
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\nAborted!\n")
        sys.exit(1)
    except BrokenPipeError:
        # Nothing more reaches the reader; what is still buffered must not fail again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
