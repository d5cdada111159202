"""The one kind of error a user sees: a MicroGPTError is printed by the CLI as one line
(`error: <what is wrong>: <what to do>`) and the command exits non-zero."""

import math


class MicroGPTError(Exception):
    """A problem with the user's input or files: the CLI prints it as one line and exits non-zero."""


def _log0_message():
    try:
        math.log(0.0)
    except ValueError as e:
        return str(e)  # ("math domain error"; each Python version words it its own way)


LOG0 = _log0_message()


def math_overflow(e):
    """Whether an exception is the python engine's float math meeting weights that have diverged
    (log(0) in the loss, a power that overflows), where array engines would give inf or NaN."""
    return isinstance(e, OverflowError) or (isinstance(e, ValueError) and str(e) == LOG0)
