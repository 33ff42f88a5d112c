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


class TrainingDiverged(UserError):
    """Training stopped because the loss became non-finite or exploded.

    Every rank reaches this decision at the same step from values they share (the
    averaged gradients, an all-reduced loss), so under MPI the CLI lets rank 0 print
    it once and every rank exit with status 2, with no ``MPI_Abort``."""
    collective = True


class TrainingStalled(TrainingDiverged):
    """Training stopped because the network died: its output no longer depends on its
    input (all hidden ReLUs dead), so the loss is stuck at the class prior's entropy.
    Decided collectively like ``TrainingDiverged``."""
