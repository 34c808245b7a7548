"""The exit codes of the ``scaleinv`` commands, and the paragraph each ``--help`` shows.

One table for every command, so that a script can rely on them: 0 is success (the command's
output was printed or written, whatever it says), 2 is bad input or an error (one line
``scaleinv: error: ...`` on stderr, no traceback), 130 an interrupt. ``verify`` adds 1 (a check
the chapter says should hold fails) and 3 (none failed, but one that should hold was not
decided: over its budget, or not checked), so that 0 always means every such check holds.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "exit_status_help"]


class ExitCode(IntEnum):
    """What a ``scaleinv`` process's exit status means."""

    #: The command did its job (a table printed, a report or module written).
    OK = 0
    #: ``verify``: a check the chapter says should hold fails.
    FAILED = 1
    #: Bad input, or an error the command reports in one line.
    ERROR = 2
    #: ``verify``: no check that should hold fails, but one of them was not decided.
    UNDECIDED = 3
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


_MEANING = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "a check the chapter says should hold fails",
    ExitCode.ERROR: "bad input or an error (one 'scaleinv: error:' line on stderr)",
    ExitCode.UNDECIDED: "no such check fails, but one of them was not decided (over its "
    "budget, or not checked)",
    ExitCode.INTERRUPTED: "interrupted",
}


def exit_status_help(success: str, *extra: ExitCode) -> str:
    """The ``exit status`` paragraph of a command's ``--help``.

    Parameters
    ----------
    success : str
        What exit status 0 means for this command.
    *extra : ExitCode
        The codes this command uses besides 0, 2 and 130.

    Examples
    --------
    >>> print(exit_status_help("the table was printed"))
    exit status:
      0    success: the table was printed
      2    bad input or an error (one 'scaleinv: error:' line on stderr)
      130  interrupted
    """
    codes = sorted({ExitCode.ERROR, ExitCode.INTERRUPTED, *extra})
    lines = ["exit status:", f"  {0:<4} {_MEANING[ExitCode.OK]}: {success}"]
    lines += [f"  {int(code):<4} {_MEANING[code]}" for code in codes]
    return "\n".join(lines)
