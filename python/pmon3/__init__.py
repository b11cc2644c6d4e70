"""pmon3: a process manager for Linux that keeps services alive (pmon3-compatible)."""

__version__ = "0.1.0"
# The pmon3 release whose CLI, config and formats this package is compatible with.
PMON3_COMPAT_VERSION = "1.18.3"

__all__ = ["Client", "PMON3_COMPAT_VERSION", "__version__"]


def __getattr__(name: str) -> object:
    # Lazily: the CLI imports this package first and must not pay for the client until it needs it.
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'pmon3' has no attribute {name!r}")
