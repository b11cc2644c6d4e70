"""What pmond keeps loaded is part of its RSS for good (docs/scale.md): modules it needs for nothing stay out."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from pmon3.daemon import entry
sys.argv = ["pmond", "--version"]
try:
    entry.main()
except SystemExit:
    pass
print(" ".join(m for m in ("shutil", "bz2", "lzma", "ssl") if sys.modules.get(m) is not None))
"""


def test_pmond_start_imports_neither_shutil_nor_ssl():
    """argparse's default help formatter imports shutil (bz2, lzma, zlib: ~0.7 MiB); asyncio imports ssl
    where it can (OpenSSL: ~4 MB)."""
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True)
    assert res.stdout.startswith("pmond ")  # --version answered: the parser was made and used
    assert res.stdout.splitlines()[-1] == ""
