"""Converters from other process managers' configs to pmon3 process config entries (`pmon3 import`).

One module per source (pm2, supervisord, procfile), each with a `convert(path, ...)` that reads the source and
returns an ImportResult (common.py): the entries, ready for procconfig.render, and a warning for every source key
that has no equivalent. Nothing here writes files or prints; the CLI command (cli/commands/import_.py) does.
"""

from __future__ import annotations

SOURCES = ("pm2", "supervisord", "procfile")
