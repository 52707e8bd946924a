"""Errors that say what failed, what was checked, and how to fix it.

The CLI catches :class:`PhasegateError` in one place and exits with its code,
and the pytest plugin maps a run to the same codes: 0 pass, 1 gate failed,
2 usage or environment error, 3 inconclusive (nothing to judge: empty stores,
too few requests).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3


class PhasegateError(Exception):
    """Base error: a message, an optional hint, and the CLI exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(PhasegateError):
    """The command line, environment or pyproject settings are wrong."""


class ServerError(PhasegateError):
    """A server could not be started or reached; says what was tried."""


class PermissionRefusedError(ServerError):
    """A store answered but refused an operation to this user or role."""


class StoreTimeoutError(ServerError):
    """A store did not answer an operation within the store timeout."""
