"""pmond's entry point: the `pmond` script and `python -m pmon3.daemon`."""

from __future__ import annotations

import sys


def lean_imports() -> None:
    """pmond never speaks TLS: asyncio imports ssl only where it can, and OpenSSL costs pmond ~4 MB of RSS
    (docs/scale.md). A module set to None in sys.modules cannot be imported (ImportError), which asyncio
    handles as a Python built without ssl."""
    if "ssl" not in sys.modules:
        sys.modules["ssl"] = None  # type: ignore[assignment]


def main() -> None:
    lean_imports()
    from .app import main as run

    run()
