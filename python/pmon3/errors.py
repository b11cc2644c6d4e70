"""One exception hierarchy for the daemon, the client and the CLI, and the error codes of the protocol.

Every error a user can cause is a `Pmon3Error` with a one-line message and an `ErrorCode`; the daemon answers
it as {ok: false, error: {code, message}} and the client raises the matching class again, so a script using
`pmon3.Client` catches the same exceptions the CLI reports. Imports nothing of ours: the CLI pays for it.
"""

from __future__ import annotations

import enum
from typing import Optional


class ErrorCode(str, enum.Enum):
    """The `error.code` strings on the wire; a new code is a protocol addition, never a rename."""

    ERROR = "error"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    CONFLICT = "conflict"
    DENIED = "denied"
    SPAWN = "spawn"
    CONFIG = "config"
    DEPENDENCIES = "dependencies"
    PROTOCOL = "protocol"
    UNKNOWN_COMMAND = "unknown_command"
    SHUTTING_DOWN = "shutting_down"
    BUSY = "busy"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"

    @classmethod
    def parse(cls, value: object) -> ErrorCode:
        try:
            return cls(str(value))
        except ValueError:
            return cls.ERROR


class Pmon3Error(Exception):
    """Base of every pmon3 error: a one-line `message` for a person and a `code` for a program."""

    default_code = ErrorCode.ERROR
    # The request field (process config key) the error is about, when the raiser knew it: `apply` names it
    # with the entry's place in the file. Never on the wire.
    field: Optional[str] = None

    def __init__(self, message: str, code: Optional[ErrorCode] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message


# -- answered by pmond (and raised again by the client) -------------------------------------------------


class CommandError(Pmon3Error):
    """A request that pmond refused or could not carry out."""


class NotFoundError(CommandError):
    default_code = ErrorCode.NOT_FOUND


class InvalidRequestError(CommandError):
    default_code = ErrorCode.INVALID


class ConflictError(CommandError):
    default_code = ErrorCode.CONFLICT


class PermissionDeniedError(CommandError):
    default_code = ErrorCode.DENIED


class SpawnError(CommandError):
    """A process could not be started; the message says why in one line."""

    default_code = ErrorCode.SPAWN


_BY_CODE: dict[ErrorCode, type[CommandError]] = {
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.INVALID: InvalidRequestError,
    ErrorCode.CONFLICT: ConflictError,
    ErrorCode.DENIED: PermissionDeniedError,
    ErrorCode.SPAWN: SpawnError,
}


def from_reply(code: object, message: str) -> CommandError:
    """The exception for an error reply: the class of its code, the code kept as sent."""
    parsed = ErrorCode.parse(code)
    return _BY_CODE.get(parsed, CommandError)(message, parsed)


# -- local to one side -------------------------------------------------------------------------------------


class ConfigError(Pmon3Error):
    """A config.yml that cannot be used; the message names the file, the key and the problem."""

    default_code = ErrorCode.CONFIG


class ProcessConfigError(Pmon3Error):
    """A process config file that cannot be used; the message names the file, the entry and the key."""

    default_code = ErrorCode.CONFIG


class DependencyError(Pmon3Error):
    default_code = ErrorCode.DEPENDENCIES


class ProtocolError(Pmon3Error):
    """A malformed, oversized or incompatible message."""

    default_code = ErrorCode.PROTOCOL


class TransitionError(Pmon3Error):
    """A status change the state machine does not allow: a bug, never a user's doing."""

    default_code = ErrorCode.INTERNAL


class DaemonUnavailableError(Pmon3Error):
    """No pmond answers: not running, died, or its endpoint is not to be trusted."""

    default_code = ErrorCode.UNAVAILABLE


class DaemonTimeoutError(Pmon3Error):
    """pmond is alive but did not answer in time."""

    default_code = ErrorCode.TIMEOUT
