"""The exceptions scaleinv raises.

Every failure a user can cause is a :class:`ScaleinvError`; each subclass carries the data
it complains about and builds a deterministic message from it (as pint's errors do).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ScaleinvError",
    "ParseError",
    "SpecError",
    "ProblemError",
    "NoInverseError",
    "BudgetExceeded",
    "DimensionError",
    "GraphError",
    "NumericOnlyError",
    "RuleError",
    "OutputFolderError",
    "MemoryLimitError",
    "ScaleinvWarning",
    "NumericInverseWarning",
    "one_line",
    "did_you_mean",
]


def one_line(text: str) -> str:
    r"""``text`` with every character that is not printable (newlines, tabs, escape sequences,
    U+2028, NUL, ...) written as its Python escape: what an error echoes of a path or of a
    spec can neither break the message into lines nor forge another one.

    Examples
    --------
    >>> print(one_line("no\nscaleinv: error: forged.toml \x1b[31m é"))
    no\nscaleinv: error: forged.toml \x1b[31m é
    """
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` naming the known name closest to a misspelt ``name``, or ``""``
    when none is close (:func:`difflib.get_close_matches`).

    Examples
    --------
    >>> "unknown rule 'newtn'" + did_you_mean("newtn", ["gd", "newton", "ig"])
    "unknown rule 'newtn' (did you mean 'newton'?)"
    >>> did_you_mean("xyz", ["gd", "newton"])
    ''
    """
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class ScaleinvError(Exception):
    """Base class of every error scaleinv raises on purpose; its message is one line.

    Errors pickle with their data (a budgeted step sends them across processes), although
    subclasses take other constructor arguments than their message.
    """

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), self.args, self.__dict__))

    def __str__(self) -> str:
        """The message on one line (:func:`one_line`), whatever text it echoes."""
        return one_line(super().__str__())


def _rebuild(cls: type[ScaleinvError], args: tuple, state: dict) -> ScaleinvError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class ParseError(ScaleinvError, ValueError):
    """An expression string uses something outside the allowed grammar.

    Parameters
    ----------
    text : str
        The whole expression string.
    offending : str
        The part of it that is not allowed.
    reason : str
        Why it is not allowed.
    """

    def __init__(self, text: str, offending: str, reason: str) -> None:
        self.text, self.offending, self.reason = text, offending, reason
        super().__init__(f"cannot parse {text!r}: {reason}: {offending!r}")


class SpecError(ScaleinvError, ValueError):
    """A problem spec file (TOML) is malformed; names the file and the key at fault."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source, self.key, self.reason = source, key, reason
        where = f"{source}: " if source else ""
        super().__init__(f"{where}[{key}] {reason}")


class ProblemError(ScaleinvError, ValueError):
    """A problem is inconsistent (unknown symbols, wrong sizes, singular matrices, ...)."""


class NoInverseError(ScaleinvError, ArithmeticError):
    """``P(x) = y`` has no real solution for some samples.

    Parameters
    ----------
    count : int
        How many samples have no solution.
    total : int
        How many samples were asked for.
    example : tuple of float
        The target ``y`` of the first failing sample.
    not_found : int
        How many of them the numeric solver did not find (a solution may exist); the others
        have none for certain.
    """

    def __init__(
        self, count: int, total: int, example: tuple[float, ...], not_found: int = 0
    ) -> None:
        self.count, self.total, self.example = count, total, example
        self.not_found = not_found
        how = f", {not_found} of them not found by the numeric solver" if not_found else ""
        super().__init__(
            f"no real solution of P(x) = y for {count} of {total} samples{how} "
            f"(first: y = {example}); pass fallback='keep' or 'ig' to step anyway"
        )


class BudgetExceeded(ScaleinvError, TimeoutError):
    """A symbolic step (solve, simplify) ran past its work limit.

    Parameters
    ----------
    what : str
        The step.
    steps : int
        Its work limit (counted Python calls, see :mod:`scaleinv.symbolic.budget`).
    wall : float, optional
        Set when the step was stopped by the wall-clock safety net instead (seconds): it was
        stuck outside counted code, and this verdict may depend on the machine's load.
    """

    def __init__(self, what: str, steps: int, *, wall: float | None = None) -> None:
        self.what, self.steps, self.wall = what, steps, wall
        if wall is None:
            message = f"{what} exceeded its work limit of {steps:,} steps"
        else:
            message = (
                f"{what} ran past the wall-clock safety net ({wall:g} s) of its work limit of "
                f"{steps:,} steps, stuck in uncounted (C-level) work"
            )
        super().__init__(message)


class DimensionError(ScaleinvError, ValueError):
    """Physical dimensions do not fit together; names the term at fault."""

    def __init__(self, term: str, reason: str) -> None:
        self.term, self.reason = term, reason
        super().__init__(f"{reason}: {term}")


class GraphError(ScaleinvError, ValueError):
    """A function graph is malformed (cycle, dangling input, size mismatch)."""


class NumericOnlyError(ScaleinvError, NotImplementedError):
    """A rule has no symbolic update (HIG, BFGS); use its compiled kernel instead."""

    def __init__(self, rule: str, why: str) -> None:
        self.rule, self.why = rule, why
        super().__init__(f"{rule} is numeric-only: {why}")


class RuleError(ScaleinvError, ValueError):
    """An update rule is unknown or has an invalid setting."""


class OutputFolderError(ScaleinvError, OSError):
    """An output folder cannot be written or replaced; names the folder and why.

    Parameters
    ----------
    path : str
        The output folder as given.
    reason : str
        Why it cannot be used (files scaleinv did not write, a link, no permission, ...).
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"output folder {path}: {reason}")


def _bytes(count: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{int(count)} B"


class MemoryLimitError(ScaleinvError, MemoryError):
    """A request needs more memory than is available; says how much and what to change.

    Parameters
    ----------
    what : str
        What was asked for, with the sizes that make up ``needed``.
    needed : int
        Bytes the request needs (an estimate).
    available : int
        Bytes available (what the machine reports, or the caller's limit).
    advice : str
        How to make the request fit.

    Examples
    --------
    >>> str(MemoryLimitError("a run", 3 * 10**12, 8 * 10**9, "ask for less"))
    'a run needs about 3 TB but only 8 GB are available; ask for less'
    """

    def __init__(self, what: str, needed: int, available: int, advice: str) -> None:
        self.what, self.needed, self.available, self.advice = what, needed, available, advice
        super().__init__(
            f"{what} needs about {_bytes(needed)} but only {_bytes(available)} are available; "
            f"{advice}"
        )


class ScaleinvWarning(UserWarning):
    """Base class of the warnings scaleinv issues."""


class NumericInverseWarning(ScaleinvWarning):
    """A rule's step uses the numeric local inverse: ``P(x) = y`` has no usable closed form.

    PG then solves ``P(x) = y`` by path-following Gauss–Newton at every step (slower than a
    closed form, and a sample can end ``not_found``). Silence it with
    ``warnings.simplefilter("ignore", NumericInverseWarning)``.
    """

    def __init__(self, rule: str, reason: str) -> None:
        self.rule, self.reason = rule, reason
        super().__init__(f"{rule} uses the numeric local inverse ({reason})")
