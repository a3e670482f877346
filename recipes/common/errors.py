"""Errors a user can fix: a config key, a path, a data row, a tokenizer. A recipe run from the shell prints such an
error's message alone (it says what is wrong, where, and what to do) and exits with status 2 before anything is
trained; `--debug` (or RECIPES_DEBUG=1) shows the traceback as well. Any other exception is a bug and keeps its
traceback.

Each class is also the built-in exception it stands for, so `except ValueError` still catches a bad value.
"""

from __future__ import annotations


class UserError(Exception):
    """Something in the input is wrong, and the message says where and what to do."""


class ConfigError(UserError, ValueError):
    """A config file or command line names a key the recipe does not know, or a value it cannot use."""


class InputError(UserError, ValueError):
    """A model, tokenizer or data file the stage cannot use."""


class MissingInputError(UserError, FileNotFoundError):
    """A path the stage reads does not exist."""


class NotWritableError(UserError, PermissionError):
    """A directory the stage must write in cannot be written."""
