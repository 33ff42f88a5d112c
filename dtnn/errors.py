"""Exceptions shared by the whole package.

A ``UserError`` is a mistake the user can fix (a bad option, a missing or corrupt
file).  The CLI prints its message as one line and exits with status 2, without a
traceback.  Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with user input: printed as one line, exit status 2."""


class DataError(UserError):
    """A data file that is missing, corrupt, truncated or inconsistent."""


class ConfigError(UserError):
    """A bad configuration value, option or config file."""
