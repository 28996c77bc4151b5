"""Errors that reach the user as one line and exit code 2 (bad input), never as a traceback."""

from __future__ import annotations


class SweeplabError(Exception):
    """Base for every error caused by what the user asked for.

    The CLI prints ``str(err)`` on one line and exits with code 2. ``path`` is the full key path of
    the offending field (``optim.lr``, ``arm 'batch size'.batch_size``) when there is one.
    """

    exit_code = 2

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class ConfigError(SweeplabError):
    """A config or study file is malformed: unknown key, wrong type, value out of range."""


class DataError(SweeplabError):
    """A dataset cannot be found, read or split as asked."""


class StoreError(SweeplabError):
    """The run store cannot be opened or does not hold what was asked for."""
