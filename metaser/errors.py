"""Errors that the CLI turns into one clear message and an exit code (never a traceback)."""

from __future__ import annotations


class MetaserError(Exception):
    """A problem the user can fix: bad input, missing files, a wrong config value.

    ``exit_code`` follows the CLI convention: 2 = usage / input error, 1 = a run that
    finished but some items failed.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class ConfigError(MetaserError):
    """Unknown key, wrong type or invalid value in a YAML config or a dotted override."""


class DataError(MetaserError):
    """A corpus root, manifest or audio file that cannot be used."""
