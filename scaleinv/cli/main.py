"""The ``scaleinv`` command line: the parser with every command registered, and the entry point.

Each command is a module of :mod:`scaleinv.cli` with a ``register(subparsers)`` function.
Bad input prints one line and exits nonzero, no traceback (:mod:`scaleinv.cli.exit_status`).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from scaleinv._version import __version__
from scaleinv.cli import derive, export, report, run, study, verify
from scaleinv.cli.exit_status import ExitCode, exit_status_help
from scaleinv.errors import ScaleinvError, one_line

__all__ = ["main", "build_parser", "COMMANDS"]

#: The command modules, in the order ``scaleinv --help`` lists them.
COMMANDS = (run, derive, export, verify, report, study)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like every other scaleinv error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"scaleinv: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = _Parser(
        prog="scaleinv",
        description="Exact derivations, local inverses and batched kernels for scale-invariant "
        "optimization (GD, Newton, IG, PG, HIG). `scaleinv COMMAND --help` says what a "
        "command prints or writes.",
        epilog=exit_status_help(
            "the command did its job (a table printed, a report or module written)",
            ExitCode.FAILED,
            ExitCode.UNDECIDED,
        ).replace("exit status:", "exit status (1 and 3: verify only):"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    for shown in (parser, *sub.choices.values()):  # raw epilogs (tables): wrap the prose here
        shown.description = shown.description and textwrap.fill(shown.description, 79)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scaleinv`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ScaleinvError as err:
        return _error(str(err))
    except BrokenPipeError:  # e.g. `scaleinv derive SPEC | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        return ExitCode.OK
    except OSError as err:
        return _error(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "))
    except MemoryError as err:  # NumPy's says how much: "Unable to allocate 7.28 TiB for ..."
        how_much = f" ({err})" if str(err) else ""
        return _error(f"the input needs more memory than is available{how_much}")
    except (RecursionError, OverflowError) as err:
        # Pathological sizes that slipped past the input limits (a bug elsewhere still shows
        # its traceback: only resource exhaustion is reported this way).
        what = "nested too deeply" if isinstance(err, RecursionError) else "out of range"
        return _error(f"the input is {what} to process ({err})")
    except KeyboardInterrupt:
        return _error("interrupted", ExitCode.INTERRUPTED)


def _error(message: str, code: int = ExitCode.ERROR) -> int:
    """Print ``message`` as the one line ``scaleinv: error: ...`` (see :func:`one_line`)."""
    print(f"scaleinv: error: {one_line(message)}", file=sys.stderr)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
