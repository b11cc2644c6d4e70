"""pmon3: a process manager for Linux that keeps services alive (pmon3-compatible)."""

__version__ = "0.1.0"
# The pmon3 release whose CLI, config and formats this package is compatible with.
PMON3_COMPAT_VERSION = "1.18.3"
